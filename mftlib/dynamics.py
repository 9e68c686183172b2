r"""The generic toolbox: each architecture's mean-field layer is a map :math:`F` on covariances.

Given such a map (on a scalar, a vector or a symmetric covariance matrix), this module

* iterates it over depth (:func:`iterate`; with per-step inputs, :func:`iterate_driven`),
* finds its fixed points, by iteration (:func:`fixed_point`), by Newton's method with a JAX
  Jacobian (:func:`newton_fixed_point`), or for scalar maps by a bracketed root search
  (:func:`find_root`),
* linearises it at a fixed point (:func:`linearise`, ``jax.jacfwd``; symmetric matrices are handled
  in their upper-triangle coordinates, :func:`sym_to_vec`),
* turns the eigenvalues :math:`\lambda` of that linearisation into depth scales
  :math:`\xi = -1/\log|\lambda|` (Schoenholz et al. 2017): perturbations of the fixed
  point decay as :math:`|\lambda|^{l} = e^{-l/\xi}` (:func:`depth_scale`),
* sweeps hyperparameters with ``jax.vmap`` (:func:`grid_map`).

Nothing here knows about a particular architecture: :mod:`mftlib.dense` and the other architecture
modules supply the maps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class FixedPoint(NamedTuple):
    """Result of a fixed-point search.

    Attributes:
        value: the fixed point (same shape as the initial state).
        converged: whether the step (or residual) fell below the tolerance.
        iterations: iterations used.
        residual: ``max |F(x) - x|`` at ``value``: the convergence diagnostic.
    """

    value: Array
    converged: Array
    iterations: Array
    residual: Array


def iterate(F: Callable[[Array], Array], x0: Array, depth: int) -> Array:
    """The trajectory ``x^0 = x0, x^{l+1} = F(x^l)``: shape ``(depth+1, *x0.shape)``."""

    def step(x, _):
        y = F(x)
        return y, y

    x0 = jnp.asarray(x0, dtype=jnp.float64)
    _, traj = jax.lax.scan(step, x0, None, length=depth)
    return jnp.concatenate([x0[None], traj], axis=0)


def iterate_driven(F: Callable[[Array, Array], Array], x0: Array, inputs) -> Array:
    """The driven trajectory ``x^0 = x0, x^{t+1} = F(x^t, u_t)``: shape ``(T+1, *x0.shape)``.

    ``inputs`` holds ``u_0, ..., u_{T-1}`` along its leading axis (an array, or a tuple of arrays
    of one length ``T``): the input covariances of a recurrent net through time, or the
    per-layer variances of a network whose map changes with depth.
    """

    def step(x, u):
        y = F(x, u)
        return y, y

    x0 = jnp.asarray(x0, dtype=jnp.float64)
    _, traj = jax.lax.scan(step, x0, inputs)
    return jnp.concatenate([x0[None], traj], axis=0)


def fixed_point(
    F: Callable[[Array], Array], x0: Array, tol: float = 1e-13, max_iter: int = 10_000
) -> FixedPoint:
    """Fixed point by plain iteration (finds *stable* fixed points; slow near criticality).

    Stops when ``max |x^{l+1} - x^l| <= tol * max(1, max |x^l|)`` or after ``max_iter`` steps.
    """

    def cond(state):
        _, k, step = state
        return (k < max_iter) & (step > tol)

    def body(state):
        x, k, _ = state
        y = F(x)
        scale = jnp.maximum(1.0, jnp.max(jnp.abs(x)))
        return y, k + 1, jnp.max(jnp.abs(y - x)) / scale

    x0 = jnp.asarray(x0, dtype=jnp.float64)
    x, k, step = jax.lax.while_loop(cond, body, (x0, 0, jnp.inf))
    res = jnp.max(jnp.abs(F(x) - x))
    return FixedPoint(x, step <= tol, k, res)


def newton_fixed_point(
    F: Callable[[Array], Array], x0: Array, tol: float = 1e-13, max_iter: int = 50
) -> FixedPoint:
    """Fixed point of ``F`` by Newton's method on ``F(x) - x``, Jacobian by ``jax.jacfwd``.

    Converges to the fixed point nearest ``x0`` whatever its stability; start close (for example
    after a few :func:`iterate` steps). Works on arrays of any shape (flattened internally).
    """
    x0 = jnp.asarray(x0, dtype=jnp.float64)
    shape = x0.shape

    def G(v):
        return jnp.ravel(F(v.reshape(shape))) - v

    def cond(state):
        _, k, step = state
        return (k < max_iter) & (step > tol)

    def body(state):
        v, k, _ = state
        J = jax.jacfwd(G)(v)
        dv = jnp.linalg.solve(J, -G(v))
        scale = jnp.maximum(1.0, jnp.max(jnp.abs(v)))
        return v + dv, k + 1, jnp.max(jnp.abs(dv)) / scale

    v, k, step = jax.lax.while_loop(cond, body, (jnp.ravel(x0), 0, jnp.inf))
    res = jnp.max(jnp.abs(G(v)))
    return FixedPoint(v.reshape(shape), step <= tol, k, res)


def find_root(
    g: Callable[[Array], Array],
    lo: Array,
    hi: Array,
    g_lo: Array | None = None,
    g_hi: Array | None = None,
    xtol: float = 1e-15,
    max_iter: int = 200,
) -> FixedPoint:
    """Root of a scalar function in a bracket ``[lo, hi]`` where ``g`` changes sign.

    The Illinois variant of regula falsi: never leaves the bracket, converges superlinearly, needs
    no derivative. A scalar fixed point of ``F`` is the root of ``g(x) = F(x) - x``.

    Batched: ``lo`` and ``hi`` may be arrays of brackets, with ``g`` elementwise over them; the
    loop then runs until every lane has converged, and converged lanes are frozen. (Passing arrays
    directly is faster than ``jax.vmap`` when ``g`` indexes large per-lane arrays.)

    Returns:
        ``FixedPoint`` with ``value`` the root, ``residual = |g(root)|``, and ``converged`` whether
        the bracket shrank below ``xtol * |root|`` or hit an exact zero. If ``g(lo)`` and
        ``g(hi)`` have the same sign the value is the end with the smaller ``|g|``, not converged.
    """
    lo, hi = jnp.asarray(lo, jnp.float64), jnp.asarray(hi, jnp.float64)
    lo, hi = jnp.broadcast_arrays(lo, hi)
    g_lo = g(lo) if g_lo is None else jnp.broadcast_to(jnp.asarray(g_lo, jnp.float64), lo.shape)
    g_hi = g(hi) if g_hi is None else jnp.broadcast_to(jnp.asarray(g_hi, jnp.float64), lo.shape)

    def active(a, b, fa, fb):
        # Relative tolerance: roots of any magnitude (q* ~ 1e-16 included) to full precision.
        return (jnp.abs(b - a) > xtol * jnp.maximum(jnp.abs(a), jnp.abs(b))) & (fa * fb < 0)

    def cond(s):
        a, b, fa, fb, _, k = s
        return (k < max_iter) & jnp.any(active(a, b, fa, fb))

    def body(s):
        a, b, fa, fb, side, k = s
        live = active(a, b, fa, fb)
        c = (a * fb - b * fa) / jnp.where(live, fb - fa, 1.0)
        # Guard against rounding pushing c outside the bracket.
        c = jnp.clip(c, jnp.minimum(a, b), jnp.maximum(a, b))
        fc = g(c)
        same_b = live & (fc * fb > 0)
        same_a = live & (fc * fa > 0)
        exact = live & (fc == 0)
        # Replace the end with the same sign; halve the other end's value when it is retained twice.
        a2 = jnp.where(same_a | exact, c, a)
        fa2 = jnp.where(same_a | exact, fc, jnp.where(same_b & (side == -1), fa / 2, fa))
        b2 = jnp.where(same_b | exact, c, b)
        fb2 = jnp.where(same_b | exact, fc, jnp.where(same_a & (side == 1), fb / 2, fb))
        side2 = jnp.where(same_b, -1, jnp.where(same_a, 1, side))
        return a2, b2, fa2, fb2, side2, k + 1

    init = (lo, hi, g_lo, g_hi, jnp.zeros(lo.shape, jnp.int32), 0)
    a, b, fa, fb, _, k = jax.lax.while_loop(cond, body, init)
    root = jnp.where(jnp.abs(fa) < jnp.abs(fb), a, b)
    bracketed = g_lo * g_hi <= 0
    converged = bracketed & ~active(a, b, fa, fb)
    return FixedPoint(root, converged, k, jnp.abs(g(root)))


def stable_fixed_point_1d(
    r: Callable[[Array], Array],
    tiny: float = 1e-14,
    max_doublings: int = 200,
    slope_at_zero: Array | None = None,
) -> Array:
    r"""Stable fixed point :math:`q^* \ge 0` of a scalar map, given its residual
    :math:`r(q) = F(q) - q` on :math:`[0, \infty)` (a length map of any architecture).

    * :math:`r(0) = 0` and :math:`q = 0` attracts (the signal dies): 0. Attraction is read off
      ``slope_at_zero`` (:math:`r'(0) \le 0`) where the caller has it in closed form, otherwise
      off the sign of :math:`r(\text{tiny})`;
    * otherwise the upper end of a bracket is doubled until :math:`r < 0` and the root is found by
      :func:`find_root`, searched above ``tiny`` where :math:`q = 0` is an unstable fixed point;
      if no such end exists below :math:`2^{\text{max\_doublings}}` the length grows without
      bound and the result is ``inf``.

    Elementwise: ``r`` may map an array of lanes (the loop runs until every lane has its bracket,
    lanes already bracketed stay put), and it is traceable and vmappable (``lax.while_loop``).
    A map with every :math:`q` fixed (:math:`r \equiv 0`) is the caller's to detect.
    """
    r0 = r(jnp.float64(0.0))
    if slope_at_zero is None:
        zero_is_stable = (r0 == 0.0) & (r(jnp.float64(tiny)) <= 0.0)
    else:
        zero_is_stable = (r0 == 0.0) & (slope_at_zero <= 0.0)
    lo = jnp.where(r0 > 0.0, 0.0, tiny)

    def cond(s):
        _, rhi, k = s
        return jnp.any(rhi >= 0.0) & (k < max_doublings)

    def body(s):
        # Double the upper end until the residual is negative (lanes already there stay put).
        hi, rhi, k = s
        grow = rhi >= 0.0
        hi = jnp.where(grow, 2.0 * hi, hi)
        return hi, jnp.where(grow, r(hi), rhi), k + 1

    hi0 = jnp.maximum(1.0, 2.0 * r0)
    hi, rhi, _ = jax.lax.while_loop(cond, body, (hi0, r(hi0), 0))
    root = find_root(r, lo, hi, g_hi=rhi).value
    return jnp.where(zero_is_stable, 0.0, jnp.where(rhi < 0.0, root, jnp.inf))


def sym_to_vec(S: Array) -> Array:
    """Upper triangle (diagonal included) of a symmetric matrix, row by row."""
    i, j = jnp.triu_indices(S.shape[-1])
    return S[..., i, j]


def vec_to_sym(v: Array, n: int) -> Array:
    """Inverse of :func:`sym_to_vec`."""
    i, j = jnp.triu_indices(n)
    S = jnp.zeros(v.shape[:-1] + (n, n), dtype=v.dtype)
    S = S.at[..., i, j].set(v)
    return S.at[..., j, i].set(v)


def linearise(F: Callable[[Array], Array], x_star: Array, symmetric: bool = False) -> Array:
    """Jacobian of ``F`` at ``x_star`` (``jax.jacfwd``), as a matrix on the flattened state.

    With ``symmetric=True`` the state is a symmetric ``n x n`` matrix and the Jacobian acts on its
    ``n (n + 1) / 2`` upper-triangle coordinates (so no spurious antisymmetric directions appear).
    """
    x_star = jnp.asarray(x_star, dtype=jnp.float64)
    if symmetric:
        n = x_star.shape[-1]
        return jax.jacfwd(lambda v: sym_to_vec(F(vec_to_sym(v, n))))(sym_to_vec(x_star))
    shape = x_star.shape
    return jax.jacfwd(lambda v: jnp.ravel(F(v.reshape(shape))))(jnp.ravel(x_star))


def depth_scale(lam: Array) -> Array:
    r"""Depth scale :math:`\xi = -1/\log|\lambda|` of a mode with multiplier :math:`\lambda`.

    :math:`|\lambda| < 1`: the perturbation decays as :math:`e^{-l/\xi}`. :math:`|\lambda| \ge 1`
    gives ``inf`` (no decay: at and beyond criticality the depth scale diverges), never NaN.
    """
    a = jnp.abs(jnp.asarray(lam)).astype(jnp.float64)  # the modulus, also of complex eigenvalues
    return jnp.where(a < 1.0, -1.0 / jnp.log(jnp.where(a < 1.0, a, 0.5)), jnp.inf)


def depth_scales_at(F: Callable[[Array], Array], x_star: Array, symmetric: bool = False):
    """Eigenvalues of the linearisation at ``x_star`` sorted by modulus, and their depth scales."""
    lam = jnp.linalg.eigvals(linearise(F, x_star, symmetric))
    lam = lam[jnp.argsort(-jnp.abs(lam))]
    return lam, depth_scale(lam)


def grid_map(fn: Callable[..., dict], *grids: Array) -> dict:
    """Evaluate ``fn(a, b, ...)`` (scalar arguments, dict of scalar outputs) on the outer grid.

    With grids of lengths ``n1, n2, ...`` every output has shape ``(n1, n2, ...)``: the first grid
    runs along axis 0. Vectorised with nested ``jax.vmap`` and jitted.
    """
    f = fn
    for axis in reversed(range(len(grids))):
        f = jax.vmap(f, in_axes=tuple(0 if i == axis else None for i in range(len(grids))))
    return jax.jit(f)(*(jnp.asarray(g, dtype=jnp.float64) for g in grids))
