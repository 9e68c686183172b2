r"""Which random networks train: the trainability experiments of Schoenholz et al. (2017).

Schoenholz et al. trained fully connected tanh networks from random initialisations over a grid of
weight variances :math:`\sigma_w^2` and depths :math:`L` and found the trainable region bounded
by :math:`L \approx 6\,\xi_c(\sigma_w^2)`; the region grows with the number of training steps,
and with dropout, whose :math:`\xi_c` is finite everywhere, it is capped in depth.

:func:`train_grid` runs that experiment on a small data set: networks of every
(:math:`\sigma_w^2`, seed) trained together (``jax.vmap``), one depth after another, with the
training accuracy recorded every ``eval_every`` steps (so one run gives the trainable region at
several training times), optionally with dropout during training. :func:`multiples_over_training`
fits :math:`k` in "trainable iff :math:`L < k\,\xi`" at each recorded step
(:func:`mftlib.fitting.depth_multiple`).

The networks are those of :func:`mftlib.training.train` (seed ``s`` is
``mftlib.networks.init_dense(split(key, n_seeds)[s], d, [width] * depth + [n_classes], depth,
sigma_w2, sigma_b2)``: ``depth`` hidden layers and a dense readout), drawn once per seed at unit
variance and scaled to every :math:`\sigma_w^2`. Dropout of keep probability :math:`\rho`
multiplies every post-activation (the readout's input included) by an independent mask
:math:`p/\rho`, :math:`p \sim \mathrm{Bernoulli}(\rho)`, during training, as in
:mod:`mftlib.networks.dropout`; accuracies are measured without dropout (the usual "inverted
dropout" inference).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mftlib import _validate as V
from mftlib import fitting, training
from mftlib.activations import activation
from mftlib.networks.dense import draw_layer

Array = jax.Array

OPTIMIZERS = ("sgd", "momentum", "adam")


def _optimizer(name, learning_rate: float) -> optax.GradientTransformation:
    # The grid accepts a subset of training.OPTIMIZERS (no rmsprop).
    if not isinstance(name, optax.GradientTransformation) and name not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {OPTIMIZERS} or an optax transform, got {name!r}"
        )
    return training.make_optimizer(name, learning_rate)


def _draw(seed_keys, layer: int, fan_in: int, fan_out: int):
    """Layer ``layer`` of every seed's network at unit variances (the draw of ``init_dense``)."""
    return jax.vmap(lambda k: draw_layer(k, layer, 1.0, 1.0, fan_in=fan_in, fan_out=fan_out))(
        seed_keys
    )


def _unit_draws(seed_keys, in_dim: int, width: int, top: int, dtype) -> dict:
    """Input layer and hidden layers 1..top-1 of every seed at unit variances (stacked)."""
    W0, b0 = _draw(seed_keys, 0, in_dim, width)
    Ws, bs = [], []
    for layer in range(1, top):
        W, b = _draw(seed_keys, layer, width, width)
        Ws.append(W)
        bs.append(b)
    if Ws:
        Ws, bs = jnp.stack(Ws, axis=1), jnp.stack(bs, axis=1)
    else:
        Ws = jnp.zeros((len(seed_keys), 0, width, width))
        bs = jnp.zeros((len(seed_keys), 0, width))
    return {k: v.astype(dtype) for k, v in dict(W0=W0, b0=b0, Ws=Ws, bs=bs).items()}


