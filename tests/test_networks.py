"""Tests for mftlib.networks.dense: shapes, sampling statistics, theory vs simulation, validation.

Statistical checks compare a sample mean with its expectation within 5 standard errors, the error
taken from the sampling distribution (Gaussian weights) or from the spread over seeds. All keys are
fixed, so each test is deterministic; the 5-SE margin is there so that changing a key does not make
a test fail by chance (two-sided Gaussian tail at 5 SE: 6e-7; with an SE estimated from 10 seeds,
the t-distribution's tail with 9 degrees of freedom: 0.07%).
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftlib import networks as nw
from mftlib.activations import activation

KEY = jax.random.PRNGKey(0)

# Probabilists' Gauss-Hermite rule for E_z[f(z)], z ~ N(0, 1): exact enough for smooth tanh here.
_Z, _W = np.polynomial.hermite_e.hermegauss(121)
_W = _W / _W.sum()


def gauss(f, q):
    return float(np.sum(_W * f(np.sqrt(q) * _Z)))


def tanh_q_star(sw2, sb2, q=1.0, iters=2000):
    for _ in range(iters):
        q = sw2 * gauss(lambda u: np.tanh(u) ** 2, q) + sb2
    return q


def tanh_chi1(sw2, q):
    return sw2 * gauss(lambda u: np.cosh(u) ** -4, q)


def empirical_kernels(hs):
    return np.stack([np.asarray(h @ h.T / h.shape[1]) for h in hs])


# One small configuration shared by the structural tests, so that they share compilations.
D, N_IN, DEPTH, SEEDS = 4, 3, 2, 2
SW2, SB2 = [1.1, 1.4, 0.8], 0.3
# Equal and varying widths (the last one below d, for the Jacobian's reverse-mode path).
WIDTHS = [6, [6, 5, 3]]
X_SMALL = nw.make_inputs(jax.random.PRNGKey(1), N_IN, D, 1.0)


def n_list(width):
    return [width] * (DEPTH + 1) if isinstance(width, int) else list(width)


# --- shapes, dtypes, reproducibility -------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_init_dense_and_forward_shapes(width):
    params = nw.init_dense(KEY, D, width, DEPTH, SW2, SB2)
    ws = n_list(width)
    assert len(params) == DEPTH + 1
    for (W, b), n_out, n_in in zip(params, ws, [D] + ws[:-1], strict=True):
        assert W.shape == (n_out, n_in) and b.shape == (n_out,)
        assert W.dtype == jnp.float64 and b.dtype == jnp.float64
    hs = nw.forward(params, X_SMALL, "tanh")
    assert [h.shape for h in hs] == [(N_IN, n) for n in ws]
    assert all(h.dtype == jnp.float64 for h in hs)
    # Jit-friendly: the same numbers under jax.jit.
    hs_jit = jax.jit(lambda p, x: nw.forward(p, x, "tanh"))(params, X_SMALL)
    for h, hj in zip(hs, hs_jit, strict=True):
        np.testing.assert_allclose(h, hj, rtol=1e-12, atol=1e-12)


def test_forward_matches_the_definition():
    params = nw.init_dense(KEY, D, 6, DEPTH, SW2, SB2)
    hs = nw.forward(params, X_SMALL, activation("erf"))
    h = X_SMALL @ params[0][0].T + params[0][1]
    np.testing.assert_allclose(hs[0], h, rtol=1e-14)
    for (W, b), h_l in zip(params[1:], hs[1:], strict=True):
        h = jax.scipy.special.erf(h) @ W.T + b
        np.testing.assert_allclose(h_l, h, rtol=1e-13)


@pytest.mark.parametrize("width", WIDTHS)
def test_moments_match_forward_of_the_same_networks(width):
    """Seed s of preactivation_moments is the network init_dense(split(key, n_seeds)[s])."""
    m = nw.preactivation_moments(KEY, X_SMALL, "tanh", SW2, SB2, width, DEPTH, SEEDS)
    assert m["kernel"].shape == (SEEDS, DEPTH + 1, N_IN, N_IN)
    assert m["q"].shape == (SEEDS, DEPTH + 1, N_IN)
    assert m["c"].shape == (SEEDS, DEPTH + 1, N_IN, N_IN)
    for s, seed_key in enumerate(jax.random.split(KEY, SEEDS)):
        hs = nw.forward(nw.init_dense(seed_key, D, width, DEPTH, SW2, SB2), X_SMALL, "tanh")
        K = empirical_kernels(hs)
        np.testing.assert_allclose(m["kernel"][s], K, rtol=1e-12)
        q = np.einsum("lii->li", K)
        np.testing.assert_allclose(m["q"][s], q, rtol=1e-12)
        c = K / np.sqrt(q[:, :, None] * q[:, None, :])
        np.testing.assert_allclose(m["c"][s], c, rtol=1e-12)


def test_depth_zero_and_same_key_same_network_whatever_the_depth():
    m0 = nw.preactivation_moments(KEY, X_SMALL, "tanh", SW2[0], SB2, 6, 0, SEEDS)
    assert m0["q"].shape == (SEEDS, 1, N_IN)
    # Layer l is drawn from fold_in(seed_key, l): layer 0 is the same network at depth 0 and 2.
    m2 = nw.preactivation_moments(KEY, X_SMALL, "tanh", SW2, SB2, 6, DEPTH, SEEDS)
    np.testing.assert_array_equal(m0["kernel"][:, 0], m2["kernel"][:, 0])
    g = nw.gradient_norms(KEY, X_SMALL, "tanh", SW2[0], SB2, 6, 0, SEEDS)
    assert g.shape == (SEEDS, 1, N_IN)
    np.testing.assert_allclose(g[:, 0, 0], g[:, 0, 1])  # delta^0 = v for every input


def test_vanishing_variance_gives_no_nan():
    x = jnp.zeros((N_IN, D))
    m = nw.preactivation_moments(KEY, x, "tanh", 1.0, 0.0, 6, DEPTH, SEEDS)
    assert np.all(m["q"] == 0) and np.all(np.isfinite(m["c"]))
    np.testing.assert_array_equal(m["c"][0, 0], np.eye(N_IN))


# --- sampling statistics -----------------------------------------------------------------------


def test_weight_and_bias_variances():
    sw2, sb2 = [2.0, 0.5], [0.3, 0.0]
    params = nw.init_dense(jax.random.PRNGKey(7), 300, [400, 500], 1, sw2, sb2)
    for (W, b), s_w, s_b, n_in in zip(params, sw2, sb2, [300, 400], strict=True):
        W, b = np.asarray(W), np.asarray(b)
        target = s_w / n_in  # fan-in scaling: d for layer 0, N_{l-1} after
        # Sample variance of M Gaussians: standard error var * sqrt(2 / M); mean: sqrt(var / M).
        assert abs(W.var() - target) < 5 * target * np.sqrt(2 / W.size)
        assert abs(W.mean()) < 5 * np.sqrt(target / W.size)
        if s_b == 0:
            assert np.all(b == 0)
        else:
            assert abs(b.var() - s_b) < 5 * s_b * np.sqrt(2 / b.size)


@pytest.fixture(scope="module")
def wide_moments():
    """tanh networks of width 1000, depth 4, 10 seeds, on two inputs with q0 = 1.3, c0 = 0.4."""
    sw2, sb2, q0, c0 = 1.5, 0.05, 1.3, 0.4
    # Shapes (inputs, width, seeds) shared with the chi_1 test, which reuses the compiled layers.
    x = nw.make_inputs(jax.random.PRNGKey(4), 2, 20, q0, c0)
    m = nw.preactivation_moments(jax.random.PRNGKey(5), x, "tanh", sw2, sb2, 1000, 4, 10)
    return dict(sw2=sw2, sb2=sb2, q0=q0, c0=c0, width=1000, n_seeds=10, **m)


@pytest.mark.slow  # samples finite networks: the slow suite
def test_layer0_moments_equal_theory_in_expectation(wide_moments):
    """h^0_i(x) = w_i.x + b_i exactly Gaussian: q^0 = sw2 q0 + sb2, q^0_ab = sw2 q0 c0 + sb2."""
    m = wide_moments
    q_th = m["sw2"] * m["q0"] + m["sb2"]
    k_th = m["sw2"] * m["q0"] * m["c0"] + m["sb2"]
    M = m["width"] * m["n_seeds"]  # independent units pooled over seeds
    q_sim = np.asarray(m["q"][:, 0]).mean(axis=0)
    k_sim = float(np.asarray(m["kernel"][:, 0, 0, 1]).mean())
    # Var(h^2) = 2 q^2; Var(h_a h_b) = q_aa q_bb + q_ab^2 (Isserlis).
    np.testing.assert_array_less(np.abs(q_sim - q_th), 5 * q_th * np.sqrt(2 / M))
    assert abs(k_sim - k_th) < 5 * np.sqrt((q_th**2 + k_th**2) / M)


@pytest.mark.slow  # samples finite networks: the slow suite
def test_length_map_against_simulation(wide_moments):
    """q^l of wide tanh networks follows q^{l+1} = sw2 E[tanh(sqrt(q^l) z)^2] + sb2."""
    m = wide_moments
    q_sim = np.asarray(m["q"][:, :, 0])  # (seeds, layers)
    q_th = [m["sw2"] * m["q0"] + m["sb2"]]
    for _ in range(q_sim.shape[1] - 1):
        q_th.append(m["sw2"] * gauss(lambda u: np.tanh(u) ** 2, q_th[-1]) + m["sb2"])
    se = q_sim.std(axis=0, ddof=1) / np.sqrt(q_sim.shape[0])
    # Finite-width bias is O(1/N) = 1e-3 relative, far below the tolerance.
    np.testing.assert_array_less(np.abs(q_sim.mean(axis=0) - q_th), 5 * se + 1e-3 * np.array(q_th))


# --- make_inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("n, c0", [(2, -1.0), (2, -0.3), (2, 0.0), (2, 0.7), (2, 1.0), (4, -1 / 3)])
def test_make_inputs_exact_norms_and_cosines(n, c0):
    d, q0 = D, 1.7
    x = np.asarray(nw.make_inputs(KEY, n, d, q0, c0))
    assert x.shape == (n, d) and x.dtype == np.float64
    gram = x @ x.T / d
    np.testing.assert_allclose(np.diag(gram), q0, rtol=1e-12)
    expected = q0 * ((1 - c0) * np.eye(n) + c0)
    np.testing.assert_allclose(gram, expected, rtol=1e-12, atol=1e-12)


def test_make_inputs_without_cosine():
    x = np.asarray(nw.make_inputs(KEY, N_IN, D, 0.5))
    np.testing.assert_allclose(np.sum(x**2, axis=1) / D, 0.5, rtol=1e-13)
    np.testing.assert_array_equal(x, nw.make_inputs(KEY, N_IN, D, 0.5))  # reproducible
    assert not np.allclose(x, nw.make_inputs(jax.random.PRNGKey(1), N_IN, D, 0.5))
    # New-style typed keys work too, and give the same numbers as the legacy key with that seed.
    np.testing.assert_array_equal(x, nw.make_inputs(jax.random.key(0), N_IN, D, 0.5))


# --- gradients ---------------------------------------------------------------------------------


@jax.jit
def autodiff_deltas(params, seed_key, x):
    """delta^l = d(v.h^L)/dh^l by jax.grad, through perturbations eps^l added to each h^l."""
    n_out = params[-1][0].shape[0]
    v = jax.random.normal(jax.random.fold_in(seed_key, 2**31 - 1), (n_out,)) / np.sqrt(n_out)

    def readout(eps, xa):
        h = xa @ params[0][0].T + params[0][1] + eps[0]
        for (W, b), e in zip(params[1:], eps[1:], strict=True):
            h = jnp.tanh(h) @ W.T + b + e
        return v @ h

    eps = [jnp.zeros(W.shape[0]) for W, _ in params]
    return jax.vmap(jax.grad(readout), in_axes=(None, 0))(eps, x)


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_gradient_norms_match_autodiff(width):
    """||delta^l||^2 equals |d(v.h^L)/dh^l|^2 by jax.grad on the same network and readout."""
    g = nw.gradient_norms(KEY, X_SMALL, "tanh", SW2, SB2, width, DEPTH, SEEDS)
    assert g.shape == (SEEDS, DEPTH + 1, N_IN)
    for s, seed_key in enumerate(jax.random.split(KEY, SEEDS)):
        params = nw.init_dense(seed_key, D, width, DEPTH, SW2, SB2)
        deltas = autodiff_deltas(params, seed_key, X_SMALL)  # per layer (n_inputs, N_l)
        norms = np.stack([np.sum(np.asarray(d) ** 2, axis=1) for d in deltas])
        np.testing.assert_allclose(g[s], norms, rtol=1e-11)


@pytest.mark.slow
def test_gradient_ratio_is_chi1():
    """At the fixed point, ||delta^l||^2 / ||delta^{l+1}||^2 -> chi_1 = sw2 E[tanh'(sqrt(q*) z)^2].

    Inputs start at q^0 = q*, so every layer is at the fixed point. Per seed the statistic is the
    ratio averaged over layers and inputs; seeds are independent networks, so the standard error
    of the mean over seeds comes from their spread (5 SE with 9 degrees of freedom: a two-sided
    t-tail of 0.07%). The ratio is an unbiased estimate of chi_1 given the layer above, up to the
    O(1/N) dependence between W^{l+1} and delta^{l+1}: 1e-3 here, added to the margin.
    """
    sw2, sb2, width, depth, n_seeds = 1.5, 0.05, 1000, 6, 10
    q_star = tanh_q_star(sw2, sb2)
    chi1 = tanh_chi1(sw2, q_star)
    assert 0.9 < chi1 < 0.98  # ordered phase, close to the edge: a non-trivial rate
    x = nw.make_inputs(jax.random.PRNGKey(11), 2, 20, (q_star - sb2) / sw2, 0.5)
    key = jax.random.PRNGKey(12)
    g = np.asarray(nw.gradient_norms(key, x, "tanh", sw2, sb2, width, depth, n_seeds))
    ratios = (g[:, :-1] / g[:, 1:]).mean(axis=(1, 2))  # one number per seed
    se = ratios.std(ddof=1) / np.sqrt(n_seeds)
    assert se < 0.01  # the test has power: 1 - chi_1 = 0.06 is 6 standard errors or more
    assert abs(ratios.mean() - chi1) < 5 * se + 1e-3
    # Over the whole depth, ||delta^0||^2 / ||delta^L||^2 ~ chi_1^L (0.69 here): the per-layer
    # rate from the log of that ratio, per seed. Its mean is biased low by about half the variance
    # of a one-layer log-ratio (0.0015 with these settings), added to the margin.
    log_rates = np.log(g[:, 0] / g[:, -1]).mean(axis=1) / depth
    se_log = log_rates.std(ddof=1) / np.sqrt(n_seeds)
    assert abs(log_rates.mean() - np.log(chi1)) < 5 * se_log + 0.002


# --- Jacobian ----------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)  # d <= N_L: jacfwd; d > N_L: jacrev
def test_input_output_jacobian_against_finite_differences(width):
    params = nw.init_dense(KEY, D, width, DEPTH, SW2, SB2)
    x = X_SMALL
    J = np.asarray(nw.input_output_jacobian(params, x, "tanh"))
    d, n_out = D, n_list(width)[-1]
    assert J.shape == (N_IN, n_out, d)
    eps = 1e-6
    for a in range(N_IN):
        for k in range(d):
            e = np.zeros((1, d))
            e[0, k] = eps
            up = nw.forward(params, x[a : a + 1] + e, "tanh")[-1][0]
            down = nw.forward(params, x[a : a + 1] - e, "tanh")[-1][0]
            # Central difference: error O(eps^2) plus rounding O(1e-16 / eps) = 1e-10.
            np.testing.assert_allclose(J[a, :, k], (up - down) / (2 * eps), atol=1e-8)


# --- validation --------------------------------------------------------------------------------

X = np.ones((2, 3))
GOOD = dict(key=KEY, x=X, phi="tanh", sigma_w2=1.0, sigma_b2=0.1, width=4, depth=2, n_seeds=1)
# Every invalid value below is rejected before anything is traced or compiled.


@pytest.mark.parametrize("fn", [nw.preactivation_moments, nw.gradient_norms])
@pytest.mark.parametrize(
    "bad, error, match",
    [
        (dict(sigma_w2=-1.0), ValueError, "sigma_w2"),
        (dict(sigma_b2=float("nan")), ValueError, "sigma_b2"),
        (dict(sigma_b2=[0.1, 0.1]), ValueError, "sigma_b2"),
        (dict(sigma_w2="big"), TypeError, "sigma_w2"),
        (dict(width=0), ValueError, "width"),
        (dict(width=2.5), TypeError, "width"),
        (dict(width=[4, 4]), ValueError, "width"),
        (dict(width=[4, -1, 4]), ValueError, "width"),
        (dict(depth=-1), ValueError, "depth"),
        (dict(depth=2.5), TypeError, "depth"),
        (dict(depth=True), TypeError, "depth"),
        (dict(n_seeds=0), ValueError, "n_seeds"),
        (dict(x=np.array([[1.0, np.nan, 0.0]])), ValueError, "x"),
        (dict(x=np.ones(3)), ValueError, "x"),
        (dict(x=np.ones((0, 3))), ValueError, "x"),
        (dict(x=np.ones((2, 3), dtype=complex)), TypeError, "x"),
        (dict(key=0), TypeError, "key"),
        (dict(phi="nope"), ValueError, "phi"),
        (dict(phi=3), TypeError, "phi"),
    ],
)
def test_sampling_validation(fn, bad, error, match):
    with pytest.raises(error, match=rf"^{match}\b"):  # the message starts with the name
        fn(**{**GOOD, **bad})


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(in_dim=0), ValueError, "in_dim"),
        (dict(widths=[3, 3]), ValueError, "widths"),
        (dict(widths="3"), TypeError, "widths"),
        (dict(depth=-2), ValueError, "depth"),
        (dict(sigma_w2=[1.0, -1.0, 1.0]), ValueError, "sigma_w2"),
        (dict(sigma_b2=float("inf")), ValueError, "sigma_b2"),
        (dict(key=np.zeros(3)), TypeError, "key"),
        (dict(key=jax.random.split(jax.random.key(0), 2)), TypeError, "key"),
    ],
)
def test_init_dense_validation(kwargs, error, match):
    good = dict(key=KEY, in_dim=3, widths=4, depth=2, sigma_w2=1.0, sigma_b2=0.1)
    with pytest.raises(error, match=rf"^{match}\b"):  # the message starts with the name
        nw.init_dense(**{**good, **kwargs})


def test_forward_and_jacobian_validation():
    params = nw.init_dense(KEY, D, 6, 1, 1.0, 0.1)
    x = np.ones((2, D))
    for fn in (nw.forward, nw.input_output_jacobian):
        with pytest.raises(ValueError, match=r"^x\b"):
            fn(params, np.ones((2, D + 1)), "tanh")  # d does not match params
        with pytest.raises(ValueError, match=r"^x\b"):
            fn(params, np.full((2, D), np.inf), "tanh")
        with pytest.raises(TypeError, match=r"^params\b"):
            fn([], x, "tanh")
        with pytest.raises(ValueError, match=r"^params\[1\]"):
            fn([params[0], (jnp.ones((4, 2)), jnp.ones(4))], x, "tanh")
        with pytest.raises(TypeError, match=r"^params\[0\]"):
            fn([params[0][0]], x, "tanh")
        with pytest.raises(ValueError, match=r"^phi\b"):
            fn(params, x, "nope")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n=0), ValueError, "n"),
        (dict(n=2.0), TypeError, "n"),
        (dict(d=0), ValueError, "d"),
        (dict(q0=-1.0), ValueError, "q0"),
        (dict(q0=float("nan")), ValueError, "q0"),
        (dict(c0=1.5), ValueError, "c0"),
        (dict(c0=float("nan")), ValueError, "c0"),
        (dict(c0=[0.1, 0.2]), TypeError, "c0"),
        (dict(q0=[1.0]), TypeError, "q0"),
        (dict(n=3, c0=-0.6), ValueError, "c0"),  # below -1/(n-1) = -0.5
        (dict(n=5, d=4, c0=0.2), ValueError, "n must be <= d"),
        (dict(key=1), TypeError, "key"),
    ],
)
def test_make_inputs_validation(kwargs, error, match):
    good = dict(key=KEY, n=2, d=4, q0=1.0, c0=None)
    with pytest.raises(error, match=rf"^{match}\b"):  # the message starts with the name
        nw.make_inputs(**{**good, **kwargs})


# --- simulations of the theory modules ------------------------------------------------------------

_MOVED = {
    "dropout": ("preactivation_moments", "correlation_decay"),
    "dmft": ("simulate", "lyapunov_from_simulation", "simulate_discrete"),
    "spectra": ("sample_jacobian_spectrum", "sample_jacobian_spectra_by_depth"),
    "expressivity": ("circle_basis", "propagate_circle", "manifold_geometry"),
}


@pytest.mark.parametrize("name", sorted(_MOVED))
def test_theory_simulations_live_in_networks(name):
    """The finite networks that check mftlib.<name> are in mftlib.networks.<name> (exported as a
    submodule); the theory module keeps none of them."""
    sub = importlib.import_module(f"mftlib.networks.{name}")
    theory = importlib.import_module(f"mftlib.{name}")
    assert getattr(nw, name) is sub and name in nw.__all__
    for fn in _MOVED[name]:
        assert getattr(sub, fn).__module__ == sub.__name__
        assert not hasattr(theory, fn), f"mftlib.{name}.{fn} should live in {sub.__name__} only"


# --- the gradient depth scale measured (chapter 4) ------------------------------------------------


@pytest.mark.slow
def test_gradient_scale_measures_chi1():
    """The per-layer factor of the seed-mean squared gradient is chi_1, ordered and chaotic.

    12 networks of width 400 and depth 12: the jackknife standard error of log chi_1 is about
    0.004; 5 SE plus a finite-width allowance of 0.005 (O(1/N) corrections to the backward mean
    field, 1/N = 0.0025 here) bound the difference from the theory.
    """
    from mftlib.networks.dense import gradient_scale

    for sw2, key in ((1.2, jax.random.PRNGKey(21)), (3.0, jax.random.PRNGKey(22))):
        out = gradient_scale(key, "tanh", sw2, 0.05, width=400, depth=12, n_seeds=12)
        assert out["norms"].shape == (12, 13) and out["theory"].shape == (13,)
        se = out["chi1_stderr"] / out["chi1_fit"]
        assert 0 < se < 0.01
        assert abs(np.log(out["chi1_fit"] / out["chi1"])) < 5 * se + 0.005
        assert out["xi_grad"] == pytest.approx(1 / abs(np.log(out["chi1"])))


def test_gradient_scale_validation():
    from mftlib.networks.dense import gradient_scale

    with pytest.raises(ValueError, match="sigma_w2"):
        gradient_scale(KEY, "tanh", 0.0, 0.05)
    with pytest.raises(ValueError, match="depth"):
        gradient_scale(KEY, "tanh", 1.5, 0.05, depth=1)
    with pytest.raises(ValueError, match="n_seeds"):
        gradient_scale(KEY, "tanh", 1.5, 0.05, n_seeds=1)
