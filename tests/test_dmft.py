"""Tests for mftlib.dmft: the SCS dynamical mean-field theory against finite random networks.

Simulations run at N = 1000 (the slowest part of this file, about 30 s on two cores); the theory
checks are independent of the library's solver where possible (analytic limits near the onset,
the potential by a separate 2-D quadrature of Phi = ln cosh, finite differences of Delta(tau)).
"""

from __future__ import annotations

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

import mftlib as mft
from mftlib import dmft
from mftlib.networks import dmft as dmft_nets

N = 1000
T_MAX = 200.0


@cache
def _runs(g: float) -> tuple[np.ndarray, ...]:
    """Two seeds of N = 1000 networks, 200 time units after 50 of burn-in, saved every 0.5."""
    return tuple(dmft_nets.simulate(jax.random.key(s), N, g, T_MAX) for s in range(2))


@pytest.mark.slow
@pytest.mark.parametrize("g", [1.5, 2.0, 3.0])
def test_delta0_against_simulation(g):
    # Tolerance 10 %: measured over 4 seeds (N = 1000, T = 200), the per-seed Delta0 scatters by
    # 7 % (g = 1.5, correlation time 10, so only ~20 independent windows) and 2.5 % (g = 2, 3)
    # around a mean within 1 % of the theory; the mean of two seeds has a standard error <= 5 %,
    # and the finite-N bias (O(1/N), ~1 %) is smaller still.
    sim = np.mean([np.mean(x**2) for x in _runs(g)])
    assert sim == pytest.approx(dmft.scs_delta0(g), rel=0.10)


@pytest.mark.slow  # simulates finite networks
def test_autocorrelation_shape_against_simulation():
    # Normalised Delta(tau)/Delta(0) up to tau = 20 (three correlation times) at g = 2; the
    # simulated curve is the mean of two seeds, whose difference is about 0.02 at every lag.
    lags = np.arange(41)
    sim = np.mean([dmft.autocorrelation_from_trajectories(x, 40) for x in _runs(2.0)], axis=0)
    theory = dmft.scs_autocorrelation(2.0, 0.5 * lags)
    np.testing.assert_allclose(sim / sim[0], theory / theory[0], atol=0.05)


@pytest.mark.slow
def test_lyapunov_against_simulation():
    # Benettin exponent of N = 1000 networks at g = 2: measured 0.109 +- 0.009 (std over 3 seeds)
    # against the theory 0.1125. Tolerance 20 %: two seeds have a standard error of ~6 %, and the
    # finite-N exponent approaches the theory from below (0.088 at N = 500).
    sim = np.mean(
        [dmft_nets.lyapunov_from_simulation(jax.random.key(s), N, 2.0, T_MAX) for s in (0, 1)]
    )
    assert sim == pytest.approx(dmft.scs_lyapunov(2.0), rel=0.2)


def test_step_size():
    # Halving dt over a horizon short enough that chaos has not amplified the difference.
    kw = dict(t_burn=0.0, save_dt=0.5)
    a = dmft_nets.simulate(jax.random.key(3), 200, 2.0, 5.0, dt=0.1, **kw)
    b = dmft_nets.simulate(jax.random.key(3), 200, 2.0, 5.0, dt=0.05, **kw)
    assert np.max(np.abs(a - b)) < 1e-4