def _make_program(act, opt, rho: float):
    """The jitted training segment and evaluation, for every model at once (vmapped)."""
    fn = act.fn
    dropout = rho < 1.0

    def forward(p, x, n_hidden, mask_key):
        h = x @ p["W0"].T + p["b0"]
        n_stack = p["Ws"].shape[0]

        def masked(y, index):
            if mask_key is None:
                return y
            keep = jax.random.bernoulli(jax.random.fold_in(mask_key, index), rho, y.shape)
            return jnp.where(keep, y / rho, 0.0)

        def layer(h, wbi):
            W, b, index = wbi

            def apply(h):
                return masked(fn(h), index) @ W.T + b

            # n_hidden is not batched: a real conditional, the unused (padded) layers cost nothing.
            return jax.lax.cond(index < n_hidden, apply, lambda h: h, h), None

        h, _ = jax.lax.scan(layer, h, (p["Ws"], p["bs"], jnp.arange(n_stack)))
        return masked(fn(h), n_stack) @ p["Wout"].T + p["bout"]

    def loss_one(p, x, y, n_hidden, mask_key):
        z = forward(p, x, n_hidden, mask_key if dropout else None)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, y))

    @jax.jit
    def advance(params, xb, yb, keys, n_hidden):
        """``len(xb)`` steps of every model by :func:`mftlib.training.optimize` (``keys``:
        ``(steps, n_models)`` dropout keys); returns the parameters and each model's mean loss."""

        def one(p, model_keys):
            def loss(p, x, y, k):
                return loss_one(p, x, y, n_hidden, k)

            return training.optimize(loss, p, (xb, yb, model_keys), optimizer=opt)

        params, losses = jax.vmap(one, in_axes=(0, 1))(params, keys)
        return params, losses.mean(axis=-1)

    @jax.jit
    def accuracy(params, x, y, n_hidden):
        def one(p):
            z = forward(p, x, n_hidden, None)
            ok = (jnp.argmax(z, -1) == y) & jnp.all(jnp.isfinite(z), -1)
            return jnp.mean(ok.astype(jnp.float32))

        return jax.vmap(one)(params)

    return advance, accuracy


