r"""Finite random convolutional networks (1-D or 2-D, circular padding) in plain JAX.

Layout: inputs ``(batch, *spatial, channels)`` (NWC / NHWC), kernels ``(*filter, C_in, C_out)``
(WIO / HWIO). Every layer is a stride-1 convolution with circular ("wrap") padding, so the spatial
shape is preserved, and :math:`h^0 = W^0 * x + b^0`, :math:`h^l = W^l * \phi(h^{l-1}) + b^l`.

Initialisations (Xiao et al. 2018):

* ``"gaussian"``: :math:`W_{\beta ij} \sim \mathcal{N}(0, \sigma_w^2/(k^{d} C_{in}))` (uniform
  variance footprint :math:`v_\beta = 1/k^d`), :math:`b \sim \mathcal{N}(0, \sigma_b^2)`;
* ``"delta_orthogonal"``: all taps zero except the centre, which is :math:`\sigma_w` times a
  Haar-orthogonal :math:`C_{in}\times C_{out}` matrix (``jax.nn.initializers.delta_orthogonal``;
  Xiao et al. 2018); needs :math:`C_{out} \ge C_{in}`. The first layer (from the
  input channels) then uses the Gaussian rule, as the input has fewer channels.
* ``"orthogonal"`` (1-D or 2-D): the orthogonal kernels with a spatial footprint of Xiao et al.
  (2018), as in TensorFlow's ``ConvolutionOrthogonal1D``/``2D``: the taps are the coefficients
  of the matrix polynomial :math:`\sigma_w H\prod_{i=1}^{k-1}(P_i + (I - P_i)z)` (in 2-D one
  such factor per axis, :math:`z_1` and :math:`z_2`), with :math:`P_i`
  random symmetric projections and :math:`H` Haar-orthogonal (:func:`orthogonal_kernel`). Every
  spatial Fourier block of the circular convolution is then :math:`\sigma_w` times a unitary
  matrix: the layer is exactly :math:`\sigma_w` times an orthogonal map of the whole
  ``positions * channels`` space, while its variance spreads over all ``k`` taps
  (footprint :math:`\binom{k-1}{\beta}2^{1-k}` on average).

Layer ``l`` of the network drawn from ``key`` uses ``jax.random.fold_in(key, l)``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib.activations import Activation, activation

Array = jax.Array
INITS = ("gaussian", "delta_orthogonal", "orthogonal")


def _check(sigma_w2, sigma_b2, filter_size, dims, init):
    V.variance("sigma_w2", sigma_w2)
    V.variance("sigma_b2", sigma_b2)
    k = V.positive_int("filter_size", filter_size)
    if k % 2 == 0:
        raise ValueError(f"filter_size must be odd (centred filter), got {k}")
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return k


def _haar(key, n: int) -> Array:
    """A Haar-distributed ``n x n`` orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, n)))
    return q * jnp.sign(jnp.diag(r))[None, :]


def _symmetric_projection(key, n: int) -> Array:
    """``Q diag(m) Q^T`` with Haar ``Q`` and i.i.d. fair bits ``m``: a random orthogonal
    projection (of binomial rank), as TensorFlow's ``ConvolutionOrthogonal``."""
    kq, km = jax.random.split(key)
    c = _haar(kq, n) * jax.random.bernoulli(km, 0.5, (n,))[None, :]
    return c @ c.T


def _orthogonal_kernel(key, c_in: int, c_out: int, k: int, dims: int = 1) -> Array:
    # p(z) <- p(z) (P + (I - P) z_d) for i = 1..k-1 and each spatial axis d: the coefficients
    # of a matrix polynomial, kept as taps (k,)*dims + (c_out, c_out); one key per projection
    # (i, d) in that order, the last key for H (for dims=1 the draws of the 1-D construction)
    keys = jax.random.split(key, dims * (k - 1) + 1)
    eye = jnp.eye(c_out)
    p = eye.reshape((1,) * dims + (c_out, c_out))
    for i in range(k - 1):
        for d in range(dims):
            P = _symmetric_projection(keys[i * dims + d], c_out)
            pad_hi = [(0, 0)] * (dims + 2)
            pad_lo = [(0, 0)] * (dims + 2)
            pad_hi[d], pad_lo[d] = (0, 1), (1, 0)
            p = jnp.pad(p @ P, pad_hi) + jnp.pad(p @ (eye - P), pad_lo)
    H = _haar(keys[-1], c_out)[:c_in]  # orthonormal rows
    return jnp.einsum("ij,...jk->...ik", H, p)


