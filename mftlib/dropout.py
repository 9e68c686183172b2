r"""Mean-field theory of fully connected networks with dropout (Schoenholz et al. 2017, Sec. 4).

Dropout with keep probability :math:`\rho \in (0, 1]` multiplies each post-activation by an
independent mask :math:`p^l_i/\rho`, :math:`p^l_i \sim \mathrm{Bernoulli}(\rho)`, drawn afresh for
every unit, layer and input:

.. math::

   h^l_i = \sum_j W^l_{ij}\, \frac{p^l_j}{\rho}\, \phi(h^{l-1}_j) + b^l_i .

Since :math:`\mathbb{E}[(p/\rho)^2] = 1/\rho` while two independent masks give
:math:`\mathbb{E}[p_a p_b]/\rho^2 = 1`, the length and covariance maps become (Schoenholz et al.
2017, eq. 10 and 11)

.. math::

   q^{l+1} = \frac{\sigma_w^2}{\rho} \int\mathcal{D}z\,\phi(\sqrt{q^l}z)^2 + \sigma_b^2, \qquad
   q^{l+1}_{ab} = \sigma_w^2\, \mathbb{E}[\phi(u_a)\phi(u_b)] + \sigma_b^2 .

The length map is the dense one with :math:`\sigma_w^2 \to \sigma_w^2/\rho`; the correlation map at
the fixed point :math:`q^*` is the dense one, :math:`C(c) = [\sigma_w^2\mathbb{E}\phi(u_1)\phi(u_2)
+ \sigma_b^2]/q^*`, but now :math:`C(1) = 1 - (1/\rho - 1)\sigma_w^2\mathbb{E}[\phi^2]/q^* < 1`: the
fixed point :math:`c = 1` is gone, the stable fixed point :math:`c^* < 1` for every
:math:`\sigma_w^2`, and the depth scale (Schoenholz et al. 2017, eq. 9, with these :math:`q^*, c^*`)

.. math::

   \xi_c^{-1} = -\log \chi_c, \qquad
   \chi_c = \sigma_w^2\, \mathbb{E}[\phi'(u_1)\phi'(u_2)]\big|_{q^*, c^*} < 1,

stays finite: there is no order-to-chaos transition, and :math:`\xi_c` has a finite maximum over
:math:`\sigma_w^2`. Backpropagated squared gradients change by
:math:`\chi_1 = (\sigma_w^2/\rho)\int\mathcal{D}z\,\phi'(\sqrt{q^*}z)^2` per layer.

This module reuses the dense maps of :mod:`mftlib.dense` and the root finder of
:mod:`mftlib.dynamics`; :func:`preactivation_moments` simulates finite networks with dropout
(sampled as :func:`mftlib.networks.init_dense` does), and :func:`correlation_decay` measures a
decay length in them (fitted by :func:`mftlib.fitting.exponential_scale`). At :math:`\rho = 1`
every function returns the dense result.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import core, dynamics, fitting, layers
from mftlib.activations import Activation, activation
from mftlib.dense import (
    correlation_map_traced,
    length_map_traced,
    q_star_traced,
    quantities_traced,
)
from mftlib.networks.dense import check_simulation_args, kernel_correlation, sample_layer

Array = jax.Array


def _keep(name: str, rho):
    """Keep probability: finite, in (0, 1]."""
    return V.real(name, rho, lo=0.0, hi=1.0, lo_open=True)


def _params(phi, sigma_w2, sigma_b2, rho) -> Activation:
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2)
    V.variance("sigma_b2", sigma_b2)
    _keep("rho", rho)
    return act


def _f64(x) -> Array:
    return jnp.asarray(x, dtype=jnp.float64)


# --- maps ---------------------------------------------------------------------------------------


def length_map(phi, sigma_w2, sigma_b2, rho, q) -> Array:
    r"""Length map with dropout, :math:`q \mapsto (\sigma_w^2/\rho)\int\mathcal{D}z\,
    \phi(\sqrt q z)^2 + \sigma_b^2` (Schoenholz et al. 2017, eq. 10). Broadcasts over ``q``."""
    act = _params(phi, sigma_w2, sigma_b2, rho)
    V.variance("q", q)
    return length_map_traced(act, _f64(sigma_w2) / _f64(rho), _f64(sigma_b2), _f64(q))


def correlation_map(phi, sigma_w2, sigma_b2, rho, c) -> Array:
    r"""Correlation map with dropout at the fixed length :math:`q^*` (Schoenholz et al. eq. 11).

    .. math:: c \mapsto \frac{\sigma_w^2\,\mathbb{E}[\phi(u_1)\phi(u_2)] + \sigma_b^2}{q^*},
       \quad (u_1, u_2) \sim \mathcal{N}\!\left(0, q^*\begin{pmatrix}1 & c\\ c & 1
       \end{pmatrix}\right),

    with :math:`q^*` the fixed point of :func:`length_map`. For :math:`\rho < 1` the image of
    :math:`c = 1` is below 1. Broadcasts over ``c``.
    """
    act = _params(phi, sigma_w2, sigma_b2, rho)
    V.correlation("c", c)
    sw, sb = _f64(sigma_w2), _f64(sigma_b2)
    q = q_star_traced(act, sw / _f64(rho), sb, 1.0)
    _require_positive_q(q, act, sigma_w2, sigma_b2, rho)
    return jnp.vectorize(lambda ci: correlation_map_traced(act, sw, sb, q, ci))(_f64(c))


def _require_positive_q(q, act, sigma_w2, sigma_b2, rho):
    q = float(q)
    if not np.isfinite(q) or q == 0.0:
        what = "no finite fixed point" if not np.isfinite(q) else "the fixed point q* = 0"
        raise ValueError(
            f"the length map of {act.name} with dropout at sigma_w2={sigma_w2}, "
            f"sigma_b2={sigma_b2}, rho={rho} has {what}: correlations are undefined there"
        )


# --- fixed points and depth scales --------------------------------------------------------------


def block(phi, sigma_w2, sigma_b2, rho) -> layers.Serial:
    """One dropout layer as layer specs (:mod:`mftlib.layers`):
    ``serial(Phi(phi), Dropout(rho), Dense(sigma_w2, sigma_b2))``, on pre-activations."""
    return layers.serial(layers.Phi(phi), layers.Dropout(rho), layers.Dense(sigma_w2, sigma_b2))


def _dropout_quantities(act: Activation, sw, sb, rho) -> dict:
    """q*, c*, chi_1, chi_c, xi_q, xi_c with dropout, rho < 1 (traced): the generic analysis
    :func:`mftlib.core.mean_field` of :func:`block`, NaN where q* is 0 or infinite."""
    mf = core.mean_field(block(act, sw, sb, rho))
    ok = jnp.isfinite(mf.q_star) & (mf.q_star > 0.0)
    out = {k: jnp.where(ok, getattr(mf, k), jnp.nan) for k in _KEYS}
    out["q_star"] = mf.q_star
    return out


_KEYS = ("q_star", "c_star", "chi1", "chi_c", "xi_q", "xi_c")


@partial(jax.jit, static_argnums=0)
def _quantities_rho(act: Activation, sw, sb, rho) -> dict:
    """Dropout quantities; at rho = 1 exactly the dense ones (whose c = 1 fixed point the dropout
    search cannot resolve). A ``lax.cond``, so only one branch runs when rho is not batched."""

    def dense(_):
        out = quantities_traced(act, sw, sb)
        return {k: out[k] for k in _KEYS}

    return jax.lax.cond(rho >= 1.0, dense, lambda _: _dropout_quantities(act, sw, sb, rho), None)


def quantities(phi, sigma_w2, sigma_b2, rho) -> dict:
    r"""All mean-field quantities of the dropout network at one point, as a dict of float64 scalars.

    Keys: ``q_star`` (fixed point of eq. 10), ``c_star`` (stable fixed point of the correlation
    map, :math:`< 1` for :math:`\rho < 1`), ``chi1`` (:math:`(\sigma_w^2/\rho)\mathbb{E}\phi'^2`,
    the per-layer factor of squared gradients), ``chi_c`` (slope of the correlation map at
    :math:`c^*`), ``xi_q`` and ``xi_c`` (:math:`-1/\log` of the slopes, Schoenholz et al. eq. 6
    and 9). Where :math:`q^*` is 0 or infinite, everything but ``q_star`` is NaN.
    """
    act = _params(phi, sigma_w2, sigma_b2, rho)
    for name, value in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2), ("rho", rho)):
        if np.ndim(value) != 0:
            raise ValueError(f"{name} must be a number (use sweep for a grid), got {value!r}")
    return _quantities_rho(act, _f64(sigma_w2), _f64(sigma_b2), _f64(rho))


def q_star(phi, sigma_w2, sigma_b2, rho) -> Array:
    r"""Fixed point of the dropout length map: the dense :math:`q^*` at :math:`\sigma_w^2/\rho`."""
    act = _params(phi, sigma_w2, sigma_b2, rho)
    return q_star_traced(act, _f64(sigma_w2) / _f64(rho), _f64(sigma_b2), 1.0)


def c_star(phi, sigma_w2, sigma_b2, rho) -> Array:
    r"""Stable fixed point :math:`c^*` of the dropout correlation map (:math:`< 1` for
    :math:`\rho < 1`).

    A bracketed root search (:func:`mftlib.dynamics.find_root`) of :math:`C(c) - c` on
    :math:`[0, 1]`; at :math:`\rho = 1` the dense :func:`mftlib.c_star`.
    """
    return quantities(phi, sigma_w2, sigma_b2, rho)["c_star"]


def chi1(phi, sigma_w2, sigma_b2, rho) -> Array:
    r""":math:`\chi_1 = (\sigma_w^2/\rho)\int\mathcal{D}z\,\phi'(\sqrt{q^*}z)^2`: the factor
    of backpropagated squared gradient norms with dropout (Schoenholz et al. 2017, Sec. 5)."""
    return quantities(phi, sigma_w2, sigma_b2, rho)["chi1"]


def chi_c(phi, sigma_w2, sigma_b2, rho) -> Array:
    r""":math:`\chi_c = \sigma_w^2\,\mathbb{E}[\phi'(u_1)\phi'(u_2)]` at :math:`(q^*, c^*)`: slope
    of the dropout correlation map at its fixed point; :math:`< 1` for :math:`\rho < 1`."""
    return quantities(phi, sigma_w2, sigma_b2, rho)["chi_c"]


def depth_scales(phi, sigma_w2, sigma_b2, rho) -> tuple[Array, Array]:
    r"""Depth scales :math:`(\xi_q, \xi_c)` with dropout (Schoenholz et al. 2017, eq. 6 and 9).

    :math:`\xi_q = -1/\log[(\sigma_w^2/\rho)\,\partial_q\mathbb{E}\phi^2]` at :math:`q^*` and
    :math:`\xi_c = -1/\log\chi_c`. For :math:`\rho < 1`, :math:`\xi_c` is finite for every
    :math:`\sigma_w^2`; at :math:`\rho = 1` these are :func:`mftlib.depth_scales`.
    """
    out = quantities(phi, sigma_w2, sigma_b2, rho)
    return out["xi_q"], out["xi_c"]


def sweep(phi, sigma_w2_grid, sigma_b2, rho) -> dict:
    r""":func:`quantities` along a grid of :math:`\sigma_w^2` (fixed :math:`\sigma_b^2, \rho`).

    Returns a dict of arrays of shape ``(len(sigma_w2_grid),)``, vectorised with ``jax.vmap``.
    """
    act = activation(phi)
    V.grid("sigma_w2_grid", sigma_w2_grid)
    V.variance("sigma_w2_grid", sigma_w2_grid)
    V.variance("sigma_b2", sigma_b2)
    _keep("rho", rho)
    return _sweep(act, _f64(sigma_w2_grid), _f64(sigma_b2), _f64(rho))


_sweep = jax.jit(jax.vmap(_quantities_rho, in_axes=(None, 0, None, None)), static_argnums=0)


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
    rho = float(_keep("rho", rho))
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
    from mftlib.networks import make_inputs

    act = _params(phi, sigma_w2, sigma_b2, rho)
    V.correlation("c0", c0)
    width = V.positive_int("width", width)
    depth = V.positive_int("depth", depth)
    n_inputs = V.positive_int("n_inputs", n_inputs)
    if n_inputs < 2:
        raise ValueError(f"n_inputs must be >= 2 (correlations need pairs), got {n_inputs}")
    th = quantities(act, sigma_w2, sigma_b2, rho)
    qs, cs, chic = float(th["q_star"]), float(th["c_star"]), float(th["chi_c"])
    _require_positive_q(qs, act, sigma_w2, sigma_b2, rho)
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
