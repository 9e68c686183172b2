"""Tests for mftlib.batchnorm_experiments: the chapter's drivers on exact and simulated data."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mftlib import batchnorm as bn
from mftlib import batchnorm_experiments as bx
from mftlib import datasets


def test_fixed_point_correlation_of_an_exact_bsb1_covariance():
    b, c = 6, -0.1
    cov = 2.0 * ((1 - c) * np.eye(b) + c * np.ones((b, b)))
    stack = np.broadcast_to(cov, (3, 7, b, b))
    np.testing.assert_allclose(bx.fixed_point_correlation(stack), c, rtol=1e-12)
    with pytest.raises(ValueError, match="batch_cov"):
        bx.fixed_point_correlation(cov)


def test_decay_rate_of_an_exact_geometric_sequence():
    p = 0.4 * 0.7 ** np.arange(8)[None] * np.array([[1.0], [1.1], [0.9]])
    rate, se = bx._decay_rate(p, 5)
    assert rate == pytest.approx(0.7, rel=1e-12) and se < 1e-12
    with pytest.raises(ValueError, match="positive"):
        bx._decay_rate(-p, 5)


def test_trainable_depth():
    acc = np.array(
        [
            [[0.9, 0.8], [0.6, 0.5], [0.1, 0.2]],
            [[0.1, 0.1], [0.2, 0.1], [0.1, 0.1]],
        ]
    )
    out = bx.trainable_depth(acc, [4, 8, 16])
    assert out[0] == 8 and np.isnan(out[1])
    with pytest.raises(ValueError, match="accuracy"):
        bx.trainable_depth(acc, [4, 8])
    with pytest.raises(ValueError, match="increase"):
        bx.trainable_depth(acc, [4, 16, 8])


@pytest.mark.slow
def test_forward_convergence_follows_the_eigenvalue():
    # tanh, pair class, B = 8: eigenvalue 0.835; width 512, 8 seeds. The first layer starts at
    # p = 0.46 (a deviation of 0.5 is not infinitesimal), so allow 4 standard errors plus 0.05.
    r = bx.forward_convergence(jax.random.PRNGKey(1), "tanh", 8, "pair", 8, 512, 8)
    assert abs(r["rate"] - r["eigenvalue"]) < 4 * r["rate_se"] + 0.05
    with pytest.raises(ValueError, match="component"):
        bx.forward_convergence(jax.random.PRNGKey(1), "tanh", 8, "other", 8, 16, 2)


@pytest.mark.slow
def test_gradient_rates_and_eps_sweep():
    x = np.random.default_rng(0).normal(size=(8, 32))
    r = bx.gradient_rates(jax.random.PRNGKey(0), x, "linear", 1.0, 24, 192, 4)
    # Linear: the floor 6/5; 4 standard errors plus 3 % for the finite width.
    assert abs(r["mean"] - 1.2) < 4 * r["se"] + 0.036
    s = bx.eps_sweep(jax.random.PRNGKey(1), x, "tanh", [2.0], 24, 192, 4)
    m = s["measured"][:, 0]
    assert abs(m.mean() - s["theory"][0]) < 4 * m.std(ddof=1) / 2 + 0.03 * s["theory"][0]
    with pytest.raises(ValueError, match="depth"):
        bx.gradient_rates(jax.random.PRNGKey(0), x, "relu", 1.0, 8, 16, 2)


@pytest.mark.slow
def test_trainability_map_shapes():
    m = bx.trainability_map(
        jax.random.PRNGKey(0),
        datasets.digits(),
        "relu",
        [2],
        [8],
        8,
        10,
        0.01,
        2,
    )
    assert m["accuracy"].shape == (1, 1, 2)
    assert m["rates"][0] == pytest.approx(bn.bn_gradient_rate("relu", 8))
    with pytest.raises(ValueError, match="at least 4"):
        bx.trainability_map(
            jax.random.PRNGKey(0),
            datasets.digits(),
            "relu",
            [2],
            [3],
            8,
            5,
            0.1,
            1,
        )