def orthogonal_kernel(
    key, c_in: int, c_out: int, filter_size: int, dtype=jnp.float64, *, dims: int = 1
) -> Array:
    r"""A convolution kernel ``(k,)*dims + (c_in, c_out)`` whose circular convolution is an
    isometry.

    Xiao et al. (2018)'s construction (TensorFlow's ``ConvolutionOrthogonal1D`` and ``2D``): the
    taps :math:`W_\beta` are the coefficients of
    :math:`H\prod_{i=1}^{k-1}\prod_{d=1}^{\mathrm{dims}}(P_{id} + (I-P_{id})z_d)`, with
    :math:`P_{id}` random symmetric projections and :math:`H` ``c_in x c_out`` with orthonormal
    rows. On every spatial frequency :math:`z_d = e^{2\pi i f_d/n_d}` each factor is unitary, so
    :math:`\hat W(f) = \sum_\beta W_\beta e^{2\pi i f\cdot\beta/n}` has orthonormal rows and
    :math:`x \mapsto W * x` (:func:`circular_conv`) preserves norms on any grid of
    ``n_d >= k`` positions per axis. Unscaled (multiply by :math:`\sigma_w`); ``c_out >= c_in``;
    ``dims`` is 1 or 2 (for ``dims=1`` the same draws as before the 2-D case existed).
    """
    k = V.positive_int("filter_size", filter_size)
    c_in, c_out = V.positive_int("c_in", c_in), V.positive_int("c_out", c_out)
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    if c_out < c_in:
        raise ValueError(f"an orthogonal kernel needs c_out >= c_in, got {c_in} -> {c_out}")
    return _orthogonal_kernel(V.key(key), c_in, c_out, k, dims).astype(dtype)


