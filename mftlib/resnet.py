r"""Mean-field theory of residual networks (Yang & Schoenholz 2017).

The *full* residual network has two weight matrices per block,

.. math::

   h^l = W^l x^{l-1} + b^l, \qquad x^l = V^l \phi(h^l) + a^l + x^{l-1},

with :math:`W_{ij} \sim \mathcal{N}(0, \sigma_w^2/N)`, :math:`V_{ij} \sim \mathcal{N}(0,
\sigma_v^2/N)`, :math:`b_i \sim \mathcal{N}(0, \sigma_b^2)`, :math:`a_i \sim \mathcal{N}(0,
\sigma_a^2)`. The *reduced* network has :math:`h^l = x^{l-1}` (no :math:`W`, no :math:`b`). Here a
function takes ``sigma_w2=None`` for the reduced network.

The covariance :math:`\Sigma^l` of the residual stream :math:`x^l` over a set of inputs maps as

.. math::

   \Sigma^{l} = \Sigma^{l-1} + \sigma_v^2\,\mathbb{E}_{u \sim \mathcal{N}(0, \Gamma^l)}
   [\phi(u)\phi(u)^T] + \sigma_a^2, \qquad \Gamma^l = \sigma_w^2 \Sigma^{l-1} + \sigma_b^2

(:math:`\Gamma^l = \Sigma^{l-1}` when reduced): the dense layer's map of :mod:`mftlib.dense` *added*
to the identity. Its diagonal is the length :math:`p^l`, with :math:`q^l = \Gamma^l_{aa}`.
Backpropagated squared gradients per unit (:math:`\chi^l = \mathbb{E}(\partial E/\partial x^l_i)^2`,
gradient-independence assumption) obey

.. math::

   \chi^{l-1} = \chi^l \left(1 + \sigma_v^2 \sigma_w^2\,
   \mathbb{E}[\phi'(\sqrt{q^l} z)^2]\right).

Because the identity is always added, nothing in these maps has a stable fixed point at finite
:math:`p`: the length grows without bound, and the dynamics are polynomial or sub-exponential in
depth where a feedforward net's are exponential. For tanh, :math:`p^l \approx
(\sigma_v^2 + \sigma_a^2)\, l` and :math:`\log(\chi^0/\chi^L) \approx \kappa\,
\sigma_v^2\sigma_w \sqrt{L/(\sigma_v^2+\sigma_a^2)}` with :math:`\kappa = 8/(3\sqrt{2\pi})`; for
the :math:`\alpha`-ReLU (:func:`mftlib.activations.alpha_relu`, :math:`1/2 < \alpha < 1`),
:math:`p^l \propto l^{1/(1-\alpha)}` and :math:`\chi^0/\chi^L \propto L^{\delta}` with
:math:`\delta = \alpha^2/((1-\alpha)(2\alpha - 1))` (see :func:`exponents`).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dense, dynamics
from mftlib._config import ensure_x64
from mftlib.activations import Activation, activation

ensure_x64()

Array = jax.Array

#: :math:`\kappa = 8/(3\sqrt{2\pi})`: :math:`\int \mathrm{sech}^4 = 4/3` times the Gaussian density
#: at 0, integrated over depth (:math:`\sum_l l^{-1/2} \approx 2\sqrt{L}`).
TANH_GRADIENT_CONSTANT = 8.0 / (3.0 * math.sqrt(2.0 * math.pi))


def _check(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2) -> tuple[Activation, tuple]:
    act = activation(phi)
    V.variance("sigma_v2", sigma_v2, positive=True)
    V.variance("sigma_a2", sigma_a2)
    if sigma_w2 is None:
        if sigma_b2 not in (None, 0, 0.0):
            raise ValueError(
                "sigma_b2 is only defined for the full residual net; pass sigma_w2 as well "
                "(sigma_w2=None means the reduced net h^l = x^(l-1), which has no bias b)"
            )
        sw, sb = 1.0, 0.0
    else:
        V.variance("sigma_w2", sigma_w2, positive=True)
        sb = 0.0 if sigma_b2 is None else sigma_b2
        V.variance("sigma_b2", sb)
        sw = sigma_w2
    return act, tuple(jnp.asarray(v, jnp.float64) for v in (sigma_v2, sigma_a2, sw, sb))


def _block(act: Activation, sv, sa, sw, sb, S):
    return S + dense._covariance_map(act, sv, sa, sw * S + sb)


def covariance_map(phi, sigma_v2, sigma_a2, Sigma, sigma_w2=None, sigma_b2=None) -> Array:
    r"""One residual block's map :math:`\Sigma^{l-1} \mapsto \Sigma^l` (module docstring).

    ``Sigma`` is the :math:`n\times n` covariance of the residual stream over ``n`` inputs;
    ``sigma_w2=None`` selects the reduced network.
    """
    act, (sv, sa, sw, sb) = _check(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    V.covariance("Sigma", Sigma)
    return _block(act, sv, sa, sw, sb, jnp.asarray(Sigma, jnp.float64))


def covariance_trajectory(
    phi, sigma_v2, sigma_a2, Sigma0, depth: int, sigma_w2=None, sigma_b2=None
) -> Array:
    """:func:`covariance_map` iterated ``depth`` times from ``Sigma0``: ``(depth+1, n, n)``."""
    act, (sv, sa, sw, sb) = _check(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    V.covariance("Sigma0", Sigma0)
    depth = V.nonneg_int("depth", depth)
    return dynamics.iterate(
        lambda S: _block(act, sv, sa, sw, sb, S), jnp.asarray(Sigma0, jnp.float64), depth
    )


@partial(jax.jit, static_argnums=(0, 6))
def _lengths(act: Activation, sv, sa, sw, sb, p0, depth: int):
    def step(p, _):
        q = sw * p + sb
        p_next = p + sv * act.mean_square(q) + sa
        return p_next, (p_next, q)

    _, (ps, qs) = jax.lax.scan(step, p0, None, length=depth)
    return jnp.concatenate([p0[None], ps]), qs


def length_trajectory(
    phi, sigma_v2, sigma_a2, p0, depth: int, sigma_w2=None, sigma_b2=None
) -> dict:
    r"""Length :math:`p^l` of the residual stream, :math:`l = 0..` ``depth``, and :math:`q^l`.

    :math:`q^l = \sigma_w^2 p^{l-1} + \sigma_b^2`,
    :math:`p^l = p^{l-1} + \sigma_v^2\,\mathbb{E}[\phi(\sqrt{q^l}z)^2] + \sigma_a^2`.

    Returns:
        dict with ``p`` ``(depth+1,)`` and ``q`` ``(depth,)`` (``q[l-1]`` is :math:`q^l`).
    """
    act, (sv, sa, sw, sb) = _check(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    V.variance("p0", p0)
    depth = V.positive_int("depth", depth)
    p, q = _lengths(act, sv, sa, sw, sb, jnp.asarray(p0, jnp.float64), depth)
    return {"p": np.asarray(p), "q": np.asarray(q)}


def gradient_trajectory(
    phi, sigma_v2, sigma_a2, p0, depth: int, sigma_w2=None, sigma_b2=None
) -> np.ndarray:
    r"""Gradient amplification :math:`\chi^l/\chi^{L}` for :math:`l = 0..L` (``L = depth``).

    :math:`\log(\chi^l/\chi^L) = \sum_{k=l+1}^{L} \log(1 + \sigma_v^2\sigma_w^2\,
    \mathbb{E}[\phi'(\sqrt{q^k}z)^2])` along the lengths of :func:`length_trajectory`.
    """
    act, (sv, sa, sw, sb) = _check(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    V.variance("p0", p0)
    depth = V.positive_int("depth", depth)
    _, q = _lengths(act, sv, sa, sw, sb, jnp.asarray(p0, jnp.float64), depth)
    log_factor = jnp.log1p(sv * sw * act.mean_square_derivative(q))
    tail = jnp.cumsum(log_factor[::-1])[::-1]
    return np.exp(np.concatenate([np.asarray(tail), [0.0]]))


def gradient_amplification(
    phi, sigma_v2, sigma_a2, p0, depth: int, sigma_w2=None, sigma_b2=None
) -> np.ndarray:
    r"""Input-to-output gradient amplification :math:`\chi^0/\chi^L` of the networks of every
    depth :math:`L = 0..` ``depth`` at once (entry ``L``; entry 0 is 1).

    A network of depth :math:`L` sees the same lengths :math:`q^1..q^L` as the first :math:`L`
    blocks of a deeper one, so :math:`\log(\chi^0/\chi^L)` is a cumulative sum of the factors
    of :func:`gradient_trajectory`.
    """
    act, (sv, sa, sw, sb) = _check(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    V.variance("p0", p0)
    depth = V.positive_int("depth", depth)
    _, q = _lengths(act, sv, sa, sw, sb, jnp.asarray(p0, jnp.float64), depth)
    log_factor = jnp.log1p(sv * sw * act.mean_square_derivative(q))
    return np.exp(np.concatenate([[0.0], np.cumsum(np.asarray(log_factor))]))


def exponents(phi, sigma_v2=1.0, sigma_a2=0.0, sigma_w2=None) -> dict:
    r"""The asymptotic laws of Yang & Schoenholz (2017) for tanh and the :math:`\alpha`-ReLU.

    Returns a dict with

    * ``length``: :math:`\gamma` in :math:`p^l \propto l^{\gamma}` (tanh: 1; :math:`\alpha`-ReLU:
      :math:`1/(1-\alpha)`);
    * ``gradient_kind``: ``"exp_sqrt"`` (tanh: :math:`\log\chi^0/\chi^L \approx
      \kappa_{\nabla}\sqrt{L}`) or ``"power"`` (:math:`\alpha`-ReLU: :math:`\chi^0/\chi^L
      \propto L^{\delta}`);
    * ``gradient``: :math:`\kappa_\nabla = \kappa\,\sigma_v^2\sigma_w/\sqrt{\sigma_v^2 +
      \sigma_a^2}` for tanh, :math:`\delta = \alpha^2/((1-\alpha)(2\alpha-1))` for the
      :math:`\alpha`-ReLU (independent of the variances).

    Other activations raise ``ValueError``: their laws are not derived here (iterate the maps).
    """
    act = activation(phi)
    V.variance("sigma_v2", sigma_v2, positive=True)
    V.variance("sigma_a2", sigma_a2)
    sw = 1.0 if sigma_w2 is None else float(V.variance("sigma_w2", sigma_w2, positive=True))
    alpha = getattr(act, "alpha", None)
    if act.name == "tanh":
        k = TANH_GRADIENT_CONSTANT * sigma_v2 * math.sqrt(sw / (sigma_v2 + sigma_a2))
        return {"length": 1.0, "gradient_kind": "exp_sqrt", "gradient": k}
    if alpha is not None and alpha < 1.0:
        return {
            "length": 1.0 / (1.0 - alpha),
            "gradient_kind": "power",
            "gradient": alpha**2 / ((1.0 - alpha) * (2.0 * alpha - 1.0)),
        }
    raise ValueError(
        f"asymptotic exponents are derived for tanh and alpha_relu(alpha < 1), not {act.name}; "
        "iterate length_trajectory / gradient_trajectory instead"
    )


def fit_power(depths, values, lo: int | None = None) -> float:
    r"""Slope of :math:`\log` ``values`` against :math:`\log` ``depths`` (least squares), using
    only ``depths >= lo`` when given: the measured exponent of a power law."""
    d = np.asarray(depths, np.float64)
    v = np.asarray(values, np.float64)
    if d.shape != v.shape or d.ndim != 1:
        raise ValueError(f"depths and values must be 1-D of one length, got {d.shape}, {v.shape}")
    sel = np.ones_like(d, bool) if lo is None else d >= lo
    if sel.sum() < 2 or np.any(d[sel] <= 0) or np.any(v[sel] <= 0):
        raise ValueError("need at least 2 points with positive depth and value to fit a power")
    return float(np.polyfit(np.log(d[sel]), np.log(v[sel]), 1)[0])
