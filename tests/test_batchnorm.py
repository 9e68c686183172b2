"""Tests for mftlib.batchnorm and mftlib.networks.batchnorm: rates, fixed point, simulation, errors.

Simulated rates are compared with the theory within 4 standard errors over seeds plus 3 % for the
finite width (N = 192; the gradient-independence assumption and O(1/N) corrections).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_expect1

from mftlib import batchnorm as bn
from mftlib import dynamics, fitting
from mftlib.activations import activation
from mftlib.networks import batchnorm as bnn

X8 = np.random.default_rng(0).normal(size=(8, 32))


def test_relu_infinite_batch_rate_is_pi_over_pi_minus_one():
    assert abs(bn.bn_gradient_rate("relu", None) - math.pi / (math.pi - 1)) < 1e-6


def test_infinite_batch_rate_against_quadrature():
    # gamma^2 E[phi'(gamma z)^2] / Var[phi(gamma z)] with scipy's QUADPACK, for tanh at gamma 0.5.
    g = 0.5
    num = g * g * ref_expect1(lambda x: 1 / math.cosh(g * x) ** 4, 1.0)
    var = ref_expect1(lambda x: math.tanh(g * x) ** 2, 1.0)  # tanh is odd: mean 0
    assert bn.bn_gradient_rate("tanh", None, gamma=g) == pytest.approx(num / var, rel=1e-9)


def test_linear_rate_has_closed_form():
    # phi = identity: D = I, tr(G P_u) = B - 2 and M_aa - M_ab = B/(B-1), so
    # lambda_B = B/(B-3) * (B-2)/(B-1) / (B/(B-1)) = (B-2)/(B-3) for every sample.
    for b in (4, 8, 32):
        est = bn.bn_gradient_rate_estimate("linear", b, n_samples=2**12)
        assert est["rate"] == pytest.approx((b - 2) / (b - 3), rel=1e-12)


def test_finite_batch_rates_decrease_towards_infinite_batch():
    rates = [bn.bn_gradient_rate("relu", b, n_samples=2**15) for b in (4, 8, 32, 128)]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert rates[-1] == pytest.approx(bn.bn_gradient_rate("relu", None), rel=0.03)


def test_gamma_towards_linear_lowers_the_rate():
    rates = [bn.bn_gradient_rate("tanh", None, gamma=g) for g in (2.0, 1.0, 0.5, 0.1)]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert rates[-1] == pytest.approx(1.0, abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("phi", ["relu", "tanh", "linear"])
def test_rate_against_simulated_bn_networks(phi):
    theory = bn.bn_gradient_rate_estimate(phi, 8)
    sim = bnn.simulate(jax.random.PRNGKey(1), X8, phi, 1.5, 24, 192, n_seeds=4)
    # Growth towards the input: the mean log-ratio over layers 5..19 of the reversed sequence.
    rate, se = fitting.rate(sim["grad_norms"][:, ::-1], window=(5, 19), seeds=True)[:2]
    assert abs(rate - theory["rate"]) < 4 * (se + theory["stderr"]) + 0.03 * theory["rate"]


def test_rate_does_not_depend_on_sigma_w2():
    a = bnn.simulate(jax.random.PRNGKey(2), X8, "relu", 0.5, 12, 64, n_seeds=1)["grad_norms"]
    b = bnn.simulate(jax.random.PRNGKey(2), X8, "relu", 4.0, 12, 64, n_seeds=1)["grad_norms"]
    # The same unit weights scaled: every BN layer is scale invariant, so the gradients below the
    # first layer agree exactly up to the overall factor of the first layer's scale.
    np.testing.assert_allclose(a[0, 1:], b[0, 1:], rtol=1e-8)


@pytest.mark.slow
def test_fixed_point_is_bsb1_and_matches_simulation():
    fp = bn.bn_fixed_point("relu", 2.0, 8)
    s = fp["Sigma"]
    off = s[~np.eye(8, dtype=bool)]
    assert np.allclose(np.diag(s), fp["q_star"]) and np.allclose(off, off[0])
    # ReLU with B -> infinity: q* = sigma_w2 / 2 and c* = 1/pi; at B = 8 close to both.
    assert fp["q_star"] == pytest.approx(1.0, rel=0.02)
    sim = bnn.simulate(jax.random.PRNGKey(3), X8, "relu", 2.0, 20, 256, n_seeds=3)
    cov = 2.0 * sim["batch_cov"][:, -5:].mean(axis=(0, 1))  # Sigma = sigma_w2 * E[x x^T]
    sim_off = cov[~np.eye(8, dtype=bool)].mean() / np.diag(cov).mean()
    assert np.diag(cov).mean() == pytest.approx(fp["q_star"], rel=0.03)
    assert sim_off == pytest.approx(fp["c_star"], abs=0.03)


def test_fixed_point_is_reached_from_any_batch():
    x = np.random.default_rng(5).normal(size=(6, 20)) * np.arange(1, 7)[:, None]  # unequal norms
    sim = bnn.simulate(jax.random.PRNGKey(4), x, "tanh", 1.0, 30, 256, n_seeds=2)
    # Single entries of a width-256 network wander by about 0.1 around the fixed point at B = 6,
    # slowly across layers; their mean over the batch pairs is much sharper.
    cov = sim["batch_cov"][:, -10:].mean(axis=(0, 1))
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    fp = bn.bn_fixed_point("tanh", 1.0, 6)
    off = corr[~np.eye(6, dtype=bool)]
    assert abs(off.mean() - fp["c_star"]) < 0.02
    assert np.sqrt(np.mean((off - fp["c_star"]) ** 2)) < 0.08
    assert np.allclose(np.diag(cov), fp["q_star"], rtol=0.05)


@settings(max_examples=10, deadline=None)
@given(b=st.integers(4, 40), gamma=st.floats(0.2, 3.0))
def test_rates_exceed_one(b, gamma):
    # Batch norm always amplifies gradients: lambda_B > 1 for every batch size and gain.
    assert bn.bn_gradient_rate("tanh", b, gamma=gamma, n_samples=2**12) > 1.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: bn.bn_gradient_rate("relu", 3), "batch_size"),
        (lambda: bn.bn_gradient_rate("relu", 1), "batch_size"),
        (lambda: bn.bn_gradient_rate("relu", 2.5), "batch_size"),
        (lambda: bn.bn_gradient_rate("swish", 8), "tanh"),
        (lambda: bn.bn_gradient_rate("relu", 8, gamma=0.0), "gamma"),
        (lambda: bn.bn_fixed_point("relu", -1.0, 8), "sigma_w2"),
        (lambda: bn.bn_fixed_point("relu", 1.0, 1), "batch_size"),
        (lambda: bnn.simulate(jax.random.PRNGKey(0), X8[:1], "relu", 1.0, 3, 8), "batch"),
        (lambda: bnn.simulate(jax.random.PRNGKey(0), X8, "relu", 1.0, 0, 8), "depth"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.slow
def test_classifier_shapes_and_scale_invariance():
    p = bnn.init_classifier(jax.random.PRNGKey(0), 64, 16, 3, 10, 2)
    assert p["Ws"].shape == (2, 2, 16, 16) and p["Wout"].shape == (2, 10, 16)
    apply = bnn.classifier("relu", 1.0)
    one = jax.tree_util.tree_map(lambda a: a[0], p)
    x = X8 @ np.random.default_rng(1).normal(size=(32, 64))
    scaled = dict(one, W0=3.0 * one["W0"], Ws=0.2 * one["Ws"])
    # Batch norm removes the scale of every weight matrix before the readout.
    np.testing.assert_allclose(apply(one, x), apply(scaled, x), rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="gamma"):
        bnn.classifier("relu", -1.0)


@pytest.mark.slow  # samples finite networks: the slow suite
def test_simulated_loss_sees_every_input_of_the_batch():
    # One readout per input: the last layer's squared gradient per unit is sum_a |v_a|^2 / N^2,
    # a chi-square with B N degrees of freedom over N^2, i.e. B / N with relative spread
    # sqrt(2 / (B N)) = 4 % here. A readout shared by the batch would give zero gradient for
    # the linear activation (batch norm centres the batch) and ~1 / N otherwise.
    # (The same network shapes as test_rate_against_simulated_bn_networks: compiled once.)
    for phi in ("linear", "relu"):
        g = bnn.simulate(jax.random.PRNGKey(5), X8, phi, 1.5, 24, 192, n_seeds=4)["grad_norms"]
        np.testing.assert_allclose(g[:, -1], 8 / 192, rtol=0.15)
        assert np.all(g[:, 0] > 1e-6)


def test_key_is_explicit_and_defaults_to_prngkey_zero():
    assert np.array_equal(bn.DEFAULT_KEY, jax.random.PRNGKey(0))
    n = 2**12
    r0 = bn.bn_gradient_rate("relu", 8, n_samples=n)
    assert bn.bn_gradient_rate("relu", 8, n_samples=n, key=jax.random.PRNGKey(0)) == r0
    assert bn.bn_gradient_rate("relu", 8, n_samples=n, key=bn.DEFAULT_KEY) == r0
    est = bn.bn_gradient_rate_estimate("relu", 8, n_samples=n, key=jax.random.PRNGKey(1))
    assert est["rate"] != r0 and abs(est["rate"] - r0) < 6 * est["stderr"]
    fp0 = bn.bn_fixed_point("relu", 1.0, 8, n_samples=n)
    fp1 = bn.bn_fixed_point("relu", 1.0, 8, n_samples=n, key=jax.random.key(1))  # typed key
    assert fp1["q_star"] != fp0["q_star"]
    assert abs(fp1["q_star"] - fp0["q_star"]) < 6 * fp0["q_star_se"]
    with pytest.raises(TypeError, match="key"):
        bn.bn_gradient_rate("relu", 8, key=0)


def test_rate_is_the_top_eigenvalue_of_the_linearised_backward_map():
    """The trace formula for lambda_B (fast path) against the generic computation: the top
    eigenvalue of dynamics.linearise of the backward map Pi -> c E_u[P_u D Pi D P_u] on B x B
    gradient covariances, c = B / ((B - 3)(M_aa - M_ab)), over the same Monte Carlo samples."""
    b, n, g, key = 6, 2**13, 1.0, jax.random.PRNGKey(3)
    act = activation("tanh")
    u = bn._directions(key, b, n)  # the samples bn_gradient_rate_estimate(key=key) draws
    d = g * act.derivative(g * np.sqrt(b) * u)
    spread = bn._moments(act, g, b, n, key)[0]
    c = b / ((b - 3) * jnp.mean(spread))
    G = jnp.eye(b) - 1.0 / b
    P = G[None] - u[:, :, None] * u[:, None, :]  # P_u = (I - u u^T) G

    def back(Pi):
        return c * jnp.mean(P @ (d[:, :, None] * Pi[None] * d[:, None, :]) @ P, axis=0)

    est = bn.bn_gradient_rate_estimate("tanh", b, gamma=g, n_samples=n, key=key)
    # The rate is the Rayleigh quotient of the map at G ...
    assert float(jnp.trace(back(G))) / (b - 1) == pytest.approx(est["rate"], rel=1e-12)
    # ... and G its top eigenvector up to Monte Carlo error.
    lam, _ = jax.jit(lambda S: dynamics.depth_scales_at(back, S, symmetric=True))(G)
    assert abs(complex(lam[0])) == pytest.approx(est["rate"], abs=3 * est["stderr"])
    assert abs(complex(lam[1])) < abs(complex(lam[0])) - 10 * est["stderr"]


def test_tanh_fixed_point_correlation_is_above_the_linear_bound():
    # Linear: M = B/(B-1) G exactly, c* = -1/(B-1) in every sample. Tanh is odd but not linear:
    # c*(B-1) = -0.936 at B = 8 (2^17 samples, standard error 5e-4), well above -1.
    lin = bn.bn_fixed_point("linear", 1.0, 8, n_samples=2**10)
    assert lin["c_star"] * 7 == pytest.approx(-1.0, abs=1e-12)
    fp = bn.bn_fixed_point("tanh", 1.0, 8, n_samples=2**12)
    se = fp["offdiag_se"] / fp["q_star"] * 7
    assert -1.0 + 20 * se < fp["c_star"] * 7 < -0.9


@pytest.mark.parametrize("phi", ["tanh", pytest.param("relu", marks=pytest.mark.slow)])
def test_rate_is_above_the_poincare_floor(phi):
    # lambda_B >= (B - 2)/(B - 3) by the Poincare inequality on the sphere (equality: linear).
    for b, g in ((5, 0.5), (8, 1.0), (16, 2.0)):
        est = bn.bn_gradient_rate_estimate(phi, b, gamma=g, n_samples=2**12)
        assert est["rate"] > (b - 2) / (b - 3) - 3 * est["stderr"]


@pytest.mark.slow
def test_forward_eigenvalues_of_the_linear_network():
    # Linear: both eigenvalues (B - 1)/(B + 1); Monte Carlo within 4 standard errors.
    for b in (4, 8):
        ev = bn.bn_forward_eigenvalues("linear", b, n_samples=2**13)
        for c in ("standard", "pair"):
            assert abs(ev[c] - (b - 1) / (b + 1)) < 4 * ev[c + "_se"]


@pytest.mark.slow
def test_forward_eigenvalues_against_finite_differences():
    """The jvp of the sampled map against a central finite difference of the mean-field map,
    sampled independently through a Cholesky factor of Sigma* + t A (tanh, B = 6)."""
    b, n, t = 6, 2**16, 1e-3
    ev = bn.bn_forward_eigenvalues("tanh", b, n_samples=n)
    fp = bn.bn_fixed_point("tanh", 1.0, b)
    g = np.eye(b) - 1.0 / b
    s = g @ fp["Sigma"] @ g
    xi = np.asarray(jax.random.normal(jax.random.PRNGKey(11), (n, b)))
    for name, a in zip(("standard", "pair"), bn.irrep_directions(b), strict=True):

        def proj(sign, a=a):
            cov = s + sign * t * a + np.ones((b, b))  # the 1 direction is removed by G
            h = xi @ np.linalg.cholesky(cov).T
            c = h - h.mean(1, keepdims=True)
            x = np.tanh(np.sqrt(b) * c / np.linalg.norm(c, axis=1, keepdims=True))
            return np.einsum("na,ab,nb->n", x, a, x)

        d = (proj(1) - proj(-1)) / (2 * t)
        se = d.std() / np.sqrt(n)
        assert abs(d.mean() - ev[name]) < 4 * np.hypot(se, ev[name + "_se"])


@pytest.mark.slow
def test_eps_rate_reduces_to_the_eps_free_rate_and_scales_with_the_ratio():
    n = 2**13
    a = bn.bn_eps_fixed_point("tanh", 8, 2.0, 0.0, n_samples=n)
    ref = bn.bn_gradient_rate_estimate("tanh", 8, n_samples=2**15)
    assert abs(a["rate"] - ref["rate"]) < 4 * np.hypot(a["rate_se"], ref["stderr"])
    b = bn.bn_eps_fixed_point("tanh", 8, 2.0, 1.0, n_samples=n)
    c = bn.bn_eps_fixed_point("tanh", 8, 2e-3, 1e-3, n_samples=n)
    assert b["rate"] == pytest.approx(c["rate"], rel=1e-9)
    # Towards the linear regime: the rate falls below the eps-free floor 6/5, towards 1.
    assert 1.0 < b["rate"] < 1.1 and b["gain"] < 0.6
    with pytest.raises(ValueError, match="collapses"):
        bn.bn_eps_fixed_point("tanh", 8, 0.5, 1.0, n_samples=n)


@pytest.mark.slow
def test_eps_rate_against_simulated_networks():
    theory = bn.bn_eps_fixed_point("tanh", 8, 3e-3, 1e-3)
    sim = bnn.simulate(jax.random.PRNGKey(6), X8, "tanh", 3e-3, 24, 192, n_seeds=4, eps=1e-3)
    rate, se = fitting.rate(sim["grad_norms"][:, ::-1], window=(5, 19), seeds=True)[:2]
    assert abs(rate - theory["rate"]) < 4 * (se + theory["rate_se"]) + 0.03 * theory["rate"]


@pytest.mark.slow
def test_orthogonal_weights_are_orthogonal_and_keep_the_variance():
    w = bnn.layer_weights(jax.random.PRNGKey(0), 16, 16, True)
    np.testing.assert_allclose(w @ w.T, 16 * np.eye(16), atol=1e-9)
    sim = bnn.simulate(jax.random.PRNGKey(0), X8, "linear", 1.0, 6, 32, weights="orthogonal")
    assert sim["grad_norms"].shape == (1, 7) and np.all(np.isfinite(sim["grad_norms"]))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: bn.bn_forward_eigenvalues("relu", 3), "batch_size"),
        (lambda: bn.bn_forward_eigenvalues("relu", None), "batch_size"),
        (lambda: bn.bn_eps_fixed_point("relu", 8, 1.0, -1.0), "eps"),
        (lambda: bn.bn_eps_fixed_point("relu", 8, 0.0, 1.0), "sigma_w2"),
        (
            lambda: bnn.simulate(jax.random.PRNGKey(0), X8, "relu", 1.0, 3, 8, eps=-1),
            "eps",
        ),
        (
            lambda: bnn.simulate(jax.random.PRNGKey(0), X8, "relu", 1.0, 3, 8, weights="x"),
            "weights",
        ),
    ],
)
def test_new_functions_reject_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_irrep_directions_are_orthonormal_centred_and_checked():
    std, pair = bn.irrep_directions(6)
    g = np.eye(6) - 1.0 / 6
    for a in (std, pair):
        assert np.allclose(a, a.T) and np.allclose(g @ a @ g, a)  # symmetric, A = GAG
        assert np.linalg.norm(a) == pytest.approx(1.0)
    assert np.sum(std * pair) == pytest.approx(0.0, abs=1e-12)
    assert np.allclose(np.diag(pair), 0.0) and np.allclose(pair.sum(axis=1), 0.0)
    for bad in (3, 4.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            bn.irrep_directions(bad)
