"""Tests for mftlib.training: vectorised loop equals a plain loop; loss decreases; validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mftlib import datasets, networks, training

KEY = jax.random.PRNGKey(3)
DATA = datasets.digits()
SMALL = dict(n_seeds=2, steps=40, batch_size=16, learning_rate=0.05, n_record=4)


@pytest.mark.slow
def test_loss_decreases_and_accuracy_beats_chance():
    out = training.train(KEY, DATA, "tanh", [1.0, 1.5], 0.05, 32, 2, **SMALL)
    hist = out["loss_history"]
    assert hist.shape == (2, 2, 4)
    assert np.all(hist[..., -1] < hist[..., 0])
    assert np.all(out["train_accuracy"] > 0.5)
    assert np.all(out["test_accuracy"] > 0.4)
    assert out["train_accuracy"].shape == out["test_accuracy"].shape == (2, 2)


def _reference(seed_key, sw, sb, width, depth, steps, batch_size, lr, key):
    """A plain loop: init_dense, optax.sgd, one network, the same minibatches."""
    params = networks.init_dense(seed_key, 64, [width] * depth + [10], depth, sw, sb)
    idx = jax.random.randint(jax.random.fold_in(key, 2**31 - 2), (steps, batch_size), 0, 1437)
    x, y = jnp.asarray(DATA.x_train), jnp.asarray(DATA.y_train)

    def loss(p, xb, yb):
        h = xb
        for i, (W, b) in enumerate(p):
            h = (h if i == 0 else jnp.tanh(h)) @ W.T + b
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(h, yb)), h

    opt = optax.sgd(lr)
    state = opt.init(params)
    grad = jax.grad(lambda p, xb, yb: loss(p, xb, yb)[0])
    for t in range(steps):
        g = grad(params, x[idx[t]], y[idx[t]])
        updates, state = opt.update(g, state)
        params = optax.apply_updates(params, updates)
    logits = loss(params, x, y)[1]
    return float(np.mean(np.asarray(jnp.argmax(logits, -1) == y)))


@pytest.mark.slow
def test_vmap_over_seeds_and_sigma_w2_equals_a_loop():
    sw, width, depth, steps = [0.8, 2.0], 16, 3, 12
    kw = dict(n_seeds=2, steps=steps, batch_size=8, learning_rate=0.05, n_record=1)
    out = training.train(KEY, DATA, "tanh", sw, 0.05, width, depth, **kw)
    seed_keys = jax.random.split(KEY, 2)
    for i, s in enumerate(sw):
        for j in range(2):
            ref = _reference(seed_keys[j], s, 0.05, width, depth, steps, 8, 0.05, KEY)
            assert out["train_accuracy"][i, j] == pytest.approx(ref, abs=1e-6)  # same count
        # One sigma_w2 at a time gives the same as the grid.
        single = training.train(KEY, DATA, "tanh", s, 0.05, width, depth, **kw)
        np.testing.assert_allclose(single["loss_history"][0], out["loss_history"][i], rtol=1e-10)


@pytest.mark.slow
def test_train_depths_stacks_and_float32_runs():
    out = training.train_depths(
        KEY, DATA, "tanh", [1.5], 0.05, 8, [1, 2], dtype=jnp.float32, optimizer="adam", **SMALL
    )
    assert out["train_accuracy"].shape == (2, 1, 2)
    mse = training.train(KEY, DATA, "erf", 1.5, 0.0, 8, 1, loss="mse", optimizer="rmsprop", **SMALL)
    assert np.all(np.isfinite(mse["loss_history"]))


def test_bad_inputs():
    with pytest.raises(ValueError, match="depth"):
        training.train(KEY, DATA, "tanh", 1.0, 0.05, 8, 0)
    with pytest.raises(ValueError, match="sigma_w2"):
        training.train(KEY, DATA, "tanh", [1.0, -1.0], 0.05, 8, 2)
    with pytest.raises(ValueError, match="sigma_w2"):
        training.train(KEY, DATA, "tanh", 0.0, 0.05, 8, 2)
    with pytest.raises(ValueError, match="n_record"):
        training.train(KEY, DATA, "tanh", 1.0, 0.05, 8, 2, steps=10, n_record=3)
    with pytest.raises(ValueError, match="optimizer"):
        training.train(KEY, DATA, "tanh", 1.0, 0.05, 8, 2, optimizer="lbfgs")
    with pytest.raises(ValueError, match="loss"):
        training.train(KEY, DATA, "tanh", 1.0, 0.05, 8, 2, loss="hinge")
    with pytest.raises(ValueError, match="learning_rate"):
        training.train(KEY, DATA, "tanh", 1.0, 0.05, 8, 2, learning_rate=-1.0)
    with pytest.raises(TypeError, match="key"):
        training.train(0, DATA, "tanh", 1.0, 0.05, 8, 2)
    with pytest.raises(TypeError, match="x_train"):
        training.train(KEY, object(), "tanh", 1.0, 0.05, 8, 2)
    bad = DATA._replace(y_train=DATA.y_train + 10)
    with pytest.raises(ValueError, match="y_train"):
        training.train(KEY, bad, "tanh", 1.0, 0.05, 8, 2)
    with pytest.raises(TypeError, match="depths"):
        training.train_depths(KEY, DATA, "tanh", 1.0, 0.05, 8, 3)


# --- the one loop: optimize ---

A = np.array([[2.0, 0.5], [0.1, 1.0], [0.3, -0.4]])
B = np.array([1.0, -1.0, 0.5])


def _quadratic(p):
    return 0.5 * jnp.sum((jnp.asarray(A) @ p - jnp.asarray(B)) ** 2)


def test_optimize_full_batch_sgd_is_gradient_descent_and_vmaps():
    p0 = jnp.array([[0.0, 0.0], [1.0, -2.0]])  # two models
    run = jax.vmap(
        lambda p: training.optimize(_quadratic, p, steps=5, optimizer="sgd", learning_rate=0.1)
    )
    p, losses = run(p0)
    assert losses.shape == (2, 5)
    for m in range(2):
        q, ref = np.asarray(p0[m]), []
        for _ in range(5):  # p <- p - eta A^T (A p - b), the loss recorded before each step
            ref.append(0.5 * np.sum((A @ q - B) ** 2))
            q = q - 0.1 * A.T @ (A @ q - B)
        np.testing.assert_allclose(p[m], q, rtol=1e-13)
        np.testing.assert_allclose(losses[m], ref, rtol=1e-13)


def test_optimize_minibatches_and_clipping():
    # loss(p, x) = p . x has gradient x; clipped to [-1, 1] and scaled by -eta by plain SGD.
    xs = jnp.array([[3.0, -0.5], [-2.0, 0.25]])
    p, losses = training.optimize(
        lambda p, x: jnp.sum(p * x), jnp.ones(2), (xs,), learning_rate=0.5, clip=1.0
    )
    np.testing.assert_allclose(p, [1.0, 1.125], rtol=1e-15)
    np.testing.assert_allclose(losses, [2.5, -0.6875], rtol=1e-15)


def test_optimize_rejects_bad_step_specifications():
    xs = jnp.ones((3, 2))
    with pytest.raises(ValueError, match="steps"):
        training.optimize(_quadratic, jnp.zeros(2))
    with pytest.raises(ValueError, match="steps"):
        training.optimize(lambda p, x: jnp.sum(p * x), jnp.zeros(2), (xs,), steps=3)
    with pytest.raises(ValueError, match="leading"):
        training.optimize(lambda p, x, y: jnp.sum(p * x), jnp.zeros(2), (xs, xs[:2]))
    with pytest.raises(ValueError, match="optimizer"):
        training.optimize(_quadratic, jnp.zeros(2), steps=1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="steps"):
        training.optimize(_quadratic, jnp.zeros(2), steps=-1)


# --- the generic loop: train_models ---


def _linear_models(key, n_models, d, n_classes):
    W = 0.01 * jax.random.normal(key, (n_models, n_classes, d))
    return {"W": W, "b": jnp.zeros((n_models, n_classes))}


def _linear_apply(p, x):
    return x @ p["W"].T + p["b"]


@pytest.mark.slow
def test_train_models_learns_a_separable_task():
    data = datasets.digits()
    params = _linear_models(jax.random.PRNGKey(0), 3, data.x_train.shape[1], data.n_classes)
    out = training.train_models(
        jax.random.PRNGKey(1),
        _linear_apply,
        params,
        data,
        steps=200,
        batch_size=64,
        learning_rate=0.05,
        optimizer="sgd",
    )
    assert out["test_accuracy"].shape == (3,)
    assert out["loss_history"].shape == (3, 10)
    # A linear softmax classifier reaches > 90 % on digits; chance is 10 %.
    assert np.all(out["test_accuracy"] > 0.9)
    assert np.all(out["loss_history"][:, -1] < out["initial_loss"])


@pytest.mark.slow
def test_train_models_matches_train_for_the_same_network():
    # The MLP trainer and the generic one must agree on one network with the same minibatches.
    data = datasets.digits()
    key = jax.random.PRNGKey(3)
    ref = training.train(key, data, "tanh", 1.5, 0.05, width=16, depth=2, steps=50, n_record=5)
    unit = training._unit_params(
        jax.random.split(key, 1)[0], data.x_train.shape[1], 16, 2, data.n_classes, 2, jnp.float64
    )
    p = training._scale(unit, 1.5, 0.05)
    params = jax.tree_util.tree_map(lambda a: a[None], p)
    out = training.train_models(
        jax.random.fold_in(key, 2**31 - 2),
        lambda p, x: training._logits(p, x, jnp.tanh),
        params,
        data,
        steps=50,
        n_record=5,
    )
    np.testing.assert_allclose(out["loss_history"][0], ref["loss_history"][0, 0], rtol=1e-10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps"),
        (dict(steps=15, n_record=10), "multiple"),
        (dict(loss="hinge"), "loss"),
        (dict(x_shape=(7, 7)), "x_shape"),
        (dict(learning_rate=-1.0), "learning_rate"),
    ],
)
def test_train_models_rejects_bad_options(kwargs, match):
    data = datasets.digits()
    params = _linear_models(jax.random.PRNGKey(0), 2, data.x_train.shape[1], data.n_classes)
    with pytest.raises((ValueError, TypeError), match=match):
        training.train_models(jax.random.PRNGKey(1), _linear_apply, params, data, **kwargs)


def test_train_models_rejects_ragged_model_axis():
    data = datasets.digits()
    params = {"W": jnp.zeros((2, 10, 64)), "b": jnp.zeros((3, 10))}
    with pytest.raises(ValueError, match="leading"):
        training.train_models(jax.random.PRNGKey(1), _linear_apply, params, data)
