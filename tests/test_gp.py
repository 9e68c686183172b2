"""Tests for mftlib.gp: posterior vs a direct solve, jitter, batching, NTK predictor, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import mftlib as mft
from mftlib import gp

RNG = np.random.default_rng(1)
X = RNG.normal(size=(30, 6))
XT = RNG.normal(size=(11, 6))
Y = RNG.normal(size=(30, 3))


def _kernel(a, b):
    return np.asarray(mft.nngp_kernel(a, b, "erf", 1.5, 0.1, 3))


def _direct(k_train, k_cross, k_diag, y, noise):
    a = k_train + noise * np.eye(len(k_train))
    mean = k_cross @ np.linalg.solve(a, y)
    var = k_diag - np.einsum("ij,ji->i", k_cross, np.linalg.solve(a, k_cross.T))
    return mean, var


@pytest.mark.parametrize("noise", [1e-6, 1e-2, 1.0])
def test_posterior_matches_direct_solve(noise):
    kt, kc, kd = _kernel(X, X), _kernel(XT, X), np.diag(_kernel(XT, XT))
    out = gp.posterior(kt, kc, kd, Y, noise=noise)
    mean, var = _direct(kt, kc, kd, Y, noise)
    np.testing.assert_allclose(out["mean"], mean, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(out["variance"], var, rtol=1e-6, atol=1e-10)
    assert out["jitter"] == 0.0


def test_predict_in_batches_equals_one_batch():
    whole = gp.predict(_kernel, X, Y, XT, noise=1e-3, batch_size=1000)
    batched = gp.predict(_kernel, X, Y, XT, noise=1e-3, batch_size=4)
    np.testing.assert_allclose(batched["mean"], whole["mean"], rtol=1e-12)
    np.testing.assert_allclose(batched["variance"], whole["variance"], rtol=1e-12, atol=1e-15)


def test_posterior_interpolates_training_points_without_noise():
    kt = _kernel(X, X)
    out = gp.posterior(kt, kt, np.diag(kt), Y, noise=0.0)
    np.testing.assert_allclose(out["mean"], Y, atol=1e-6)
    assert np.all(out["variance"] < 1e-6 * np.mean(np.diag(kt)))


def test_singular_kernel_gets_jitter_not_nan():
    # A rank-one kernel (all inputs identical): singular, positive semi-definite.
    k = np.ones((10, 10))
    out = gp.posterior(k, np.ones((2, 10)), np.ones(2), np.arange(10.0), noise=0.0)
    assert out["jitter"] > 0
    assert np.all(np.isfinite(out["mean"])) and np.all(np.isfinite(out["variance"]))


def test_not_psd_kernel_raises():
    k = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalue -1
    with pytest.raises(ValueError, match="positive semi-definite"):
        gp.posterior(k, np.ones((1, 2)), np.ones(1), np.ones(2))


@pytest.mark.parametrize(
    "k_train, k_cross, k_diag, y, match",
    [
        (np.ones((3, 2)), np.ones((1, 2)), np.ones(1), np.ones(3), "square"),
        (np.array([[1.0, 0.5], [0.1, 1.0]]), np.ones((1, 2)), np.ones(1), np.ones(2), "symmetric"),
        (np.eye(2), np.ones((1, 3)), np.ones(1), np.ones(2), "columns"),
        (np.eye(2), np.ones((1, 2)), np.ones(2), np.ones(2), "k_test_diag"),
        (np.eye(2), np.ones((1, 2)), np.ones(1), np.ones(3), "y_train"),
        (np.eye(2), np.ones((1, 2)), np.ones(1), np.array([1.0, np.nan]), "y_train"),
        (np.array([[np.nan, 0], [0, 1.0]]), np.ones((1, 2)), np.ones(1), np.ones(2), "k_train"),
        (np.diag([-1.0, 1.0]), np.ones((1, 2)), np.ones(1), np.ones(2), "negative"),
    ],
)
def test_posterior_rejects_bad_input(k_train, k_cross, k_diag, y, match):
    with pytest.raises(ValueError, match=match):
        gp.posterior(k_train, k_cross, k_diag, y)


def test_negative_noise_raises():
    with pytest.raises(ValueError, match="noise"):
        gp.posterior(np.eye(2), np.ones((1, 2)), np.ones(1), np.ones(2), noise=-1.0)


def test_predict_rejects_non_callable_kernel():
    with pytest.raises(TypeError, match="kernel"):
        gp.predict(np.eye(3), X, Y, XT)


@settings(max_examples=20, deadline=None)
@given(noise=st.floats(1e-8, 10.0), seed=st.integers(0, 1000))
def test_posterior_variance_is_between_zero_and_prior(noise, seed):
    rng = np.random.default_rng(seed)
    x, xt = rng.normal(size=(8, 4)), rng.normal(size=(5, 4))
    kt, kc = _kernel(x, x), _kernel(xt, x)
    kd = np.diag(_kernel(xt, xt))
    out = gp.posterior(kt, kc, kd, rng.normal(size=8), noise=noise)
    assert np.all(out["variance"] >= 0)
    assert np.all(out["variance"] <= kd * (1 + 1e-10))


def test_ntk_mean_limits():
    th = _kernel(X, X) + 0.1 * np.eye(30)
    thc = _kernel(XT, X)
    inf = gp.ntk_mean(th, thc, Y)
    np.testing.assert_allclose(inf, thc @ np.linalg.solve(th, Y), rtol=1e-8)
    np.testing.assert_allclose(gp.ntk_mean(th, thc, Y, time=0.0), 0.0, atol=1e-12)
    np.testing.assert_allclose(gp.ntk_mean(th, thc, Y, time=1e6), inf, rtol=1e-6)
    # Finite time: Theta* Theta^{-1} (I - expm(-Theta t)) Y, with scipy's matrix exponential.
    t = 0.7
    ref = thc @ np.linalg.solve(th, (np.eye(30) - scipy.linalg.expm(-th * t)) @ Y)
    np.testing.assert_allclose(gp.ntk_mean(th, thc, Y, time=t), ref, rtol=1e-8, atol=1e-12)


def test_ntk_mean_rejects_bad_input():
    with pytest.raises(ValueError, match="time"):
        gp.ntk_mean(np.eye(2), np.ones((1, 2)), np.ones(2), time=-1.0)
    with pytest.raises(ValueError, match="match"):
        gp.ntk_mean(np.eye(2), np.ones((1, 3)), np.ones(2))
