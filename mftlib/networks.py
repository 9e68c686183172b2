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
once: they regenerate each layer's weights from its key, inside a ``lax.scan`` when all widths are
equal (a Python loop otherwise), so memory stays at one weight matrix per seed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib._config import ensure_x64
from mftlib.activations import Activation, activation

ensure_x64()

Array = jax.Array
Params = list[tuple[Array, Array]]
Widths = int | Sequence[int]
Variance = float | Sequence[float]
PhiLike = str | Activation

# fold_in tag of the readout vector in gradient_norms: far above any layer index.
_READOUT_TAG = 2**31 - 1


# --- validation (on concrete Python/NumPy values, before any tracing) ----------------------------


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _check_depth(depth) -> int:
    return _check_int(depth, "depth", 0)


def _check_widths(widths: Widths, depth: int, name: str) -> tuple[int, ...]:
    if isinstance(widths, numbers.Integral) and not isinstance(widths, (bool, np.bool_)):
        widths = [widths] * (depth + 1)
    if isinstance(widths, (str, bytes)) or not isinstance(widths, (Sequence, np.ndarray)):
        raise TypeError(
            f"{name} must be a positive int or a sequence of depth+1 = {depth + 1} ints"
        )
    if len(widths) != depth + 1:
        raise ValueError(f"{name} must have depth+1 = {depth + 1} entries, got {len(widths)}")
    return tuple(_check_int(w, name, 1) for w in widths)


