r"""Finite fully connected networks in the NTK parameterisation: empirical NTK and GD training.

The network of :mod:`mftlib.ntk`: unit-Gaussian parameters :math:`\omega^l, \beta^l`, layer
:math:`l` computing :math:`h^l = \sigma_w \omega^l \phi(h^{l-1})/\sqrt{N_{l-1}} + \sigma_b
\beta^l` (:math:`\phi` omitted for :math:`l = 0`), ``depth`` hidden layers of ``width`` units and
a readout of ``n_out`` units. Its outputs have the same distribution as those of
:func:`mftlib.networks.init_dense` networks; what differs is the gradient, which here has the
:math:`O(1)` per-parameter scale that makes the tangent kernel converge as the width grows.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib.activations import Activation, activation

Array = jax.Array
Params = list[tuple[Array, Array]]


def init_ntk(key, in_dim: int, width: int, depth: int, n_out: int = 1) -> Params:
    """Unit-Gaussian parameters ``[(omega, beta), ...]``: ``depth + 1`` layers, readout last.

    Layer ``l`` uses ``jax.random.fold_in(key, l)``; weights are ``(fan_out, fan_in)``.
    """
    key = V.key(key)
    in_dim = V.positive_int("in_dim", in_dim)
    width = V.positive_int("width", width)
    depth = V.nonneg_int("depth", depth)
    n_out = V.positive_int("n_out", n_out)
    return _draw(key, (in_dim,) + (width,) * depth + (n_out,))


def _draw(key, sizes: tuple[int, ...]) -> Params:
    params = []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        kw, kb = jax.random.split(jax.random.fold_in(key, layer))
        params.append((jax.random.normal(kw, (fan_out, fan_in)), jax.random.normal(kb, (fan_out,))))
    return params


def sample_outputs(key, x, phi, sigma_w2, sigma_b2, depth: int, width: int, n_networks: int):
    r"""Scalar outputs of ``n_networks`` independent random networks at the inputs ``x``.

    Network ``s`` is ``init_ntk(jax.random.split(key, n_networks)[s], d, width, depth)``; the
    result ``(n_networks, n_inputs)`` is a sample of the finite-width prior over functions, which
    tends to :math:`\mathcal{N}(0, K)` with :math:`K` = :func:`mftlib.nngp_kernel`.
    """
    act = _check(phi, sigma_w2, sigma_b2, x)
    depth = V.nonneg_int("depth", depth)
    width = V.positive_int("width", width)
    keys = jax.random.split(V.key(key), V.positive_int("n_networks", n_networks))
    sizes = (np.shape(x)[1],) + (width,) * depth + (1,)
    return np.asarray(
        _sample(keys, jnp.asarray(x, jnp.float64), act, float(sigma_w2), float(sigma_b2), sizes)
    )


@partial(jax.jit, static_argnums=(2, 5))
def _sample(keys, x, act, sw2, sb2, sizes):
    return jax.lax.map(lambda k: apply_ntk(_draw(k, sizes), x, act.fn, sw2, sb2)[:, 0], keys)


def apply_ntk(params: Params, x: Array, fn, sigma_w2: float, sigma_b2: float) -> Array:
    r"""Outputs ``(n, n_out)`` for inputs ``x`` ``(n, d)`` (no validation: jit-able)."""
    sw, sb = jnp.sqrt(sigma_w2), jnp.sqrt(sigma_b2)
    h = x
    for i, (w, b) in enumerate(params):
        z = h if i == 0 else fn(h)
        h = sw * z @ w.T / jnp.sqrt(w.shape[1]) + sb * b
    return h


def _check(phi, sigma_w2, sigma_b2, x) -> Activation:
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("sigma_b2", sigma_b2)
    V.matrix("x", x)
    return act


def empirical_ntk(params: Params, x1, x2, phi, sigma_w2, sigma_b2) -> Array:
    r"""The tangent kernel :math:`\sum_p \partial_p f(x_1)\,\partial_p f(x_2)` of one network.

    For a scalar readout (``n_out = 1``) this is the ``(n1, n2)`` matrix that converges to
    :func:`mftlib.ntk_kernel` as the width grows (for ``n_out > 1``, the kernel of output 0).
    Computed from the Jacobians with respect to all parameters (``jax.jacrev``).
    """
    act = _check(phi, sigma_w2, sigma_b2, x1)
    x2 = x1 if x2 is None else x2
    V.matrix("x2", x2)
    return _empirical_ntk(params, jnp.asarray(x1), jnp.asarray(x2), act, sigma_w2, sigma_b2)


@partial(jax.jit, static_argnums=3)
def _empirical_ntk(params, x1, x2, act, sw2, sb2):
    def f(p, x):
        return apply_ntk(p, x, act.fn, sw2, sb2)[:, 0]

    j1 = jax.tree_util.tree_leaves(jax.jacrev(f)(params, x1))
    j2 = jax.tree_util.tree_leaves(jax.jacrev(f)(params, x2))
    return sum(
        a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T for a, b in zip(j1, j2, strict=True)
    )


def train_gd(
    key,
    x_train,
    y_train,
    x_test,
    phi,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    width: int,
    learning_rate: float,
    steps: int,
    n_seeds: int = 1,
) -> dict:
    r"""Full-batch gradient descent on :math:`\tfrac12\sum_i \lVert f(x_i) - y_i\rVert^2`.

    Trains ``n_seeds`` networks (keys ``jax.random.split(key, n_seeds)``) for ``steps`` steps of
    size ``learning_rate`` (plain gradient descent by :func:`mftlib.training.optimize`, vmapped
    over the seeds): the discrete version of :math:`\dot f = -\eta\,\Theta\,(f - y)`, whose
    infinite-width solution is :func:`mftlib.gp.ntk_mean`.

    Returns:
        dict of numpy arrays: ``test_outputs`` ``(n_seeds, n_test, n_out)``,
        ``initial_test_outputs`` and ``initial_train_outputs`` (before training), and
        ``train_loss`` ``(n_seeds,)`` at the end.
    """
    act = _check(phi, sigma_w2, sigma_b2, x_train)
    V.matrix("x_test", x_test)
    y_train = np.asarray(V.matrix("y_train", y_train), np.float64)
    if y_train.shape[0] != np.shape(x_train)[0]:
        raise ValueError(f"y_train has {y_train.shape[0]} rows, x_train {np.shape(x_train)[0]}")
    V.real("learning_rate", learning_rate, lo=0.0, lo_open=True)
    steps = V.nonneg_int("steps", steps)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    keys = jax.random.split(V.key(key), n_seeds)
    d, n_out = np.shape(x_train)[1], y_train.shape[1]
    params = [init_ntk(k, d, width, depth, n_out) for k in keys]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params)
    out = _train_gd(
        stacked,
        jnp.asarray(x_train, jnp.float64),
        jnp.asarray(y_train),
        jnp.asarray(x_test, jnp.float64),
        act,
        float(sigma_w2),
        float(sigma_b2),
        float(learning_rate),
        steps,
    )
    return {k: np.asarray(v) for k, v in out.items()}


@partial(jax.jit, static_argnums=(4, 8))
def _train_gd(params, x, y, x_test, act, sw2, sb2, lr, steps):
    from mftlib.training import optimize  # local import: mftlib.training imports networks

    def loss(p):
        return 0.5 * jnp.sum((apply_ntk(p, x, act.fn, sw2, sb2) - y) ** 2)

    def one(p):
        f0 = apply_ntk(p, x_test, act.fn, sw2, sb2)
        f0_train = apply_ntk(p, x, act.fn, sw2, sb2)
        p, _ = optimize(loss, p, steps=steps, optimizer="sgd", learning_rate=lr)
        return {
            "test_outputs": apply_ntk(p, x_test, act.fn, sw2, sb2),
            "initial_test_outputs": f0,
            "initial_train_outputs": f0_train,
            "train_loss": loss(p),
        }

    return jax.vmap(one)(params)


def _forward_layers(params: Params, x: Array, fn, sw2, sb2):
    """Inputs ``z^l`` of every layer (``z^0 = x``, ``z^l = phi(h^{l-1})``) and the
    pre-activations ``h^l``, as lists."""
    sw, sb = jnp.sqrt(sw2), jnp.sqrt(sb2)
    zs, hs = [], []
    h = x
    for i, (w, b) in enumerate(params):
        z = h if i == 0 else fn(h)
        h = sw * z @ w.T / jnp.sqrt(w.shape[1]) + sb * b
        zs.append(z)
        hs.append(h)
    return zs, hs


def ntk_by_layer(params: Params, x1, x2, phi, sigma_w2, sigma_b2, output: int = 0) -> Array:
    r"""Each layer's contribution to the empirical tangent kernel of one output unit.

    For the output unit ``output`` of a network of :func:`init_ntk`, layer :math:`l`'s weights and
    biases contribute

    .. math::

       \Theta_l(x, x') = \Bigl(\sigma_w^2\,\frac{z^l(x)\cdot z^l(x')}{N_{l-1}} + \sigma_b^2\Bigr)
       \,\delta^l(x)\cdot\delta^l(x'),

    with :math:`z^l` the layer's input (:math:`z^0 = x`, :math:`z^l = \phi(h^{l-1})`) and
    :math:`\delta^l = \partial f/\partial h^l` by backpropagation
    (:math:`\delta^{l-1} = \sigma_w N_{l-1}^{-1/2}\,(\omega^{l\top}\delta^l)\odot\phi'(h^{l-1})`).
    The sum over layers is exactly :func:`empirical_ntk` (all parameters' Jacobians), at a cost
    of one forward and one backward pass per input instead of a Jacobian over all parameters.

    Returns:
        ``(n_layers, n1, n2)`` float64; ``.sum(0)`` is the empirical NTK.
    """
    act = _check(phi, sigma_w2, sigma_b2, x1)
    x2 = x1 if x2 is None else x2
    V.matrix("x2", x2)
    n_out = params[-1][0].shape[0]
    output = V.nonneg_int("output", output)
    if output >= n_out:
        raise ValueError(f"output must be < {n_out} (the readout's units), got {output}")
    return _ntk_by_layer(
        params,
        jnp.asarray(x1, jnp.float64),
        jnp.asarray(x2, jnp.float64),
        act,
        float(sigma_w2),
        float(sigma_b2),
        output,
    )


def _layer_terms(params, x, act, sw2, sb2, output):
    """(g^l, delta^l) for every layer: the layer-input Gram factor and the backpropagated
    derivative of output unit ``output``."""
    zs, hs = _forward_layers(params, x, act.fn, sw2, sb2)
    delta = jnp.zeros_like(hs[-1]).at[:, output].set(1.0)
    deltas = [delta]
    for i in range(len(params) - 1, 0, -1):
        w = params[i][0]
        delta = jnp.sqrt(sw2 / w.shape[1]) * (delta @ w) * act.derivative(hs[i - 1])
        deltas.append(delta)
    return zs, deltas[::-1]


@partial(jax.jit, static_argnums=(3, 6))
def _ntk_by_layer(params, x1, x2, act, sw2, sb2, output):
    z1, d1 = _layer_terms(params, x1, act, sw2, sb2, output)
    z2, d2 = _layer_terms(params, x2, act, sw2, sb2, output)
    return jnp.stack(
        [
            (sw2 * a @ b.T / a.shape[1] + sb2) * (da @ db.T)
            for a, b, da, db in zip(z1, z2, d1, d2, strict=True)
        ]
    )


def ntk_shares_by_depth(params: Params, x, phi, sigma_w2, sigma_b2) -> Array:
    r"""Each layer's share of the NTK diagonal of unit 0 of every layer: the finite-width
    counterpart of :func:`mftlib.ntk.ntk_depth_profile`.

    The network truncated after layer :math:`L` (``params[:L + 1]``) with unit 0 of
    :math:`h^L` as its scalar output has the tangent kernel :math:`\Theta^L`; its diagonal splits
    into the layers' shares of :func:`ntk_by_layer`. One backward pass carries all ``L`` at
    once, so the cost is that of ``depth`` backward passes through the whole network.

    Args:
        params: from :func:`init_ntk` with every layer after the first of the same width
            (``n_out = width``), e.g. ``init_ntk(key, d, width, depth, n_out=width)``.
        x: inputs ``(n, d)``.

    Returns:
        ``shares`` ``(depth + 1, depth + 1, n)``: ``shares[L, l, a]`` is layer ``l``'s share of
        :math:`\Theta^L(x_a, x_a)` (zero for ``l > L``).
    """
    act = _check(phi, sigma_w2, sigma_b2, x)
    shapes = {tuple(w.shape) for w, _ in params[1:]}
    if len(shapes) > 1 or (shapes and next(iter(shapes))[0] != next(iter(shapes))[1]):
        raise ValueError(
            "ntk_shares_by_depth needs square layers after the first (init_ntk with "
            f"n_out = width); got weight shapes {sorted(shapes)}"
        )
    return _ntk_shares_by_depth(
        params, jnp.asarray(x, jnp.float64), act, float(sigma_w2), float(sigma_b2)
    )


@partial(jax.jit, static_argnums=2)
def _ntk_shares_by_depth(params, x, act, sw2, sb2):
    zs, hs = _forward_layers(params, x, act.fn, sw2, sb2)
    n_layers, n, width = len(params), x.shape[0], hs[0].shape[1]
    g = jnp.stack([sw2 * jnp.sum(z * z, axis=1) / z.shape[1] + sb2 for z in zs])  # (layers, n)
    if n_layers == 1:
        return g[None]
    ws = jnp.stack([w for w, _ in params[1:]])  # layers 1..D, (D, N, N)
    h_below = jnp.stack(hs[:-1])  # h^{l-1} for l = 1..D
    unit = jnp.zeros((n, width)).at[:, 0].set(1.0)

    def step(delta, args):
        # delta[L]: d(unit 0 of h^L)/d h^l for the current layer l (zero while L < l).
        w, h_prev, layer = args
        delta = delta.at[layer].set(unit)
        norms = jnp.sum(delta * delta, axis=-1)  # (D+1, n)
        down = jnp.sqrt(sw2 / w.shape[1]) * (delta @ w) * act.derivative(h_prev)
        return down, norms

    layers_desc = jnp.arange(n_layers - 1, 0, -1)
    delta0, norms = jax.lax.scan(
        step, jnp.zeros((n_layers, n, width)), (ws[::-1], h_below[::-1], layers_desc)
    )
    delta0 = delta0.at[0].set(unit)
    norm0 = jnp.sum(delta0 * delta0, axis=-1)
    per_layer = jnp.concatenate([norm0[None], norms[::-1]])  # (layer l, target L, n)
    return jnp.transpose(per_layer, (1, 0, 2)) * g[None]


def train_gd_with_ntk(
    key,
    x_train,
    y_train,
    x_test,
    phi,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    width: int,
    learning_rate: float,
    steps: int,
    n_seeds: int = 1,
    n_record: int = 8,
    x_probe=None,
) -> dict:
    r""":func:`train_gd`, watching the empirical NTK move during training.

    The same networks (keys ``jax.random.split(key, n_seeds)``) and the same full-batch gradient
    descent as :func:`train_gd`; in addition, the empirical NTK :math:`\Theta_t` of output unit 0
    on the inputs ``x_probe`` (default: the training inputs) is computed by
    :func:`ntk_by_layer` at initialisation and after every ``steps / n_record`` steps, and its
    relative change

    .. math::

       \Delta_t = \lVert \Theta_t - \Theta_0 \rVert_F \,/\, \lVert \Theta_0 \rVert_F

    is recorded. Jacot et al. (2018) show that :math:`\Theta_t` stays at its initial, deterministic
    value during training as the width :math:`N \to \infty`; at finite width the parameters move
    by :math:`O(1/\sqrt N)` each, and :math:`\Delta_t` falls as :math:`N^{-1/2}`.

    Returns:
        dict of numpy arrays: the keys of :func:`train_gd`, and ``ntk_initial``, ``ntk_final``
        ``(n_seeds, m, m)``, ``ntk_change`` ``(n_seeds, n_record + 1)`` (:math:`\Delta_t`, 0 at
        ``t = 0``) and ``record_steps`` ``(n_record + 1,)``, the step counts at which it was
        measured.
    """
    act = _check(phi, sigma_w2, sigma_b2, x_train)
    V.matrix("x_test", x_test)
    x_probe = x_train if x_probe is None else x_probe
    V.matrix("x_probe", x_probe)
    y_train = np.asarray(V.matrix("y_train", y_train), np.float64)
    if y_train.shape[0] != np.shape(x_train)[0]:
        raise ValueError(f"y_train has {y_train.shape[0]} rows, x_train {np.shape(x_train)[0]}")
    for name, arr in (("x_test", x_test), ("x_probe", x_probe)):
        if np.shape(arr)[1] != np.shape(x_train)[1]:
            raise ValueError(f"{name} must have {np.shape(x_train)[1]} features")
    V.real("learning_rate", learning_rate, lo=0.0, lo_open=True)
    steps = V.positive_int("steps", steps)
    n_record = V.positive_int("n_record", n_record)
    if steps % n_record:
        raise ValueError(f"steps ({steps}) must be a multiple of n_record ({n_record})")
    n_seeds = V.positive_int("n_seeds", n_seeds)
    depth = V.nonneg_int("depth", depth)
    width = V.positive_int("width", width)
    keys = jax.random.split(V.key(key), n_seeds)
    d, n_out = np.shape(x_train)[1], y_train.shape[1]
    params = [init_ntk(k, d, width, depth, n_out) for k in keys]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params)
    out = _train_gd_with_ntk(
        stacked,
        jnp.asarray(x_train, jnp.float64),
        jnp.asarray(y_train),
        jnp.asarray(x_test, jnp.float64),
        jnp.asarray(x_probe, jnp.float64),
        act,
        float(sigma_w2),
        float(sigma_b2),
        float(learning_rate),
        steps // n_record,
        n_record,
    )
    out = {k: np.asarray(v) for k, v in out.items()}
    out["record_steps"] = np.arange(n_record + 1) * (steps // n_record)
    return out


@partial(jax.jit, static_argnums=(5, 9, 10))
def _train_gd_with_ntk(params, x, y, x_test, x_probe, act, sw2, sb2, lr, chunk, n_record):
    from mftlib.training import optimize  # local import: mftlib.training imports networks

    def loss(p):
        return 0.5 * jnp.sum((apply_ntk(p, x, act.fn, sw2, sb2) - y) ** 2)

    def ntk(p):
        return jnp.sum(_ntk_by_layer(p, x_probe, x_probe, act, sw2, sb2, 0), axis=0)

    def one(p):
        f0 = apply_ntk(p, x_test, act.fn, sw2, sb2)
        f0_train = apply_ntk(p, x, act.fn, sw2, sb2)
        theta0 = ntk(p)
        norm0 = jnp.linalg.norm(theta0)

        def block(p, _):
            p, _ = optimize(loss, p, steps=chunk, optimizer="sgd", learning_rate=lr)
            theta = ntk(p)
            return p, (jnp.linalg.norm(theta - theta0) / norm0, theta)

        p, (change, thetas) = jax.lax.scan(block, p, None, length=n_record)
        return {
            "test_outputs": apply_ntk(p, x_test, act.fn, sw2, sb2),
            "initial_test_outputs": f0,
            "initial_train_outputs": f0_train,
            "train_loss": loss(p),
            "ntk_initial": theta0,
            "ntk_final": thetas[-1],
            "ntk_change": jnp.concatenate([jnp.zeros(1), change]),
        }

    return jax.vmap(one)(params)
