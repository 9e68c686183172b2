"""Tests for mftlib.conv_experiments: the drivers of the convolutional-networks chapter."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mftlib import conv, datasets, dense
from mftlib import conv_experiments as ce


def test_input_correlation_is_a_correlation_matrix():
    R = ce._input_correlation(12, 0)
    np.testing.assert_allclose(np.diag(R), 1.0)
    assert np.linalg.eigvalsh(R).min() > 0.09
    # every spatial frequency of the offset-1 diagonal carries weight
    g = np.fft.fft(R[np.arange(12), (np.arange(12) + 1) % 12])
    assert np.abs(g[:7]).min() > 0.5


def test_distance_modes_of_the_fixed_point_and_of_a_shift():
    """D = 0 for equal positions; for a covariance that is a function of the offset only, only
    f = 0 survives."""
    P = 8
    assert np.allclose(ce._distance_modes(np.ones((P, P)), P, 1, 5), 0)
    S = np.array([[np.cos(2 * np.pi * (a - b) / P) for b in range(P)] for a in range(P)])
    m = ce._distance_modes(S, P, 1, 5)
    assert m[0] == pytest.approx(2 * (1 - np.cos(2 * np.pi / P)))
    np.testing.assert_allclose(m[1:], 0, atol=1e-12)


@pytest.mark.slow
def test_mode_response_map_gives_the_linear_depth_scales():
    """From a small perturbation the iterated map decays with the linearised xi_f, and the
    simulated networks agree with it within their errors."""
    sc = float(dense.critical_sigma_w2("tanh", 0.05))
    r = ce.mode_response("tanh", sc, 0.05, np.array([0.0, 0.5, 0.5]), 12, 128, 10, 8)
    ok = (r["n_layers"] >= 4) & np.isfinite(r["xi_linear"])
    assert ok.sum() >= 2
    np.testing.assert_allclose(r["xi_map"][ok], r["xi_linear"][ok], rtol=0.1)
    wm, _ = ce.xi_agreement(r)
    assert abs(wm.value - 1) < 4 * wm.stderr + 0.05
    with pytest.raises(ValueError, match="seeds"):
        ce.mode_response("tanh", sc, 0.05, conv.uniform_filter(3), 12, 16, 4, 2)
    with pytest.raises(ValueError, match="footprint"):
        ce.mode_response("tanh", sc, 0.05, np.full(2, 0.5), 12, 16, 4, 4)


@pytest.mark.slow
def test_cnn_jacobian_moments_against_dense_laws():
    """Linear CNNs: orthogonal kernels are exact isometries; Gaussian ones have m1 = 1 on
    average (exact in expectation) and the dense variance L within a generous error."""
    r = ce.cnn_jacobian_moments(
        jax.random.PRNGKey(0),
        "orthogonal",
        4,
        6,
        8,
        4,
        3,
        1.0,
        0.0,
        phi="linear",
    )
    np.testing.assert_allclose(r["eigenvalues"], 1.0, rtol=1e-10)
    assert r["var_theory"] == pytest.approx(0.0, abs=1e-12)
    g = ce.cnn_jacobian_moments(
        jax.random.PRNGKey(1),
        "gaussian",
        32,
        6,
        16,
        4,
        3,
        1.0,
        0.0,
        phi="linear",
    )
    assert g["m1_theory"] == pytest.approx(1.0) and g["var_theory"] == pytest.approx(4.0)
    assert abs(g["m1_mean"] - 1) < 4 * g["m1_se"]
    # finite C = 16: the variance carries O(L^2 / C) corrections; 4 se + 25 %
    assert abs(g["var_mean"] - 4.0) < 4 * g["var_se"] + 1.0


@pytest.mark.slow
def test_train_deep_cnns_shapes_and_learning():
    data = datasets.digits()
    sw = float(dense.critical_sigma_w2("tanh", 1e-4))
    r = ce.train_deep_cnns(
        jax.random.PRNGKey(0),
        data,
        ("delta_orthogonal",),
        2,
        4,
        2,
        sw,
        1e-4,
        steps=60,
        n_record=3,
    )
    assert r["loss_history"].shape == (1, 2, 3)
    assert r["test_accuracy"].shape == (1, 2)
    assert r["loss_history"][0, :, -1].mean() < np.log(10)


def test_xi_agreement_checks_its_input():
    r = dict(
        n_layers=np.array([0, 1]),
        xi_linear=np.array([np.inf, 2.0]),
        xi_sim=np.array([np.nan, 2.0]),
        xi_sim_se=np.array([np.nan, 0.1]),
        freqs=np.arange(2),
        xi_map=np.array([np.nan, 2.0]),
    )
    with pytest.raises(ValueError, match="enough layers"):
        ce.xi_agreement(r)
    with pytest.raises(ValueError, match="against"):
        ce.xi_agreement(r, against="xi_real_part")
    r["n_layers"] = np.array([0, 5])
    wm, used = ce.xi_agreement(r)
    assert wm.value == pytest.approx(1.0) and list(used) == [1]
