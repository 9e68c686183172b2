r"""Small training loops (optax) for fully connected networks, vectorised over initialisations.

The network is the one of :mod:`mftlib.networks` with a readout: ``depth`` hidden layers of
``width`` units and a dense readout to the classes,

.. math::

   h^0 = W^0 x + b^0, \qquad h^l = W^l \phi(h^{l-1}) + b^l \;(l < \text{depth}), \qquad
   \text{logits} = W^{\text{out}} \phi(h^{\text{depth}-1}) + b^{\text{out}},

with :math:`W_{ij} \sim \mathcal{N}(0, \sigma_w^2/\text{fan\_in})` and
:math:`b_i \sim \mathcal{N}(0, \sigma_b^2)`: seed ``s`` is exactly
``networks.init_dense(split(key, n_seeds)[s], d, [width] * depth + [n_classes], depth, sigma_w2,
sigma_b2)``. Because a Gaussian weight is :math:`\sigma_w` times a unit Gaussian, the networks
for all :math:`\sigma_w^2` on a grid share their unit draws; :func:`train` draws them once per
seed and trains all (``sigma_w2``, seed) networks together with nested ``jax.vmap`` in one
compiled ``lax.scan`` over steps, so a grid of hyperparameters costs one program per depth.
Every network sees the same sequence of minibatches (sampled with replacement from ``key``).

This is the trainability experiment of Schoenholz et al. (2017): train random networks from their
initialisation and ask which (:math:`\sigma_w^2`, depth) are trainable; the trainable region is
fitted by :func:`mftlib.fitting.depth_multiple`.

Every training loop of the library is :func:`optimize` (one ``lax.scan`` of optax updates, with
minibatches or full batch, a custom loss, optional gradient clipping, and the loss at every step):
:func:`train` and :func:`train_models` for classifiers of any architecture, and the
architecture-specific trainers :func:`mftlib.networks.recurrent.train_memory`,
``mftlib.networks.graph.train_gnn`` and ``mftlib.networks.ntk.train_gd`` build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mftlib import _validate as V
from mftlib.activations import Activation, activation
from mftlib.networks import init_dense
from mftlib.networks.dense import draw_layer

Array = jax.Array

#: The optimizers :func:`train` and :func:`make_optimizer` accept by name.
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
LOSSES = ("cross_entropy", "mse")


class MLP(NamedTuple):
    """Parameters of one network (leading axes added by vmap); hidden layers 1.. stacked."""

    W0: Array
    b0: Array
    Ws: Array  # (depth - 1, width, width)
    bs: Array  # (depth - 1, width)
    Wout: Array
    bout: Array


def _unit_params(
    key, in_dim: int, width: int, depth: int, n_out: int, max_depth: int, dtype
) -> MLP:
    """The init_dense draw at sigma_w2 = sigma_b2 = 1, hidden layers stacked for lax.scan.

    The stack holds ``max_depth - 1`` hidden layers (the first ``depth - 1`` are used): layer ``l``
    comes from ``fold_in(key, l)`` whatever the depth, and the readout from ``fold_in(key, depth)``,
    so the used layers are exactly those of ``init_dense`` for this depth.
    """
    layers = init_dense(key, in_dim, [width] * max_depth, max_depth - 1, 1.0, 1.0)
    hidden = layers[1:]
    if hidden:
        Ws = jnp.stack([W for W, _ in hidden])
        bs = jnp.stack([b for _, b in hidden])
    else:
        Ws, bs = jnp.zeros((0, width, width)), jnp.zeros((0, width))
    Wout, bout = draw_layer(key, depth, 1.0, 1.0, fan_in=width, fan_out=n_out)
    p = MLP(layers[0][0], layers[0][1], Ws, bs, Wout, bout)
    return jax.tree_util.tree_map(lambda a: a.astype(dtype), p)


def _scale(p: MLP, sw, sb) -> MLP:
    rw, rb = jnp.sqrt(sw), jnp.sqrt(sb)
    return MLP(rw * p.W0, rb * p.b0, rw * p.Ws, rb * p.bs, rw * p.Wout, rb * p.bout)


def _logits(p: MLP, x: Array, fn, n_hidden=None) -> Array:
    """Forward pass of one network: ``(n, d) -> (n, n_classes)``.

    Only the first ``n_hidden`` stacked layers are applied (all by default); the others pass
    ``h`` through (``lax.cond``, which becomes a select when ``n_hidden`` is batched).
    """
    h = x @ p.W0.T + p.b0
    n_hidden = p.Ws.shape[0] if n_hidden is None else n_hidden

    def layer(h, wbl):
        W, b, index = wbl
        return jax.lax.cond(index < n_hidden, lambda h: fn(h) @ W.T + b, lambda h: h, h), None

    h, _ = jax.lax.scan(layer, h, (p.Ws, p.bs, jnp.arange(p.Ws.shape[0])))
    return fn(h) @ p.Wout.T + p.bout


def _check_options(steps, batch_size, n_record, learning_rate, loss, dtype) -> tuple[int, int, int]:
    steps = V.positive_int("steps", steps)
    batch_size = V.positive_int("batch_size", batch_size)
    n_record = V.positive_int("n_record", n_record)
    if steps % n_record:
        raise ValueError(f"steps ({steps}) must be a multiple of n_record ({n_record})")
    V.real("learning_rate", learning_rate, lo=0.0, lo_open=True)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return steps, batch_size, n_record


def make_optimizer(name, learning_rate: float) -> optax.GradientTransformation:
    """The optax transform named by ``name`` (one of :data:`OPTIMIZERS`), or ``name`` itself if
    it is already one."""
    if isinstance(name, optax.GradientTransformation):
        return name
    if name not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {OPTIMIZERS} or an optax transform, got {name!r}"
        )
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "momentum":
        return optax.sgd(learning_rate, momentum=0.9)
    if name == "rmsprop":
        return optax.rmsprop(learning_rate)
    return optax.adam(learning_rate)


def _make_runner(act: Activation, opt, loss_kind: str, n_record: int):
    fn = act.fn

    def run_one(p, n_hidden, *data):
        apply_fn = lambda p, x: _logits(p, x, fn, n_hidden)  # noqa: E731
        return _fit_one(apply_fn, opt, loss_kind, n_record)(p, *data)

    def run(unit, n_hidden, sw, sb, bx, by, x_tr, y_tr, x_te, y_te):
        def over_seeds(sw_one):
            params = jax.vmap(lambda u: _scale(u, sw_one, sb))(unit)
            return jax.vmap(run_one, in_axes=(0,) + (None,) * 7)(
                params, n_hidden, bx, by, x_tr, y_tr, x_te, y_te
            )

        return jax.vmap(over_seeds)(sw)

    # Vectorised over a list of depths too: layer stacks padded to the largest depth, the unused
    # layers masked. (train_depths calls it one depth at a time: padded layers cost compute.)
    return jax.jit(jax.vmap(run, in_axes=(0, 0) + (None,) * 8))


_RUNNERS: dict = {}


def train(
    key,
    data,
    phi,
    sigma_w2,
    sigma_b2: float,
    width: int,
    depth: int,
    n_seeds: int = 1,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    optimizer="sgd",
    loss: str = "cross_entropy",
    n_record: int = 10,
    dtype=jnp.float64,
) -> dict:
    r"""Train ``n_seeds`` random networks for every :math:`\sigma_w^2` on a grid, all at once.

    Args:
        key: JAX PRNG key; seed ``s`` is ``jax.random.split(key, n_seeds)[s]`` (the same networks
            at every :math:`\sigma_w^2`, scaled), the minibatches come from ``fold_in(key, -1)``.
        data: a :class:`mftlib.datasets.Dataset` (or anything with ``x_train``, ``y_train``,
            ``x_test``, ``y_test``, ``n_classes``).
        phi: activation name or :class:`~mftlib.activations.Activation`.
        sigma_w2: a variance or a 1-D grid of them (> 0); sigma_b2: a variance (>= 0).
        width, depth: hidden width and number of hidden layers (>= 1).
        n_seeds: initialisations per :math:`\sigma_w^2`.
        steps: optimisation steps (a multiple of ``n_record``); batch_size: minibatch size.
        learning_rate: step size of the named optimizer ('sgd', 'momentum' (0.9), 'rmsprop',
            'adam'; or pass any ``optax.GradientTransformation``).
        loss: 'cross_entropy' (softmax) or 'mse' (on one-hot targets).
        n_record: number of blocks over which the training-loss history is averaged.
        dtype: float64 (default) or float32 for the network and the data (faster on CPU).

    Returns:
        dict of numpy arrays with leading shape ``(len(sigma_w2), n_seeds)``:
        ``train_accuracy``, ``test_accuracy`` (after the last step; a network whose outputs are not
        finite counts as wrong), ``initial_loss`` (first minibatch) and ``loss_history``
        ``(..., n_record)``.
    """
    depth = V.positive_int("depth", depth)
    out = _train(
        key,
        data,
        phi,
        sigma_w2,
        sigma_b2,
        width,
        (depth,),
        n_seeds,
        steps,
        batch_size,
        learning_rate,
        optimizer,
        loss,
        n_record,
        dtype,
    )
    return {k: v[0] for k, v in out.items()}


def _train(
    key,
    data,
    phi,
    sigma_w2,
    sigma_b2,
    width,
    depths,
    n_seeds,
    steps,
    batch_size,
    learning_rate,
    optimizer,
    loss,
    n_record,
    dtype,
) -> dict:
    key = V.key(key)
    act = activation(phi)
    sw = np.atleast_1d(np.asarray(V.variance("sigma_w2", sigma_w2, positive=True), np.float64))
    if sw.ndim != 1:
        raise ValueError(f"sigma_w2 must be a number or a 1-D grid, got shape {sw.shape}")
    if np.ndim(sigma_b2) != 0:
        raise ValueError(f"sigma_b2 must be a number, got {sigma_b2!r}")
    V.variance("sigma_b2", sigma_b2)
    width = V.positive_int("width", width)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    steps, batch_size, n_record = _check_options(
        steps, batch_size, n_record, learning_rate, loss, dtype
    )
    opt = make_optimizer(optimizer, float(learning_rate))
    x_tr, y_tr, x_te, y_te, _ = check_data(data)

    top = max(depths)
    seed_keys = jax.random.split(key, n_seeds)

    def stack(trees):
        return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)

    unit = stack(
        [
            stack(
                [
                    _unit_params(k, x_tr.shape[1], width, d, int(data.n_classes), top, dtype)
                    for k in seed_keys
                ]
            )
            for d in depths
        ]
    )
    idx = jax.random.randint(
        jax.random.fold_in(key, 2**31 - 2), (steps, batch_size), 0, x_tr.shape[0]
    )
    x_tr, x_te = jnp.asarray(x_tr, dtype), jnp.asarray(x_te, dtype)
    y_tr, y_te = jnp.asarray(y_tr), jnp.asarray(y_te)
    cache_key = (
        act,
        optimizer if isinstance(optimizer, str) else id(optimizer),
        float(learning_rate),
        loss,
        n_record,
    )
    if cache_key not in _RUNNERS:
        _RUNNERS[cache_key] = _make_runner(act, opt, loss, n_record)
    out = _RUNNERS[cache_key](
        unit,
        jnp.asarray(depths) - 1,
        jnp.asarray(sw, dtype),
        jnp.asarray(sigma_b2, dtype),
        x_tr[idx],
        y_tr[idx],
        x_tr,
        y_tr,
        x_te,
        y_te,
    )
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def train_depths(
    key, data, phi, sigma_w2, sigma_b2, width, depths: Sequence[int], **kwargs
) -> dict:
    """:func:`train` for each depth in ``depths`` (same ``key``); arrays get a leading depth axis.

    Returns:
        dict of numpy arrays of shape ``(len(depths), len(sigma_w2), n_seeds, ...)``.
    """
    if isinstance(depths, (int, np.integer, str)) or len(depths) == 0:
        raise TypeError("depths must be a non-empty sequence of ints")
    depths = tuple(V.positive_int("depths", d) for d in depths)
    options = dict(
        n_seeds=1,
        steps=300,
        batch_size=64,
        learning_rate=1e-3,
        optimizer="sgd",
        loss="cross_entropy",
        n_record=10,
        dtype=jnp.float64,
    )
    unknown = set(kwargs) - set(options)
    if unknown:
        raise TypeError(f"train_depths got unexpected arguments {sorted(unknown)}")
    options.update(kwargs)
    runs = [_train(key, data, phi, sigma_w2, sigma_b2, width, (d,), **options) for d in depths]
    return {k: np.concatenate([r[k] for r in runs]) for k in runs[0]}


def check_data(data) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Validate a data set (``x_train``, ``y_train``, ``x_test``, ``y_test``, ``n_classes``).

    Returns:
        ``(x_train, y_train, x_test, y_test, n_classes)``: float64 inputs, integer labels.

    Raises:
        TypeError: ``data`` lacks one of the five attributes.
        ValueError: naming the field, for a non-matrix input, mismatched features, labels of
            the wrong shape or type or outside ``0..n_classes - 1``, or ``n_classes`` < 1.
    """
    for name in ("x_train", "y_train", "x_test", "y_test", "n_classes"):
        if not hasattr(data, name):
            raise TypeError(
                f"data must have x_train, y_train, x_test, y_test, n_classes; no {name}"
            )
    x_tr = np.asarray(V.matrix("data.x_train", data.x_train), np.float64)
    x_te = np.asarray(V.matrix("data.x_test", data.x_test), np.float64)
    if x_te.shape[1] != x_tr.shape[1]:
        raise ValueError(f"x_test has {x_te.shape[1]} features, x_train {x_tr.shape[1]}")
    n_classes = V.positive_int("data.n_classes", data.n_classes)
    y_tr, y_te = np.asarray(data.y_train), np.asarray(data.y_test)
    for name, y, x in (("y_train", y_tr, x_tr), ("y_test", y_te, x_te)):
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"data.{name} must be integer labels of shape ({x.shape[0]},)")
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"data.{name} must lie in 0..{n_classes - 1}")
    return x_tr, y_tr, x_te, y_te, n_classes


