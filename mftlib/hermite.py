r"""Hermite (Mehler) series of Gaussian pair moments: the fast path for grids and large kernels.

With normalised probabilists' Hermite polynomials :math:`h_k = \mathrm{He}_k/\sqrt{k!}` and the
coefficients :math:`a_k(q) = \int\mathcal{D}z\,\phi(\sqrt{q}z)\,h_k(z)`, Mehler's formula gives
(Daniely et al. 2016, the "dual activation")

.. math::

   \mathbb{E}[\phi(u_1)\phi(u_2)] = \sum_{k \ge 0} a_k(q_{11})\, a_k(q_{22})\, c^k, \qquad
   \mathbb{E}[\phi'(u_1)\phi'(u_2)] = \frac{1}{\sqrt{q_{11}q_{22}}}
   \sum_{k \ge 1} k\, a_k(q_{11})\, a_k(q_{22})\, c^{k-1},

for :math:`c = q_{12}/\sqrt{q_{11}q_{22}}`. A two-dimensional integral becomes a power series in
:math:`c` whose coefficients are one-dimensional integrals. The coefficients of many variances at
once are a single matrix product with a fixed matrix of weighted Hermite values, so a
200 x 200 phase diagram or the kernel of 1,797 inputs costs a few GEMMs.

Truncation after :math:`K` terms errs by at most :math:`|c|^K\, t_K`, with the tail
:math:`t_K(q) = \mathbb{E}[\phi^2] - \sum_{k<K} a_k^2`, computed by :func:`tail` from an
independent 1-D quadrature: every use of the series checks it (tanh at :math:`q = 1` needs
:math:`K = 65` for :math:`t_K < 10^{-10}\mathbb{E}\phi^2`, at :math:`q = 6` :math:`K = 325`).
"""

from __future__ import annotations

from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib.activations import Activation
from mftlib.gaussian import QuadratureRule, nodes_and_weights

Array = jax.Array

# The weighted Hermite functions extend to |z| ~ 2 sqrt(K) and decay as exp(-z^2/4) beyond the
# rule's Gaussian weight, hence the wider interval (exp(-13^2/4) ~ 5e-19) and the denser panels
# (Hermite oscillations up to K = 1024 need ~0.5-wide panels of 10 nodes).
HERMITE_RULE = QuadratureRule(half_width=13.0, uniform_panels=52, graded_panels=6, ratio=0.35)
MAX_TERMS = 1024


@cache
def _weighted_hermite(n_terms: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and the matrix ``H[k, i] = w_i h_k(z_i)`` (normalised Hermite, weights included)."""
    with jax.ensure_compile_time_eval():
        z, w = nodes_and_weights(jnp.float64(0.0), HERMITE_RULE)
        z, w = np.asarray(z), np.asarray(w)
    H = np.zeros((n_terms, z.size))
    H[0] = 1.0
    if n_terms > 1:
        H[1] = z
    for k in range(1, n_terms - 1):
        H[k + 1] = (z * H[k] - np.sqrt(k) * H[k - 1]) / np.sqrt(k + 1.0)
    return z, np.ascontiguousarray(H * w)


def coefficients(act: Activation, q: Array, n_terms: int) -> Array:
    r""":math:`a_k(q) = \int\mathcal{D}z\,\phi(\sqrt{q}z)h_k(z)` for ``k < n_terms``.

    The series index comes first: the shape is ``(n_terms,) + q.shape`` (so that Horner's rule
    reads contiguous rows). One matrix product for all of ``q``.
    """
    if not 1 <= n_terms <= MAX_TERMS:
        raise ValueError(f"n_terms must be in [1, {MAX_TERMS}], got {n_terms}")
    z, Hw = _weighted_hermite(n_terms)
    q = jnp.asarray(q, dtype=jnp.float64)
    values = act(jnp.sqrt(q).reshape(-1, 1) * z)  # (points, nodes)
    return (Hw @ values.T).reshape((n_terms,) + q.shape)


def tail(act: Activation, q: Array, a: Array) -> Array:
    r"""Truncation tail :math:`\mathbb{E}[\phi(\sqrt{q}z)^2] - \sum_k a_k^2` (>= 0 to rounding)."""
    return act.mean_square(q) - jnp.sum(a * a, axis=0)


def series(b: Array, c: Array) -> Array:
    r""":math:`\sum_k b_k c^k` by Horner's rule over the leading axis of ``b``.

    With ``b = a1 * a2`` (coefficients of two variances) this is
    :math:`\mathbb{E}[\phi(u_1)\phi(u_2)]`.
    """
    c = jnp.asarray(c, dtype=jnp.float64)
    n = b.shape[0]

    def body(i, acc):
        return acc * c + b[n - 1 - i]

    init = jnp.zeros(jnp.broadcast_shapes(b.shape[1:], c.shape))
    return jax.lax.fori_loop(0, n, body, init, unroll=8)  # unrolled: XLA loops are slow on CPU


def deriv_series(b: Array, c: Array) -> Array:
    r""":math:`\sum_{k\ge1} k\, b_k c^{k-1}`; with ``b = a1 * a2`` it is
    :math:`\sqrt{q_{11}q_{22}}\;\mathbb{E}[\phi'(u_1)\phi'(u_2)]` (Price's theorem)."""
    k = jnp.arange(1, b.shape[0], dtype=jnp.float64).reshape((-1,) + (1,) * (b.ndim - 1))
    return series(k * b[1:], c)


@partial(jax.jit, static_argnums=0)
def _relative_tails(act: Activation, q: Array) -> tuple[Array, Array]:
    a = coefficients(act, q, MAX_TERMS)
    ms = act.mean_square(q)
    return ms - jnp.cumsum(a * a), ms


def terms_needed(act: Activation, q_max: float, rtol: float) -> int:
    """Smallest series length (multiple of 16) whose tail at ``q_max`` is below ``rtol E[phi^2]``.

    Returns ``MAX_TERMS + 1`` if even ``MAX_TERMS`` terms do not reach the tolerance.
    """
    tails, ms = (np.asarray(v) for v in _relative_tails(act, jnp.float64(q_max)))
    ok = np.nonzero(tails <= rtol * max(float(ms), 1e-300))[0]
    if ok.size == 0:
        return MAX_TERMS + 1
    return int(min(MAX_TERMS, 16 * np.ceil((ok[0] + 1) / 16)))