def _check_variance(value: Variance, depth: int, name: str) -> np.ndarray:
    """Per-layer variances, shape (depth+1,), each finite and >= 0."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a sequence of depth+1 numbers") from None
    if arr.ndim == 0:
        arr = np.full(depth + 1, float(arr))
    if arr.shape != (depth + 1,):
        raise ValueError(
            f"{name} must be a scalar or have depth+1 = {depth + 1} entries, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0 (a variance), got {value!r}")
    return arr


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_x(x, in_dim: int | None = None, name: str = "x") -> Array:
    if _is_concrete(x):
        arr = np.asarray(x)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name} must be a real array of shape (n_inputs, d), got {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf")
    shape = jnp.shape(x)
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{name} must have shape (n_inputs, d) with n_inputs, d >= 1, got {shape}")
    if in_dim is not None and shape[1] != in_dim:
        raise ValueError(
            f"{name} must have shape (n_inputs, {in_dim}) to match params, got {shape}"
        )
    return jnp.asarray(x, dtype=jnp.float64)


def _check_key(key) -> Array:
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    arr = jnp.asarray(key) if isinstance(key, (jax.Array, np.ndarray)) else None
    if arr is None or arr.dtype != jnp.uint32 or arr.shape != (2,):
        raise TypeError("key must be a JAX PRNG key (jax.random.key(seed) or jax.random.PRNGKey)")
    return arr


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


def _check_common(key, x, phi, sigma_w2, sigma_b2, width, depth, n_seeds):
    depth = _check_depth(depth)
    return (
        _check_key(key),
        _check_x(x),
        activation(phi),
        _check_variance(sigma_w2, depth, "sigma_w2"),
        _check_variance(sigma_b2, depth, "sigma_b2"),
        _check_widths(width, depth, "width"),
        depth,
        _check_int(n_seeds, "n_seeds", 1),
    )


# --- sampling and the forward pass ---------------------------------------------------------------


def _sample_layer(layer_key, fan_in: int, fan_out: int, sw2, sb2) -> tuple[Array, Array]:
    """W ~ N(0, sw2 / fan_in) of shape (fan_out, fan_in) and b ~ N(0, sb2) of shape (fan_out,).

    One normal draw of shape (fan_out, fan_in + 1), b its last column: each random-number call
    site costs ~0.3 s of XLA compilation on CPU, so the fewer the better.
    """
    z = jax.random.normal(layer_key, (fan_out, fan_in + 1), dtype=jnp.float64)
    return jnp.sqrt(sw2 / fan_in) * z[:, :fan_in], jnp.sqrt(sb2) * z[:, fan_in]


@partial(jax.jit, static_argnames=("in_dim", "widths"))
def _init(key, sw2, sb2, *, in_dim: int, widths: tuple[int, ...]) -> Params:
    depth = len(widths) - 1
    params = [_sample_layer(jax.random.fold_in(key, 0), in_dim, widths[0], sw2[0], sb2[0])]
    if depth > 0 and len(set(widths)) == 1:
        # Equal widths: one vmapped draw for all hidden layers (one compilation, same numbers).
        n = widths[0]
        draw = jax.vmap(
            lambda i, s_w, s_b: _sample_layer(jax.random.fold_in(key, i), n, n, s_w, s_b)
        )
        Ws, bs = draw(jnp.arange(1, depth + 1), sw2[1:], sb2[1:])
        return params + [(Ws[i], bs[i]) for i in range(depth)]
    for i in range(1, depth + 1):
        fold = jax.random.fold_in(key, i)
        params.append(_sample_layer(fold, widths[i - 1], widths[i], sw2[i], sb2[i]))
    return params


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
    key = _check_key(key)
    in_dim = _check_int(in_dim, "in_dim", 1)
    depth = _check_depth(depth)
    widths = _check_widths(widths, depth, "widths")
    sw2 = _check_variance(sigma_w2, depth, "sigma_w2")
    sb2 = _check_variance(sigma_b2, depth, "sigma_b2")
    return _init(key, jnp.asarray(sw2), jnp.asarray(sb2), in_dim=in_dim, widths=widths)


def _forward(params, x: Array, fn: Callable[[Array], Array]) -> list[Array]:
    (W0, b0), *rest = params
    hs = [x @ W0.T + b0]
    for W, b in rest:
        hs.append(fn(hs[-1]) @ W.T + b)
    return hs


def forward(params: Params, x: Array, phi: PhiLike) -> list[Array]:
    r"""Pre-activations :math:`h^0 = W^0 x + b^0`, :math:`h^l = W^l \phi(h^{l-1}) + b^l`.

    Args:
        params: ``[(W^0, b^0), ..., (W^depth, b^depth)]`` as from :func:`init_dense`.
        x: inputs, shape ``(n_inputs, d)``.
        phi: activation name or :class:`~mftlib.activations.Activation`.

    Returns:
        ``[h^0, ..., h^depth]``, each of shape ``(n_inputs, N_l)``. Jit-friendly (the depth is
        the static length of ``params``).
    """
    params = _check_params(params)
    x = _check_x(x, params[0][0].shape[1])
    return _forward(params, x, activation(phi).fn)


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


def _kernel(h: Array) -> Array:
    """q_ab = N^{-1} sum_i h_i(x_a) h_i(x_b) for h of shape (n, N)."""
    return h @ h.T / h.shape[-1]


def _layers(seed_key, x, fn, sw2, sb2, widths, emit):
    """Forward pass of the seed's network, regenerating each layer's weights from its key.

    Returns ``emit(h^l)`` for l = 0..depth: stacked along a new axis 0 when all widths are equal
    (the hidden layers then run in a ``lax.scan``: one weight matrix alive at a time, one
    compilation of the layer), otherwise a list (shapes differ between layers).
    """
    depth = len(widths) - 1
    W0, b0 = _sample_layer(jax.random.fold_in(seed_key, 0), x.shape[1], widths[0], sw2[0], sb2[0])
    h = x @ W0.T + b0
    first = emit(h)
    if len(set(widths)) == 1:
        n = widths[0]

        def step(h, inputs):
            i, s_w, s_b = inputs
            W, b = _sample_layer(jax.random.fold_in(seed_key, i), n, n, s_w, s_b)
            h = fn(h) @ W.T + b
            return h, emit(h)

        ls = jnp.arange(1, depth + 1)
        _, rest = jax.lax.scan(step, h, (ls, sw2[1:], sb2[1:]))
        return jnp.concatenate([first[None], rest])
    out = [first]
    for i in range(1, depth + 1):
        W, b = _sample_layer(
            jax.random.fold_in(seed_key, i), widths[i - 1], widths[i], sw2[i], sb2[i]
        )
        h = fn(h) @ W.T + b
        out.append(emit(h))
    return out


@partial(jax.jit, static_argnames=("act", "widths", "n_seeds"))
def _moments(key, x, sw2, sb2, *, act: Activation, widths: tuple[int, ...], n_seeds: int):
    keys = jax.random.split(key, n_seeds)

    def one(k):
        kernels = _layers(k, x, act.fn, sw2, sb2, widths, _kernel)
        return jnp.stack(kernels) if isinstance(kernels, list) else kernels

    return jax.vmap(one)(keys)


def _correlation(kernel: Array) -> Array:
    """c_ab = q_ab / sqrt(q_aa q_bb); 0 off the diagonal (1 on it) where a variance vanishes."""
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
    ``jax.random.split(key, n_seeds)`` (vmapped) and never stored whole.

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
    key, x, act, sw2, sb2, widths, depth, n_seeds = _check_common(
        key, x, phi, sigma_w2, sigma_b2, width, depth, n_seeds
    )
    kernel = _moments(
        key, x, jnp.asarray(sw2), jnp.asarray(sb2), act=act, widths=widths, n_seeds=n_seeds
    )
    return {
        "q": jnp.diagonal(kernel, axis1=-2, axis2=-1),
        "c": _correlation(kernel),
        "kernel": kernel,
    }


def _grad_norms_one(seed_key, x, act: Activation, sw2, sb2, widths):
    """||delta^l||^2 per input, one network: delta^depth = v, delta^{l-1} = phi' * W^T delta^l."""
    depth = len(widths) - 1
    hs = _layers(seed_key, x, act.fn, sw2, sb2, widths, lambda h: h)  # h^0..h^depth
    v = jax.random.normal(jax.random.fold_in(seed_key, _READOUT_TAG), (widths[-1],), jnp.float64)
    delta = jnp.broadcast_to(v / math.sqrt(widths[-1]), hs[-1].shape)
    last = jnp.sum(delta**2, axis=-1)
    if depth == 0:
        return last[None]

    def back(delta, i, h_prev, s_w, fan_in, fan_out):
        # Regenerate W^l from its key; sigma_b2 does not enter W (the key split is the same).
        W, _ = _sample_layer(jax.random.fold_in(seed_key, i), fan_in, fan_out, s_w, 0.0)
        return act.derivative(h_prev) * (delta @ W)

    if len(set(widths)) == 1:
        n = widths[0]

        def step(delta, inputs):
            i, h_prev, s_w = inputs
            delta = back(delta, i, h_prev, s_w, n, n)
            return delta, jnp.sum(delta**2, axis=-1)

        ls = jnp.arange(1, depth + 1)
        _, norms = jax.lax.scan(step, delta, (ls, hs[:-1], sw2[1:]), reverse=True)
        return jnp.concatenate([norms, last[None]])
    norms = [last]
    for i in range(depth, 0, -1):
        delta = back(delta, i, hs[i - 1], sw2[i], widths[i - 1], widths[i])
        norms.append(jnp.sum(delta**2, axis=-1))
    return jnp.stack(norms[::-1])


