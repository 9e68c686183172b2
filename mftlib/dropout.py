r"""Mean-field theory of fully connected networks with dropout (Schoenholz et al. 2017, the
section on dropout).

Dropout with keep probability :math:`\rho \in (0, 1]` multiplies each post-activation by an
independent mask :math:`p^l_i/\rho`, :math:`p^l_i \sim \mathrm{Bernoulli}(\rho)`, drawn afresh for
every unit, layer and input:

.. math::

   h^l_i = \sum_j W^l_{ij}\, \frac{p^l_j}{\rho}\, \phi(h^{l-1}_j) + b^l_i .

Since :math:`\mathbb{E}[(p/\rho)^2] = 1/\rho` while two independent masks give
:math:`\mathbb{E}[p_a p_b]/\rho^2 = 1`, the length and covariance maps become (Schoenholz et al.
2017)

.. math::

   q^{l+1} = \frac{\sigma_w^2}{\rho} \int\mathcal{D}z\,\phi(\sqrt{q^l}z)^2 + \sigma_b^2, \qquad
   q^{l+1}_{ab} = \sigma_w^2\, \mathbb{E}[\phi(u_a)\phi(u_b)] + \sigma_b^2 .

The length map is the dense one with :math:`\sigma_w^2 \to \sigma_w^2/\rho`; the correlation map at
the fixed point :math:`q^*` is the dense one, :math:`C(c) = [\sigma_w^2\mathbb{E}\phi(u_1)\phi(u_2)
+ \sigma_b^2]/q^*`, but now :math:`C(1) = 1 - (1/\rho - 1)\sigma_w^2\mathbb{E}[\phi^2]/q^* < 1`: the
fixed point :math:`c = 1` is gone, the stable fixed point :math:`c^* < 1` for every
:math:`\sigma_w^2`, and the depth scale (Schoenholz et al. 2017, with these :math:`q^*, c^*`)

.. math::

   \xi_c^{-1} = -\log \chi_c, \qquad
   \chi_c = \sigma_w^2\, \mathbb{E}[\phi'(u_1)\phi'(u_2)]\big|_{q^*, c^*} < 1,

stays finite: there is no order-to-chaos transition, and :math:`\xi_c` has a finite maximum over
:math:`\sigma_w^2`. Backpropagated squared gradients change by
:math:`\chi_1 = (\sigma_w^2/\rho)\int\mathcal{D}z\,\phi'(\sqrt{q^*}z)^2` per layer.

This module reuses the dense maps of :mod:`mftlib.dense` and the root finder of
:mod:`mftlib.dynamics`. At :math:`\rho = 1` every function returns the dense result. Finite
networks with dropout are simulated in :mod:`mftlib.networks.dropout`:
:func:`mftlib.networks.dropout.preactivation_moments` (sampled as
:func:`mftlib.networks.init_dense` does) and :func:`mftlib.networks.dropout.correlation_decay`,
which measures a decay length in them (fitted by :func:`mftlib.fitting.exponential_scale`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import core, layers
from mftlib.activations import Activation, activation
from mftlib.dense import (
    correlation_map_traced,
    length_map_traced,
    q_star_traced,
    quantities_traced,
)

Array = jax.Array


def check_keep(name: str, rho):
    """A keep probability: finite, in (0, 1]; raises ValueError naming ``name``."""
    return V.real(name, rho, lo=0.0, hi=1.0, lo_open=True)


def check_parameters(phi, sigma_w2, sigma_b2, rho) -> Activation:
    """The activation, after checking both variances and the keep probability (shared with the
    finite networks of :mod:`mftlib.networks.dropout`)."""
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2)
    V.variance("sigma_b2", sigma_b2)
    check_keep("rho", rho)
    return act


def _f64(x) -> Array:
    return jnp.asarray(x, dtype=jnp.float64)


# --- maps ---------------------------------------------------------------------------------------


def length_map(phi, sigma_w2, sigma_b2, rho, q) -> Array:
    r"""Length map with dropout, :math:`q \mapsto (\sigma_w^2/\rho)\int\mathcal{D}z\,
    \phi(\sqrt q z)^2 + \sigma_b^2` (Schoenholz et al. 2017). Broadcasts over ``q``."""
    act = check_parameters(phi, sigma_w2, sigma_b2, rho)
    V.variance("q", q)
    return length_map_traced(act, _f64(sigma_w2) / _f64(rho), _f64(sigma_b2), _f64(q))


def correlation_map(phi, sigma_w2, sigma_b2, rho, c) -> Array:
    r"""Correlation map with dropout at the fixed length :math:`q^*` (Schoenholz et al. 2017).

    .. math:: c \mapsto \frac{\sigma_w^2\,\mathbb{E}[\phi(u_1)\phi(u_2)] + \sigma_b^2}{q^*},
       \quad (u_1, u_2) \sim \mathcal{N}\!\left(0, q^*\begin{pmatrix}1 & c\\ c & 1
       \end{pmatrix}\right),

    with :math:`q^*` the fixed point of :func:`length_map`. For :math:`\rho < 1` the image of
    :math:`c = 1` is below 1. Broadcasts over ``c``.
    """
    act = check_parameters(phi, sigma_w2, sigma_b2, rho)
    V.correlation("c", c)
    sw, sb = _f64(sigma_w2), _f64(sigma_b2)
    q = q_star_traced(act, sw / _f64(rho), sb, 1.0)
    check_q_star(q, act, sigma_w2, sigma_b2, rho)
    return jnp.vectorize(lambda ci: correlation_map_traced(act, sw, sb, q, ci))(_f64(c))


def check_q_star(q, phi, sigma_w2, sigma_b2, rho) -> None:
    r"""Raise ``ValueError`` unless the fixed length ``q`` (:math:`q^*` of :func:`length_map` at
    these parameters) is finite and non-zero: correlations, and so :func:`correlation_map` and
    the correlation decay of :func:`mftlib.networks.dropout.correlation_decay`, are undefined
    otherwise. The message names the activation ``phi`` and the parameters."""
    q = float(q)
    if not np.isfinite(q) or q == 0.0:
        what = "no finite fixed point" if not np.isfinite(q) else "the fixed point q* = 0"
        raise ValueError(
            f"the length map of {activation(phi).name} with dropout at sigma_w2={sigma_w2}, "
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

    Keys: ``q_star`` (fixed point of the length map), ``c_star`` (stable fixed point of the
    correlation map, :math:`< 1` for :math:`\rho < 1`), ``chi1``
    (:math:`(\sigma_w^2/\rho)\mathbb{E}\phi'^2`, the per-layer factor of squared gradients),
    ``chi_c`` (slope of the correlation map at :math:`c^*`), ``xi_q`` and ``xi_c``
    (:math:`-1/\log` of the slopes, Schoenholz et al. 2017). Where :math:`q^*` is 0 or
    infinite, everything but ``q_star`` is NaN.
    """
    act = check_parameters(phi, sigma_w2, sigma_b2, rho)
    for name, value in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2), ("rho", rho)):
        if np.ndim(value) != 0:
            raise ValueError(f"{name} must be a number (use sweep for a grid), got {value!r}")
    return _quantities_rho(act, _f64(sigma_w2), _f64(sigma_b2), _f64(rho))


