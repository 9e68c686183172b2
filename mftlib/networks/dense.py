r"""Finite random fully connected networks in plain JAX, to check mean-field theory by simulation.

Convention (the same as :func:`mftlib.nngp_kernel`): an input :math:`x \in \mathbb{R}^d` gives the
layer-0 pre-activation

.. math::

   h^0 = W^0 x + b^0, \qquad W^0_{ij} \sim \mathcal{N}(0, \sigma_w^2 / d),

and each of the ``depth`` hidden layers applies :math:`\phi` then a dense layer,

.. math::

   h^l = W^l \phi(h^{l-1}) + b^l, \qquad W^l_{ij} \sim \mathcal{N}(0, \sigma_w^2 / N_{l-1}),
   \qquad b^l_i \sim \mathcal{N}(0, \sigma_b^2), \qquad l = 1, \dots, \text{depth},

so there are ``depth + 1`` pre-activation layers :math:`h^0, \dots, h^{\text{depth}}` of widths
:math:`N_0, \dots, N_{\text{depth}}`. As :math:`N_l \to \infty` the empirical moments
:math:`q^l_{ab} = N_l^{-1} \sum_i h^l_i(x_a) h^l_i(x_b)` converge to the NNGP kernel (Poole et al.
2016; Lee et al. 2018). Weights are stored as ``(fan_out, fan_in)``; a batch of inputs is an array
``(n_inputs, d)`` and pre-activations are ``(n_inputs, N_l)``.

Randomness: layer ``l`` of the network drawn from ``key`` uses ``jax.random.fold_in(key, l)`` (one
normal draw for W and b together), so the same key gives the same network whatever the depth. The
functions that draw ``n_seeds`` networks use the keys ``jax.random.split(key, n_seeds)``: seed
``s`` of :func:`preactivation_moments` and :func:`gradient_norms` is the network
``init_dense(jax.random.split(key, n_seeds)[s], ...)``. Those two never hold all the weights at
once: they run layer by layer, drawing each layer's weights for one seed after another (and
drawing them again for backpropagation), so memory stays at about one weight matrix plus the
activations (all layers' for gradients: ``n_seeds * (depth+1) * n_inputs * N`` floats).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate
from mftlib.activations import Activation, activation

Array = jax.Array
Params = list[tuple[Array, Array]]
Widths = int | Sequence[int]
Variance = float | Sequence[float]
PhiLike = str | Activation

# fold_in tag of the readout vector in gradient_norms: far above any layer index.
_READOUT_TAG = 2**31 - 1


# --- validation (on concrete values, before any tracing; mftlib._validate for the common cases) ---


def _check_widths(widths: Widths, depth: int, name: str) -> tuple[int, ...]:
    if isinstance(widths, numbers.Integral) and not isinstance(widths, (bool, np.bool_)):
        widths = [widths] * (depth + 1)
    if isinstance(widths, (str, bytes)) or not isinstance(widths, (Sequence, np.ndarray)):
        raise TypeError(
            f"{name} must be a positive int or a sequence of depth+1 = {depth + 1} ints"
        )
    if len(widths) != depth + 1:
        raise ValueError(f"{name} must have depth+1 = {depth + 1} entries, got {len(widths)}")
    return tuple(_validate.positive_int(name, w) for w in widths)


def _check_variance(value: Variance, depth: int, name: str) -> np.ndarray:
    """Per-layer variances, shape (depth+1,), each finite and >= 0."""
    arr = np.asarray(_validate.variance(name, value), dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(depth + 1, float(arr))
    if arr.shape != (depth + 1,):
        raise ValueError(
            f"{name} must be a scalar or have depth+1 = {depth + 1} entries, got shape {arr.shape}"
        )
    return arr


def _check_x(x, in_dim: int | None = None, name: str = "x") -> Array:
    """Inputs (n_inputs, d): real, finite, and d matching the network when given."""
    _validate.matrix(name, x)
    if in_dim is not None and jnp.shape(x)[1] != in_dim:
        raise ValueError(
            f"{name} must have shape (n_inputs, {in_dim}) to match params, got {jnp.shape(x)}"
        )
    return jnp.asarray(x, dtype=jnp.float64)


def _check_params(params: Params) -> tuple[tuple[Array, Array], ...]:
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise TypeError("params must be a non-empty list of (W, b) pairs, as from init_dense")
    fan_in = None
    for i, pair in enumerate(params):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"params[{i}] must be a (W, b) pair")
        W, b = pair
        if jnp.ndim(W) != 2 or jnp.shape(b) != (jnp.shape(W)[0],):
            raise ValueError(
                f"params[{i}] must be W (fan_out, fan_in) and b (fan_out,), "
                f"got {jnp.shape(W)} and {jnp.shape(b)}"
            )
        if fan_in is not None and jnp.shape(W)[1] != fan_in:
            raise ValueError(
                f"params[{i}]: W has fan_in {jnp.shape(W)[1]}, previous width {fan_in}"
            )
        fan_in = jnp.shape(W)[0]
    return tuple((jnp.asarray(W), jnp.asarray(b)) for W, b in params)


def check_simulation_args(key, x, phi, sigma_w2, sigma_b2, width, depth, n_seeds):
    """Validate the arguments shared by the simulations (:func:`preactivation_moments`,
    :func:`gradient_norms`, :func:`mftlib.networks.dropout.preactivation_moments`).

    Returns ``(key, x, act, sw2, sb2, widths, depth, n_seeds)``: the key, the inputs as float64,
    the :class:`~mftlib.activations.Activation`, the variances per layer (``(depth+1,)`` numpy
    arrays), the ``depth+1`` widths, and the two ints. Raises with the parameter's name.
    """
    depth = _validate.nonneg_int("depth", depth)
    return (
        _validate.key(key),
        _check_x(x),
        activation(phi),
        _check_variance(sigma_w2, depth, "sigma_w2"),
        _check_variance(sigma_b2, depth, "sigma_b2"),
        _check_widths(width, depth, "width"),
        depth,
        _validate.positive_int("n_seeds", n_seeds),
    )


# --- sampling and the forward pass ---------------------------------------------------------------


def sample_layer(layer_key, fan_in: int, fan_out: int, sw2, sb2) -> tuple[Array, Array]:
    """W ~ N(0, sw2 / fan_in) of shape (fan_out, fan_in) and b ~ N(0, sb2) of shape (fan_out,),
    drawn from ``layer_key`` (unchecked, traceable: the draw every simulation here shares).

    One normal draw of shape (fan_out, fan_in + 1), b its last column: each random-number call
    site costs ~0.3 s of XLA compilation on CPU, so the fewer the better.
    """
    z = jax.random.normal(layer_key, (fan_out, fan_in + 1), dtype=jnp.float64)
    return jnp.sqrt(sw2 / fan_in) * z[:, :fan_in], jnp.sqrt(sb2) * z[:, fan_in]


@partial(jax.jit, static_argnames=("fan_in", "fan_out"))
def draw_layer(key, layer, sw2, sb2, *, fan_in: int, fan_out: int) -> tuple[Array, Array]:
    """Layer ``layer`` of the network drawn from ``key``: :func:`sample_layer` with the key
    ``jax.random.fold_in(key, layer)``, as :func:`init_dense` draws it (unchecked, jitted)."""
    return sample_layer(jax.random.fold_in(key, layer), fan_in, fan_out, sw2, sb2)


def init_dense(
    key: Array, in_dim: int, widths: Widths, depth: int, sigma_w2: Variance, sigma_b2: Variance
) -> Params:
    r"""Sample the weights of a random fully connected network.

    Layer :math:`l = 0, \dots, \text{depth}` has :math:`W^l \in \mathbb{R}^{N_l \times N_{l-1}}`
    with entries :math:`\mathcal{N}(0, \sigma_{w,l}^2 / N_{l-1})` (:math:`N_{-1} = d` =
    ``in_dim``) and :math:`b^l \in \mathbb{R}^{N_l}` with entries :math:`\mathcal{N}(0,
    \sigma_{b,l}^2)`, drawn from ``jax.random.fold_in(key, l)`` (one normal draw of shape
    ``(N_l, N_{l-1} + 1)``, b its last column).

    Args:
        key: JAX PRNG key.
        in_dim: input dimension d >= 1.
        widths: N_l, an int (all layers) or a sequence of depth+1 ints.
        depth: number of hidden layers (>= 0); there are depth+1 weight matrices.
        sigma_w2, sigma_b2: weight and bias variances, scalars or sequences of depth+1 values.

    Returns:
        ``[(W^0, b^0), ..., (W^depth, b^depth)]``, float64, W as ``(fan_out, fan_in)``.
    """
    key = _validate.key(key)
    in_dim = _validate.positive_int("in_dim", in_dim)
    depth = _validate.nonneg_int("depth", depth)
    widths = _check_widths(widths, depth, "widths")
    sw2 = _check_variance(sigma_w2, depth, "sigma_w2")
    sb2 = _check_variance(sigma_b2, depth, "sigma_b2")
    fan_ins = (in_dim,) + widths[:-1]
    # One jitted draw per layer: compiled once per layer shape, and no unrolled program whose
    # temporaries XLA would keep for every layer at once.
    return [
        draw_layer(key, i, sw2[i], sb2[i], fan_in=fan_ins[i], fan_out=widths[i])
        for i in range(depth + 1)
    ]


def _forward(params, x: Array, fn: Callable[[Array], Array]) -> list[Array]:
    (W0, b0), *rest = params
    hs = [x @ W0.T + b0]
    for W, b in rest:
        hs.append(fn(hs[-1]) @ W.T + b)
    return hs


@partial(jax.jit, static_argnames=("act",))
def _forward_jit(params, x: Array, *, act: Activation) -> list[Array]:
    return _forward(params, x, act.fn)


def forward(params: Params, x: Array, phi: PhiLike) -> list[Array]:
    r"""Pre-activations :math:`h^0 = W^0 x + b^0`, :math:`h^l = W^l \phi(h^{l-1}) + b^l`.

    Args:
        params: ``[(W^0, b^0), ..., (W^depth, b^depth)]`` as from :func:`init_dense`.
        x: inputs, shape ``(n_inputs, d)``.
        phi: activation name or :class:`~mftlib.activations.Activation`.

    Returns:
        ``[h^0, ..., h^depth]``, each of shape ``(n_inputs, N_l)``. Jitted, and jit-friendly
        (the depth is the static length of ``params``).
    """
    params = _check_params(params)
    x = _check_x(x, params[0][0].shape[1])
    return _forward_jit(params, x, act=activation(phi))


def input_output_jacobian(params: Params, x: Array, phi: PhiLike) -> Array:
    r"""Input-output Jacobian :math:`J_a = \partial h^{\text{depth}}(x_a) / \partial x_a`.

    Computed per input with ``jax.jacfwd`` (d <= output width) or ``jax.jacrev``, vmapped over the
    batch. Its singular values are what dynamical isometry is about (Pennington et al. 2017).

    Returns:
        Array ``(n_inputs, N_depth, d)``.
    """
    params = _check_params(params)
    x = _check_x(x, params[0][0].shape[1])
    return _jacobian(params, x, act=activation(phi))


@partial(jax.jit, static_argnames=("act",))
def _jacobian(params, x: Array, *, act: Activation) -> Array:
    def out(xa: Array) -> Array:
        return _forward(params, xa[None, :], act.fn)[-1][0]

    # Forward mode costs d passes, reverse mode N_depth: take the cheaper.
    jac = jax.jacfwd if x.shape[1] <= params[-1][0].shape[0] else jax.jacrev
    return jax.vmap(jac(out))(x)


# --- moments and gradients over many sampled networks ------------------------------------------


# Networks are simulated one layer at a time, each layer a jitted step over all seeds (lax.map:
# one seed after another), driven by a Python loop. Each step is compiled once per layer shape and
# reused across layers, depths and calls; memory is one weight matrix at a time. (A single jitted
# program with the layers unrolled would not do: XLA on CPU keeps every layer's temporaries.)


@partial(jax.jit, static_argnames=("act", "fan_out"))
def _forward_step(seed_keys, h, layer, sw2, sb2, *, act: Activation | None, fan_out: int):
    """h^l = W^l phi(h^{l-1}) + b^l for every seed, and q^l_ab; layer 0 (act=None): W^0 x + b^0.

    seed_keys (S,), h (S, n, N_{l-1}) -> h^l (S, n, N_l), kernel (S, n, n).
    """

    def one(args):
        key, h_prev = args
        W, b = sample_layer(jax.random.fold_in(key, layer), h_prev.shape[-1], fan_out, sw2, sb2)
        h_new = (h_prev if act is None else act.fn(h_prev)) @ W.T + b
        return h_new, h_new @ h_new.T / fan_out  # q_ab = N^{-1} sum_i h_i(x_a) h_i(x_b)

    return jax.lax.map(one, (seed_keys, h))


def _simulate(seed_keys, x, act: Activation, sw2, sb2, widths, keep_h: bool):
    """Kernels (S, depth+1, n, n) of every seed's network and, with keep_h, the list of h^l."""
    h = jnp.broadcast_to(x, (len(seed_keys),) + x.shape)
    hs, kernels = [], []
    for i, n_out in enumerate(widths):
        h, kernel = _forward_step(
            seed_keys, h, i, sw2[i], sb2[i], act=None if i == 0 else act, fan_out=n_out
        )
        kernels.append(kernel)
        if keep_h:
            hs.append(h)
    return jnp.stack(kernels, axis=1), hs


