r"""Mean-field theory of deep convolutional networks: a covariance map over spatial positions.

A CNN with circular padding, ``C`` channels and filters with taps :math:`\beta` in a footprint
:math:`\ker` (weights :math:`W^l_{ij\beta} \sim \mathcal{N}(0, \sigma_w^2 v_\beta / C)`,
:math:`\sum_\beta v_\beta = 1`; uniform :math:`v_\beta = 1/|\ker|` for a standard
initialisation) maps the covariance of its pre-activations between spatial positions
:math:`\alpha, \alpha'` of one input by (Xiao et al. 2018)

.. math::

   \Sigma^{l+1}_{\alpha\alpha'} = \sum_{\beta} v_\beta\, \Big[\sigma_w^2
   \mathbb{E}_{h\sim\mathcal{N}(0,\Sigma^l)}\phi(h_{\alpha+\beta})\phi(h_{\alpha'+\beta})
   + \sigma_b^2\Big] = \mathcal{A}_v \circ \mathcal{C}(\Sigma^l),

the dense covariance map :math:`\mathcal{C}` (:func:`mftlib.covariance_map`) followed by the
*diagonal convolution* :math:`\mathcal{A}_v`, which averages along the diagonals
:math:`(\alpha+\beta, \alpha'+\beta)`. Consequences:

* the diagonal :math:`\Sigma_{\alpha\alpha}` (per-position variance) is the dense length map when
  all positions have the same length, so :math:`q^*`, :math:`\chi_1` and the phase diagram are
  those of the dense network;
* :math:`\mathcal{A}_v` never mixes different offsets :math:`d = \alpha' - \alpha`; along each
  diagonal it is a circular convolution, diagonal in Fourier space with multiplier
  :math:`\hat v(f) = \sum_\beta v_\beta e^{+2\pi i f\cdot\beta/n}` (modes transformed with
  :math:`e^{-2\pi i f\cdot\alpha/n}`). Linearised about the fixed point
  :math:`\Sigma^* = q^*[(1-c^*)I + c^*\mathbf{1}\mathbf{1}^\top]`, the off-diagonal Fourier mode
  :math:`f` of every offset decays as :math:`(\chi_c \hat v(f))^l`, depth scale
  :math:`\xi_f = -1/\log|\chi_c \hat v(f)|` (Xiao et al. 2018); only :math:`f = 0` has
  the dense :math:`\xi_c`.

Covariances are ``(P, P)`` arrays over the ``P = prod(spatial_shape)`` positions in C order.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dense, dynamics, layers
from mftlib.activations import activation

Array = jax.Array


def _shape(spatial_shape) -> tuple[int, ...]:
    if isinstance(spatial_shape, (int, np.integer)):
        spatial_shape = (spatial_shape,)
    try:
        shape = tuple(spatial_shape)
    except TypeError as err:
        raise TypeError(f"spatial_shape must be a tuple of ints, got {spatial_shape!r}") from err
    if len(shape) not in (1, 2):
        raise ValueError(f"spatial_shape must have 1 or 2 dimensions, got {shape}")
    return tuple(V.positive_int("spatial_shape", s) for s in shape)


def _footprint(v, shape: tuple[int, ...]) -> np.ndarray:
    v = np.asarray(V.matrix("v", v, ndim=len(shape)), dtype=np.float64)
    if np.any(v < 0) or abs(v.sum() - 1.0) > 1e-9:
        raise ValueError("v must be non-negative and sum to 1 (the fractions of sigma_w2 per tap)")
    if any(k > n for k, n in zip(v.shape, shape, strict=True)):
        raise ValueError(f"filter v of shape {v.shape} is larger than spatial_shape {shape}")
    return v


def uniform_filter(filter_size: int, dims: int = 1) -> np.ndarray:
    r"""The uniform variance footprint :math:`v_\beta = 1/k^{\text{dims}}` of a ``k``-tap filter
    (``k`` odd, centred taps :math:`\beta = -(k-1)/2..(k-1)/2`)."""
    k = V.positive_int("filter_size", filter_size)
    if k % 2 == 0:
        raise ValueError(f"filter_size must be odd (centred filter), got {k}")
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    return np.full((k,) * dims, 1.0 / k**dims)


def _block(phi, sigma_w2, sigma_b2, v) -> layers.Serial:
    """One CNN layer as layer specs: ``serial(Phi(phi), Conv(sigma_w2, sigma_b2, v=v))``."""
    return layers.serial(layers.Phi(phi), layers.Conv(sigma_w2, sigma_b2, v=v))


def diagonal_convolution(Sigma, v, spatial_shape) -> Array:
    r""":math:`\mathcal{A}_v(K)_{\alpha\alpha'} = \sum_\beta v_\beta K_{\alpha+\beta,\alpha'+\beta}`
    (indices modulo the spatial shape: circular padding); :func:`mftlib.layers.diagonal_convolution`
    on one input."""
    shape = _shape(spatial_shape)
    v = _footprint(v, shape)
    P = int(np.prod(shape))
    V.matrix("Sigma", Sigma)
    if np.shape(Sigma) != (P, P):
        raise ValueError(
            f"Sigma must be ({P}, {P}) for spatial_shape {shape}, got {np.shape(Sigma)}"
        )
    offsets = layers.Conv(1.0, 0.0, v=v).offsets
    return layers.diagonal_convolution(jnp.asarray(Sigma, dtype=jnp.float64), offsets, shape)


def conv_covariance_map(phi, sigma_w2, sigma_b2, Sigma, v, spatial_shape) -> Array:
    r"""One layer of the CNN covariance map
    :math:`\Sigma \mapsto \mathcal{A}_v(\mathcal{C}(\Sigma))` (Xiao et al. 2018): the map of
    the specs ``serial(Phi(phi), Conv(sigma_w2, sigma_b2, v=v))`` of :mod:`mftlib.layers`."""
    shape = _shape(spatial_shape)
    v = _footprint(v, shape)
    V.covariance("Sigma", Sigma)
    if np.shape(Sigma) != (int(np.prod(shape)),) * 2:
        raise ValueError(
            f"Sigma has shape {np.shape(Sigma)}, inconsistent with spatial_shape {shape}"
        )
    block = _block(phi, sigma_w2, sigma_b2, v)
    return block.kernel(jnp.asarray(Sigma, dtype=jnp.float64), None, shape)[0]


def conv_covariance_trajectory(phi, sigma_w2, sigma_b2, Sigma0, v, spatial_shape, depth: int):
    """``[Sigma^0, ..., Sigma^depth]`` of the CNN covariance map, shape ``(depth+1, P, P)``
    (:func:`mftlib.dynamics.iterate`, one compiled ``lax.scan``)."""
    L = V.nonneg_int("depth", depth)
    shape = _shape(spatial_shape)
    v = _footprint(v, shape)
    block = _block(phi, sigma_w2, sigma_b2, v)
    V.covariance("Sigma0", Sigma0)
    P = int(np.prod(shape))
    if np.shape(Sigma0) != (P, P):
        raise ValueError(f"Sigma0 must be ({P}, {P}) for spatial_shape {shape}")
    return _trajectory(block, shape, L, jnp.asarray(Sigma0, dtype=jnp.float64))


@partial(jax.jit, static_argnums=(1, 2))
def _trajectory(block, shape, L, S0):
    return dynamics.iterate(lambda S: block.kernel(S, None, shape)[0], S0, L)


def fourier_multipliers(v, spatial_shape) -> np.ndarray:
    r""":math:`\hat v(f) = \sum_\beta v_\beta e^{+2\pi i f\cdot\beta/n}` on the FFT frequency grid
    (numpy ``fft`` order, shape ``spatial_shape``): the factor by which :math:`\mathcal{A}_v`
    multiplies every mode of :func:`diagonal_modes` (which transforms with
    :math:`e^{-2\pi i f\cdot\alpha/n}`). Complex in general; real for a symmetric footprint."""
    shape = _shape(spatial_shape)
    v = _footprint(v, shape)
    out = np.zeros(shape, dtype=np.complex128)
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    for beta, w in layers.Conv(1.0, 0.0, v=v).offsets:
        out += w * np.exp(2j * np.pi * sum(f * b for f, b in zip(freqs, beta, strict=True)))
    return out


def diagonal_modes(Sigma, spatial_shape) -> Array:
    r"""Fourier modes of a spatial covariance along its diagonals.

    .. math::

       \hat\Sigma_d(f) = \frac1P\sum_\alpha \Sigma_{\alpha,\alpha+d}\, e^{-2\pi i f\cdot\alpha/n}

    for every offset ``d`` and frequency ``f``; returns shape ``spatial_shape * 2`` (offset axes
    first, then frequency axes in FFT order). A leading batch axis of ``Sigma`` is kept.
    Under the linearised map each entry is multiplied by :math:`\chi \hat v(f)` per layer.
    """
    shape = _shape(spatial_shape)
    S = jnp.asarray(Sigma, dtype=jnp.float64)
    P = int(np.prod(shape))
    if S.shape[-2:] != (P, P):
        raise ValueError(f"Sigma must end in ({P}, {P}) for spatial_shape {shape}, got {S.shape}")
    batch = S.shape[:-2]
    pos = np.indices(shape).reshape(len(shape), -1).T  # (P, d)
    G = []
    for off in np.ndindex(shape):
        j = np.ravel_multi_index(tuple(((pos + np.array(off)) % np.array(shape)).T), shape)
        G.append(S[..., np.arange(P), j])
    G = jnp.stack(G, axis=-2).reshape(batch + shape + shape)
    axes = tuple(range(len(batch) + len(shape), len(batch) + 2 * len(shape)))
    return jnp.fft.fftn(G, axes=axes) / P


def mode_depth_scales(phi, sigma_w2, sigma_b2, v, spatial_shape) -> dict:
    r"""Per-layer multipliers and depth scales of the Fourier modes about the fixed point.

    Returns ``dict(chi_c, chi_q, multiplier_c, multiplier_q, xi_c, xi_q)``: off-diagonal modes
    are multiplied by the complex number :math:`\chi_c \hat v(f)` per layer and decay with
    :math:`\xi = -1/\log|\chi_c\hat v(f)|` (the modulus: an asymmetric footprint also turns
    the phase of a mode; ``inf`` where :math:`|\chi_c\hat v(f)| \ge 1`); the diagonal
    (per-position variance) modes by :math:`\chi_q\hat v(f)`. Multipliers are complex arrays
    (real for a symmetric footprint), all of shape ``spatial_shape`` in FFT order.

    This closed form is the fast path: the multipliers are the eigenvalues of the linearisation
    (:func:`mftlib.dynamics.linearise`) of the full CNN covariance map at its fixed point
    :math:`\Sigma^* = q^*[(1-c^*)I + c^*\mathbf{1}\mathbf{1}^\top]` (tests/test_conv.py).
    """
    vhat = fourier_multipliers(v, spatial_shape)
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2)
    V.variance("sigma_b2", sigma_b2)
    sw, sb = jnp.float64(sigma_w2), jnp.float64(sigma_b2)
    fp = dense.quantities_traced(act, sw, sb)
    q = jnp.where(fp["diverged"], jnp.nan, fp["q_star"])
    # The dense slopes at the fixed point: chi_c (Price's theorem, dense.quantities_traced) and
    # chi_q = dL/dq (the length map's closed-form slope, finite also at q* = 0).
    chi_c, chi_q = (
        np.float64(fp["chi_c"]),
        np.float64(sw * act.mean_square_slope(q)),
    )
    mc, mq = chi_c * vhat, chi_q * vhat

    def xi(m):
        return np.where(np.isnan(m), np.nan, np.asarray(dynamics.depth_scale(m)))

    return dict(
        chi_c=chi_c, chi_q=chi_q, multiplier_c=mc, multiplier_q=mq, xi_c=xi(mc), xi_q=xi(mq)
    )
