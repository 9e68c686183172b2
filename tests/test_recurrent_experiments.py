"""Tests of mftlib.recurrent_experiments (the recurrent chapter's drivers)."""

import jax
import numpy as np
import pytest

from mftlib import recurrent
from mftlib import recurrent_experiments as rx

KEY = jax.random.PRNGKey(0)


# --- fits (fast) ----------------------------------------------------------------------------------


def test_memory_time_fits_recover_an_exact_exponential():
    t = np.arange(1, 31)
    y = np.stack([0.3 * np.exp(-t / 7.0), 2.0 * np.exp(-t / 7.0)])
    np.testing.assert_allclose(rx.memory_time_fit(y, 5), 7.0, rtol=1e-10)
    xi, se = rx.pooled_memory_time(y, 5)
    np.testing.assert_allclose(xi, 7.0, rtol=1e-10)
    assert se < 1e-8


def test_pooled_memory_time_is_robust_to_one_flat_seed():
    rng = np.random.default_rng(0)
    t = np.arange(1, 41)
    y = np.exp(-t / 10.0 + 0.05 * rng.standard_normal((12, 40)))
    y[0] = 1e-3 * np.exp(-t / 1e4)  # a seed that barely decays
    per_seed = rx.memory_time_fit(y, 5)
    assert per_seed[0] > 1e3  # runs away, and drags the mean of per-seed fits
    xi, se = rx.pooled_memory_time(y, 5)
    assert abs(xi - 10.0) < 1.5 and np.isfinite(se)


def test_fits_reject_bad_input():
    with pytest.raises(ValueError):
        rx.memory_time_fit(np.ones(10), 2)
    with pytest.raises(ValueError):
        rx.memory_time_fit(np.ones((2, 10)), 9)
    with pytest.raises(ValueError):
        rx.pooled_memory_time(np.ones((1, 10)), 2)
    with pytest.raises(ValueError):
        rx.pooled_memory_time(np.full((3, 10), 1e-13), 2)


@pytest.mark.slow  # compiles two trajectories (several seconds)
def test_mean_field_curve_matches_the_fixed_point_time_scale():
    # Far from the critical line the curve decays at chi_c per step.
    curve, fp = rx.mean_field_one_minus_c("vanilla", 40, sigma_w2=0.9, sigma_u2=0.1, sigma_b2=0.01)
    ratio = curve[30] / curve[29]
    np.testing.assert_allclose(ratio, float(fp["chi_c"]), rtol=1e-3)
    curve, fp = rx.mean_field_one_minus_c(
        "minimal", 40, sigma_w2=1.0, sigma_u2=0.1, sigma_b2=0.0, mu_b=1.0
    )
    np.testing.assert_allclose(curve[30] / curve[29], float(fp["chi_c"]), rtol=1e-3)


def test_drivers_reject_bad_input():
    with pytest.raises(ValueError):
        rx.mean_field_one_minus_c("elman", 10, sigma_w2=1.0, sigma_u2=0.1, sigma_b2=0.0)
    with pytest.raises(ValueError):
        rx.state_candidate_correlation(
            KEY, "vanilla", 8, 5, 2, sigma_w2=1.0, sigma_u2=0.1, sigma_b2=0.0
        )
    with pytest.raises(ValueError):
        rx.jacobian_spectra(
            KEY,
            "lstm",
            8,
            3,
            2,
            q0=0.5,
            sigma_w2=1.0,
            sigma_u2=0.1,
            sigma_b2=0.0,
        )
    with pytest.raises(ValueError):
        rx.trainable_delays(KEY, "vanilla", [], [2, 4], seeds=2, n=8)
    with pytest.raises(ValueError):
        rx.trainable_delays(KEY, "vanilla", [{}], [0, 4], seeds=2, n=8)
    with pytest.raises(ValueError):
        rx.decay_comparison(
            KEY,
            "vanilla",
            [1.0],
            n=8,
            length=10,
            seeds=1,
            sigma_u2=0.1,
            sigma_b2=0.0,
        )


# --- simulations (slow) ---------------------------------------------------------------------------


@pytest.mark.slow
def test_decay_comparison_vanilla_fits_agree_with_the_mean_field():
    # Ordered phase, xi ~ 2.5: per-seed fits scatter by a few per cent at width 256.
    d = rx.decay_comparison(
        KEY,
        "vanilla",
        [1.3],
        n=256,
        length=24,
        seeds=8,
        sigma_u2=0.1,
        sigma_b2=0.01,
    )
    assert abs(d["xi_mean"][0] - d["xi_curve"][0]) < 4 * d["xi_se"][0] + 0.05 * d["xi_curve"][0]
    assert d["sims"].shape == (1, 8, 24) and d["curve"].shape == (1, 24)


