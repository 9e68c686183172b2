"""Tests for mftlib.nngp_experiments: the chapter-2 kernel and NTK drivers against direct
computations, and theory against finite networks (slow) with tolerances from the seed-to-seed
spread."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import mftlib as mft
from mftlib import nngp_experiments as ex

RNG = np.random.default_rng(3)


def test_circle_inputs_have_unit_length_and_the_right_angles():
    ang = np.array([0.0, 0.3, np.pi / 2, np.pi])
    x = ex.circle_inputs(ang, d=10)
    np.testing.assert_allclose(np.sum(x * x, 1) / 10, 1.0, rtol=1e-14)
    np.testing.assert_allclose(x @ x[0] / 10, np.cos(ang), atol=1e-14)
    with pytest.raises(ValueError, match="d must be"):
        ex.circle_inputs(ang, d=1)


@pytest.mark.slow
def test_angle_theory_is_the_correlation_map():
    sweep = ex.angle_correlations(None, "erf", 1.8, 0.1, [0.5, 1.5, 3.0], depth=4)
    assert sweep.simulated is None and sweep.theory.shape == (5, 3)
    # Layer 0: c = (sb + sw cos theta) / (sb + sw); afterwards the correlation map, with q^l
    # the same for every input on the circle.
    c = (0.1 + 1.8 * np.cos(sweep.angles)) / 1.9
    q = 1.9
    for layer in range(5):
        np.testing.assert_allclose(sweep.theory[layer], c, rtol=1e-10)
        # correlation_map divides by the input length q; the next layer's length is q_next.
        q_next = float(mft.length_map("erf", 1.8, 0.1, q))
        c = np.asarray(mft.correlation_map("erf", 1.8, 0.1, c, q=q)) * q / q_next
        q = q_next
    assert sweep.chi1 == pytest.approx(float(mft.chi1("erf", 1.8, 0.1)))


@pytest.mark.slow
def test_kernel_errors_are_relative_frobenius_errors():
    x = RNG.normal(size=(4, 5))
    out = ex.kernel_errors(jax.random.PRNGKey(0), x, "erf", 1.5, 0.1, 1, [8, 32], n_seeds=2)
    assert out["nngp"].shape == (2, 2) and np.all(out["nngp"] > 0) and np.all(out["ntk"] > 0)
    assert np.isfinite(out["nngp_fit"].value) and np.isfinite(out["ntk_fit"].stderr)


def test_covariance_z_scores_are_standardised_differences():
    rng = np.random.default_rng(0)
    k = np.array([[1.0, 0.6], [0.6, 2.0]])
    f = rng.multivariate_normal(np.zeros(2), k, size=4000)
    z = ex.covariance_z_scores(f, k)
    se = np.sqrt((k * k + np.outer(np.diag(k), np.diag(k))) / 4000)
    np.testing.assert_allclose(z, (np.cov(f.T) - k) / se, rtol=1e-12)
    assert np.all(np.abs(z) < 5)
    with pytest.raises(ValueError, match="kernel"):
        ex.covariance_z_scores(f, np.eye(3))


@pytest.mark.slow
def test_plot_helpers_draw_on_the_axes_they_are_given():
    import matplotlib.pyplot as plt

    fig, (a0, a1, a2) = plt.subplots(1, 3)
    f = RNG.normal(size=(50, 2))
    ex.plot_gaussian_check(a0, a1, f, np.eye(2))
    assert len(a0.patches) == 50 and len(a1.lines) == 4
    sweep = ex.AngleSweep(
        np.array([1.0, 2.0]),
        np.array([[0.5, 0.1], [0.8, 0.4], [0.9, 0.6]]),
        np.tile(np.array([[0.5, 0.1], [0.8, 0.4], [0.9, 0.6]]), (3, 1, 1))
        + RNG.normal(scale=1e-3, size=(3, 3, 2)),
        1.0,
        2.0,
        0.6,
    )
    ex.plot_fixed_point_distance(a2, {"ordered": sweep}, angle_index=1)
    assert a2.get_yscale() == "log" and len(a2.lines) >= 1
    plt.close(fig)


@pytest.mark.slow
def test_angle_correlations_of_finite_networks_match_theory():
    sweep = ex.angle_correlations(
        jax.random.PRNGKey(0),
        "tanh",
        1.2,
        0.3,
        [0.5, np.pi / 2, 2.5],
        depth=6,
        width=1024,
        n_seeds=6,
    )
    sim = sweep.simulated
    mean, se = sim.mean(0), sim.std(0, ddof=1) / np.sqrt(sim.shape[0])
    # 5 standard errors plus an O(1/N) bias allowance on a correlation.
    assert np.all(np.abs(mean - sweep.theory) < 5 * se + 4.0 / 1024)


@pytest.mark.slow
def test_kernel_errors_fall_as_inverse_square_root_of_width():
    x = RNG.normal(size=(8, 6))
    out = ex.kernel_errors(jax.random.PRNGKey(1), x, "erf", 1.5, 0.05, 2, [32, 128, 512], n_seeds=6)
    for fit in (out["nngp_fit"], out["ntk_fit"]):
        assert abs(fit.value + 0.5) < 0.15 + 3 * fit.stderr


@pytest.mark.slow
def test_ntk_depth_profile_driver_matches_theory_in_the_ordered_phase():
    x = RNG.normal(size=(2, 8))
    out = ex.ntk_depth_profile(jax.random.PRNGKey(2), x, "tanh", 1.2, 0.3, 10, 512, n_seeds=6)
    total = out["simulated"].sum(2)
    mean, se = total.mean(0), total.std(0, ddof=1) / np.sqrt(6)
    theory = out["theory"].sum(1)
    assert np.all(np.abs(mean - theory) < 5 * se + 0.05 * theory)
    assert out["limit"] == pytest.approx(theory[-1].mean(), rel=0.02)


@pytest.mark.slow
def test_ntk_training_deviation_and_kernel_motion_shrink_with_width():
    from mftlib import datasets

    digits = datasets.digits()
    x, y = digits.x_train[:40], digits.one_hot("train")[:40] - 0.1
    out = ex.ntk_training(
        jax.random.PRNGKey(4),
        x,
        y,
        digits.x_test[:30],
        "relu",
        2.0,
        0.05,
        2,
        [64, 256, 1024],
        steps=64,
        n_seeds=3,
        n_record=4,
    )
    # Outputs approach the linearised solution as N^{-1/2}; the kernel's motion vanishes at
    # least as fast (measured near N^{-0.8} in the chapter).
    assert -0.8 < out["deviation_fit"].value < -0.3
    assert -1.3 < out["ntk_change_fit"].value < -0.4
    assert np.all(out["ntk_change_history"][..., 0] == 0) and np.all(out["ntk_change"] > 0)