@partial(jax.jit, static_argnames=("act",))
def _backward_step(seed_keys, delta, h_prev, layer, sw2, *, act: Activation):
    """delta^{l-1} = phi'(h^{l-1}) * (W^l)^T delta^l for every seed, and its squared norms.

    W^l is regenerated from the layer's key (the same draw as the forward pass; b, not needed
    here, comes out 0). delta (S, n, N_l), h_prev (S, n, N_{l-1}) -> (S, n, N_{l-1}), (S, n).
    """

    def one(args):
        key, d, hp = args
        W, _ = sample_layer(jax.random.fold_in(key, layer), hp.shape[-1], d.shape[-1], sw2, 0.0)
        d_new = act.derivative(hp) * (d @ W)
        return d_new, jnp.sum(d_new**2, axis=-1)

    return jax.lax.map(one, (seed_keys, delta, h_prev))


@partial(jax.jit, static_argnames=("n_out", "n_inputs"))
def _readout(seed_keys, *, n_out: int, n_inputs: int) -> Array:
    """delta^L = v ~ N(0, I / N_L) for every seed (the same v for every input): (S, n, N_L)."""

    def one(key):
        v = jax.random.normal(jax.random.fold_in(key, _READOUT_TAG), (n_out,), jnp.float64)
        return jnp.broadcast_to(v / math.sqrt(n_out), (n_inputs, n_out))

    return jax.lax.map(one, seed_keys)