@partial(jax.jit, static_argnames=("act", "widths", "n_seeds"))
def _grad_norms(key, x, sw2, sb2, *, act: Activation, widths: tuple[int, ...], n_seeds: int):
    keys = jax.random.split(key, n_seeds)
    return jax.vmap(lambda k: _grad_norms_one(k, x, act, sw2, sb2, widths))(keys)


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
    Explicit backpropagation, with each weight matrix regenerated from its key.

    Returns:
        Array ``(n_seeds, depth+1, n_inputs)``: :math:`\|\delta^l\|^2` summed over the units.
    """
    key, x, act, sw2, sb2, widths, depth, n_seeds = _check_common(
        key, x, phi, sigma_w2, sigma_b2, width, depth, n_seeds
    )
    return _grad_norms(
        key, x, jnp.asarray(sw2), jnp.asarray(sb2), act=act, widths=widths, n_seeds=n_seeds
    )


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
    key = _check_key(key)
    n = _check_int(n, "n", 1)
    d = _check_int(d, "d", 1)
    if not isinstance(q0, numbers.Real) or not math.isfinite(q0) or q0 < 0:
        raise ValueError(f"q0 must be a finite number >= 0 (squared norm / d), got {q0!r}")
    scale = math.sqrt(q0 * d)
    if c0 is None:
        g = jax.random.normal(key, (n, d), dtype=jnp.float64)
        return scale * g / jnp.linalg.norm(g, axis=1, keepdims=True)
    lo = -1.0 / (n - 1) if n > 1 else -1.0
    if not isinstance(c0, numbers.Real) or not (lo <= c0 <= 1.0):
        raise ValueError(f"c0 must be a cosine in [{lo:g}, 1] for n = {n} inputs, got {c0!r}")
    if n > d:
        raise ValueError(f"n must be <= d to prescribe the cosine c0, got n = {n}, d = {d}")
    U = jnp.linalg.qr(jax.random.normal(key, (d, n), dtype=jnp.float64))[0].T
    G = (1.0 - c0) * np.eye(n) + c0 * np.ones((n, n))
    evals, evecs = np.linalg.eigh(G)
    root = (evecs * np.sqrt(np.clip(evals, 0.0, None))) @ evecs.T
    return scale * jnp.asarray(root) @ U
