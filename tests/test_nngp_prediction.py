"""Tests for mftlib.nngp_prediction: GP classification, trained networks, uncertainty
statistics and the accuracy drivers against direct computations; training and digits runs are
slow."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import mftlib as mft
from mftlib import gp
from mftlib import nngp_prediction as pr
from mftlib.datasets import Dataset

RNG = np.random.default_rng(3)


def _blobs(n_per_class: int, n_classes: int = 3, d: int = 6, sep: float = 4.0, seed: int = 0):
    """Gaussian blobs: an easy, separable classification problem."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, d)) * sep
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = centres[y] + rng.normal(size=(y.size, d))
    return x / x.std(), y


def test_targets_are_zero_mean_one_hot():
    t = pr.targets(np.array([0, 2, 1]), 3)
    np.testing.assert_allclose(t.sum(1), 0.0, atol=1e-15)
    np.testing.assert_allclose(t[1], [-1 / 3, -1 / 3, 2 / 3])


@pytest.mark.slow
def test_nngp_classifier_is_the_gp_posterior():
    x, y = _blobs(10)
    xt, yt = _blobs(5, seed=1)
    out = pr.nngp_classifier(x, y, xt, yt, "relu", 2.0, 0.1, 2, noise=1e-2, n_classes=3)
    k = np.asarray(mft.nngp_kernel(x, None, "relu", 2.0, 0.1, 2))
    kc = np.asarray(mft.nngp_kernel(xt, x, "relu", 2.0, 0.1, 2))
    kt = np.asarray(mft.nngp_kernel(xt, None, "relu", 2.0, 0.1, 2))
    noise = 1e-2 * np.mean(np.diag(k))
    ref = gp.posterior(k, kc, np.diag(kt), pr.targets(y, 3), noise=noise)
    np.testing.assert_allclose(out["mean"], ref["mean"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["variance"], ref["variance"], rtol=1e-8, atol=1e-12)
    assert out["noise"] == pytest.approx(noise)
    assert out["accuracy"] == np.mean(np.argmax(ref["mean"], 1) == yt)
    # Maximum-likelihood amplitude: tr(Y^T (K + noise I)^{-1} Y) / (n C).
    t = pr.targets(y, 3)
    s_ref = np.trace(t.T @ np.linalg.solve(k + noise * np.eye(len(k)), t)) / t.size
    assert out["scale"] == pytest.approx(s_ref, rel=1e-8)


def test_uncertainty_statistics_on_a_constructed_case():
    # Errors placed exactly at the largest variances: AUC 1, significant.
    n, c = 60, 4
    var = np.linspace(0.1, 1.0, n)
    labels = np.zeros(n, int)
    mean = np.tile(pr.targets(np.array([0]), c), (n, 1))
    mean[-10:] = pr.targets(np.array([1]), c)  # the 10 largest variances are wrong
    out = pr.uncertainty_vs_error(mean, var, labels, noise=0.05, n_bins=6)
    assert out["n_errors"] == 10 and out["auc"] == pytest.approx(1.0)
    assert out["auc_p"] < 1e-5 and out["spearman"] > 0.5
    np.testing.assert_allclose(out["bin_error_rate"], [0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(out["bin_predicted"][0], var[:10].mean() + 0.05)
    assert np.all(out["bin_error_se"] > 0)
    with pytest.raises(ValueError, match="variance"):
        pr.uncertainty_vs_error(mean, var[:-1], labels)
    with pytest.raises(ValueError, match="n_bins"):
        pr.uncertainty_vs_error(mean, var, labels, n_bins=n + 1)


def test_train_mlp_rejects_bad_input():
    x, y = _blobs(4)
    args = (jax.random.PRNGKey(0), x, y, x, y, "relu", 2.0, 0.1, 8, 1)
    with pytest.raises(ValueError, match="learning_rates"):
        pr.train_mlp(*args, [1e-3, -1.0], n_classes=3)
    with pytest.raises(ValueError, match="train_indices"):
        pr.train_mlp(*args, 1e-3, n_seeds=2, train_indices=np.zeros((3, 4), int), n_classes=3)
    with pytest.raises(ValueError, match="labels_train"):
        pr.train_mlp(*args, 1e-3, n_classes=2)
    with pytest.raises(ValueError, match="n_record"):
        pr.train_mlp(*args, 1e-3, steps=10, n_record=3, n_classes=3)


@pytest.mark.slow
def test_train_mlp_fits_separable_blobs_and_picks_a_learning_rate():
    x, y = _blobs(8)
    out = pr.train_mlp(
        jax.random.PRNGKey(1),
        x,
        y,
        x,
        y,
        "relu",
        2.0,
        0.1,
        16,
        2,
        [1e-4, 1e-2],
        n_seeds=2,
        steps=100,
        batch_size=64,
        n_classes=3,
    )
    assert out["train_accuracy"].shape == (2, 2) and out["loss_history"].shape == (2, 2, 10)
    assert out["best_lr"] == 1e-2 and out["best"] == 1
    assert np.all(out["train_accuracy"][1] == 1.0)
    assert np.all(out["train_loss"][1] < out["train_loss"][0])


def test_grid_and_size_drivers_reject_bad_input():
    x, y = _blobs(4)
    data = Dataset(x, y, x, y, 3)
    with pytest.raises(ValueError, match="sizes"):
        pr.accuracy_vs_train_size(
            jax.random.PRNGKey(0), data, "relu", 2.0, 0.1, 1, [5, 100], 2, 8, 1e-3
        )
    with pytest.raises(ValueError, match="sigma_w2_grid"):
        pr.nngp_accuracy_grid(x, y, x, y, "erf", [], [0.1], [2])


def test_kernels_at_depths_match_nngp_kernel():
    x = RNG.normal(size=(6, 5))
    for phi, sw, sb in (("erf", 1.8, 0.2), ("relu", 2.0, 0.1)):
        ks = pr.nngp_kernels_at_depths(x, phi, sw, sb, [4, 0, 2])
        for depth, k in zip([4, 0, 2], ks, strict=True):
            ref = np.asarray(mft.nngp_kernel(x, None, phi, sw, sb, depth))
            np.testing.assert_allclose(k, ref, rtol=1e-12, atol=1e-14)


def test_kernels_keep_the_chaotic_diagonal_on_the_length_map():
    # erf at sigma_b^2 = 0, sigma_w^2 = 4 (chaotic): the diagonal is an unstable fixed point
    # of the pair recursion; the kernels used here take it from the length map instead.
    x = RNG.normal(size=(4, 5))
    k = np.asarray(mft.nngp_kernel(x, None, "erf", 4.0, 0.0, 150))
    q = float(mft.q_star("erf", 4.0, 0.0))
    assert np.all(np.isfinite(k))
    np.testing.assert_allclose(np.diag(k), q, rtol=1e-10)
    assert np.max(np.abs(k - np.diag(np.diag(k)))) < 1e-6 * q  # c* = 0: off-diagonal decays
    (k_iter,) = pr.nngp_kernels_at_depths(x, "erf", 4.0, 0.0, [150])
    np.testing.assert_allclose(np.diag(k_iter), q, rtol=1e-10)


@pytest.mark.slow
def test_nngp_beats_chance_and_small_trained_networks_converge_on_digits():
    from mftlib import datasets

    digits = datasets.digits()
    out = pr.accuracy_vs_train_size(
        jax.random.PRNGKey(3),
        digits,
        "relu",
        2.0,
        0.05,
        2,
        [50, 200],
        2,
        64,
        [1e-3, 1e-2],
        steps=300,
        batch_size=256,
    )
    assert out["nngp"].shape == (2, 2)
    assert np.all(out["nngp"] > 0.6) and np.all(out["nngp"][:, 1] > out["nngp"][:, 0] - 0.02)
    assert np.all(out["trained_train"] >= 0.99)  # full batch on <= 200 points: converged
    assert np.all(out["trained_test"] > 0.5)


@pytest.mark.slow
def test_accuracy_vs_depth_spread_decays_at_the_depth_scale():
    x, y = _blobs(20, n_classes=3, d=8)
    xt, yt = _blobs(10, n_classes=3, d=8, seed=1)
    out = pr.accuracy_vs_depth(x, y, xt, yt, "erf", 4.0, 0.0, [30, 60, 90], n_classes=3)
    # c* = 0: the correlations' spread shrinks as exp(-L / xi_c) in the linear regime.
    decay = 30 / np.log(out["spread"][1] / out["spread"][2])
    assert decay == pytest.approx(out["xi_c"], rel=0.02)
    assert out["c_star"] == pytest.approx(0.0, abs=1e-12)
    # No constant kernel part: once the correlations are in the linear regime around c* = 0,
    # the prediction no longer changes with depth (the input-dependent part only shrinks).
    assert out["accuracy"][1] == out["accuracy"][2] > 1 / 3