def kernel_correlation(kernel: Array) -> Array:
    """Correlations c_ab = q_ab / sqrt(q_aa q_bb) of a kernel ``(..., n, n)``; 0 off the diagonal
    (1 on it) where a variance vanishes (unchecked, traceable)."""
    q = jnp.diagonal(kernel, axis1=-2, axis2=-1)
    denom = jnp.sqrt(q[..., :, None] * q[..., None, :])
    c = jnp.where(denom > 0, kernel / jnp.where(denom > 0, denom, 1.0), 0.0)
    eye = jnp.eye(kernel.shape[-1], dtype=bool)
    return jnp.where(eye, 1.0, c)


def preactivation_moments(
    key: Array,
    x: Array,
    phi: PhiLike,
    sigma_w2: Variance,
    sigma_b2: Variance,
    width: Widths,
    depth: int,
    n_seeds: int = 1,
) -> dict[str, Array]:
    r"""Empirical pre-activation moments of ``n_seeds`` random networks, layer by layer.

    For each sampled network and layer :math:`l = 0, \dots, \text{depth}`:

    .. math::

       q^l_{ab} = \frac{1}{N_l} \sum_{i=1}^{N_l} h^l_i(x_a)\, h^l_i(x_b), \qquad
       c^l_{ab} = \frac{q^l_{ab}}{\sqrt{q^l_{aa} q^l_{bb}}},

    the finite-width estimates of the length map :math:`q^l` and correlation map :math:`c^l`
    (Poole et al. 2016) and of the NNGP kernel. Networks are drawn from
    ``jax.random.split(key, n_seeds)`` and simulated layer by layer, never stored whole.

    Args:
        key: JAX PRNG key.
        x: inputs ``(n_inputs, d)``.
        phi: activation name or ``Activation``.
        sigma_w2, sigma_b2: variances, scalars or sequences of depth+1 values (layer 0 first).
        width: N_l, an int or a sequence of depth+1 ints.
        depth: number of hidden layers (>= 0).
        n_seeds: number of independent networks (>= 1).

    Returns:
        dict with ``kernel`` ``(n_seeds, depth+1, n, n)`` (:math:`q^l_{ab}`), ``q``
        ``(n_seeds, depth+1, n)`` (its diagonal) and ``c`` ``(n_seeds, depth+1, n, n)`` (where a
        variance is exactly 0 the correlation is undefined and reported as 0, 1 on the diagonal).
    """
    key, x, act, sw2, sb2, widths, depth, n_seeds = check_simulation_args(
        key, x, phi, sigma_w2, sigma_b2, width, depth, n_seeds
    )
    kernel, _ = _simulate(jax.random.split(key, n_seeds), x, act, sw2, sb2, widths, False)
    return {
        "q": jnp.diagonal(kernel, axis1=-2, axis2=-1),
        "c": kernel_correlation(kernel),
        "kernel": kernel,
    }