def _layer(key, c_in, c_out, k, dims, init, sw, sb):
    kw, kb = jax.random.split(key)
    shape = (k,) * dims + (c_in, c_out)
    if init == "orthogonal":
        W = sw * _orthogonal_kernel(kw, c_in, c_out, k, dims)
    elif init == "delta_orthogonal":
        # jax's delta_orthogonal wants 3-5 dims: a 1-D kernel is the centre row of a 2-D one
        full = (k, k, c_in, c_out) if dims == 1 else shape
        W = jax.nn.initializers.delta_orthogonal(scale=1.0)(kw, full, jnp.float64)
        W = sw * (W[(k - 1) // 2] if dims == 1 else W)
    else:
        W = jax.random.normal(kw, shape) * sw / np.sqrt(k**dims * c_in)
    return W, jax.random.normal(kb, (c_out,)) * sb


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def layers_from_keys(keys, channels, filter_size, dims, init, sigma_w, sigma_b):
    r"""Stacked ``channels -> channels`` layers ``(Ws, bs)``, one per key of ``keys`` ``(L, 2)``.

    Layer :math:`l` draws its kernel and bias from ``keys[l]`` exactly as
    :func:`init_conv_stacked` does, so a caller that derives the keys the same way gets the same
    networks. ``init`` is ``"gaussian"`` (taps of variance
    :math:`\sigma_w^2/(k^{\mathrm{dims}} C)`), ``"delta_orthogonal"`` or ``"orthogonal"``;
    ``sigma_w``, ``sigma_b`` are standard deviations (square roots of the variances). Arguments
    are not checked: this is the jitted inner step of :func:`init_conv_stacked`.

    Returns:
        ``Ws`` ``(L,) + (filter_size,) * dims + (channels, channels)`` and ``bs`` ``(L, channels)``.
    """
    C, k = channels, filter_size
    one = lambda kk: _layer(kk, C, C, k, dims, init, sigma_w, sigma_b)  # noqa: E731
    if init == "gaussian":
        return jax.vmap(one)(keys)
    # Orthogonal kernels need QR factorisations. Batched (vmap), jaxlib's CPU QR splits the
    # batch over XLA's intra-op thread pool from inside a task of that same pool: on a
    # two-core machine two such QRs ran at once and each waited for the other's worker (a
    # deadlock caught with gdb). One layer at a time the QRs are unbatched.
    return jax.lax.map(one, keys)


def init_conv_layer(
    key,
    c_in: int,
    c_out: int,
    filter_size: int,
    sigma_w2,
    sigma_b2,
    *,
    dims: int = 1,
    init: str = "gaussian",
    dtype=jnp.float64,
):
    """One layer's ``(W, b)``: kernel ``(k,)*dims + (c_in, c_out)``, bias ``(c_out,)``."""
    k = _check(sigma_w2, sigma_b2, filter_size, dims, init)
    c_in, c_out = V.positive_int("c_in", c_in), V.positive_int("c_out", c_out)
    if init in ("delta_orthogonal", "orthogonal") and c_out < c_in:
        raise ValueError(f"{init} needs c_out >= c_in, got {c_in} -> {c_out}")
    W, b = _layer(
        key,
        c_in,
        c_out,
        k,
        dims,
        init,
        float(sigma_w2) ** 0.5,
        float(sigma_b2) ** 0.5,
    )
    return W.astype(dtype), b.astype(dtype)


def init_conv_stacked(
    key,
    in_channels: int,
    channels: int,
    depth: int,
    filter_size: int,
    sigma_w2,
    sigma_b2,
    *,
    dims: int = 1,
    init: str = "gaussian",
    dtype=jnp.float64,
):
    """The network of :func:`init_conv` as ``(first, (Ws, bs))``: layer 0's ``(W, b)`` and layers
    1..depth stacked on a leading axis (drawn with one ``vmap``; the input of
    :func:`conv_forward_scan`). Same draws as :func:`init_conv`."""
    L = V.positive_int("depth", depth)
    k = _check(sigma_w2, sigma_b2, filter_size, dims, init)
    C = V.positive_int("channels", channels)
    first = init_conv_layer(
        jax.random.fold_in(key, 0),
        in_channels,
        C,
        k,
        sigma_w2,
        sigma_b2,
        dims=dims,
        init="gaussian",
        dtype=dtype,
    )
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(1, L + 1))
    sw, sb = float(sigma_w2) ** 0.5, float(sigma_b2) ** 0.5
    Ws, bs = layers_from_keys(keys, C, k, dims, init, sw, sb)
    return first, (Ws.astype(dtype), bs.astype(dtype))


def init_conv(
    key,
    in_channels: int,
    channels: int,
    depth: int,
    filter_size: int,
    sigma_w2,
    sigma_b2,
    *,
    dims: int = 1,
    init: str = "gaussian",
    dtype=jnp.float64,
):
    """``depth + 1`` layers ``[(W^0, b^0), ..., (W^depth, b^depth)]``; layer 0 maps
    ``in_channels -> channels`` (Gaussian init), the others ``channels -> channels``."""
    L = V.nonneg_int("depth", depth)
    if L == 0:
        _check(sigma_w2, sigma_b2, filter_size, dims, init)
        return [
            init_conv_layer(
                jax.random.fold_in(key, 0),
                in_channels,
                channels,
                filter_size,
                sigma_w2,
                sigma_b2,
                dims=dims,
                dtype=dtype,
            )
        ]
    first, (Ws, bs) = init_conv_stacked(
        key,
        in_channels,
        channels,
        L,
        filter_size,
        sigma_w2,
        sigma_b2,
        dims=dims,
        init=init,
        dtype=dtype,
    )
    return [first] + [(Ws[i], bs[i]) for i in range(L)]


def circular_conv(x: Array, W: Array) -> Array:
    r"""Stride-1 convolution (cross-correlation, centred taps) with circular padding.

    ``x`` ``(batch, *spatial, C_in)``, ``W`` ``(*filter, C_in, C_out)``:
    :math:`y_\alpha = \sum_\beta x_{\alpha+\beta} W_\beta` with indices modulo the spatial
    shape. Written as rolls and one matrix product (faster on CPU than a convolution with few
    channels); equal to ``lax.conv_general_dilated`` on wrap-padded input.
    """
    dims = W.ndim - 2
    ks = W.shape[:dims]
    axes = tuple(range(1, 1 + dims))
    patches = [
        jnp.roll(x, tuple(-(i - (k - 1) // 2) for i, k in zip(idx, ks, strict=True)), axes)
        for idx in np.ndindex(ks)
    ]
    return jnp.concatenate(patches, axis=-1) @ W.reshape(-1, W.shape[-1])


def conv_forward(params, x: Array, phi, return_all: bool = False):
    """Pre-activations of the last layer (or of every layer, stacked, with ``return_all``)."""
    act = phi if isinstance(phi, Activation) else activation(phi)
    W0, b0 = params[0]
    h = circular_conv(x, W0) + b0
    hs = [h]
    for W, b in params[1:]:
        h = circular_conv(act(h), W) + b
        hs.append(h)
    return jnp.stack(hs) if return_all else h


def stack_layers(params):
    """Stack layers 1..depth (equal shapes) into one ``(W, b)`` pair with a leading depth axis,
    for :func:`conv_forward_scan` (compiles once whatever the depth)."""
    Ws = jnp.stack([W for W, _ in params[1:]])
    bs = jnp.stack([b for _, b in params[1:]])
    return params[0], (Ws, bs)


def conv_forward_scan(first, stacked, x: Array, phi) -> Array:
    """As :func:`conv_forward` for stacked layers (``lax.scan``): the last pre-activation."""
    act = phi if isinstance(phi, Activation) else activation(phi)
    h = circular_conv(x, first[0]) + first[1]

    def body(h, wb):
        return circular_conv(act(h), wb[0]) + wb[1], None

    h, _ = jax.lax.scan(body, h, stacked)
    return h


def spatial_covariance(h: Array, spatial_ndim: int = 1) -> Array:
    r"""Empirical covariance between positions,
    :math:`\hat\Sigma_{\alpha\alpha'} = C^{-1}\sum_i h_{i\alpha}h_{i\alpha'}`, for
    ``h`` of shape ``(..., *spatial, C)`` with ``spatial_ndim`` spatial axes; returns
    ``(..., P, P)``."""
    if spatial_ndim not in (1, 2):
        raise ValueError(f"spatial_ndim must be 1 or 2, got {spatial_ndim!r}")
    lead = h.shape[: h.ndim - 1 - spatial_ndim]
    P = int(np.prod(h.shape[h.ndim - 1 - spatial_ndim : -1]))
    flat = h.reshape(lead + (P, h.shape[-1]))
    return jnp.einsum("...ai,...bi->...ab", flat, flat) / h.shape[-1]


# --- experiments of chapter 8: covariances through depth, input-output Jacobians -----------------


def simulate_spatial_covariances(
    key,
    Sigma0,
    channels: int,
    depth: int,
    filter_size: int,
    sigma_w2,
    sigma_b2,
    phi="tanh",
    footprint=None,
) -> Array:
    r"""Spatial covariances :math:`\hat\Sigma^l` of one random 1-D CNN, layer by layer.

    The layer-0 pre-activations are drawn with covariance ``Sigma0`` between the ``P`` positions
    (``h^0 = \mathrm{chol}(\Sigma^0)\, z``, ``channels`` independent columns, from
    ``fold_in(key, 10**6)``); layers ``1..depth`` apply :math:`\phi`, a circular convolution with
    Gaussian taps (:func:`init_conv_stacked` from ``key``) and the bias. Returns
    ``(depth + 1, P, P)``: :func:`spatial_covariance` of every layer, to be compared with
    :func:`mftlib.conv.conv_covariance_trajectory` from ``Sigma0``. ``footprint``: optional
    variance footprint ``v`` (``filter_size`` non-negative fractions summing to 1); tap
    :math:`\beta` then has variance :math:`\sigma_w^2 v_\beta/C` (default uniform, ``1/k``).
    """
    key = V.key(key)
    act = activation(phi)
    V.covariance("Sigma0", Sigma0)
    channels = V.positive_int("channels", channels)
    depth = V.positive_int("depth", depth)
    P = np.shape(Sigma0)[0]
    chol = jnp.asarray(np.linalg.cholesky(np.asarray(Sigma0) + 1e-12 * np.eye(P)))
    _, stacked = init_conv_stacked(key, channels, channels, depth, filter_size, sigma_w2, sigma_b2)
    if footprint is not None:
        v = np.asarray(V.grid("footprint", footprint), dtype=np.float64)
        if v.shape != (filter_size,) or np.any(v < 0) or abs(v.sum() - 1.0) > 1e-9:
            raise ValueError(
                f"footprint must be {filter_size} non-negative fractions summing to 1, got {v}"
            )
        scale = jnp.asarray(np.sqrt(v * filter_size))[None, :, None, None]
        stacked = (stacked[0] * scale, stacked[1])
    return _spatial_covariances(key, chol, stacked, act, channels)


@partial(jax.jit, static_argnames=("act", "channels"))
def _spatial_covariances(key, chol, stacked, act: Activation, channels: int):
    P = chol.shape[0]
    h0 = (chol @ jax.random.normal(jax.random.fold_in(key, 10**6), (P, channels)))[None]
    return covariances_through_layers(h0, stacked, act)


def covariances_through_layers(h0: Array, stacked, act: Activation) -> Array:
    r"""Spatial covariances :math:`\hat\Sigma^l` (:func:`spatial_covariance`) of one 1-D
    network's pre-activations, :math:`h^l = W^l * \phi(h^{l-1}) + b^l` for the stacked layers
    ``(Ws, bs)`` from ``h0`` of shape ``(1, P, C)``. Traceable (no checks; ``act`` an
    ``Activation``); returns ``(L + 1, P, P)``, layer 0 first."""

    def body(h, wb):
        h = circular_conv(act.fn(h), wb[0]) + wb[1]
        return h, h

    _, hs = jax.lax.scan(body, h0, stacked)
    return jnp.concatenate([spatial_covariance(h0, 1), spatial_covariance(hs[:, 0], 1)])


def jacobian_singular_values(
    key,
    positions: int,
    channels: int,
    depth: int,
    filter_size: int,
    sigma_w2,
    sigma_b2,
    q0,
    init: str = "gaussian",
    phi="tanh",
) -> np.ndarray:
    r"""Squared singular values of the input-output Jacobian :math:`\partial x^L/\partial x^0`
    of one random 1-D CNN, :math:`x^l = \phi(W^l * x^{l-1} + b^l)`, at a random input
    :math:`x^0 = \phi(h^0)` with :math:`h^0 \sim \mathcal{N}(0, q_0)` (from
    ``fold_in(key, 10**6)``); layers from :func:`init_conv` with ``init`` ("gaussian",
    "delta_orthogonal" or "orthogonal"). The Jacobian and its singular values are computed in
    one jitted program (compiled once per shape). Returns the ``positions * channels`` values,
    to be compared with the free-probability spectra of :mod:`mftlib.spectra` (Pennington et
    al. 2017; Xiao et al. 2018)."""
    key = V.key(key)
    act = activation(phi)
    V.variance("q0", q0)
    positions = V.positive_int("positions", positions)
    _, stacked = init_conv_stacked(
        key, channels, channels, depth, filter_size, sigma_w2, sigma_b2, init=init
    )
    h0 = jnp.sqrt(q0) * jax.random.normal(jax.random.fold_in(key, 10**6), (1, positions, channels))
    return np.asarray(_jacobian_spectrum(stacked, act.fn(h0), act))


@partial(jax.jit, static_argnames=("act",))
def _jacobian_spectrum(stacked, x0: Array, act: Activation) -> Array:
    """Squared singular values of d x^L / d x^0 for ``x^l = act(W^l * x^{l-1} + b^l)`` over the
    stacked layers: one compiled program per shape (the Jacobian by forward mode, then the
    singular values), instead of hundreds of small dispatched operations per network."""

    def f(x):
        def body(h, wb):
            return act.fn(circular_conv(h, wb[0]) + wb[1]), None

        h, _ = jax.lax.scan(body, x.reshape(x0.shape), stacked)
        return h.ravel()

    J = jax.jacfwd(f)(x0.ravel())
    return jnp.sort(jnp.linalg.svd(J, compute_uv=False) ** 2)


def jacobian_spectra(
    key,
    n_networks: int,
    positions: int,
    channels: int,
    depth: int,
    filter_size: int,
    sigma_w2,
    sigma_b2,
    q0,
    init: str = "gaussian",
    phi="tanh",
) -> Array:
    r"""Squared singular values of :math:`\partial x^L/\partial x^0` of ``n_networks`` random
    1-D CNNs (:func:`jacobian_singular_values` network by network).

    Network ``s`` is the network of :func:`jacobian_singular_values` drawn from
    ``jax.random.fold_in(key, s)`` (same layers, same input), so both give the same values.
    Returns ``(n_networks, positions * channels)``, ascending along the last axis.
    """
    key = V.key(key)
    activation(phi)
    n = V.positive_int("n_networks", n_networks)
    P = V.positive_int("positions", positions)
    C = V.positive_int("channels", channels)
    L = V.positive_int("depth", depth)
    k = _check(sigma_w2, sigma_b2, filter_size, 1, init)
    V.variance("q0", q0)
    return np.stack(
        [
            jacobian_singular_values(
                jax.random.fold_in(key, s), P, C, L, k, sigma_w2, sigma_b2, q0, init=init, phi=phi
            )
            for s in range(n)
        ]
    )
