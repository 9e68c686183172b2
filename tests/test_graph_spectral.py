"""Tests for mftlib.graph_spectral, mftlib.graph_experiments and the paper's GNN in
mftlib.networks.graph."""

import math

import jax
import numpy as np
import pytest
import scipy.sparse as sp

from mftlib import graph
from mftlib import graph_experiments as ge
from mftlib import graph_spectral as gs
from mftlib.networks import graph as gnn


def _small_graph(n=60, c=6.0, eps=0.3, seed=0):
    return graph.sbm(jax.random.PRNGKey(seed), n, c, eps)


def test_catalan_moments_are_semicircle_moments():
    # the Gauss-Chebyshev rule for the semicircle on [-2, 2] that the dense mean field uses
    rule = graph.spectral_measure(0.0)
    x, w = rule["x"], rule["w_sc"]
    exact = [float(w @ x ** (2 * k)) for k in range(8)]
    assert gs.catalan_moments(7) == pytest.approx(exact, rel=1e-10)


def test_walk_moments_match_dense_matrix_powers():
    a, s = _small_graph()
    n = a.shape[0]
    c = a.sum() / n
    p = np.eye(n) - 1.0 / n
    ap = a.toarray() @ p / math.sqrt(c)
    m = gs.walk_moments(a, s, 4)
    v = s / math.sqrt(n)
    for k in range(5):
        z = np.linalg.matrix_power(ap, k)
        assert m["mu"][k] == pytest.approx(np.sum(z * z) / n, rel=1e-10)
        assert m["mu_v"][k] == pytest.approx(np.sum((z @ v) ** 2), rel=1e-10)


def test_linear_empirical_order_parameters_are_exact():
    # linear, sigma_w2 = 1: K^t = (PA)^t (AP)^t / c^t exactly (beta = 1, nu = 0 after layer 1)
    a, s = _small_graph(n=80)
    n = a.shape[0]
    c = a.sum() / n
    ap = a.toarray() @ (np.eye(n) - 1.0 / n) / math.sqrt(c)
    v = s / math.sqrt(n)
    out = gs.empirical_order_parameters("linear", 1.0, a, s, 4)
    for t in range(1, 5):
        z = np.linalg.matrix_power(ap, t)
        k = z.T @ z
        q = np.trace(k) / n
        assert out["q"][t - 1] == pytest.approx(q, rel=1e-9)
        assert out["r"][t - 1] == pytest.approx(v @ k @ v / q - 1.0, rel=1e-9)


@pytest.mark.slow
def test_catalan_moments_reproduce_dense_spectral_theory_q():
    # the walk expansion with semicircle moments is the dense theory's f_t integrated over mu_sc
    w = gs.walk_coefficients("tanh", 1.5, gs.catalan_moments(6), 6)
    dense = graph.spectral_order_parameters("tanh", 1.5, 8.0, 0.9, 6)
    assert w["q"] == pytest.approx(dense["q"], rel=1e-6)


def test_spiked_cosine2_reduces_to_bbp():
    # bulk at 1, spike 1 + l: zeta = (1 - g/l^2)/(1 + g/l), g = p/D
    p, d, ell = 400, 100, 3.0
    g = p / d
    z = gs.spiked_cosine2(1.0 + ell, np.ones(p - 1), d)
    assert z == pytest.approx((1 - g / ell**2) / (1 + g / ell), rel=1e-12)
    assert gs.spiked_cosine2(1.0 + 1.5, np.ones(p - 1), d) == 0.0  # below g^(1/2) = 2


def test_spiked_cosine2_against_monte_carlo():
    # general bulk: p = 200 population eigenvalues uniform on [0.5, 1.5], spike 6, D = 100.
    # Monte Carlo sd of the cosine^2 over 4 draws ~ 0.015; the finite-p bias is O(1/sqrt(p)).
    rng = np.random.default_rng(0)
    p, d = 200, 100
    bulk = np.linspace(0.5, 1.5, p - 1)
    pop = np.concatenate([[6.0], bulk])
    sims = []
    for _ in range(4):
        x = rng.standard_normal((p, d)) * np.sqrt(pop)[:, None]
        u = np.linalg.svd(x, full_matrices=False)[0][:, 0]
        sims.append(u[0] ** 2)
    assert np.mean(sims) == pytest.approx(gs.spiked_cosine2(6.0, bulk, d), abs=0.06)


def test_cosine2_to_overlap_matches_spectral_overlap():
    # the outlier eigenvector of the spiked Wigner matrix: cos^2 = 1 - 1/theta^2
    p = graph.sbm_parameters(8.0, 0.2)
    theta2 = p["lam"] ** 2 / 8.0
    ov = gs.cosine2_to_overlap(1.0 - 1.0 / theta2)
    assert float(ov) == pytest.approx(graph.spectral_overlap(8.0, 0.2), rel=1e-12)


def test_effective_width_is_fuss_catalan():
    # (tr S)^2 / tr S^2 of S = Wp Wp^T for T square Gaussian factors -> D/(T+1); D = 300:
    # finite-D corrections O(T/D) ~ a few per cent.
    rng = np.random.default_rng(1)
    d, t = 300, 3
    wp = np.eye(d)
    for _ in range(t):
        wp = wp @ rng.standard_normal((d, d)) / math.sqrt(d)
    sig = wp @ wp.T
    d_eff = np.trace(sig) ** 2 / np.trace(sig @ sig)
    assert d_eff == pytest.approx(gs.effective_width(d, t), rel=0.1)