def gradient_norms(
    key: Array,
    x: Array,
    phi: PhiLike,
    sigma_w2: Variance,
    sigma_b2: Variance,
    width: Widths,
    depth: int,
    n_seeds: int = 1,
) -> Array:
    r"""Squared norms of the backpropagated signal :math:`\|\delta^l\|^2` for random networks.

    For each network and input, with a random readout :math:`v \sim \mathcal{N}(0, I/N_L)`,
    :math:`L` = ``depth`` (so :math:`\|\delta^L\|^2 \approx 1`),

    .. math::

       \delta^l = \frac{\partial (v \cdot h^L)}{\partial h^l}, \qquad
       \delta^L = v, \qquad
       \delta^{l} = \phi'(h^{l}) \odot (W^{l+1})^\top \delta^{l+1}.

    Mean-field theory (Schoenholz et al. 2017, backpropagation of gradients) predicts, at the
    fixed point :math:`q^*` and with equal widths,

    .. math::

       \|\delta^l\|^2 / \|\delta^{l+1}\|^2 \to \chi_1 = \sigma_w^2\,
       \mathbb{E}_z[\phi'(\sqrt{q^*} z)^2].

    Seed ``s`` is the network ``init_dense(jax.random.split(key, n_seeds)[s], ...)``, the same as in
    :func:`preactivation_moments`; its readout is drawn from ``fold_in(seed_key, 2**31 - 1)``.
    Explicit backpropagation, each weight matrix drawn again from its key.

    Returns:
        Array ``(n_seeds, depth+1, n_inputs)``: :math:`\|\delta^l\|^2` summed over the units.
    """
    key, x, act, sw2, sb2, widths, depth, n_seeds = check_simulation_args(
        key, x, phi, sigma_w2, sigma_b2, width, depth, n_seeds
    )
    seed_keys = jax.random.split(key, n_seeds)
    _, hs = _simulate(seed_keys, x, act, sw2, sb2, widths, True)
    delta = _readout(seed_keys, n_out=widths[-1], n_inputs=x.shape[0])
    norms = [jnp.sum(delta**2, axis=-1)]
    for i in range(depth, 0, -1):
        delta, norm = _backward_step(seed_keys, delta, hs[i - 1], i, sw2[i], act=act)
        norms.append(norm)
    return jnp.stack(norms[::-1], axis=1)


