r"""Finite random fully connected networks with dropout, simulated.

The dense network of :func:`mftlib.networks.init_dense` (the same weights for the same key) with
dropout of keep probability :math:`\rho \in (0, 1]` on the post-activations,

.. math::

   h^l_i = \sum_j W^l_{ij}\, \frac{p^l_j}{\rho}\, \phi(h^{l-1}_j) + b^l_i, \qquad
   p^l_j \sim \mathrm{Bernoulli}(\rho),

with masks drawn afresh for every unit, layer and input. :func:`preactivation_moments` gives its
empirical moments and :func:`correlation_decay` measures the depth scale :math:`\xi_c` in it. They
check the mean-field theory of :mod:`mftlib.dropout` (Schoenholz et al. 2017, Sec. 4); at
:math:`\rho = 1` the network is the dense one of :func:`mftlib.networks.preactivation_moments`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dropout, dynamics, fitting
from mftlib.activations import Activation
from mftlib.dense import correlation_map_traced
from mftlib.networks.dense import (
    check_simulation_args,
    kernel_correlation,
    make_inputs,
    sample_layer,
)

Array = jax.Array


def _f64(x) -> Array:
    return jnp.asarray(x, dtype=jnp.float64)


# --- finite networks with dropout ---------------------------------------------------------------


@partial(jax.jit, static_argnames=("act", "fan_out"))
def _dropout_step(seed_keys, h, layer, sw2, sb2, rho, *, act: Activation | None, fan_out: int):
    """h^l = W^l (mask / rho * phi(h^{l-1})) + b^l for every seed; layer 0 (act=None): W^0 x + b^0.

    W^l and b^l are the draws of :func:`mftlib.networks.init_dense` from the same seed key; the
    masks come from a separate stream, fold_in(fold_in(key, layer), 1), one per input and unit.
    """

    def one(key, h_prev):
        layer_key = jax.random.fold_in(key, layer)
        W, b = sample_layer(layer_key, h_prev.shape[-1], fan_out, sw2, sb2)
        if act is None:
            y = h_prev
        else:
            keep = jax.random.bernoulli(jax.random.fold_in(layer_key, 1), rho, h_prev.shape)
            y = jnp.where(keep, act.fn(h_prev) / rho, 0.0)
        h_new = y @ W.T + b
        return h_new, h_new @ h_new.T / fan_out

    return jax.vmap(one)(seed_keys, h)


def preactivation_moments(
    key, x, phi, sigma_w2, sigma_b2, rho, width: int, depth: int, n_seeds: int = 1
) -> dict[str, Array]:
    r"""Empirical moments :math:`q^l_{ab} = N^{-1}\sum_i h^l_i(x_a)h^l_i(x_b)`, with dropout.

    The network of :func:`mftlib.networks.preactivation_moments` (same weights for the same key),
    with dropout of keep probability ``rho`` on the post-activations feeding layers
    :math:`1, \dots, \text{depth}`; the masks are independent across units, layers and inputs (one
    forward pass per input, as in training). Seeds are ``jax.random.split(key, n_seeds)``.

    Returns:
        dict with ``kernel`` ``(n_seeds, depth+1, n, n)``, ``q`` ``(n_seeds, depth+1, n)`` and
        ``c`` ``(n_seeds, depth+1, n, n)``.
    """
    key, x, act, sw2, sb2, widths, depth, n_seeds = check_simulation_args(
        key, x, phi, sigma_w2, sigma_b2, width, depth, n_seeds
    )
    rho = float(dropout.check_keep("rho", rho))
    seed_keys = jax.random.split(key, n_seeds)
    h = jnp.broadcast_to(x, (n_seeds,) + x.shape)
    kernels = []
    for i, n_out in enumerate(widths):
        h, kernel = _dropout_step(
            seed_keys, h, i, sw2[i], sb2[i], rho, act=None if i == 0 else act, fan_out=n_out
        )
        kernels.append(kernel)
    kernel = jnp.stack(kernels, axis=1)
    return {
        "q": jnp.diagonal(kernel, axis1=-2, axis2=-1),
        "c": kernel_correlation(kernel),
        "kernel": kernel,
    }


# --- measuring a depth scale --------------------------------------------------------------------


def correlation_decay(
    key,
    phi,
    sigma_w2: float,
    sigma_b2: float,
    rho: float = 1.0,
    c0: float = 0.0,
    width: int = 1000,
    depth: int = 40,
    n_seeds: int = 4,
    n_inputs: int = 4,
    d: int = 64,
    rate_tol: float = 0.2,
) -> dict:
    r"""Measure :math:`\xi_c` in simulated networks from the decay of :math:`|c^l - c^*|`.

    ``n_inputs`` inputs with pairwise cosine ``c0`` and squared norm per feature chosen so that the
    first layer starts at the fixed length, :math:`q^0 = q^*` (then only the correlation moves).
    For each of ``n_seeds`` networks (with dropout of keep probability ``rho``; ``rho = 1`` is the
    dense network of :func:`mftlib.networks.preactivation_moments`) the correlation :math:`c^l`
    is averaged over the input pairs, and :math:`\xi_c` is fitted by
    :func:`mftlib.fitting.exponential_scale` to
    the signed deviation :math:`c^l - c^*` from the first layer on which the mean-field trajectory
    decays at its asymptotic rate (its layer-to-layer log-ratio within ``rate_tol`` of
    :math:`\log\chi_c`) to the last layer: a line through :math:`\log(1 - c^l)` where
    :math:`c^* = 1`, otherwise :math:`A e^{-l/\xi} + B` with a free offset :math:`B` for the
    finite-width shift of :math:`c^*` (nonlinear least squares, ``log=False, offset=True``).

    Returns:
        dict with ``layers`` ``(depth+1,)``, ``deviation`` ``(n_seeds, depth+1)`` (simulated
        :math:`c^l - c^*`), ``theory`` ``(depth+1,)`` (mean-field :math:`c^l - c^*`), ``fit``
        (boolean mask of the fitted layers), ``xi_fit`` ``(n_seeds,)`` and the theory's ``xi_c``,
        ``c_star``.
    """
    act = dropout.check_parameters(phi, sigma_w2, sigma_b2, rho)
    V.correlation("c0", c0)
    width = V.positive_int("width", width)
    depth = V.positive_int("depth", depth)
    n_inputs = V.positive_int("n_inputs", n_inputs)
    if n_inputs < 2:
        raise ValueError(f"n_inputs must be >= 2 (correlations need pairs), got {n_inputs}")
    th = dropout.quantities(act, sigma_w2, sigma_b2, rho)
    qs, cs, chic = float(th["q_star"]), float(th["c_star"]), float(th["chi_c"])
    dropout.check_q_star(qs, act, sigma_w2, sigma_b2, rho)
    if sigma_w2 == 0 or qs <= sigma_b2:
        raise ValueError("correlation_decay needs sigma_w2 > 0 and q* > sigma_b2")
    q_in = (qs - sigma_b2) / sigma_w2
    x = make_inputs(jax.random.fold_in(key, 0), n_inputs, d, q_in, c0)
    sim = preactivation_moments(
        jax.random.fold_in(key, 1), x, act, sigma_w2, sigma_b2, rho, width, depth, n_seeds
    )
    iu = np.triu_indices(n_inputs, 1)
    c_sim = np.asarray(sim["c"])[:, :, iu[0], iu[1]].mean(-1)
    # Mean-field trajectory of the correlation at q*, from the first layer's c^0.
    sw, sb = _f64(sigma_w2), _f64(sigma_b2)
    c_first = (sigma_w2 * q_in * c0 + sigma_b2) / qs
    traj = _correlation_trajectory(act, sw, sb, _f64(qs), _f64(c_first), depth)
    theory = np.asarray(traj) - cs
    deviation = c_sim - cs
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(np.abs(theory[1:] / theory[:-1]))
    ok = np.abs(ratio - np.log(chic)) <= rate_tol * abs(np.log(chic))
    start = int(np.argmax(ok)) if ok.any() else depth + 1
    layers = np.arange(depth + 1)
    fit = layers >= start
    if fit.sum() >= 3:
        ordered = cs >= 1.0
        xi = fitting.exponential_scale(
            deviation[:, fit], layers[fit], log=ordered, offset=not ordered
        ).value
    else:
        xi = np.full(deviation.shape[0], np.nan)
    return {
        "layers": layers,
        "deviation": deviation,
        "theory": theory,
        "fit": fit,
        "xi_fit": np.asarray(xi),
        "xi_c": float(th["xi_c"]),
        "c_star": cs,
    }


@partial(jax.jit, static_argnums=(0, 5))
def _correlation_trajectory(act: Activation, sw, sb, q, c0, depth: int):
    return dynamics.iterate(lambda c: correlation_map_traced(act, sw, sb, q, c), c0, depth)
