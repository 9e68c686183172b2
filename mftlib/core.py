r"""The composable mean-field engine: analyse, kernels and simulate any :mod:`mftlib.layers` block.

* :func:`mftlib.analyse` reads the fixed points of a block's covariance map and the linearisation at
  them through the generic toolbox :mod:`mftlib.dynamics`: :math:`q^*` (the stable fixed point of
  the length map), :math:`c^*`, the slopes :math:`\chi_1` (per-layer growth of squared
  gradients), :math:`\chi_q`, :math:`\chi_c` and the depth scales
  :math:`\xi = -1/\log|\chi|` (Poole et al. 2016; Schoenholz et al. 2017). Blocks without a
  fixed point (residual blocks, whose length grows without bound) get a typed answer with the
  growth law read off the iterated map.
* :func:`mftlib.analyse_grid` does the same over a grid of hyperparameters (``jax.vmap``): the phase
  diagram of any block.
* :func:`mftlib.kernels` gives the NNGP kernel and the NTK of a composed network.
* :func:`mftlib.simulate` draws finite random networks from the *same* spec and measures what
  the theory predicts, layer by layer, with the prediction alongside.

Slopes come from the NTK channel of the layers: by Price's theorem the derivative of a layer's
covariance map along an off-diagonal entry is :math:`\mathbb{E}[\phi'\phi']`, exactly the factor
the layer applies to :math:`\Theta`; and the diagonal factor of that channel is the growth of
backpropagated squared gradients under the gradient-independence assumption. Both are
linear in :math:`\Theta`, so no derivative of a closed form at :math:`c = 1` (where
:math:`\arccos'` is infinite) is ever needed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dynamics
from mftlib.layers import Conv, Dense, Layer, repeat, walk

Array = jax.Array

#: where q = 0 is an unstable fixed point, the search for q* starts above it
TINY_Q = 1e-14
#: the growth law of a block without a fixed point is read between these depths of the map
GROWTH_WINDOW = (1_000, 10_000)


class MeanField(NamedTuple):
    r"""What :func:`mftlib.analyse` finds for a block.

    Attributes:
        q_star: stable fixed point of the length map (``inf`` where the length grows without
            bound; then every other quantity is NaN).
        c_star: stable fixed point of the correlation map at :math:`q^*` (1.0 in the ordered
            phase).
        chi1: per-block factor of backpropagated squared gradients at :math:`q^*` (for a dense
            block, :math:`\sigma_w^2\mathbb{E}\phi'(\sqrt{q^*}z)^2`, Poole et al. 2016); also the
            slope of the correlation map at :math:`c = 1` when no layer touches the diagonal
            alone (no dropout).
        chi_q: slope of the length map at :math:`q^*`.
        chi_c: slope of the correlation map at :math:`c^*`.
        xi_q, xi_c: depth scales :math:`-1/\log|\chi_q|`, :math:`-1/\log|\chi_c|` (``inf`` at and
            beyond criticality).
        has_fixed_point: whether :math:`q^*` is finite.
        growth_exponent: without a fixed point, the apparent exponent :math:`\gamma` of
            :math:`q^l \propto l^\gamma`, from the iterated length map between depths
            :data:`mftlib.core.GROWTH_WINDOW` starting at :math:`q^0 = 1` (``inf`` for exponential
            growth);
            NaN where there is a fixed point.
    """

    q_star: Array
    c_star: Array
    chi1: Array
    chi_q: Array
    chi_c: Array
    xi_q: Array
    xi_c: Array
    has_fixed_point: Array
    growth_exponent: Array


class Kernels(NamedTuple):
    """NNGP kernel and NTK of a network, each ``(n1, n2)`` (``(n1, *spatial, n2, *spatial)``
    where the network ends on a spatial representation)."""

    nngp: Array
    ntk: Array


class Simulation(NamedTuple):
    r"""Finite random networks drawn from a spec, next to the mean-field prediction.

    Layer ``l = 0`` is the stem's output, ``l = 1..depth`` the outputs of the blocks.

    Attributes:
        kernel: ``(n_seeds, depth+1, m, m)``, :math:`N^{-1}\sum_i h^l_i(s) h^l_i(s')` over the
            ``m`` sites (inputs, or inputs times positions).
        grad: ``(n_seeds, depth+1, n)``, :math:`\|\partial(v_a\cdot h^L(x_a))/\partial
            h^l(x_a)\|^2` with an independent random readout :math:`v_a\sim\mathcal{N}(0, I/U)`
            per input (``U`` units), so that the last layer's value is 1 in expectation.
        theory_kernel: ``(depth+1, m, m)``, the covariance map iterated from the same inputs.
        theory_grad: ``(depth+1, n)``, the product of the per-block gradient factors (the
            diagonal of the NTK channel's linear part, averaged over each input's positions)
            along the theory trajectory, 1 at the last layer.
        width: the width ``N`` of the simulated networks.
    """

    kernel: Array
    grad: Array
    theory_kernel: Array
    theory_grad: Array
    width: int

    def mean(self, name: str) -> np.ndarray:
        """Mean over seeds of ``kernel`` or ``grad``."""
        return np.asarray(getattr(self, name)).mean(axis=0)

    def stderr(self, name: str) -> np.ndarray:
        """Standard error over seeds (sample standard deviation / sqrt(n_seeds)); needs >= 2."""
        x = np.asarray(getattr(self, name))
        if x.shape[0] < 2:
            raise ValueError("a standard error needs n_seeds >= 2")
        return x.std(axis=0, ddof=1) / math.sqrt(x.shape[0])


# --- checks -------------------------------------------------------------------------------------


def _check_layer(name: str, block) -> Layer:
    if not isinstance(block, Layer):
        raise TypeError(
            f"{name} must be a layer spec from mftlib.layers (Dense, Phi, serial, ...), "
            f"got {type(block).__name__}"
        )
    return block


def _check_square_block(block: Layer) -> Layer:
    _check_layer("block", block)
    out, _, spatial = jax.eval_shape(lambda: block.kernel(jnp.ones((2, 2)), None, ()))
    if out.shape != (2, 2) or spatial != ():
        raise ValueError(
            "block must map the covariance of a fully connected representation to itself "
            f"(a spatial-changing or pooling layer has no fixed point), got shape {out.shape}"
        )
    return block


# --- the length and correlation maps of a block ------------------------------------------------


def _map(block: Layer, S: Array) -> Array:
    return block.kernel(S, None, ())[0]


def _tangent(block: Layer, S: Array, T: Array) -> Array:
    """The linear part of the NTK channel at covariance S, applied to T."""
    _, T1, _ = block.kernel(S, T, ())
    _, T0, _ = block.kernel(S, jnp.zeros_like(T), ())
    return T1 - T0


def _pair(q, c):
    return q * jnp.array([[1.0, c], [c, 1.0]])


_OFF = jnp.array([[0.0, 1.0], [1.0, 0.0]])


def _q_star(block: Layer, q0=1.0):
    def r(q):
        return _map(block, jnp.reshape(q, (1, 1)))[0, 0] - q

    # Every q fixed (relu at sigma_w2 = 2, sigma_b2 = 0): q0, the convention of mftlib.q_star.
    every_q_fixed = (r(0.0) == 0.0) & (r(q0) == 0.0) & (r(2.0 * q0) == 0.0)
    return jnp.where(every_q_fixed, q0, dynamics.stable_fixed_point_1d(r, tiny=TINY_Q))


def mean_field(block: Layer) -> MeanField:
    """Every quantity of :class:`MeanField` but the growth law (traced; vmappable)."""
    q = _q_star(block)
    finite = jnp.isfinite(q)
    qs = jnp.where(finite, q, 1.0)

    def C(c):
        return _map(block, _pair(qs, c))[0, 1] / qs

    def chi_c_at(c):
        return _tangent(block, _pair(qs, c), _OFF)[0, 1]

    c1 = C(1.0)
    slope1 = chi_c_at(1.0)
    c_one_fixed = jnp.abs(c1 - 1.0) <= 1e-12

    # One root search for both cases, sharing each evaluation of C. With c = 1 a fixed point:
    # (C(c) - c)/(1 - c) = 1 - (C(1) - C(c))/(1 - c) on [0, 1), which has no root at c = 1 (as
    # mftlib.dense does). Without (dropout: C(1) < 1): C(c) - c on [0, 1].
    def f(c):
        cc = C(c)
        one_minus = jnp.where(c < 1.0, 1.0 - c, 1.0)
        return jnp.where(c_one_fixed, 1.0 - (c1 - cc) / one_minus, cc - c)

    f0 = f(0.0)
    f1 = jnp.where(c_one_fixed, 1.0 - slope1, c1 - 1.0)
    root = dynamics.find_root(f, 0.0, 1.0, g_lo=f0, g_hi=f1).value
    ordered = slope1 <= 1.0
    c = jnp.where(c_one_fixed, jnp.where(ordered, 1.0, jnp.where(f0 <= 0.0, 0.0, root)), root)

    chi_c = chi_c_at(c)
    chi1 = _tangent(block, jnp.reshape(qs, (1, 1)), jnp.ones((1, 1)))[0, 0]

    def length(x):
        return _map(block, jnp.reshape(x, (1, 1)))[0, 0]

    chi_q_diff = jax.jvp(length, (jnp.where(qs > 0, qs, 1.0),), (1.0,))[1]
    chi_q_zero = (length(TINY_Q) - length(0.0)) / TINY_Q
    chi_q = jnp.where(qs > 0, chi_q_diff, chi_q_zero)
    nan = jnp.nan

    def keep(x):
        return jnp.where(finite, x, nan)

    return MeanField(
        q_star=q,
        c_star=keep(c),
        chi1=keep(chi1),
        chi_q=keep(chi_q),
        chi_c=keep(chi_c),
        xi_q=keep(dynamics.depth_scale(chi_q)),
        xi_c=keep(dynamics.depth_scale(chi_c)),
        has_fixed_point=finite,
        growth_exponent=jnp.where(finite, nan, nan),
    )


_mean_field_jit = jax.jit(mean_field)
_q_star_jit = jax.jit(_q_star)


@jax.jit
def _growth_exponent(block: Layer) -> Array:
    lo, hi = GROWTH_WINDOW
    traj = dynamics.iterate(lambda q: _map(block, q.reshape(1, 1))[0, 0], 1.0, hi)
    a, b = traj[lo], traj[hi]
    gamma = jnp.log(b / a) / math.log(hi / lo)
    return jnp.where(jnp.isfinite(b), gamma, jnp.inf)


def analyse(block: Layer) -> MeanField:
    r"""Mean-field analysis of a block that maps a fully connected representation to itself.

    The block's length map :math:`q \mapsto F([[q]])` is searched for its stable fixed point
    (:func:`mftlib.dynamics.stable_fixed_point_1d`), its correlation map
    :math:`c \mapsto F(q^*\begin{pmatrix}1&c\\c&1\end{pmatrix})_{12}/q^*` for the stable
    :math:`c^*` (:func:`mftlib.dynamics.find_root`), and the slopes are read off the linear part
    of the layers' NTK channel (module docstring). For the dense block
    ``serial(Phi(phi), Dense(sigma_w2, sigma_b2))`` these are :func:`mftlib.q_star`,
    :func:`mftlib.c_star`, :func:`mftlib.chi1` and :func:`mftlib.depth_scales` (Poole et al.
    2016; Schoenholz et al. 2017), to 1e-10.

    Where the length grows without bound (every residual block, relu beyond
    :math:`\sigma_w^2 = 2`) there is no fixed point: ``q_star`` is ``inf``, the other quantities
    NaN, and ``growth_exponent`` the apparent :math:`\gamma` of :math:`q^l\propto l^\gamma`
    (:class:`MeanField`).
    """
    _check_square_block(block)
    q = _q_star_jit(block)
    if np.isfinite(float(q)):
        return _mean_field_jit(block)
    # No fixed point: only the growth law is defined (and the correlation search is not compiled).
    nan = jnp.float64(jnp.nan)
    return MeanField(q, nan, nan, nan, nan, nan, nan, jnp.bool_(False), _growth_exponent(block))


def analyse_grid(make_block, *grids) -> dict[str, Array]:
    """:func:`mftlib.analyse` over the outer product of hyperparameter grids (``jax.vmap``, jitted).

    ``make_block(a, b, ...)`` builds the block from one value of each grid; the result maps each
    field of :class:`MeanField` but ``growth_exponent`` to an array of shape
    ``(len(grid_1), len(grid_2), ...)``, axis 0 running over the first grid.
    """
    if not callable(make_block):
        raise TypeError("make_block must be a function of the grid values returning a block")
    if not grids:
        raise ValueError("analyse_grid needs at least one grid")
    for i, g in enumerate(grids):
        V.grid(f"grids[{i}]", g)
    _check_square_block(make_block(*(float(np.asarray(g)[0]) for g in grids)))

    def one(*args):
        out = mean_field(make_block(*args))._asdict()
        out.pop("growth_exponent")
        return out

    return dynamics.grid_map(one, *grids)


# --- kernels ------------------------------------------------------------------------------------


def _check_inputs(name: str, x) -> np.ndarray:
    if np.ndim(x) < 2:
        raise ValueError(f"{name} must be (n, d) or (n, *spatial, channels), got {np.shape(x)}")
    V.matrix(name, x, ndim=np.ndim(x))
    return x


def _input_kernel(x: Array) -> tuple[Array, tuple[int, ...]]:
    """K^in = x x^T / channels over sites, and the spatial shape."""
    spatial = tuple(x.shape[1:-1])
    flat = x.reshape(-1, x.shape[-1])
    return flat @ flat.T / x.shape[-1], spatial


def _kernels_impl(net: Layer, x: Array, ntk: bool):
    K, spatial = _input_kernel(x)
    T = jnp.zeros_like(K) if ntk else None
    K, T, out = net.kernel(K, T, spatial)
    # The output's spatial shape is static; it leaves jit as the shape of an empty marker.
    return K, T, jnp.zeros(out + (0,))


_kernels_jit = jax.jit(_kernels_impl, static_argnums=2)


def kernels(net: Layer, x1, x2=None, *, ntk: bool = True) -> Kernels:
    r"""NNGP kernel :math:`K` and NTK :math:`\Theta` of a composed network between ``x1`` and
    ``x2`` (``None``: ``x1`` with itself).

    Inputs are ``(n, d)`` for fully connected networks, ``(n, *spatial, channels)`` for
    convolutional ones; the input kernel is :math:`x\cdot x'/d` (over channels, per pair of
    positions), and the NTK starts at 0 (inputs are not trained). With ``ntk=False`` only
    :math:`K` is computed (``ntk`` field is ``None``). Each layer's map is in
    :mod:`mftlib.layers`; the network ``serial(Dense(sw, sb), repeat(serial(Phi(phi),
    Dense(sw, sb)), depth))`` gives :func:`mftlib.nngp_kernel` and :func:`mftlib.ntk_kernel`.
    """
    _check_layer("net", net)
    x1 = _check_inputs("x1", x1)
    n1 = np.shape(x1)[0]
    if x2 is None:
        x = jnp.asarray(x1, jnp.float64)
    else:
        x2 = _check_inputs("x2", x2)
        if np.shape(x2)[1:] != np.shape(x1)[1:]:
            raise ValueError(
                f"x1 and x2 must have the same shape per input, got {np.shape(x1)} and "
                f"{np.shape(x2)}"
            )
        x = jnp.concatenate([jnp.asarray(x1, jnp.float64), jnp.asarray(x2, jnp.float64)])
    K, T, marker = _kernels_jit(net, x, ntk)
    spatial = tuple(marker.shape[:-1])
    P = int(np.prod(spatial)) if spatial else 1
    n = x.shape[0]

    def cut(M):
        if M is None:
            return None
        G = M.reshape(n, P, n, P)
        G = G[:n1, :, :n1, :] if x2 is None else G[:n1, :, n1:, :]
        if not spatial:
            return G[:, 0, :, 0]
        return G.reshape((G.shape[0],) + spatial + (G.shape[2],) + spatial)

    return Kernels(cut(K), cut(T))


# --- finite networks -----------------------------------------------------------------------------


def default_stem(block: Layer) -> Layer:
    """The input layer :func:`mftlib.simulate` puts before the blocks: a copy of the block's first
    ``Dense`` (or ``Conv``), so that layer 0 has the pre-activation kernel
    :math:`\\sigma_b^2 + \\sigma_w^2 x\\cdot x'/d` of :func:`mftlib.nngp_kernel`."""
    for layer in walk(block):
        if isinstance(layer, (Dense, Conv)):
            return layer
    raise ValueError("the block has no Dense or Conv layer to copy as the input layer: pass stem=")


def _theory(stem: Layer, block: Layer, x: Array, depth: int, n: int):
    K, spatial = _input_kernel(x)
    K0, _, spatial = stem.kernel(K, None, spatial)

    def F(S):
        return block.kernel(S, None, spatial)[0]

    traj = dynamics.iterate(F, K0, depth)
    P = K0.shape[0] // n

    def factor(S):
        # Diagonal of the NTK channel's linear part at S, averaged over each input's positions.
        _, T1, _ = block.kernel(S, jnp.eye(S.shape[0]), spatial)
        _, T0, _ = block.kernel(S, jnp.zeros_like(S), spatial)
        return jnp.diagonal(T1 - T0).reshape(n, P).mean(axis=1)

    chis = jax.vmap(factor)(traj[:-1])  # (depth, n): block l+1 at its input covariance K^l
    rev = jnp.cumprod(chis[::-1], axis=0)[::-1]
    grad = jnp.concatenate([rev, jnp.ones((1, n))], axis=0)
    return traj, grad


def _one_seed(stem: Layer, block: Layer, x: Array, seed_key: Array, width: int, depth: int):
    k_stem, k_blocks, k_apply, k_read = jax.random.split(seed_key, 4)
    rep = repeat(block, depth)
    shape, p_stem = stem.init(k_stem, tuple(x.shape[1:]), width)
    _, p_rep = rep.init(k_blocks, shape, width)
    n = x.shape[0]

    def forward(eps):
        h0 = stem.apply(p_stem, x, jax.random.fold_in(k_apply, 0)) + eps[0]

        def step(h, args):
            p, e, i = args
            h = block.apply(p, h, jax.random.fold_in(k_apply, i + 1)) + e
            return h, h

        hL, hs = jax.lax.scan(step, h0, (p_rep, eps[1:], jnp.arange(depth)))
        return hL, jnp.concatenate([h0[None], hs])

    eps = jnp.zeros((depth + 1, n) + shape)
    hL, vjp, hs = jax.vjp(forward, eps, has_aux=True)
    units = int(np.prod(shape))
    v = jax.random.normal(k_read, hL.shape, jnp.float64) / math.sqrt(units)
    (delta,) = vjp(v)
    grad = jnp.sum(delta.reshape(depth + 1, n, -1) ** 2, axis=-1)
    flat = hs.reshape(depth + 1, -1, shape[-1])
    kernel = jnp.einsum("lai,lbi->lab", flat, flat) / shape[-1]
    return kernel, grad


_seeds = jax.jit(
    lambda stem, block, x, keys, width, depth: jax.lax.map(
        lambda k: _one_seed(stem, block, x, k, width, depth), keys
    ),
    static_argnums=(4, 5),
)
_theory_jit = jax.jit(_theory, static_argnums=(3, 4))


def simulate(
    block: Layer,
    key: Array,
    x,
    width: int,
    depth: int,
    n_seeds: int = 4,
    stem: Layer | None = None,
) -> Simulation:
    r"""Finite random networks ``serial(stem, repeat(block, depth))`` of width ``width``, drawn
    ``n_seeds`` times from ``jax.random.split(key, n_seeds)``, with the mean-field prediction.

    Measures every layer's empirical kernel over the sites and the squared gradient norms of an
    independent random readout per input (:class:`Simulation`); the prediction is the covariance
    map iterated from the same inputs and the product of the per-block gradient factors. The
    default ``stem`` is :func:`mftlib.core.default_stem`. Seeds run one after another
    (``lax.map``), so
    memory is one network's weights and activations.
    """
    _check_layer("block", block)
    stem = default_stem(block) if stem is None else _check_layer("stem", stem)
    key = V.key(key)
    x = jnp.asarray(_check_inputs("x", x), jnp.float64)
    width = V.positive_int("width", width)
    depth = V.positive_int("depth", depth)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    keys = jax.random.split(key, n_seeds)
    kernel, grad = _seeds(stem, block, x, keys, width, depth)
    theory_kernel, theory_grad = _theory_jit(stem, block, x, depth, x.shape[0])
    return Simulation(kernel, grad, theory_kernel, theory_grad, width)