# --- inputs with prescribed geometry -------------------------------------------------------------


def make_inputs(key: Array, n: int, d: int, q0: float, c0: float | None = None) -> Array:
    r"""``n`` inputs in :math:`\mathbb{R}^d` with :math:`\|x_a\|^2/d = q_0` exactly.

    The layer-0 pre-activations then have variance :math:`q^0 = \sigma_w^2 q_0 + \sigma_b^2`.
    Without ``c0`` the directions are uniformly random. With ``c0`` every pair has cosine exactly
    :math:`c_0`: the inputs are :math:`X = \sqrt{q_0 d}\, G^{1/2} U` with :math:`U` ``(n, d)``
    orthonormal rows (Gaussian rows orthonormalised by QR, i.e. Gram-Schmidt) and
    :math:`G = (1 - c_0) I + c_0 \mathbf{1}\mathbf{1}^\top`, which needs :math:`n \le d` and
    :math:`-1/(n-1) \le c_0 \le 1` (any :math:`c_0 \in [-1, 1]` for two inputs).

    Returns:
        Array ``(n, d)``, float64.
    """
    key = _validate.key(key)
    n = _validate.positive_int("n", n)
    d = _validate.positive_int("d", d)
    if np.ndim(q0) != 0:
        raise TypeError(f"q0 must be a number (squared norm / d), got {q0!r}")
    q0 = float(_validate.real("q0", q0, lo=0.0))
    scale = math.sqrt(q0 * d)
    if c0 is None:
        g = jax.random.normal(key, (n, d), dtype=jnp.float64)
        return scale * g / jnp.linalg.norm(g, axis=1, keepdims=True)
    if np.ndim(c0) != 0:
        raise TypeError(f"c0 must be a number (a cosine), got {c0!r}")
    # The Gram matrix (1 - c0) I + c0 11^T is positive semi-definite iff c0 >= -1/(n-1).
    lo = -1.0 / (n - 1) if n > 1 else -1.0
    c0 = float(_validate.real("c0", c0, lo=lo, hi=1.0))
    if n > d:
        raise ValueError(f"n must be <= d to prescribe the cosine c0, got n = {n}, d = {d}")
    U = jnp.linalg.qr(jax.random.normal(key, (d, n), dtype=jnp.float64))[0].T
    G = (1.0 - c0) * np.eye(n) + c0 * np.ones((n, n))
    evals, evecs = np.linalg.eigh(G)
    root = (evecs * np.sqrt(np.clip(evals, 0.0, None))) @ evecs.T
    return scale * jnp.asarray(root) @ U


