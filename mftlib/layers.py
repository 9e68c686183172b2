r"""Composable layer specs: one spec gives a finite random network *and* its mean-field map.

In the infinite-width limit the pre-activations of a random network form a centred Gaussian process
over whatever the network mixes (inputs, spatial positions), so every layer acts on two
covariance matrices over those *sites*: the NNGP kernel :math:`K` and the neural tangent kernel
:math:`\Theta` (Lee et al. 2018; Jacot et al. 2018). Each spec here carries

* ``kernel(K, T, spatial)``: its deterministic map :math:`(K, \Theta) \mapsto (K', \Theta')`
  on ``(m, m)`` matrices over the ``m = n_inputs * prod(spatial)`` sites (``T = None`` skips the
  NTK); ``spatial`` is the static spatial shape (``()`` for a fully connected representation);
* ``init(key, in_shape, width)``: the parameters of a finite random network (float64, explicit
  key; ``in_shape`` is one input's shape, ``(d,)`` or ``(*spatial, channels)``);
* ``apply(params, x, key=None)``: its forward pass on a batch ``(n, *in_shape)``; only
  :class:`Dropout` draws at apply time and needs the key.

The maps, with :math:`\mathcal{M}_\phi(K) = \mathbb{E}_{u\sim\mathcal{N}(0,K)}[\phi(u)\phi(u)^\top]`
and :math:`\dot{\mathcal{M}}_\phi(K) = \mathbb{E}[\phi'(u)\phi'(u)^\top]`:

* ``Dense(sigma_w2, sigma_b2)``: :math:`K' = \sigma_w^2 K + \sigma_b^2`,
  :math:`\Theta' = K' + \sigma_w^2\Theta`;
* ``Phi(phi)``: :math:`K' = \mathcal{M}_\phi(K)`,
  :math:`\Theta' = \dot{\mathcal{M}}_\phi(K)\odot\Theta`;
* ``Dropout(rho)``: the diagonals of :math:`K` and :math:`\Theta` divided by :math:`\rho`;
* ``Conv(sigma_w2, sigma_b2, filter_size)``: :math:`K' = \mathcal{A}_v(\sigma_w^2 K +
  \sigma_b^2)`, :math:`\Theta' = K' + \sigma_w^2\mathcal{A}_v(\Theta)`;
* ``Residual(branch)``: :math:`K' = K + \mathrm{branch}_K`,
  :math:`\Theta' = \Theta + \mathrm{branch}_\Theta`;
* ``GlobalAvgPool()``: both kernels averaged over positions.

The finite networks use the NTK parameterisation (weights are unit Gaussians scaled in the
forward pass, :math:`h = \sigma_w\,\omega y/\sqrt{N} + \sigma_b\beta`), whose forward pass has
the same law as the standard one and whose parameter gradients give :math:`\Theta`. Order means
what it says: ``serial(Phi(phi), Dense(...))`` maps pre-activation covariances,
``serial(Dense(...), Phi(phi))`` post-activation ones.

Specs are JAX pytrees: variances are leaves (so a block can be traced, jitted and vmapped over
its hyperparameters), activations, filters and depths are static. Each spec checks its
arguments once, at construction, and raises ``ValueError``/``TypeError`` naming the parameter.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib.activations import Activation, activation

Array = jax.Array
Shape = tuple[int, ...]


def _pytree(data: tuple[str, ...], meta: tuple[str, ...]):
    """Register a frozen dataclass as a pytree without re-running its checks on unflatten."""

    def register(cls):
        def flatten(obj):
            return tuple(getattr(obj, f) for f in data), tuple(getattr(obj, f) for f in meta)

        def unflatten(aux, children):
            obj = object.__new__(cls)
            for name, value in zip(data, children, strict=True):
                object.__setattr__(obj, name, value)
            for name, value in zip(meta, aux, strict=True):
                object.__setattr__(obj, name, value)
            return obj

        jax.tree_util.register_pytree_node(cls, flatten, unflatten)
        return cls

    return register


def _f64(x) -> Array:
    return jnp.asarray(x, dtype=jnp.float64)


class Layer(abc.ABC):
    """Base class of the specs (ARCHITECTURE.md, "How to add a layer"); ``kernel`` and ``apply``
    are abstract, ``init`` defaults to a layer without parameters."""

    @abc.abstractmethod
    def kernel(self, K: Array, T: Array | None, spatial: Shape) -> tuple:
        """The mean-field map ``(K, T, spatial) -> (K', T', spatial')`` on ``(m, m)`` site
        matrices (``T = None``: the NNGP kernel alone). Unchecked and traceable."""

    def init(self, key: Array, in_shape: Shape, width: int) -> tuple[Shape, Any]:
        """``(out_shape, params)`` of a finite random layer for one input of shape
        ``in_shape``; layers with weights output ``width`` units or channels."""
        return in_shape, ()

    @abc.abstractmethod
    def apply(self, params, x: Array, key: Array | None = None) -> Array:
        """The finite layer on a batch ``x`` of shape ``(n, *in_shape)``; ``key`` only for
        layers that draw at every forward pass (:class:`Dropout`)."""

    def sublayers(self) -> tuple[Layer, ...]:
        """The specs this one is made of (for walking a composition)."""
        return ()


def walk(layer: Layer):
    """Every spec in a composition, depth first, the composition itself first."""
    yield layer
    for sub in layer.sublayers():
        yield from walk(sub)


# --- the elementary layers ---------------------------------------------------------------------


def _sites(K: Array, n_pos: int) -> int:
    if K.shape[0] % n_pos:
        raise ValueError(f"kernel of size {K.shape[0]} is not a multiple of {n_pos} positions")
    return K.shape[0] // n_pos


@_pytree(data=("sigma_w2", "sigma_b2"), meta=())
@dataclass(frozen=True, eq=False)
class Dense(Layer):
    r"""Fully connected layer :math:`h = W y + b`, :math:`W_{ij}\sim\mathcal{N}(0,
    \sigma_w^2/N_\text{in})`, :math:`b_i\sim\mathcal{N}(0,\sigma_b^2)`, ``width`` outputs.

    On a spatial representation it acts on the channel axis at every position (a 1x1
    convolution). Kernel map :math:`K' = \sigma_w^2 K + \sigma_b^2` (Lee et al. 2018),
    :math:`\Theta' = K' + \sigma_w^2\Theta` (Jacot et al. 2018, Theorem 1).
    """

    sigma_w2: Any
    sigma_b2: Any = 0.0

    def __post_init__(self):
        V.variance("sigma_w2", self.sigma_w2)
        V.variance("sigma_b2", self.sigma_b2)

    def kernel(self, K, T, spatial):
        sw, sb = _f64(self.sigma_w2), _f64(self.sigma_b2)
        K2 = sw * K + sb
        return K2, None if T is None else K2 + sw * T, spatial

    def init(self, key, in_shape, width):
        V.positive_int("width", width)
        z = jax.random.normal(key, (in_shape[-1] + 1, width), dtype=jnp.float64)
        return in_shape[:-1] + (width,), (z[:-1], z[-1])

    def apply(self, params, x, key=None):
        w, b = params
        sw, sb = jnp.sqrt(_f64(self.sigma_w2)), jnp.sqrt(_f64(self.sigma_b2))
        return sw * (x @ w) / math.sqrt(w.shape[0]) + sb * b


@_pytree(data=(), meta=("phi",))
@dataclass(frozen=True, eq=False)
class Phi(Layer):
    r"""Elementwise activation :math:`y = \phi(h)` (a name or an
    :class:`~mftlib.activations.Activation`).

    Kernel map :math:`K' = \mathbb{E}_{u\sim\mathcal{N}(0,K)}[\phi(u)\phi(u)^\top]` (closed forms
    for relu, erf, linear; Gauss-Hermite quadrature otherwise) and
    :math:`\Theta' = \mathbb{E}[\phi'(u)\phi'(u)^\top]\odot\Theta`.
    """

    phi: Any = "tanh"

    def __post_init__(self):
        object.__setattr__(self, "phi", activation(self.phi))

    def kernel(self, K, T, spatial):
        act: Activation = self.phi
        K2 = act.moment_matrix(K)
        return K2, None if T is None else act.deriv_moment_matrix(K) * T, spatial

    def apply(self, params, x, key=None):
        return self.phi.fn(x)


@_pytree(data=("rho",), meta=())
@dataclass(frozen=True, eq=False)
class Dropout(Layer):
    r"""Dropout with keep probability :math:`\rho\in(0,1]`: :math:`y = x\,p/\rho`,
    :math:`p\sim\mathrm{Bernoulli}(\rho)` for every unit, position and input, drawn at every
    forward pass (Schoenholz et al. 2017, the dropout mean field).

    Two sites never share a mask, so only the diagonal of the kernels changes:
    :math:`K'_{aa} = K_{aa}/\rho`, :math:`\Theta'_{aa} = \Theta_{aa}/\rho`.
    """

    rho: Any = 1.0

    def __post_init__(self):
        V.real("rho", self.rho, lo=0.0, hi=1.0, lo_open=True)

    def kernel(self, K, T, spatial):
        boost = jnp.eye(K.shape[0]) * (1.0 / _f64(self.rho) - 1.0) + 1.0
        return K * boost, None if T is None else T * boost, spatial

    def apply(self, params, x, key=None):
        if key is None:
            raise ValueError("Dropout draws masks at every forward pass: pass key=")
        rho = _f64(self.rho)
        keep = jax.random.bernoulli(key, rho, x.shape)
        return jnp.where(keep, x / rho, 0.0)


def _offsets(v: np.ndarray) -> tuple[tuple[tuple[int, ...], float], ...]:
    centre = [(k - 1) // 2 for k in v.shape]
    return tuple(
        (tuple(int(i) - c for i, c in zip(idx, centre, strict=True)), float(v[idx]))
        for idx in np.ndindex(v.shape)
        if v[idx] > 0
    )


def diagonal_convolution(K: Array, offsets, spatial: Shape) -> Array:
    r""":math:`\mathcal{A}_v(K)_{a\alpha, b\alpha'} = \sum_\beta v_\beta
    K_{a,\alpha+\beta;\,b,\alpha'+\beta}` on an ``(n P, n P)`` site matrix (unchecked; circular
    padding; ``offsets`` as ``((beta, v_beta), ...)``). With no spatial axes it is the identity.
    """
    if not spatial:
        return K
    P = int(np.prod(spatial))
    n = _sites(K, P)
    d = len(spatial)
    G = K.reshape((n,) + spatial + (n,) + spatial)
    axes = tuple(range(1, 1 + d)) + tuple(range(2 + d, 2 + 2 * d))
    out = jnp.zeros_like(G)
    for beta, w in offsets:
        out = out + w * jnp.roll(G, tuple(-b for b in beta) * 2, axis=axes)
    return out.reshape(K.shape)


@_pytree(data=("sigma_w2", "sigma_b2"), meta=("offsets", "filter_shape"))
@dataclass(frozen=True, eq=False)
class Conv(Layer):
    r"""Stride-1 convolution with circular padding, filter taps :math:`\beta` and
    :math:`W_{\beta ij}\sim\mathcal{N}(0, \sigma_w^2 v_\beta/C_\text{in})`, ``width`` output
    channels (Xiao et al. 2018).

    ``filter_size`` (odd) and ``dims`` (1 or 2) give the uniform footprint
    :math:`v_\beta = 1/k^\text{dims}`; ``v`` (non-negative, summing to 1) sets any other, its
    tap :math:`\beta = 0` at index ``(k - 1) // 2`` along each axis.
    Kernel map :math:`K' = \mathcal{A}_v(\sigma_w^2 K + \sigma_b^2)`, the dense map followed by
    the diagonal convolution :func:`diagonal_convolution`; :math:`\Theta' = K' +
    \sigma_w^2\mathcal{A}_v(\Theta)`. On a representation without spatial axes it is
    :class:`Dense` (the mean-field analysis of a spatially uniform state).
    """

    sigma_w2: Any
    sigma_b2: Any = 0.0
    filter_size: int = 3
    dims: int = 1
    v: Any = None
    offsets: tuple = field(init=False, repr=False)
    filter_shape: tuple = field(init=False, repr=False)

    def __post_init__(self):
        V.variance("sigma_w2", self.sigma_w2)
        V.variance("sigma_b2", self.sigma_b2)
        if self.v is None:
            k = V.positive_int("filter_size", self.filter_size)
            if k % 2 == 0:
                raise ValueError(f"filter_size must be odd (centred filter), got {k}")
            if self.dims not in (1, 2):
                raise ValueError(f"dims must be 1 or 2, got {self.dims!r}")
            v = np.full((k,) * self.dims, 1.0 / k**self.dims)
        else:
            v = np.asarray(V.matrix("v", self.v, ndim=np.ndim(self.v)), dtype=np.float64)
            if v.ndim not in (1, 2):
                raise ValueError(f"v must be a 1-D or 2-D footprint, got shape {v.shape}")
            if np.any(v < 0) or abs(v.sum() - 1.0) > 1e-9:
                raise ValueError("v must be non-negative and sum to 1 (sigma_w2's share per tap)")
        object.__setattr__(self, "offsets", _offsets(v))
        object.__setattr__(self, "filter_shape", v.shape)

    def kernel(self, K, T, spatial):
        if spatial and len(spatial) != len(self.filter_shape):
            raise ValueError(
                f"a {len(self.filter_shape)}-D filter on a {len(spatial)}-D input {spatial}"
            )
        if any(k > n for k, n in zip(self.filter_shape, spatial, strict=False)):
            raise ValueError(f"filter {self.filter_shape} is larger than the input {spatial}")
        sw, sb = _f64(self.sigma_w2), _f64(self.sigma_b2)
        K2 = diagonal_convolution(sw * K + sb, self.offsets, spatial)
        if T is None:
            return K2, None, spatial
        return K2, K2 + sw * diagonal_convolution(T, self.offsets, spatial), spatial

    def init(self, key, in_shape, width):
        V.positive_int("width", width)
        if len(in_shape) != len(self.filter_shape) + 1:
            raise ValueError(
                f"Conv with a {len(self.filter_shape)}-D filter needs inputs (*spatial, channels) "
                f"with {len(self.filter_shape)} spatial axes, got one input of shape {in_shape}"
            )
        c_in = in_shape[-1]
        z = jax.random.normal(key, (len(self.offsets) * c_in + 1, width), dtype=jnp.float64)
        return in_shape[:-1] + (width,), (z[:-1].reshape(len(self.offsets), c_in, width), z[-1])

    def apply(self, params, x, key=None):
        w, b = params
        sw, sb = jnp.sqrt(_f64(self.sigma_w2)), jnp.sqrt(_f64(self.sigma_b2))
        axes = tuple(range(1, x.ndim - 1))
        out = 0.0
        for (beta, vb), wb in zip(self.offsets, w, strict=True):
            # y_alpha = sum_beta x_{alpha+beta} W_beta (indices modulo the spatial shape)
            out = out + math.sqrt(vb) * (jnp.roll(x, tuple(-s for s in beta), axes) @ wb)
        return sw * out / math.sqrt(w.shape[1]) + sb * b


@_pytree(data=(), meta=())
@dataclass(frozen=True, eq=False)
class GlobalAvgPool(Layer):
    r"""Mean over the spatial positions, :math:`y = P^{-1}\sum_\alpha h_\alpha`: the kernels
    become :math:`K'_{ab} = P^{-2}\sum_{\alpha\alpha'} K_{a\alpha, b\alpha'}` (same for
    :math:`\Theta`), a fully connected representation."""

    def kernel(self, K, T, spatial):
        if not spatial:
            return K, T, spatial
        P = int(np.prod(spatial))
        n = _sites(K, P)

        def pool(M):
            return M.reshape(n, P, n, P).mean(axis=(1, 3))

        return pool(K), None if T is None else pool(T), ()

    def init(self, key, in_shape, width):
        return in_shape[-1:], ()

    def apply(self, params, x, key=None):
        return x.reshape(x.shape[0], -1, x.shape[-1]).mean(axis=1)


# --- combinators -------------------------------------------------------------------------------


def _key_for(key, i):
    return None if key is None else jax.random.fold_in(key, i)


@_pytree(data=("layers",), meta=())
@dataclass(frozen=True, eq=False)
class Serial(Layer):
    """Layers applied in order (made by :func:`serial`)."""

    layers: tuple

    def sublayers(self):
        return self.layers

    def kernel(self, K, T, spatial):
        for layer in self.layers:
            K, T, spatial = layer.kernel(K, T, spatial)
        return K, T, spatial

    def init(self, key, in_shape, width):
        params = []
        for i, layer in enumerate(self.layers):
            in_shape, p = layer.init(jax.random.fold_in(key, i), in_shape, width)
            params.append(p)
        return in_shape, tuple(params)

    def apply(self, params, x, key=None):
        for i, (layer, p) in enumerate(zip(self.layers, params, strict=True)):
            x = layer.apply(p, x, _key_for(key, i))
        return x


def serial(*layers: Layer) -> Serial:
    """Compose specs: ``serial(a, b)`` applies ``a`` then ``b``, to networks and kernels alike."""
    if not layers:
        raise ValueError("serial needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"serial: argument {i} is a {type(layer).__name__}, not a layer spec")
    return Serial(tuple(layers))


@_pytree(data=("branch",), meta=())
@dataclass(frozen=True, eq=False)
class Residual(Layer):
    r"""Skip connection :math:`x' = x + \mathrm{branch}(x)` (He et al. 2016; Yang & Schoenholz
    2017). The branch's output weights have mean zero, so the cross terms vanish and both kernels
    add: :math:`K' = K + \mathrm{branch}_K(K)`, :math:`\Theta' = \Theta + \mathrm{branch}_\Theta`.
    The full resnet block of Yang & Schoenholz is
    ``Residual(serial(Dense(sigma_w2, sigma_b2), Phi(phi), Dense(sigma_v2, sigma_a2)))``; the
    reduced one ``Residual(serial(Phi(phi), Dense(sigma_v2, sigma_a2)))``.
    """

    branch: Layer

    def __post_init__(self):
        if not isinstance(self.branch, Layer):
            raise TypeError(f"Residual: branch must be a layer spec, got {self.branch!r}")

    def sublayers(self):
        return (self.branch,)

    def kernel(self, K, T, spatial):
        Kb, Tb, sb = self.branch.kernel(K, T, spatial)
        if sb != spatial or Kb.shape != K.shape:
            raise ValueError("Residual: the branch must keep the representation's shape")
        return K + Kb, None if T is None else T + Tb, spatial

    def init(self, key, in_shape, width):
        out_shape, p = self.branch.init(key, in_shape, width)
        if out_shape != in_shape:
            raise ValueError(
                f"Residual: the branch maps shape {in_shape} to {out_shape}; it must keep it "
                "(put a Dense or Conv to the width before the residual blocks)"
            )
        return in_shape, p

    def apply(self, params, x, key=None):
        return x + self.branch.apply(params, x, key)


@_pytree(data=("block",), meta=("depth",))
@dataclass(frozen=True, eq=False)
class Repeat(Layer):
    """``depth`` independent copies of ``block`` in a ``lax.scan`` (made by :func:`repeat`)."""

    block: Layer
    depth: int

    def sublayers(self):
        return (self.block,)

    def kernel(self, K, T, spatial):
        def step(carry, _):
            K, T = carry
            K, T, out = self.block.kernel(K, T, spatial)
            if out != spatial:
                raise ValueError("repeat: the block must keep the representation's shape")
            return (K, T), None

        (K, T), _ = jax.lax.scan(step, (K, T), None, length=self.depth)
        return K, T, spatial

    def init(self, key, in_shape, width):
        if self.depth == 0:
            return in_shape, ()
        keys = jax.random.split(key, self.depth)
        out_shape, _ = self.block.init(keys[0], in_shape, width)
        if out_shape != in_shape:
            raise ValueError(
                f"repeat: the block maps shape {in_shape} to {out_shape}; a repeated block must "
                "keep it"
            )
        return in_shape, jax.vmap(lambda k: self.block.init(k, in_shape, width)[1])(keys)

    def apply(self, params, x, key=None):
        if self.depth == 0:
            return x

        def step(h, args):
            p, i = args
            return self.block.apply(p, h, _key_for(key, i)), None

        h, _ = jax.lax.scan(step, x, (params, jnp.arange(self.depth)))
        return h


def repeat(block: Layer, depth: int) -> Repeat:
    """``depth`` copies of ``block`` with independent weights (one compiled ``lax.scan``)."""
    if not isinstance(block, Layer):
        raise TypeError(f"repeat: block must be a layer spec, got {type(block).__name__}")
    return Repeat(block, V.nonneg_int("depth", depth))