def optimize(
    loss_fn,
    params,
    batches=None,
    *,
    steps: int | None = None,
    optimizer="sgd",
    learning_rate=1e-3,
    clip: float | None = None,
):
    r"""Minimise ``loss_fn`` from ``params`` by an optax optimizer: one ``lax.scan`` over steps.

    This is the one optimisation loop of the library: :func:`train`, :func:`train_depths`,
    :func:`train_models`, :func:`mftlib.networks.recurrent.train_memory`,
    ``mftlib.networks.graph.train_gnn`` and ``mftlib.networks.ntk.train_gd`` all run it.
    Step :math:`t` evaluates the loss and its gradient at the current parameters
    (``jax.value_and_grad``), optionally clips every gradient entry to ``[-clip, clip]``, and
    applies the optimizer's update. It is traceable (only shapes are checked): callers
    ``jax.vmap`` it over a stack of models and ``jax.jit`` the result.

    Args:
        loss_fn: ``loss_fn(params, *batch) -> scalar``, or ``loss_fn(params) -> scalar`` for
            full-batch steps (``batches=None``).
        params: the initial parameters, any pytree.
        batches: a tuple of arrays sharing a leading step axis (step ``t`` passes the ``t``-th
            slice of each to ``loss_fn``), or ``None`` for ``steps`` full-batch steps.
        steps: the number of steps when ``batches`` is ``None`` (>= 0).
        optimizer: 'sgd' (plain gradient descent: :math:`p \leftarrow p - \eta\,g`),
            'momentum' (0.9), 'rmsprop', 'adam', or any ``optax.GradientTransformation``.
        learning_rate: the step size :math:`\eta` of a named optimizer (may be traced).
        clip: clip each gradient entry to ``[-clip, clip]`` before the optimizer (``None``: no
            clipping).

    Returns:
        ``(params, losses)``: the parameters after the last step and the loss before each step,
        shape ``(steps,)``.
    """
    opt = make_optimizer(optimizer, learning_rate)
    if clip is not None:
        opt = optax.chain(optax.clip(clip), opt)
    if batches is None:
        if steps is None:
            raise ValueError("steps must be given for full-batch optimisation (batches=None)")
        steps = V.nonneg_int("steps", steps)
    else:
        if steps is not None:
            raise ValueError("give either batches or steps: the step count is the batches' length")
        batches = tuple(batches)
        lengths = {jnp.shape(b)[0] if jnp.ndim(b) else None for b in batches}
        if len(lengths) != 1 or None in lengths:
            raise ValueError(f"batches need one common leading (step) axis, got lengths {lengths}")
    grad_fn = jax.value_and_grad(loss_fn)

    def step(carry, batch):
        p, state = carry
        value, g = grad_fn(p) if batch is None else grad_fn(p, *batch)
        updates, state = opt.update(g, state, p)
        return (optax.apply_updates(p, updates), state), value

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), batches, length=steps)
    return params, losses