def test_onset_scaling():
    # Expanding V to fourth order for tanh: V = Delta^2 (g^2 - 1 - 2 Delta0) / 2 + Delta^4 / 6, so
    # V(Delta0) = V(0) gives Delta0 = (g - 1) + O((g - 1)^2); Delta = Delta0 / cosh(kappa tau)
    # with kappa = Delta0 / sqrt(3); the Schrodinger potential is the Poschl-Teller well
    # kappa^2 (1 - 6 sech^2), ground state -3 kappa^2, so lambda = (g - 1)^2 / 2 to leading order.
    for eps in [1e-3, 3e-3, 1e-2]:
        g = 1.0 + eps
        assert dmft.scs_delta0(g) / eps == pytest.approx(1.0, abs=2 * eps)
        kappa = 1.0 / dmft.scs_correlation_time(g, kind="tail")
        assert kappa * np.sqrt(3.0) / eps == pytest.approx(1.0, abs=3 * eps)
    for eps in [3e-3, 1e-2]:
        assert dmft.scs_lyapunov(1.0 + eps) / eps**2 == pytest.approx(0.5, abs=5 * eps)
    tau = np.linspace(0.0, 3.0 / 1e-2, 50)
    shape = dmft.scs_autocorrelation(1.01, tau) / dmft.scs_delta0(1.01)
    np.testing.assert_allclose(shape, 1 / np.cosh(1e-2 * tau / np.sqrt(3)), atol=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("g", [1.3, 3.0])
def test_energy_conservation_and_equation_of_motion(g):
    d0 = dmft.scs_delta0(g)
    h = 1e-3
    tau = np.linspace(0.5, 25.0, 40)
    d = dmft.scs_autocorrelation(g, np.concatenate([tau - h, tau, tau + h])).reshape(3, -1)
    velocity, accel = (d[2] - d[0]) / (2 * h), (d[2] - 2 * d[1] + d[0]) / h**2
    V = np.asarray(dmft.scs_potential(np.concatenate([[d0, 0.0], d[1]]), d0, g))
    V0, Vinf = V[0], V[1]
    assert V0 - Vinf == pytest.approx(0.0, abs=1e-9 * d0**2)  # the condition that fixes Delta0
    energy = 0.5 * velocity**2 + V[2:]
    np.testing.assert_allclose(energy - V0, 0.0, atol=1e-6 * d0**2)
    C = np.asarray(dmft._moments_on_grid(mft.activation("tanh"), d0, d[1])[0])
    np.testing.assert_allclose(accel, d[1] - g * g * C, atol=1e-4 * d0)


def test_quiescent_phase():
    assert dmft.scs_delta0(0.7) == 0.0 and dmft.scs_delta0(1.0) == 0.0
    assert dmft.scs_lyapunov(0.7) == pytest.approx(-0.3)
    np.testing.assert_array_equal(dmft.scs_autocorrelation(0.9, [0.0, 1.0]), 0.0)
    # The spectral abscissa of -1 + J is g - 1 up to O(N^-1/2): the circular law.
    J = 0.7 / np.sqrt(300) * np.random.default_rng(0).normal(size=(300, 300))
    assert np.max(np.linalg.eigvals(J).real) - 1 == pytest.approx(-0.3, abs=0.08)
    with pytest.raises(ValueError, match="g must be > 1"):
        dmft.scs_correlation_time(0.9)


def test_erf_onset():
    assert dmft.critical_g("erf") == pytest.approx(np.sqrt(np.pi) / 2)
    assert dmft.scs_delta0(0.88, "erf") == 0.0 and dmft.scs_delta0(0.9, "erf") > 0.0


def test_autocorrelation_estimator():
    x = np.random.default_rng(1).normal(size=(4000, 50))
    ac = dmft.autocorrelation_from_trajectories(x, 5)
    assert ac[0] == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(ac[1:], 0.0, atol=0.02)


@pytest.mark.parametrize(
    ("call", "err", "name"),
    [
        (lambda: dmft.scs_delta0(-1.0), ValueError, "g"),
        (lambda: dmft.scs_delta0(float("nan")), ValueError, "g"),
        (lambda: dmft.scs_delta0(True), TypeError, "g"),
        (lambda: dmft.scs_delta0(2.0, "relu"), ValueError, "phi"),
        (lambda: dmft.scs_delta0(2.0, "nope"), ValueError, "phi"),
        (lambda: dmft.scs_lyapunov(np.inf), ValueError, "g"),
        (lambda: dmft.scs_autocorrelation(2.0, [-1.0]), ValueError, "tau"),
        (lambda: dmft.scs_correlation_time(2.0, kind="x"), ValueError, "kind"),
        (lambda: dmft_nets.simulate(0, 10, 2.0, 1.0), TypeError, "key"),
        (lambda: dmft_nets.simulate(jax.random.key(0), 0, 2.0, 1.0), ValueError, "n"),
        (lambda: dmft_nets.simulate(jax.random.key(0), 10, 2.0, 1.0, dt=-0.1), ValueError, "dt"),
        (
            lambda: dmft_nets.simulate(jax.random.key(0), 10, 2.0, 1.0, save_dt=0.25, dt=0.1),
            ValueError,
            "save_dt",
        ),
        (lambda: dmft.autocorrelation_from_trajectories(np.ones((5, 2)), 5), ValueError, "max_lag"),
        (
            lambda: dmft_nets.simulate_discrete(jax.random.key(0), 10, 2.0, 5, q0=-1.0),
            ValueError,
            "q0",
        ),
    ],
)
def test_bad_inputs(call, err, name):
    with pytest.raises(err, match=name):
        call()


def test_discrete_time_follows_length_map():
    # Amari's macroscopic equation: fresh weights (a deep net) and fixed weights (a recurrent
    # net) both follow q -> g^2 E[phi(sqrt(q) z)^2] at large N (N = 500: fluctuations ~5 %).
    length_map = lambda q: mft.length_map("tanh", 4.0, 0.0, q)  # noqa: E731
    q_theory = np.asarray(mft.dynamics.iterate(length_map, 1.0, 8))
    for fresh in (True, False):
        q = dmft_nets.simulate_discrete(jax.random.key(0), 500, 2.0, 8, fresh=fresh)
        np.testing.assert_allclose(q, q_theory, rtol=0.15)


# --- several gains on one coupling matrix --------------------------------------------------------


@pytest.mark.slow  # samples finite networks: the slow suite
def test_gains_reproduce_the_single_network():
    # One column of simulate_gains / lyapunov_gains is the network simulate /
    # lyapunov_from_simulation draws from the same key (J = g Z, same x(0) and tangent vector);
    # only the rounding of g * (Z @ phi) against (g Z) @ phi differs, over a horizon too short
    # for chaos to amplify it.
    key = jax.random.key(5)
    kw = dict(t_burn=0.0, save_dt=0.5)
    many = dmft_nets.simulate_gains(key, 60, [0.8, 2.0], 4.0, **kw)
    assert many.shape == (8, 60, 2)
    for k, g in enumerate([0.8, 2.0]):
        one = dmft_nets.simulate(key, 60, g, 4.0, **kw)
        np.testing.assert_allclose(many[:, :, k], one, atol=1e-10)
    lam = dmft_nets.lyapunov_gains(key, 60, np.array([2.0]), 6.0, t_burn=2.0)
    assert lam.shape == (1,)
    ref = dmft_nets.lyapunov_from_simulation(key, 60, 2.0, 6.0, t_burn=2.0)
    assert lam[0] == pytest.approx(ref, abs=1e-8)
    assert np.shape(dmft_nets.lyapunov_gains(key, 20, 2.0, 2.0, t_burn=0.0)) == ()


def test_autocorrelation_windows_match_separate_runs():
    # A window (t0, t1) of one run from t = 0 is the run of autocorrelation_gains with burn-in t0
    # and length t1 - t0 (same key, same steps), up to rounding.
    key, g = jax.random.key(7), [1.5, 2.5]
    out = dmft_nets.autocorrelation_windows(key, 80, g, [(5.0, 15.0), (0.0, 20.0)], 6)
    assert out["ac"].shape == (2, 2, 7) and out["q"].shape == (40, 2)
    ref = dmft_nets.autocorrelation_gains(key, 80, g, 10.0, 6, t_burn=5.0)
    np.testing.assert_allclose(out["ac"][0], ref, rtol=1e-9)
    x = dmft_nets.simulate_gains(key, 80, g, 20.0, t_burn=0.0)
    np.testing.assert_allclose(out["q"], np.mean(x * x, axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="t_start < t_stop"):
        dmft_nets.autocorrelation_windows(key, 10, g, [(5.0, 5.0)], 2)
    with pytest.raises(ValueError, match="more than max_lag"):
        dmft_nets.autocorrelation_windows(key, 10, g, [(0.0, 1.0)], 2)
    with pytest.raises(ValueError, match="windows"):
        dmft_nets.autocorrelation_windows(key, 10, g, [1.0, 2.0], 2)


# --- the discrete-time net -----------------------------------------------------------------------


def _chi1_by_quadrature(g, sigma_b2=0.0):
    """chi1 of tanh by adaptive quadrature and a bracketed root for q* (independent of mftlib's
    Gaussian rules and fixed-point solver; Gauss-Hermite rules converge slowly here, since
    sech^4(sqrt(q) z) has poles at distance pi / (2 sqrt(q)) from the real axis)."""

    def mean(f, q):
        dens = lambda z: f(np.sqrt(q) * z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
        return quad(dens, -40, 40, limit=500, epsabs=1e-14, epsrel=1e-13)[0]

    q = brentq(lambda q: g * g * mean(lambda u: np.tanh(u) ** 2, q) + sigma_b2 - q, 1e-3, 50)
    return g * g * mean(lambda u: np.cosh(u) ** -4, q)


@pytest.mark.parametrize(("g", "sigma_b2"), [(1.5, 0.0), (2.5, 0.0), (3.0, 0.3), (1.2, 0.05)])
def test_discrete_lyapunov_is_half_log_chi1(g, sigma_b2):
    lam = dmft.discrete_lyapunov(g, sigma_b2=sigma_b2)
    assert lam == pytest.approx(0.5 * np.log(_chi1_by_quadrature(g, sigma_b2)), abs=1e-9)
    assert lam == pytest.approx(0.5 * np.log(float(mft.chi1("tanh", g * g, sigma_b2))), abs=1e-12)


def test_discrete_lyapunov_limits():
    # Below the onset (tanh, no bias) q* = 0 and chi1 = g^2: lambda = ln g, the log spectral
    # radius of J. Above it lambda = (2/3)(g - 1)^2 + O((g - 1)^3) (scs_onset_laws derives it).
    for g in (0.5, 0.9, 0.99):
        assert dmft.discrete_lyapunov(g) == pytest.approx(np.log(g), abs=1e-8)
    for eps in (3e-3, 1e-2):
        lam = dmft.discrete_lyapunov(1.0 + eps)
        assert lam / dmft.scs_onset_laws(1.0 + eps)["discrete_lyapunov"] == pytest.approx(
            1.0, abs=20 * eps
        )
    # The exponent is positive exactly where the network is chaotic (chi1 > 1).
    assert dmft.discrete_lyapunov(1.05) > 0.0 > dmft.discrete_lyapunov(0.95)
    assert dmft.discrete_lyapunov(0.8, "erf") == pytest.approx(np.log(1.6 / np.sqrt(np.pi)))


def test_onset_laws_approach_the_exact_solutions():
    # Each law is the first term of a series in g - 1: its relative error shrinks linearly.
    for name in dmft.ONSET_LAWS:
        errs = [abs(dmft.scs_onset_ratio(name, g) - 1) for g in (1.01, 1.003)]
        assert errs[1] < 0.5 * errs[0] and errs[1] < 0.05, name
    assert dmft.TAU_ONSET == pytest.approx(2.8708, abs=1e-4)
    # Far from the onset the laws fail: at g = 1.5, 2.87 / (g - 1) = 5.74 against the exact 9.93.
    assert dmft.scs_onset_laws(1.5)["tau_c"] == pytest.approx(5.742, abs=1e-3)
    assert dmft.scs_onset_ratio("tau_c", 1.5) == pytest.approx(0.578, abs=2e-3)


def test_discrete_lyapunov_against_annealed_simulation():
    # Annealed net (fresh weights: a deep tanh net), N = 2000, 400 steps, three gains on one
    # draw: the per-step log growth has a standard deviation ~ 1/sqrt(N) ~ 0.02, so the mean over
    # 400 steps is good to ~0.002; the finite-N bias is O(1/N).
    g = np.array([0.7, 1.5, 2.5])
    lam = dmft_nets.discrete_lyapunov_gains(jax.random.key(0), 2000, g, 400, fresh=True, burn=50)
    theory = [dmft.discrete_lyapunov(x) for x in g]
    np.testing.assert_allclose(lam, theory, atol=0.01)


@pytest.mark.slow
def test_discrete_lyapunov_against_quenched_simulation():
    # Quenched net (one J), N = 1000, 1000 steps after 300, two seeds. Below the onset the
    # exponent is the log spectral radius of J, ln g + O(sqrt(log N / N)) ~ ln g + 0.02; above,
    # the mean-field value (finite-N scatter between seeds ~0.01, measured).
    g = np.array([0.7, 1.5, 2.5])
    lam = np.mean(
        [
            dmft_nets.discrete_lyapunov_gains(
                jax.random.key(s), 1000, g, 1000, fresh=False, burn=300
            )
            for s in (0, 1)
        ],
        axis=0,
    )
    theory = np.array([dmft.discrete_lyapunov(x) for x in g])
    np.testing.assert_allclose(lam, theory, atol=0.04)


@pytest.mark.slow
def test_annealed_sampling_matches_explicit_weights():
    # The annealed simulation draws (J a, J d) from their 2 x 2 row covariance instead of N^2
    # weights. Against explicitly drawn fresh matrices (N = 150, 600 steps) the mean exponents
    # agree: measured over 24 seeds each, 0.1108 +- 0.0008 (explicit) and 0.1104 +- 0.0009
    # (sampled), both below the N -> infinity value 0.1193 by the same finite-N amount. Here
    # 12 seeds each: standard errors ~0.0012, tolerance 4 combined standard errors.
    n, g, steps = 150, 1.8, 600

    @jax.jit
    def explicit(key):
        kx, kv, kJ = jax.random.split(key, 3)
        x = jax.random.normal(kx, (n,))
        u = jax.random.normal(kv, (n,))
        u = u / jnp.linalg.norm(u)

        def step(state, k):
            y, v = state
            J = g / np.sqrt(n) * jax.random.normal(k, (n, n))
            v = J @ (v / jnp.cosh(y) ** 2)
            norm = jnp.linalg.norm(v)
            return (J @ jnp.tanh(y), v / norm), jnp.log(norm)

        logs = jax.lax.scan(step, (x, u), jax.random.split(kJ, 100 + steps))[1]
        return jnp.mean(logs[100:])

    a = [float(explicit(jax.random.key(100 + s))) for s in range(12)]
    b = [
        float(dmft_nets.discrete_lyapunov_gains(jax.random.key(s), n, g, steps, burn=100))
        for s in range(12)
    ]
    (ma, sa), (mb, sb) = dmft.mean_and_stderr(a), dmft.mean_and_stderr(b)
    assert abs(ma - mb) < 4 * np.hypot(sa, sb)


def test_autocorrelation_deviation_and_stderr():
    lags = 0.5 * np.arange(21)
    theory = dmft.scs_autocorrelation(2.0, lags)
    ac = np.stack([theory, theory * 1.1, theory - 0.05 * theory[0]])
    dev = dmft.autocorrelation_deviation(ac, 2.0, 0.5, late_lag=5.0)
    np.testing.assert_allclose(dev["delta0"], [0.0, 0.1, -0.05], atol=1e-12)
    np.testing.assert_allclose(dev["signed"], [0.0, 0.1 * theory.mean() / theory[0], -0.05])
    np.testing.assert_allclose(dev["absolute"], np.abs(dev["signed"]), atol=1e-12)
    late = dmft.autocorrelation_deviation(ac, 2.0, 0.5, late_lag=9.0)["late"]
    np.testing.assert_allclose(late, [0.0, 0.1 * theory[18:].mean() / theory[0], 0.05])
    with pytest.raises(ValueError, match="late_lag"):
        dmft.autocorrelation_deviation(ac, 2.0, 0.5, late_lag=11.0)
    mean, err = dmft.mean_and_stderr([[1.0, 2.0], [3.0, 2.0]])
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(err, [1.0, 0.0])
    mean, err = dmft.mean_and_stderr([[1.0, np.nan], [3.0, 2.0], [np.nan, 4.0]], skip_nan=True)
    np.testing.assert_allclose(mean, [2.0, 3.0])
    np.testing.assert_allclose(err, [1.0, 1.0])
    with pytest.raises(ValueError, match="two finite"):
        dmft.mean_and_stderr([[1.0], [np.nan]], skip_nan=True)
    flat = np.ones(5)
    assert np.isnan(dmft.correlation_time_from_autocorrelation(flat, 0.5, default=np.nan))
    with pytest.raises(ValueError, match="1/e|ac\\[0\\] / e"):
        dmft.correlation_time_from_autocorrelation(flat, 0.5)


@pytest.mark.parametrize(
    ("call", "err", "name"),
    [
        (lambda: dmft.discrete_lyapunov(-1.0), ValueError, "g"),
        (lambda: dmft.discrete_lyapunov([1.0, 2.0]), ValueError, "g"),
        (lambda: dmft.discrete_lyapunov(2.0, sigma_b2=-0.1), ValueError, "sigma_b2"),
        (lambda: dmft.discrete_lyapunov(2.0, "relu"), ValueError, "no finite fixed point"),
        (lambda: dmft.discrete_lyapunov(2.0, "nope"), ValueError, "phi"),
        (lambda: dmft.scs_onset_laws(1.0), ValueError, "g"),
        (lambda: dmft.scs_onset_ratio("nope", 1.5), ValueError, "name"),
        (lambda: dmft.autocorrelation_deviation(np.ones((2, 3)), 0.9, 0.5), ValueError, "g"),
        (lambda: dmft.autocorrelation_deviation(np.ones(3), 2.0, 0.5), ValueError, "ac"),
        (lambda: dmft.autocorrelation_deviation(np.ones((2, 3)), 2.0, 0.0), ValueError, "dt"),
        (lambda: dmft.mean_and_stderr([1.0]), ValueError, "two repetitions"),
        (lambda: dmft.mean_and_stderr([1.0, np.nan]), ValueError, "finite"),
        (lambda: dmft_nets.simulate_gains(jax.random.key(0), 10, [], 1.0), ValueError, "gains"),
        (lambda: dmft_nets.simulate_gains(jax.random.key(0), 10, [-1.0], 1.0), ValueError, "gains"),
        (lambda: dmft_nets.simulate_gains(0, 10, [1.0], 1.0), TypeError, "key"),
        (
            lambda: dmft_nets.lyapunov_gains(jax.random.key(0), 10, [[1.0]], 1.0),
            ValueError,
            "gains",
        ),
        (
            lambda: dmft_nets.discrete_lyapunov_gains(jax.random.key(0), 10, 1.5, 0),
            ValueError,
            "steps",
        ),
        (
            lambda: dmft_nets.discrete_lyapunov_gains(jax.random.key(0), 10, 1.5, 5, burn=-1),
            ValueError,
            "burn",
        ),
        (
            lambda: dmft_nets.discrete_lyapunov_gains(jax.random.key(0), 10, 1.5, 5, sigma_b2=-1),
            ValueError,
            "sigma_b2",
        ),
        (
            lambda: dmft_nets.discrete_lyapunov_gains(jax.random.key(0), 10, 1.5, 5.0),
            TypeError,
            "steps",
        ),
    ],
)
def test_bad_inputs_new(call, err, name):
    with pytest.raises(err, match=name):
        call()