def test_noise_floor_and_crossing():
    rng = np.random.default_rng(2)
    n = 400
    s = np.where(np.arange(n) < n // 2, 1, -1)
    ov = [graph.overlap(rng.choice([-1, 1], n), s) for _ in range(3000)]
    # sd of the mean over 3000 draws ~ 0.6 * 0.04 / 55 ~ 0.0005
    assert np.mean(ov) == pytest.approx(gs.overlap_noise_floor(n), rel=0.05)
    lvl = 3 * gs.overlap_noise_floor(100)
    assert gs.limit_crossing([0.0, 1.0], [2 * lvl, 0.0], 100) == pytest.approx(0.5)
    # the last downward crossing counts: a dip below the level and back up is noise
    assert gs.limit_crossing([0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 2 * lvl, 0.0], 100) == 2.5
    assert math.isnan(gs.limit_crossing([0.0, 1.0], [1.0, 0.9], 100))
    assert gs.limit_crossing([0.0, 1.0], [0.0, 0.0], 100) == 0.0


def test_bad_inputs_raise():
    a, s = _small_graph()
    with pytest.raises(ValueError):
        gs.walk_moments(a, s[:-1], 3)
    with pytest.raises(ValueError):
        gs.walk_coefficients("relu", 1.0, gs.catalan_moments(3), 3)
    with pytest.raises(ValueError):
        gs.walk_coefficients("tanh", 1.0, gs.catalan_moments(2), 3)
    with pytest.raises(ValueError):
        gs.spiked_cosine2(1.0, np.array([2.0]), 10)
    with pytest.raises(ValueError):
        gs.limit_crossing([1.0, 0.0], [1.0, 0.0], 10)
    with pytest.raises(ValueError):
        gs.cosine2_to_overlap(1.5)
    with pytest.raises(ValueError):
        gs.walk_moments(sp.csr_matrix((5, 5)), np.ones(5), 2)


@pytest.mark.slow
def test_paper_forward_has_no_centring_and_kmeans_separates():
    a, s = _small_graph(n=40)
    xs = gnn.paper_forward(jax.random.PRNGKey(0), a, "tanh", 1.0, 0.0, 3, 8)
    assert xs.shape == (3, 40, 8)
    assert np.all(np.abs(np.asarray(xs)) <= 1.0)
    # no centring: the mean over nodes does not vanish
    assert np.abs(np.asarray(xs[-1]).mean(axis=0)).max() > 1e-3
    f = np.concatenate([np.full((20, 2), 3.0), np.full((20, 2), -3.0)])
    f += np.random.default_rng(0).standard_normal(f.shape) * 0.1
    assert graph.overlap(gnn.kmeans_labels(f), np.repeat([1, -1], 20)) == 1.0
    with pytest.raises(ValueError):
        gnn.paper_forward(jax.random.PRNGKey(0), a, "tanh", 1.0, -1.0, 3, 8)


@pytest.mark.slow
def test_empirical_theory_follows_wide_networks():
    # tanh, n = 1000, c = 8, eps = 0.3, width 512: the network's r_5 against the spectral mean
    # field on the same graph; width-512 and graph-sampling noise ~ 15 %, averaged over 3 graphs.
    ratios = []
    for seed in range(3):
        a, s = graph.sbm(jax.random.PRNGKey(1000 + seed), 1000, 8.0, 0.3)
        th = gs.empirical_order_parameters("tanh", 1.0, a, s, 5)["r"][-1]
        hs = gnn.forward(jax.random.PRNGKey(seed), a, "tanh", 1.0, 5, 512)
        ratios.append(gnn.order_parameters(hs, s)["r"][-1] / th)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.2)


@pytest.mark.slow
def test_drivers_and_top_eigenvector():
    a, s = graph.sbm(jax.random.PRNGKey(3), 2000, 8.0, 0.05)
    assert graph.overlap(gs.top_eigenvector_labels(a), s) > 0.9
    r = ge.signal_ratio_runs(400, 8.0, 0.2, 2, 3, (16,))
    assert r["sim"].shape == (1, 2, 3) and r["empirical"].shape == (2, 3)
    w = ge.width_runs(400, 8.0, 0.1, 1, 3, (16, 64))
    assert np.all(w["cos2_gp"] >= w["cos2_eff"]) and np.all(w["cos2_gp"] <= w["cos2_top"][:, None])
    d = ge.detection_runs(400, 8.0, [0.1, 0.6], 1, (2, 4), 16)
    assert d["bethe_hessian"][0, 0] > d["bethe_hessian"][0, 1]
    loc = ge.localisation_runs([400, 800], 8.0, 0.1, 1)
    assert loc["adjacency"].shape == (1, 2)
    v = ge.weight_variance_runs(400, 8.0, 0.2, 1, 3, 16, (1.0, 2.0))
    assert v["r_emp"].shape == (1, 2)