def _fit_one(apply_fn, opt, loss_kind: str, n_record: int):
    """One classifier's training by :func:`optimize` on minibatches (vmapped by the callers)."""

    def loss(p, x, y):
        z = apply_fn(p, x)
        if loss_kind == "cross_entropy":
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, y))
        return jnp.mean(jnp.sum((z - jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype)) ** 2, -1))

    def accuracy(p, x, y):
        z = apply_fn(p, x)
        ok = (jnp.argmax(z, -1) == y) & jnp.all(jnp.isfinite(z), -1)
        return jnp.mean(ok.astype(jnp.float64))

    def run_one(p, batches_x, batches_y, x_tr, y_tr, x_te, y_te):
        p, values = optimize(loss, p, (batches_x, batches_y), optimizer=opt)
        return {
            "train_accuracy": accuracy(p, x_tr, y_tr),
            "test_accuracy": accuracy(p, x_te, y_te),
            "loss_history": values.reshape(n_record, -1).mean(-1),
            "initial_loss": values[0],
        }

    return run_one


def train_models(
    key,
    apply_fn,
    params,
    data,
    *,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    optimizer="sgd",
    loss: str = "cross_entropy",
    n_record: int = 10,
    dtype=jnp.float64,
    x_shape: tuple[int, ...] | None = None,
) -> dict:
    r"""Train a stack of models of any architecture together: one compiled, vmapped ``lax.scan``.

    This is the generic loop behind every trainability experiment in the book: the caller builds
    the initial parameters of ``M`` models (any pytree whose leaves share a leading axis of length
    ``M``, e.g. seeds times a grid of initialisation variances, flattened) and a forward pass
    ``apply_fn(p, x) -> logits`` for *one* model; all ``M`` are trained on the same minibatch
    sequence (drawn with replacement from ``key``) by ``jax.vmap`` over the leading axis.

    Args:
        key: JAX PRNG key for the minibatch indices.
        apply_fn: ``(params_of_one_model, x[batch, ...]) -> logits[batch, n_classes]``.
        params: pytree, every leaf with leading axis ``M`` (the models).
        data: a :class:`mftlib.datasets.Dataset` (``x_train``, ``y_train``, ``x_test``,
            ``y_test``, ``n_classes``); inputs are 2-D ``(n, d)``.
        steps, batch_size, learning_rate, optimizer, loss, n_record, dtype: as in :func:`train`.
        x_shape: reshape each input to ``x_shape`` before ``apply_fn`` (e.g. ``(8, 8, 1)`` for
            images or ``(8, 8)`` for a sequence of rows); ``None`` keeps ``(d,)``.

    Returns:
        dict of numpy float64 arrays with leading axis ``M``: ``train_accuracy``,
        ``test_accuracy`` (a model with non-finite outputs counts as wrong), ``initial_loss``,
        ``loss_history`` ``(M, n_record)``.
    """
    key = V.key(key)
    if not callable(apply_fn):
        raise TypeError(f"apply_fn must be callable, got {type(apply_fn).__name__}")
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("params must be a pytree with at least one array leaf")
    n_models = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if len(n_models) != 1 or None in n_models:
        raise ValueError(
            f"every leaf of params needs the same leading (model) axis; got lengths {n_models}"
        )
    steps, batch_size, n_record = _check_options(
        steps, batch_size, n_record, learning_rate, loss, dtype
    )
    opt = make_optimizer(optimizer, float(learning_rate))
    x_tr, y_tr, x_te, y_te, _ = check_data(data)
    if x_shape is not None:
        x_shape = tuple(int(s) for s in x_shape)
        if int(np.prod(x_shape)) != x_tr.shape[1]:
            raise ValueError(f"x_shape {x_shape} does not hold {x_tr.shape[1]} features")
        x_tr = x_tr.reshape((-1,) + x_shape)
        x_te = x_te.reshape((-1,) + x_shape)
    idx = jax.random.randint(key, (steps, batch_size), 0, x_tr.shape[0])
    x_tr, x_te = jnp.asarray(x_tr, dtype), jnp.asarray(x_te, dtype)
    y_tr, y_te = jnp.asarray(y_tr), jnp.asarray(y_te)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
    run_one = _fit_one(apply_fn, opt, loss, n_record)
    run = jax.jit(jax.vmap(run_one, in_axes=(0,) + (None,) * 6))
    out = run(params, x_tr[idx], y_tr[idx], x_tr, y_tr, x_te, y_te)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
