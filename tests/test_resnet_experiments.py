"""Drivers of the residual-network chapter (mftlib.resnet_experiments)."""

import jax
import numpy as np
import pytest

from mftlib import resnet
from mftlib import resnet_experiments as rx


def test_input_pair_has_unit_length_and_exact_correlation():
    x = rx.input_pair(64, 0.3)
    S = x @ x.T / 64
    np.testing.assert_allclose(np.diag(S), 1.0, rtol=1e-12)
    assert S[0, 1] == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("corr, width", [(1.0, 8), (-1.5, 8), (0.2, 1)])
def test_input_pair_rejects_bad_input(corr, width):
    with pytest.raises(ValueError):
        rx.input_pair(width, corr)


def test_trainable_edge():
    sv = np.array([0.1, 1.0, 10.0])
    acc = np.array([[0.9, 0.88, 0.1], [0.9, 0.9, 0.9], [0.9, 0.2, 0.1]])
    edge = rx.trainable_edge(acc, sv)
    assert edge[0] == 1.0 and np.isnan(edge[1]) and edge[2] == 0.1
    with pytest.raises(ValueError):
        rx.trainable_edge(acc[:, :2], sv)


@pytest.mark.slow  # simulates 24 networks
def test_gradient_spread_scatters_around_the_mean_field():
    # The log of the ratio simulated / mean field at width 128, depth 20 has a spread of order
    # 0.2; its seed mean must lie within 4 standard errors (plus 5 % bias) of zero.
    x = rx.input_pair(128, 0.5)
    out = rx.gradient_spread(jax.random.PRNGKey(0), x, "tanh", 1.0, 20, sigma_w2=1.0, n_seeds=24)
    ls = out["log_stats"]
    assert abs(ls["mean"]) < 4 * ls["se"] + 0.05
    assert out["theory"][-1] == pytest.approx(
        resnet.gradient_amplification("tanh", 1.0, 0.0, 1.0, 20, sigma_w2=1.0)[-1]
    )
    with pytest.raises(ValueError, match="n_seeds"):
        rx.gradient_spread(jax.random.PRNGKey(0), x, "tanh", 1.0, 5, n_seeds=1)


def test_mean_pair_covariance_matches_all_pairs():
    x = np.random.default_rng(0).normal(size=(7, 5)) + 0.3
    S = rx.mean_pair_covariance(x)
    d2 = [np.sum((x[a] - x[b]) ** 2) / 5 for a in range(7) for b in range(7) if a != b]
    assert S[0, 0] == S[1, 1] == pytest.approx(np.mean(np.sum(x * x, 1)) / 5, rel=1e-12)
    assert 2 * S[0, 0] - 2 * S[0, 1] == pytest.approx(np.mean(d2), rel=1e-12)
    with pytest.raises(ValueError, match="identical"):
        rx.mean_pair_covariance(np.ones((3, 4)))
    with pytest.raises(ValueError, match="two inputs"):
        rx.mean_pair_covariance(np.ones((1, 4)))


def test_compare_predictors_ranks_and_bootstrap():
    rng = np.random.default_rng(1)
    truth = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    # Seed noise 0.01 is far below the 0.09 gap between cells: a perfect ranking survives
    # every bootstrap resample.
    acc = 1.0 - truth[..., None] + 0.01 * rng.normal(size=(3, 4, 3))
    noise = rng.permutation(12).reshape(3, 4).astype(float)
    preds = {"good": truth, "same": np.exp(truth), "noise": noise}
    out = rx.compare_predictors(acc, preds, n_boot=200)
    assert out["rho"]["good"] == pytest.approx(-1.0)
    assert out["rho_se"]["good"] == pytest.approx(0.0, abs=1e-12)
    assert out["rho"]["same"] == out["rho"]["good"]  # ranks only: a monotone map changes nothing
    assert out["diff"] == 0.0 and out["diff_se"] == 0.0 and out["between"] == pytest.approx(1.0)
    assert out["eta2"]["good"] > 0.9 > out["eta2"]["noise"]
    assert abs(out["rho"]["noise"]) < 0.9
    with pytest.raises(ValueError, match="shape"):
        rx.compare_predictors(acc, {"bad": truth[:2]})
    with pytest.raises(ValueError, match="same in every cell"):
        rx.compare_predictors(np.ones((3, 4, 2)), {"good": truth})
    with pytest.raises(ValueError, match="n_seeds"):
        rx.compare_predictors(acc[..., :1], {"good": truth})


@pytest.mark.slow  # compiles the tanh distance map
def test_predictor_grid_matches_the_maps():
    x = np.random.default_rng(2).normal(size=(20, 8))
    g = rx.predictor_grid("tanh", x, (2, 5), [0.1, 1.0])
    S0 = rx.mean_pair_covariance(x)
    for j, sv in enumerate([0.1, 1.0]):
        T = np.asarray(resnet.covariance_trajectory("tanh", sv, 0.0, S0, 5, sigma_w2=1.0))
        s = T[:, 0, 0] + T[:, 1, 1] - 2 * T[:, 0, 1]
        amp = resnet.gradient_amplification("tanh", sv, 0.0, S0[0, 0], 5, sigma_w2=1.0)
        for i, L in enumerate((2, 5)):
            assert g["log_s"][i, j] == pytest.approx(np.log10(s[L] / s[0]), rel=1e-6)
            assert g["decades"][i, j] == pytest.approx(np.log10(amp[L]), rel=1e-12)
