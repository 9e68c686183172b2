"""Tests for mftlib.dmft: the SCS dynamical mean-field theory against finite random networks.

Simulations run at N = 1000 (the slowest part of this file, about 30 s on two cores); the theory
checks are independent of the library's solver where possible (analytic limits near the onset,
the potential by a separate 2-D quadrature of Phi = ln cosh, finite differences of Delta(tau)).
"""

from __future__ import annotations

from functools import cache

import jax
import numpy as np
import pytest

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