def train_grid(
    key,
    data,
    phi,
    sigma_w2,
    sigma_b2: float,
    width: int,
    depths: Sequence[int],
    *,
    n_seeds: int = 2,
    steps: int = 300,
    eval_every: int | None = None,
    batch_size: int = 32,
    learning_rate: float = 1e-2,
    optimizer="sgd",
    rho: float = 1.0,
    n_eval: int | None = None,
    dtype=jnp.float32,
) -> dict:
    r"""Train random networks over a grid of :math:`\sigma_w^2` and depths, recording the
    training accuracy as training goes on.

    For every depth (one after another) the ``len(sigma_w2) * n_seeds`` networks are trained
    together, by ``jax.vmap`` over :func:`mftlib.training.optimize`, on the same sequence of
    minibatches (drawn with replacement from
    ``fold_in(key, 2**31 - 2)``, the same for every depth) with the softmax cross-entropy. After
    every ``eval_every`` steps the accuracy on the first ``n_eval`` training examples is measured
    (without dropout; a network with non-finite outputs counts as wrong). The program is compiled
    once for all depths: the hidden layers are stacked to the largest depth and the unused ones
    skipped by a conditional.

    Args:
        key: JAX PRNG key; seed ``s`` is ``jax.random.split(key, n_seeds)[s]`` (the same unit
            draws at every :math:`\sigma_w^2`); the dropout masks come from
            ``fold_in(key, 2**31 - 3)``.
        data: a :class:`mftlib.datasets.Dataset` (``x_train``, ``y_train``, ``x_test``,
            ``y_test``, ``n_classes``).
        phi: activation name or :class:`~mftlib.activations.Activation`.
        sigma_w2: a variance or a 1-D grid of them (> 0); sigma_b2: a variance (>= 0).
        width: hidden width; depths: the numbers of hidden layers (each >= 1).
        n_seeds: initialisations per :math:`\sigma_w^2`.
        steps: training steps, a multiple of ``eval_every`` (default ``steps``: one record).
        batch_size, learning_rate: the minibatch size and step size.
        optimizer: 'sgd' (plain), 'momentum' (0.9), 'adam', or an ``optax.GradientTransformation``;
            a stateful one only with a single record (``eval_every = steps``): training between
            records is one call of :func:`mftlib.training.optimize`, which starts its state
            afresh.
        rho: dropout keep probability during training, in (0, 1] (1: no dropout).
        n_eval: training examples on which accuracy is recorded (default: all).
        dtype: float32 (default, fast on CPU) or float64.

    Returns:
        dict of numpy arrays: ``depths`` ``(n_depths,)``, ``sigma_w2`` ``(n_sw,)``, ``steps``
        ``(n_records,)`` (the step counts at which accuracy was recorded), ``train_accuracy``
        ``(n_depths, n_sw, n_seeds, n_records)``, ``loss`` (the same shape: the mean minibatch
        loss over the steps before each record) and ``test_accuracy``
        ``(n_depths, n_sw, n_seeds)`` after the last step.

    Raises:
        ValueError: naming the parameter, for bad variances, sizes, step counts, data,
            optimizer, keep probability or dtype.
        TypeError: naming the parameter, for arguments of the wrong type.
    """
    key = V.key(key)
    act = activation(phi)
    sw = np.atleast_1d(np.asarray(V.variance("sigma_w2", sigma_w2, positive=True), np.float64))
    if sw.ndim != 1:
        raise ValueError(f"sigma_w2 must be a number or a 1-D grid, got shape {sw.shape}")
    if np.ndim(sigma_b2) != 0:
        raise ValueError(f"sigma_b2 must be a number, got {sigma_b2!r}")
    V.variance("sigma_b2", sigma_b2)
    width = V.positive_int("width", width)
    if isinstance(depths, (int, np.integer, str)) or len(depths) == 0:
        raise TypeError("depths must be a non-empty sequence of ints")
    depths = tuple(V.positive_int("depths", d) for d in depths)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    steps = V.positive_int("steps", steps)
    eval_every = steps if eval_every is None else V.positive_int("eval_every", eval_every)
    if steps % eval_every:
        raise ValueError(f"steps ({steps}) must be a multiple of eval_every ({eval_every})")
    batch_size = V.positive_int("batch_size", batch_size)
    V.real("learning_rate", learning_rate, lo=0.0, lo_open=True)
    rho = float(V.real("rho", rho, lo=0.0, hi=1.0, lo_open=True))
    if jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    opt = _optimizer(optimizer, float(learning_rate))
    if steps // eval_every > 1 and jax.tree_util.tree_leaves(opt.init({"w": jnp.zeros(1)})):
        raise ValueError(
            "a stateful optimizer (momentum, Adam, ...) would restart its state at every "
            "record: use eval_every = steps, or plain 'sgd'"
        )
    x_tr, y_tr, x_te, y_te, n_classes = training.check_data(data)
    n_eval = x_tr.shape[0] if n_eval is None else V.positive_int("n_eval", n_eval)
    n_eval = min(n_eval, x_tr.shape[0])

    advance, accuracy = _make_program(act, opt, rho)
    top = max(depths)
    seed_keys = jax.random.split(key, n_seeds)
    unit = _unit_draws(seed_keys, x_tr.shape[1], width, top, dtype)
    rw = jnp.sqrt(jnp.asarray(sw, dtype))[:, None]  # (n_sw, 1): models are (sigma_w2, seed)
    rb = jnp.sqrt(jnp.asarray(sigma_b2, dtype))

    def models(tree, scale):
        out = scale.reshape(scale.shape + (1,) * (tree.ndim - 1)) * tree[None]
        return out.reshape((-1,) + tree.shape[1:])

    idx = jax.random.randint(
        jax.random.fold_in(key, 2**31 - 2), (steps, batch_size), 0, x_tr.shape[0]
    )
    xb = jnp.asarray(x_tr, dtype)[idx]
    yb = jnp.asarray(y_tr)[idx]
    n_models = sw.size * n_seeds
    step_keys = jax.random.split(jax.random.fold_in(key, 2**31 - 3), steps)
    model_keys = jax.vmap(lambda k: jax.random.split(k, n_models))(step_keys)
    x_ev, y_ev = jnp.asarray(x_tr[:n_eval], dtype), jnp.asarray(y_tr[:n_eval])
    x_te, y_te = jnp.asarray(x_te, dtype), jnp.asarray(y_te)

    n_rec = steps // eval_every
    train_acc = np.zeros((len(depths), sw.size * n_seeds, n_rec))
    loss = np.zeros_like(train_acc)
    test_acc = np.zeros((len(depths), sw.size * n_seeds))
    for i, depth in enumerate(depths):
        Wout, bout = _draw(seed_keys, depth, width, n_classes)
        params = {
            "W0": models(unit["W0"], rw),
            "b0": models(unit["b0"], jnp.broadcast_to(rb, rw.shape)),
            "Ws": models(unit["Ws"], rw),
            "bs": models(unit["bs"], jnp.broadcast_to(rb, rw.shape)),
            "Wout": models(Wout.astype(dtype), rw),
            "bout": models(bout.astype(dtype), jnp.broadcast_to(rb, rw.shape)),
        }
        n_hidden = jnp.asarray(depth - 1)
        for r in range(n_rec):
            seg = slice(r * eval_every, (r + 1) * eval_every)
            params, seg_loss = advance(params, xb[seg], yb[seg], model_keys[seg], n_hidden)
            train_acc[i, :, r] = np.asarray(accuracy(params, x_ev, y_ev, n_hidden))
            loss[i, :, r] = np.asarray(seg_loss)
        test_acc[i] = np.asarray(accuracy(params, x_te, y_te, n_hidden))
    shape = (len(depths), sw.size, n_seeds)
    return {
        "depths": np.asarray(depths),
        "sigma_w2": sw,
        "steps": eval_every * np.arange(1, n_rec + 1),
        "train_accuracy": train_acc.reshape(shape + (n_rec,)),
        "loss": loss.reshape(shape + (n_rec,)),
        "test_accuracy": test_acc.reshape(shape),
    }


