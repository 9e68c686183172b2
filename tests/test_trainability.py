"""Tests for mftlib.trainability: the grid trainer equals mftlib.training.train on the same
networks and minibatches, dropout trains and changes the result, records are monotone in steps,
the trainable-depth fits over training recover a planted boundary, and bad input is refused."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftlib import datasets, training
from mftlib import trainability as tr

KEY = jax.random.PRNGKey(3)
DATA = datasets.digits()
SMALL = dict(n_seeds=2, steps=20, batch_size=16, learning_rate=1e-2, dtype=jnp.float64)


@pytest.mark.slow
def test_grid_equals_training_train_for_the_same_networks():
    """Same key: the same unit draws, the same minibatches, plain SGD: the same accuracies
    (padded hidden layers skipped exactly), for every depth and sigma_w2."""
    grid = tr.train_grid(KEY, DATA, "tanh", [1.0, 2.0], 0.05, 8, [1, 3], eval_every=10, **SMALL)
    ref = training.train_depths(KEY, DATA, "tanh", [1.0, 2.0], 0.05, 8, [1, 3], **SMALL)
    assert grid["train_accuracy"].shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(grid["steps"], [10, 20])
    # Accuracies are means of 0/1 in float32 inside the grid trainer: agree to its rounding.
    np.testing.assert_allclose(grid["train_accuracy"][..., -1], ref["train_accuracy"], atol=1e-6)
    np.testing.assert_allclose(grid["test_accuracy"], ref["test_accuracy"], atol=1e-6)


@pytest.mark.slow
def test_training_learns_and_dropout_differs():
    kw = dict(n_seeds=2, steps=60, eval_every=20, batch_size=32, learning_rate=0.05)
    plain = tr.train_grid(KEY, DATA, "tanh", [1.5], 0.05, 32, [2], **kw)
    drop = tr.train_grid(KEY, DATA, "tanh", [1.5], 0.05, 32, [2], rho=0.8, **kw)
    acc = plain["train_accuracy"][0, 0]
    assert np.all(acc[:, -1] > 0.6)  # a shallow tanh net learns the digits in 60 steps
    assert np.all(plain["loss"][0, 0, :, -1] < plain["loss"][0, 0, :, 0])
    assert np.all(drop["train_accuracy"][0, 0, :, -1] > 0.3)
    assert not np.allclose(drop["train_accuracy"], plain["train_accuracy"])


def test_multiples_over_training_recovers_a_planted_boundary():
    depths = np.array([2, 4, 8, 16, 32])
    xi = np.array([1.0, 2.0, 4.0, 8.0])
    # Trainable iff L < k(t) xi, with k growing over three records.
    ks = [1.5, 3.0, 6.0]
    acc = np.stack([np.where(depths[:, None] < k * xi[None, :], 0.9, 0.1) for k in ks], axis=-1)
    result = {
        "depths": depths,
        "sigma_w2": np.arange(4.0),
        "steps": np.array([100, 200, 300]),
        "train_accuracy": np.repeat(acc[:, :, None, :], 2, axis=2),
    }
    out = tr.multiples_over_training(result, xi, 0.5, k_grid=np.arange(0.5, 10, 0.05))
    assert np.all(out["errors"] == 0)
    for k, low, high in zip(ks, out["low"], out["high"], strict=True):
        assert low <= k <= high + 1e-9
    assert np.all(np.diff(out["k"]) > 0)
    assert out["cells"] == 20
    np.testing.assert_array_equal(out["trained"], [(depths[:, None] < k * xi).sum() for k in ks])


def test_threshold_is_halfway_between_chance_and_best():
    assert tr.threshold(np.array([[0.2, 0.9], [0.5, 0.1]]), 10) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="accuracy"):
        tr.threshold(np.array([np.nan]), 10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(sigma_w2=-1.0), ValueError, "sigma_w2"),
        (dict(width=0), ValueError, "width"),
        (dict(depths=4), TypeError, "depths"),
        (dict(depths=[0, 2]), ValueError, "depths"),
        (dict(steps=10, eval_every=3), ValueError, "eval_every"),
        (dict(rho=0.0), ValueError, "rho"),
        (dict(rho=1.5), ValueError, "rho"),
        (dict(optimizer="lbfgs"), ValueError, "optimizer"),
        (dict(optimizer="adam", steps=10, eval_every=5), ValueError, "stateful"),
        (dict(dtype=jnp.int32), ValueError, "dtype"),
        (dict(data=object()), TypeError, "data"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = dict(
        key=KEY, data=DATA, phi="tanh", sigma_w2=1.5, sigma_b2=0.05, width=4, depths=[2], steps=10
    )
    args.update(kwargs)
    with pytest.raises(error, match=match):
        tr.train_grid(**args)


def test_multiples_rejects_mismatched_scales():
    result = {
        "depths": np.array([2, 4]),
        "sigma_w2": np.array([1.0, 2.0]),
        "steps": np.array([10]),
        "train_accuracy": np.zeros((2, 2, 1, 1)),
    }
    with pytest.raises(ValueError, match="xi"):
        tr.multiples_over_training(result, np.ones(3), 0.5)
    with pytest.raises(ValueError, match="train_grid"):
        tr.multiples_over_training({"depths": 1}, np.ones(2), 0.5)