# --- measuring the gradient depth scale -----------------------------------------------------------


def gradient_scale(
    key: Array,
    phi: PhiLike,
    sigma_w2: float,
    sigma_b2: float,
    width: int = 500,
    depth: int = 20,
    n_seeds: int = 4,
    n_inputs: int = 2,
    d: int = 64,
) -> dict:
    r"""Measure the per-layer factor :math:`\chi_1` of squared gradients, and
    :math:`\xi_\nabla = 1/|\log\chi_1|`, in simulated networks.

    ``n_inputs`` inputs of random direction start at the fixed length (first-layer
    :math:`q^0 = q^*`); :func:`gradient_norms` backpropagates a random readout through ``n_seeds``
    networks, and :math:`\|\delta^l\|^2` is averaged over the inputs. Mean-field theory
    (Schoenholz et al. 2017, gradient backpropagation) predicts the mean over networks,
    :math:`\mathbb{E}\|\delta^l\|^2 = \chi_1^{L-l}\,\mathbb{E}\|\delta^L\|^2` with
    :math:`\chi_1 = \sigma_w^2\int\mathcal{D}z\,\phi'(\sqrt{q^*}z)^2`. The estimate is therefore
    taken from the seed-mean sequence :math:`\bar g^l`: :math:`\log\chi_1` is its mean log-ratio
    :math:`\overline{\log(\bar g^{l}/\bar g^{l+1})}` over all layers (:func:`mftlib.fitting.rate`)
    (a mean of per-network log-ratios would be biased low by half their variance), with a
    jackknife standard error over the seeds.

    Args:
        key: JAX PRNG key (inputs from ``fold_in(key, 0)``, networks from ``fold_in(key, 1)``).
        phi, sigma_w2, sigma_b2: the network (``sigma_w2 > 0``).
        width, depth, n_seeds, n_inputs, d: sizes (``depth >= 2``, ``n_seeds >= 2``).

    Returns:
        dict with ``norms`` ``(n_seeds, depth+1)`` (:math:`\|\delta^l\|^2`, mean over inputs),
        ``theory`` ``(depth+1,)`` (:math:`\chi_1^{L-l}` times the seed mean of
        :math:`\|\delta^L\|^2`), ``chi1_fit`` and ``chi1_stderr``, ``xi_fit`` and ``xi_stderr``
        (:math:`1/|\log\chi_1|`, its error by the delta method), and the theory's ``chi1`` and
        ``xi_grad``.

    Raises:
        ValueError: naming the parameter, for a bad variance, size or activation, or where the
            length map has no finite fixed point above ``sigma_b2``.
    """
    from mftlib import dense, fitting  # the mean-field module this simulation checks

    act = activation(phi)
    sw = float(_validate.variance("sigma_w2", sigma_w2, positive=True))
    sb = float(_validate.variance("sigma_b2", sigma_b2))
    depth = _validate.positive_int("depth", depth)
    if depth < 2:
        raise ValueError(f"depth must be >= 2 (a rate needs two ratios), got {depth}")
    n_seeds = _validate.positive_int("n_seeds", n_seeds)
    if n_seeds < 2:
        raise ValueError(f"n_seeds must be >= 2 (the error comes from the seeds), got {n_seeds}")
    n_inputs = _validate.positive_int("n_inputs", n_inputs)
    d = _validate.positive_int("d", d)
    qs = float(dense.q_star(act, sw, sb))
    if not np.isfinite(qs) or qs <= sb:
        raise ValueError(f"gradient_scale needs a finite q* > sigma_b2, got q* = {qs}")
    x = make_inputs(jax.random.fold_in(key, 0), n_inputs, d, (qs - sb) / sw)
    norms = np.asarray(
        gradient_norms(jax.random.fold_in(key, 1), x, act, sw, sb, width, depth, n_seeds)
    ).mean(axis=-1)

    def log_chi(g):  # fitting.rate reads the factor from layer l to l + 1, i.e. 1 / chi_1
        return -float(np.log(fitting.rate(g.mean(axis=0)).value))

    est = log_chi(norms)
    loo = np.array([log_chi(np.delete(norms, s, axis=0)) for s in range(n_seeds)])
    se = float(np.sqrt((n_seeds - 1) / n_seeds * np.sum((loo - loo.mean()) ** 2)))
    chi = float(dense.chi1(act, sw, sb))
    layers = np.arange(depth + 1)
    return {
        "norms": norms,
        "theory": chi ** (depth - layers) * norms[:, -1].mean(),
        "chi1_fit": float(np.exp(est)),
        "chi1_stderr": float(np.exp(est) * se),
        "xi_fit": 1.0 / abs(est) if est != 0.0 else float("inf"),
        "xi_stderr": se / est**2 if est != 0.0 else float("inf"),
        "chi1": chi,
        "xi_grad": float(1.0 / abs(np.log(chi))) if chi != 1.0 else float("inf"),
    }