@pytest.mark.slow
def test_width_dependence_matches_the_mean_field_curve():
    wd = rx.vanilla_width_dependence(
        KEY,
        [128, 256],
        sigma_w2=1.3,
        sigma_u2=0.1,
        sigma_b2=0.01,
        length=30,
        seeds=8,
    )
    fp = recurrent.vanilla_fixed_point("tanh", 1.3, 0.1, 0.01)
    np.testing.assert_allclose(wd["xi_theory"], float(fp["xi_c"]), rtol=1e-12)
    dev = np.abs(wd["xi_pooled"] - wd["xi_curve"])
    assert np.all(dev < 4 * wd["xi_pooled_se"] + 0.05 * wd["xi_curve"])


@pytest.mark.slow
def test_cross_term_vanishes_for_fresh_weights_and_not_for_tied_gru():
    q = float(recurrent.gru_fixed_point(1.0, 0.1, 0.0, 1.5, 0.0)["q_star"])
    kw = dict(sigma_w2=1.0, sigma_u2=0.1, sigma_b2=0.0, mu_u=1.5, q0=q)
    tied = rx.state_candidate_correlation(KEY, "gru", 128, 20, 4, **kw)
    fresh = rx.state_candidate_correlation(KEY, "gru", 128, 20, 4, annealed=True, **kw)
    # Fresh weights: correlations over 128 units of independent vectors, s.d. ~ 1/sqrt(128).
    assert abs(fresh["difference"][:, 4:].mean()) < 0.03
    assert tied["difference"][:, 4:].mean() > 0.3
    # minimalRNN: the input's difference is exactly zero after t = 1 (nan correlation), and the
    # state is uncorrelated with the fresh input.
    m = rx.state_candidate_correlation(
        KEY,
        "minimal",
        128,
        12,
        4,
        sigma_w2=1.0,
        sigma_u2=0.1,
        sigma_b2=0.0,
        mu_b=2.0,
        q0=0.5,
    )
    assert np.all(np.isnan(m["difference"][:, 1:]))
    assert abs(m["state"][:, 2:].mean()) < 0.03


@pytest.mark.slow
def test_jacobian_mean_follows_chi_c_for_the_minimal_rnn():
    fp = recurrent.minimal_fixed_point(1.0, 0.1, 0.0, 4.0)
    ev = rx.jacobian_spectra(
        KEY,
        "minimal",
        64,
        6,
        4,
        q0=float(fp["q_star"]),
        sigma_w2=1.0,
        sigma_u2=0.1,
        sigma_b2=0.0,
        mu_b=4.0,
    )
    assert ev.shape == (4, 6, 64)
    np.testing.assert_allclose(ev[:, -1].mean(), float(fp["chi_c"]) ** 6, rtol=0.02)


@pytest.mark.slow
def test_trainable_delays_learns_the_short_delay():
    out = rx.trainable_delays(
        KEY,
        "vanilla",
        [dict(sigma_w2=1.0, sigma_u2=0.1, sigma_b2=0.01)],
        [1, 2],
        seeds=2,
        n=16,
        steps=150,
    )
    assert out["accuracy"].shape == (1, 2, 2)
    assert out["mean"][0, 0] > 0.9 and out["longest"][0] >= 1


def test_gate_variance_sweep_rejects_bad_input():
    with pytest.raises(ValueError, match="'gru' or 'lstm'"):
        rx.gate_variance_sweep(
            KEY, "minimal", [0.0], candidate_sigma_w2=1.0, n=4, length=8, seeds=2, jac_steps=2
        )
    with pytest.raises(ValueError, match="gate_sigma_w2"):
        rx.gate_variance_sweep(
            KEY, "gru", [-1.0], candidate_sigma_w2=1.0, n=4, length=8, seeds=2, jac_steps=2
        )


@pytest.mark.slow
def test_gate_variance_sweep_shapes_and_theory():
    out = rx.gate_variance_sweep(
        KEY, "gru", [0.0, 4.0], candidate_sigma_w2=2.0, n=48, length=16, seeds=3, jac_steps=4,
        mu_u=1.0,
    )  # fmt: skip
    assert out["xi_seeds"].shape == out["jac_mean"].shape == out["jac_var"].shape == (2, 3)
    fp = recurrent.gru_fixed_point((4.0, 4.0, 2.0), 1.0, 0.0, 1.0, 0.0)
    np.testing.assert_allclose(out["chi_c"][1], float(fp["chi_c"]), rtol=1e-12)
    np.testing.assert_allclose(out["jac_theory"], out["chi_c"] ** 4, rtol=1e-12)
    # a larger gate weight variance lengthens the mean-field memory (chi_c grows with it)
    assert out["xi_theory"][1] > out["xi_theory"][0]
    # width 48, 3 seeds: fitted xi within 25% of the mean-field fit (seed scatter ~10%)
    np.testing.assert_allclose(out["xi_seeds"].mean(1), out["xi_curve"], rtol=0.25)
