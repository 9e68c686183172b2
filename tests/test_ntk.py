"""Tests for mftlib.ntk (NTK recursion) and mftlib.networks.ntk (finite NTK-parameterised nets).

Statistical checks use several independent networks and compare with tolerances set by the
O(N^{-1/2}) fluctuation of a finite-width kernel.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import LIMIT, pdf
from scipy import integrate

import mftlib as mft
from mftlib import ntk
from mftlib.networks import ntk as ntk_nets

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 7))


def _ref_deriv_pair(dphi, q11, q22, q12):
    """E[phi'(u) phi'(v)] for (u, v) ~ N(0, [[q11, q12], [q12, q22]]) by nested QUADPACK."""
    s1 = math.sqrt(q11)
    c = q12 / math.sqrt(q11 * q22)
    s = math.sqrt(max(1 - c * c, 0.0))

    def inner(z1):
        def h(z2):
            return dphi(math.sqrt(q22) * (c * z1 + s * z2)) * pdf(z2)

        return integrate.quad(h, -LIMIT, LIMIT, epsabs=1e-14, limit=200)[0]

    return integrate.quad(
        lambda z1: dphi(s1 * z1) * inner(z1) * pdf(z1), -LIMIT, LIMIT, epsabs=1e-13, limit=200
    )[0]


def _ref_ntk(x, dphi, phi_name, sw, sb, depth):
    """The recursion written out with scipy quadrature for the derivative term, entry by entry."""
    d = x.shape[1]
    k = sb + sw * x @ x.T / d
    theta = k.copy()
    for _ in range(depth):
        kd = np.empty_like(k)
        for i in range(len(x)):
            for j in range(len(x)):
                kd[i, j] = _ref_deriv_pair(dphi, k[i, i], k[j, j], k[i, j])
        k_next = np.asarray(mft.covariance_map(phi_name, sw, sb, k))
        theta = k_next + sw * kd * theta
        k = k_next
    return k, theta


@pytest.mark.slow
@pytest.mark.parametrize(
    "phi, dphi",
    [
        ("erf", lambda u: 2 / math.sqrt(math.pi) * math.exp(-u * u)),
        ("tanh", lambda u: 1 / math.cosh(u) ** 2),
    ],
)
def test_ntk_against_quadrature_reference(phi, dphi):
    x = X[:3]
    k, theta = ntk.nngp_and_ntk(x, None, phi, 1.7, 0.2, depth=2)
    k_ref, theta_ref = _ref_ntk(x, dphi, phi, 1.7, 0.2, 2)
    np.testing.assert_allclose(k, k_ref, rtol=1e-9)
    np.testing.assert_allclose(theta, theta_ref, rtol=1e-8)


def test_nngp_part_is_nngp_kernel():
    for phi in ("relu", "erf", "tanh"):
        k, _ = ntk.nngp_and_ntk(X, None, phi, 1.5, 0.1, depth=2)
        np.testing.assert_allclose(k, mft.nngp_kernel(X, None, phi, 1.5, 0.1, 2), rtol=1e-11)


def test_relu_ntk_closed_form_one_layer():
    # One hidden ReLU layer: Theta = K1 + sw * (pi - theta)/(2 pi) * K0 (arc-cosine of degree 0).
    sw, sb = 2.0, 0.3
    k0 = sb + sw * X @ X.T / X.shape[1]
    n = np.sqrt(np.diag(k0))
    ang = np.arccos(np.clip(k0 / np.outer(n, n), -1, 1))
    np.fill_diagonal(ang, 0.0)  # arccos near 1 would amplify round-off
    k1 = sb + sw * np.outer(n, n) / (2 * np.pi) * (np.sin(ang) + (np.pi - ang) * np.cos(ang))
    theta = k1 + sw * (np.pi - ang) / (2 * np.pi) * k0
    k, t = ntk.nngp_and_ntk(X, None, "relu", sw, sb, depth=1)
    np.testing.assert_allclose(k, k1, rtol=1e-12)
    np.testing.assert_allclose(t, theta, rtol=1e-12)


def test_depth_zero_ntk_is_input_kernel():
    k, t = ntk.nngp_and_ntk(X, None, "tanh", 1.5, 0.1, depth=0)
    np.testing.assert_allclose(t, k)
    np.testing.assert_allclose(k, 0.1 + 1.5 * X @ X.T / X.shape[1])


@settings(max_examples=15, deadline=None)
@given(
    sw=st.floats(0.3, 4.0),
    sb=st.floats(0.0, 1.0),
    depth=st.integers(0, 6),
    phi=st.sampled_from(["relu", "erf"]),
)
def test_ntk_is_symmetric_psd_and_dominates_nngp(sw, sb, depth, phi):
    k, t = (np.asarray(a) for a in ntk.nngp_and_ntk(X, None, phi, sw, sb, depth))
    np.testing.assert_allclose(t, t.T, rtol=1e-12, atol=1e-14)
    assert np.linalg.eigvalsh(t).min() > -1e-9 * np.abs(t).max()
    # Theta - K = sum of PSD terms (earlier layers' contributions): PSD as well.
    assert np.linalg.eigvalsh(t - k).min() > -1e-9 * np.abs(t).max()


@pytest.mark.slow
def test_empirical_ntk_converges_to_theory():
    x = X[:4]
    _, theta = ntk.nngp_and_ntk(x, None, "erf", 1.5, 0.1, depth=2)
    errs = {}
    for width in (64, 1024):
        e = []
        for s in range(4):
            p = ntk_nets.init_ntk(jax.random.PRNGKey(s), x.shape[1], width, 2)
            t_emp = ntk_nets.empirical_ntk(p, x, None, "erf", 1.5, 0.1)
            e.append(np.linalg.norm(t_emp - theta) / np.linalg.norm(theta))
        errs[width] = np.mean(e)
    # Fluctuations scale as N^{-1/2}: 16x the width, about 1/4 the error (loose factor 2).
    assert errs[1024] < 0.12
    assert errs[1024] < errs[64] / 2


def test_empirical_ntk_is_gram_of_jacobian():
    p = ntk_nets.init_ntk(jax.random.PRNGKey(0), X.shape[1], 8, 1)
    t = np.asarray(ntk_nets.empirical_ntk(p, X, None, "tanh", 1.5, 0.1))
    assert np.allclose(t, t.T) and np.linalg.eigvalsh(t).min() > -1e-10


@pytest.mark.slow
def test_sample_outputs_covariance_matches_nngp():
    x = X[:2]
    f = ntk_nets.sample_outputs(jax.random.PRNGKey(3), x, "erf", 1.5, 0.1, 2, 256, 2000)
    k = np.asarray(mft.nngp_kernel(x, None, "erf", 1.5, 0.1, 2))
    cov = np.cov(f.T)
    se = np.sqrt((k * k + np.outer(np.diag(k), np.diag(k))) / f.shape[0])
    # 5 standard errors of a sample covariance, plus the O(1/N) finite-width bias.
    assert np.all(np.abs(cov - k) < 5 * se + 2.0 * np.abs(k) / 256)


def test_train_gd_small_learning_rate_follows_linear_model():
    x, xt = X[:4], X[4:]
    y = RNG.normal(size=(4, 2))
    out = ntk_nets.train_gd(jax.random.PRNGKey(0), x, y, xt, "erf", 1.5, 0.1, 1, 2048, 0.05, 40)
    _, th = ntk.nngp_and_ntk(x, None, "erf", 1.5, 0.1, 1)
    _, thc = ntk.nngp_and_ntk(xt, x, "erf", 1.5, 0.1, 1)
    from mftlib import gp

    f0tr, f0te = out["initial_train_outputs"][0], out["initial_test_outputs"][0]
    lin = f0te + gp.ntk_mean(th, thc, y - f0tr, time=0.05 * 40)
    change = np.linalg.norm(lin - f0te)
    assert np.linalg.norm(out["test_outputs"][0] - lin) < 0.15 * change


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(sigma_w2=-1.0), ValueError, "sigma_w2"),
        (dict(sigma_w2=0.0), ValueError, "sigma_w2"),
        (dict(sigma_b2=float("nan")), ValueError, "sigma_b2"),
        (dict(depth=-1), ValueError, "depth"),
        (dict(depth=1.5), (ValueError, TypeError), "depth"),
        (dict(phi="swish"), ValueError, "tanh"),
        (dict(x2=np.ones((3, 6))), ValueError, "features"),
    ],
)
def test_nngp_and_ntk_rejects_bad_input(kwargs, exc, match):
    args = dict(x1=X, x2=None, phi="relu", sigma_w2=1.5, sigma_b2=0.1, depth=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ntk.nngp_and_ntk(**args)


def test_nngp_and_ntk_rejects_nan_inputs():
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x1"):
        ntk.ntk_kernel(bad, None, "relu", 1.5, 0.1, 2)


def test_train_gd_rejects_mismatched_targets():
    with pytest.raises(ValueError, match="y_train"):
        ntk_nets.train_gd(
            jax.random.PRNGKey(0), X, np.ones((3, 2)), X, "relu", 2.0, 0.1, 1, 8, 0.1, 5
        )


# --- the NTK over depth: layer shares, the ordered-phase limit, and finite networks -----------


@pytest.mark.parametrize("phi, sw, sb", [("relu", 2.0, 0.1), ("erf", 1.2, 0.3), ("erf", 3.0, 0.0)])
def test_depth_profile_sums_to_ntk_diagonal(phi, sw, sb):
    shares = ntk.ntk_depth_profile(X, phi, sw, sb, depth=5)
    assert shares.shape == (6, 6, X.shape[0])
    for depth in (0, 2, 5):
        _, theta = ntk.nngp_and_ntk(X, None, phi, sw, sb, depth)
        np.testing.assert_allclose(shares[depth].sum(0), np.diag(theta), rtol=1e-10)
        assert np.all(shares[depth, depth + 1 :] == 0)
    # The last layer's share is its own length q^L = K^L(x, x).
    k5 = mft.nngp_kernel(X, None, phi, sw, sb, 5)
    np.testing.assert_allclose(shares[5, 5], np.diag(k5), rtol=1e-10)


def test_ordered_ntk_diagonal_saturates_at_q_over_one_minus_chi():
    phi, sw, sb = "tanh", 1.2, 0.3
    q, chi = float(mft.q_star(phi, sw, sb)), float(mft.chi1(phi, sw, sb))
    limit = ntk.ntk_diagonal_limit(phi, sw, sb)
    assert chi < 1 and limit == pytest.approx(q / (1 - chi), rel=1e-12)
    shares = ntk.ntk_depth_profile(X[:2], phi, sw, sb, depth=60)
    np.testing.assert_allclose(shares[60].sum(0), limit, rtol=1e-8)
    # Early layers' shares decay as chi1^(L - l): the input layer's share is negligible.
    assert np.all(shares[60, 0] < 1e-8 * limit)


@pytest.mark.parametrize(
    "phi, sw, sb", [("tanh", 3.0, 0.05), ("relu", 2.0, 0.0), ("relu", 2.5, 0.1)]
)
def test_ntk_diagonal_limit_is_infinite_at_and_beyond_criticality(phi, sw, sb):
    assert ntk.ntk_diagonal_limit(phi, sw, sb) == float("inf")


@pytest.mark.slow
def test_ntk_by_layer_sums_to_jacobian_ntk():
    for n_out, depth in ((1, 2), (3, 0), (5, 3)):
        p = ntk_nets.init_ntk(jax.random.PRNGKey(4), X.shape[1], 6, depth, n_out)
        by_layer = np.asarray(ntk_nets.ntk_by_layer(p, X, X[:3], "tanh", 1.5, 0.1))
        assert by_layer.shape == (depth + 1, X.shape[0], 3)
        ref = np.asarray(ntk_nets.empirical_ntk(p, X, X[:3], "tanh", 1.5, 0.1))
        np.testing.assert_allclose(by_layer.sum(0), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_ntk_shares_by_depth_match_truncated_networks():
    depth, width = 3, 7
    p = ntk_nets.init_ntk(jax.random.PRNGKey(5), X.shape[1], width, depth, width)
    shares = np.asarray(ntk_nets.ntk_shares_by_depth(p, X, "erf", 1.3, 0.2))
    assert shares.shape == (depth + 1, depth + 1, X.shape[0])
    for L in range(depth + 1):
        ref = np.asarray(ntk_nets.ntk_by_layer(p[: L + 1], X, None, "erf", 1.3, 0.2))
        np.testing.assert_allclose(
            shares[L, : L + 1], np.diagonal(ref, axis1=1, axis2=2), rtol=1e-10
        )
        assert np.all(shares[L, L + 1 :] == 0)


def test_ntk_layer_functions_reject_bad_input():
    p = ntk_nets.init_ntk(jax.random.PRNGKey(0), X.shape[1], 4, 2, 3)
    with pytest.raises(ValueError, match="output"):
        ntk_nets.ntk_by_layer(p, X, None, "relu", 2.0, 0.1, output=3)
    with pytest.raises(ValueError, match="square"):
        ntk_nets.ntk_shares_by_depth(p, X, "relu", 2.0, 0.1)
    with pytest.raises(ValueError, match="sigma_w2"):
        ntk.ntk_depth_profile(X, "relu", -1.0, 0.1, 3)
    with pytest.raises(TypeError, match="depth"):
        ntk.ntk_depth_profile(X, "relu", 2.0, 0.1, 2.5)
    with pytest.raises(ValueError, match="n_record"):
        ntk_nets.train_gd_with_ntk(
            jax.random.PRNGKey(0),
            X,
            np.ones((5, 2)),
            X,
            "relu",
            2.0,
            0.1,
            1,
            8,
            0.1,
            10,
            n_record=3,
        )


@pytest.mark.slow
def test_train_gd_with_ntk_matches_train_gd_and_starts_at_zero_change():
    x, xt = X[:4], X[4:]
    y = RNG.normal(size=(4, 2))
    args = (jax.random.PRNGKey(2), x, y, xt, "erf", 1.5, 0.1, 1, 32, 0.05, 8)
    plain = ntk_nets.train_gd(*args, n_seeds=2)
    watched = ntk_nets.train_gd_with_ntk(*args, n_seeds=2, n_record=4)
    for k in ("test_outputs", "initial_test_outputs", "train_loss"):
        np.testing.assert_allclose(watched[k], plain[k], rtol=1e-10, atol=1e-12)
    assert watched["ntk_change"].shape == (2, 5)
    assert np.all(watched["ntk_change"][:, 0] == 0) and np.all(watched["ntk_change"][:, 1:] > 0)
    np.testing.assert_array_equal(watched["record_steps"], [0, 2, 4, 6, 8])
    ref = np.asarray(
        ntk_nets.empirical_ntk(
            ntk_nets.init_ntk(jax.random.split(jax.random.PRNGKey(2), 2)[0], 7, 32, 1, 2),
            x,
            None,
            "erf",
            1.5,
            0.1,
        )
    )
    np.testing.assert_allclose(watched["ntk_initial"][0], ref, rtol=1e-10)


@pytest.mark.slow
def test_finite_network_ntk_depth_profile_matches_theory():
    # Ordered tanh: Theta^L(x, x) saturates; 8 networks of width 512, depth 12.
    x = X[:2]
    depth, width, seeds = 12, 512, 8
    theory = ntk.ntk_depth_profile(x, "tanh", 1.2, 0.3, depth)
    sims = []
    for s in range(seeds):
        p = ntk_nets.init_ntk(jax.random.PRNGKey(100 + s), x.shape[1], width, depth, width)
        sims.append(np.asarray(ntk_nets.ntk_shares_by_depth(p, x, "tanh", 1.2, 0.3)))
    total = np.stack(sims).sum(2)  # (seeds, L, n): Theta^L diagonal
    mean, se = total.mean(0), total.std(0, ddof=1) / np.sqrt(seeds)
    # 5 standard errors of the seed mean plus an O(L/N) finite-width bias allowance.
    bias = 2.0 * (np.arange(depth + 1)[:, None] + 1) / width * theory.sum(1)
    assert np.all(np.abs(mean - theory.sum(1)) < 5 * se + bias)


@pytest.mark.slow
def test_ntk_change_during_training_shrinks_with_width():
    x, y = X, RNG.normal(size=(5, 2))
    _, theta = ntk.nngp_and_ntk(x, None, "relu", 2.0, 0.1, 2)
    eta = 1.0 / np.linalg.eigvalsh(np.asarray(theta)).max()
    change = {}
    for width in (64, 1024):
        run = ntk_nets.train_gd_with_ntk(
            jax.random.PRNGKey(7),
            x,
            y,
            x,
            "relu",
            2.0,
            0.1,
            2,
            width,
            eta,
            40,
            n_seeds=4,
            n_record=2,
        )
        change[width] = run["ntk_change"][:, -1].mean()
    # The change vanishes with width: 16x the width gives N^{-1/2} (a quarter) or faster; it
    # is measured at about N^{-0.8} here, so require an exponent between -1.3 and -0.35.
    assert change[64] / 16**1.3 < change[1024] < change[64] / 16**0.35