def threshold(accuracy, n_classes: int) -> float:
    r"""The accuracy above which a network counts as trained: halfway between chance,
    :math:`1/n_\text{classes}`, and the best accuracy in ``accuracy`` (any shape)."""
    n_classes = V.positive_int("n_classes", n_classes)
    acc = np.asarray(accuracy, np.float64)
    if acc.size == 0 or not np.all(np.isfinite(acc)):
        raise ValueError("accuracy must be a non-empty array of finite numbers")
    return float(0.5 * (1.0 / n_classes + acc.max()))


def multiples_over_training(result: dict, xi, threshold: float, k_grid=None) -> dict:
    r"""Fit "trainable iff :math:`L < k\,\xi`" at every recorded step of :func:`train_grid`.

    The training accuracy of ``result`` is averaged over seeds and, at each record, passed to
    :func:`mftlib.fitting.depth_multiple` with the depths of ``result``, the depth scale ``xi``
    at each :math:`\sigma_w^2` of ``result`` (e.g. :math:`\xi_c`), and ``threshold``.

    Returns:
        dict of arrays over the records: ``steps``, ``k`` (the fitted multiple), ``low`` and
        ``high`` (the range of equally good :math:`k`), ``errors`` (the number of cells on the
        wrong side of :math:`L = k\,\xi`), ``trained`` (the number of cells above
        ``threshold``); and ``cells``, the number of cells of the grid.
    """
    for name in ("depths", "sigma_w2", "steps", "train_accuracy"):
        if name not in result:
            raise ValueError(f"result must come from train_grid; no {name!r}")
    acc = np.asarray(result["train_accuracy"], np.float64).mean(axis=2)
    xi = np.asarray(xi, np.float64)
    if xi.shape != (acc.shape[1],):
        raise ValueError(f"xi must have one value per sigma_w2 ({acc.shape[1]}), got {xi.shape}")
    out = {name: [] for name in ("k", "low", "high", "errors", "trained")}
    for r in range(acc.shape[-1]):
        fit = fitting.depth_multiple(acc[..., r], result["depths"], xi, threshold, k_grid)
        out["k"].append(fit.value)
        out["low"].append(fit.low)
        out["high"].append(fit.high)
        out["errors"].append(int(fit.errors.min()))
        out["trained"].append(int(np.sum(acc[..., r] > threshold)))
    out = {name: np.asarray(v) for name, v in out.items()}
    out["steps"] = np.asarray(result["steps"])
    out["cells"] = int(acc[..., 0].size)
    return out
