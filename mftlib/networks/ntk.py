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
