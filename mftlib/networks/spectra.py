r"""Finite random dense networks whose input-output Jacobians are sampled, for their spectra.

One network of width :math:`N` and depth :math:`L`, started at its fixed point
(:math:`h^0 \sim \mathcal{N}(0, q^*)` per unit),

.. math::

   h^l = W_l\,\phi(h^{l-1}) + b_l, \qquad
   J = \prod_{l=1}^{L} D_l W_l, \qquad D_l = \mathrm{diag}\,\phi'(h^l),

with Gaussian :math:`W_l \sim \mathcal{N}(0, \sigma_w^2/N)` or scaled Haar-orthogonal
:math:`\sigma_w O_l`, and :math:`b_l \sim \mathcal{N}(0, \sigma_b^2)`.
:func:`sample_jacobian_spectrum` returns the squared singular values of :math:`J`,
:func:`sample_jacobian_spectra_by_depth` those of its partial products. They check the
free-probability theory of :mod:`mftlib.spectra` (:func:`mftlib.spectra.jacobian_moments`,
:func:`mftlib.spectra.jacobian_density`); :func:`mftlib.spectra.empirical_moments` turns the
samples into moments.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dense, spectra
from mftlib.activations import activation

Array = jax.Array


def _orthogonal(key, n: int) -> Array:
    a = jax.random.normal(key, (n, n))
    q, r = jnp.linalg.qr(a)
    return q * jnp.sign(jnp.diag(r))[None, :]


def _sampling_setup(phi, weights, sigma_w2, sigma_b2, width):
    """Validated arguments of the samplers, and the fixed point q* their input starts at."""
    act = activation(phi)
    g = spectra.weights_exponent(weights)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("sigma_b2", sigma_b2)
    N = V.positive_int("width", width)
    qs = float(dense.q_star(act, sigma_w2, sigma_b2))
    if not np.isfinite(qs):
        raise ValueError("the length map diverges at these (sigma_w2, sigma_b2): q* = inf")
    return act, g, N, (jnp.float64(qs), float(sigma_w2) ** 0.5, float(sigma_b2) ** 0.5)


def _jacobian_scan(act, g, N, L, key, qs, sw, sb, keep_all: bool):
    """Scan ``L`` layers from h^0 ~ N(0, q*); returns the final J or (keep_all) every partial J."""
    h = jnp.sqrt(qs) * jax.random.normal(jax.random.fold_in(key, 0), (N,))

    def body(carry, layer):
        h, J = carry
        kw, kb = jax.random.split(jax.random.fold_in(key, layer))
        W = sw * jax.random.normal(kw, (N, N)) / np.sqrt(N) if g else sw * _orthogonal(kw, N)
        h = W @ act(h) + sb * jax.random.normal(kb, (N,))
        J = act.derivative(h)[:, None] * (W @ J)
        return (h, J), (J if keep_all else None)

    (_, J), Js = jax.lax.scan(body, (h, jnp.eye(N)), jnp.arange(1, L + 1))
    return Js if keep_all else J


def sample_jacobian_spectrum(
    key, phi, sigma_w2, sigma_b2, width: int, depth: int, weights: str = "gaussian"
) -> Array:
    r"""Squared singular values of :math:`J = \prod_{l=1}^L D_l W_l` of one random dense network.

    :math:`h^l = W_l\,\phi(h^{l-1}) + b_l`, input :math:`h^0 \sim \mathcal{N}(0, q^*)` per unit (the
    network starts at its fixed point), :math:`D_l = \mathrm{diag}\,\phi'(h^l)`; Gaussian
    :math:`W_l \sim \mathcal{N}(0, \sigma_w^2/N)` or :math:`\sigma_w O_l` with Haar-orthogonal
    :math:`O_l`. Layer ``l`` uses ``jax.random.fold_in(key, l)``.
    """
    act, g, N, args = _sampling_setup(phi, weights, sigma_w2, sigma_b2, width)
    L = V.nonneg_int("depth", depth)
    return _sample(act, g, N, L, key, *args)


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _sample(act, g, N, L, key, qs, sw, sb):
    J = _jacobian_scan(act, g, N, L, key, qs, sw, sb, keep_all=False)
    return jnp.sort(jnp.linalg.svd(J, compute_uv=False) ** 2)


def sample_jacobian_spectra_by_depth(
    key, phi, sigma_w2, sigma_b2, width: int, depths, weights: str = "gaussian"
) -> Array:
    r"""As :func:`sample_jacobian_spectrum` for one network read at several depths: the squared
    singular values of the partial products :math:`\prod_{l\le L} D_l W_l` for every ``L`` in
    ``depths`` (positive ints); shape ``(len(depths), width)``. One compiled scan."""
    act, g, N, args = _sampling_setup(phi, weights, sigma_w2, sigma_b2, width)
    depth_list = np.atleast_1d(np.asarray(depths)).tolist()
    ds = tuple(V.positive_int("depths", d) for d in depth_list)
    return _sample_many(act, g, N, ds, key, *args)


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _sample_many(act, g, N, ds, key, qs, sw, sb):
    Js = _jacobian_scan(act, g, N, max(ds), key, qs, sw, sb, keep_all=True)
    sel = Js[jnp.array(ds) - 1]
    return jnp.sort(jnp.linalg.svd(sel, compute_uv=False) ** 2, axis=-1)