def q_star(phi, sigma_w2, sigma_b2, rho) -> Array:
    r"""Fixed point of the dropout length map: the dense :math:`q^*` at :math:`\sigma_w^2/\rho`."""
    act = check_parameters(phi, sigma_w2, sigma_b2, rho)
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
    of backpropagated squared gradient norms with dropout (Schoenholz et al. 2017)."""
    return quantities(phi, sigma_w2, sigma_b2, rho)["chi1"]


def chi_c(phi, sigma_w2, sigma_b2, rho) -> Array:
    r""":math:`\chi_c = \sigma_w^2\,\mathbb{E}[\phi'(u_1)\phi'(u_2)]` at :math:`(q^*, c^*)`: slope
    of the dropout correlation map at its fixed point; :math:`< 1` for :math:`\rho < 1`."""
    return quantities(phi, sigma_w2, sigma_b2, rho)["chi_c"]


def depth_scales(phi, sigma_w2, sigma_b2, rho) -> tuple[Array, Array]:
    r"""Depth scales :math:`(\xi_q, \xi_c)` with dropout (Schoenholz et al. 2017).

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
    check_keep("rho", rho)
    return _sweep(act, _f64(sigma_w2_grid), _f64(sigma_b2), _f64(rho))


_sweep = jax.jit(jax.vmap(_quantities_rho, in_axes=(None, 0, None, None)), static_argnums=0)
