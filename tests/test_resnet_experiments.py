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
