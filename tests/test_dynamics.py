"""Tests for mftlib.dynamics: the generic toolbox (iterate, fixed points, roots, linearise)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mftlib  # noqa: F401  (float64)
from mftlib import dynamics
from mftlib.dynamics import (
    depth_scale,
    depth_scales_at,
    find_root,
    fixed_point,
    grid_map,
    iterate,
    linearise,
    newton_fixed_point,
    sym_to_vec,
    vec_to_sym,
)

# --- iterate ------------------------------------------------------------------------------------


def test_iterate_affine_scalar():
    traj = iterate(lambda x: 0.5 * x + 1.0, 0.0, 5)
    assert traj.shape == (6,)
    assert traj.dtype == jnp.float64
    # x_l = 2 (1 - 2^-l)
    np.testing.assert_allclose(traj, 2 * (1 - 0.5 ** np.arange(6)), rtol=0, atol=1e-15)


def test_iterate_driven_feeds_one_input_per_step():
    # x_{t+1} = 0.5 x_t + u_t with inputs u_t = t; a tuple of inputs is a pytree scanned together.
    us = jnp.arange(4.0)
    traj = dynamics.iterate_driven(lambda x, u: 0.5 * x + u, 1.0, us)
    ref = [1.0]
    for u in range(4):
        ref.append(0.5 * ref[-1] + u)
    assert traj.shape == (5,) and traj.dtype == jnp.float64
    np.testing.assert_allclose(traj, ref, rtol=1e-15)
    both = dynamics.iterate_driven(lambda x, u: u[0] * x + u[1], 1.0, (0.5 * jnp.ones(4), us))
    np.testing.assert_allclose(both, traj, rtol=1e-15)
    # Constant inputs: the same trajectory as iterate.
    np.testing.assert_allclose(
        dynamics.iterate_driven(lambda x, u: 0.5 * x + u, 0.0, jnp.ones(5)),
        iterate(lambda x: 0.5 * x + 1.0, 0.0, 5),
        rtol=1e-15,
    )


def test_iterate_matrix_state_and_zero_depth():
    A = jnp.array([[0.5, 0.1], [0.0, 0.9]])
    x0 = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    traj = iterate(lambda X: A @ X, x0, 3)
    assert traj.shape == (4, 2, 2)
    np.testing.assert_allclose(traj[0], x0)
    np.testing.assert_allclose(
        traj[3], np.linalg.matrix_power(np.asarray(A), 3) @ np.asarray(x0), rtol=1e-14
    )
    assert iterate(lambda X: A @ X, x0, 0).shape == (1, 2, 2)


def test_iterate_jits_with_static_depth():
    f = jax.jit(lambda x0: iterate(jnp.cos, x0, 50))
    traj = f(1.0)
    assert traj.shape == (51,)
    assert float(traj[-1]) == pytest.approx(0.7390851332151607, abs=1e-8)


# --- fixed points -------------------------------------------------------------------------------

DOTTIE = 0.7390851332151607  # the root of cos(x) = x


def test_fixed_point_contraction():
    res = fixed_point(jnp.cos, 1.0)
    assert bool(res.converged)
    assert float(res.value) == pytest.approx(DOTTIE, abs=1e-12)
    assert float(res.residual) <= 1e-12
    assert int(res.iterations) > 10


def test_newton_fixed_point_contraction():
    res = newton_fixed_point(jnp.cos, 1.0)
    assert bool(res.converged)
    assert float(res.value) == pytest.approx(DOTTIE, abs=1e-15)
    assert float(res.residual) <= 1e-15
    assert int(res.iterations) < 10  # quadratic convergence


def test_newton_finds_unstable_fixed_points():
    # x -> 2x - x^2/... : F(x) = x^2 has fixed points 0 (stable) and 1 (unstable).
    res = newton_fixed_point(lambda x: x * x, 1.3)
    assert bool(res.converged) and float(res.value) == pytest.approx(1.0, abs=1e-14)
    res = fixed_point(lambda x: x * x, 0.5)
    assert bool(res.converged) and abs(float(res.value)) < 1e-12


M = np.array([[0.4, 0.2], [0.1, 0.3]])
B = np.array([[1.0, -1.0], [0.5, 2.0]])


def _matrix_map(X):
    return jnp.asarray(M) @ X + jnp.asarray(B)


def _matrix_fixed_point():
    # X = M X + B  =>  X = (I - M)^{-1} B
    return np.linalg.solve(np.eye(2) - M, B)


@pytest.mark.parametrize("solver", [fixed_point, newton_fixed_point])
def test_fixed_point_on_matrix_map(solver):
    res = solver(_matrix_map, jnp.zeros((2, 2)))
    assert res.value.shape == (2, 2)
    assert bool(res.converged)
    assert float(res.residual) <= 1e-12
    np.testing.assert_allclose(res.value, _matrix_fixed_point(), rtol=1e-12, atol=1e-13)


def test_fixed_point_not_converged_flag():
    res = fixed_point(lambda x: x + 1.0, 0.0, max_iter=20)
    assert not bool(res.converged)
    assert int(res.iterations) == 20
    assert float(res.residual) == pytest.approx(1.0)


def test_fixed_points_jit():
    f = jax.jit(lambda a: newton_fixed_point(lambda x: a * jnp.cos(x), 1.0).value)
    assert float(f(1.0)) == pytest.approx(DOTTIE, abs=1e-14)


# --- find_root ----------------------------------------------------------------------------------


def test_find_root_cos():
    res = find_root(lambda x: jnp.cos(x) - x, 0.0, 1.0)
    assert bool(res.converged)
    assert float(res.value) == pytest.approx(DOTTIE, abs=1e-15)
    assert float(res.residual) <= 1e-15


def test_find_root_reversed_bracket():
    res = find_root(lambda x: jnp.cos(x) - x, 1.0, 0.0)
    assert bool(res.converged)
    assert float(res.value) == pytest.approx(DOTTIE, abs=1e-15)


@pytest.mark.parametrize("lo,hi,root", [(1.0, 3.0, 1.0), (-2.0, 1.0, 1.0), (-1.0, 0.5, -1.0)])
def test_find_root_at_bracket_end(lo, hi, root):
    def g(x):
        return (x - 1.0) * (x + 1.0) * (x - 4.0)  # roots at -1, 1, 4

    res = find_root(g, lo, hi)
    assert bool(res.converged)
    assert float(res.value) == pytest.approx(root, abs=1e-15)
    assert float(res.residual) == 0.0


def test_find_root_multiple_root_polynomial():
    # (x - 0.3)^3: a triple root, the slow case for regula falsi; Illinois must still get it.
    res = find_root(lambda x: (x - 0.3) ** 3, -1.0, 2.0)
    assert bool(res.converged)
    assert float(res.value) == pytest.approx(0.3, abs=1e-5)  # |g| ~ 1e-15 <=> |x - 0.3| ~ 1e-5
    assert float(res.residual) <= 1e-14


def test_find_root_same_sign_bracket_not_converged():
    res = find_root(lambda x: x * x + 1.0, -1.0, 2.0)
    assert not bool(res.converged)
    assert float(res.value) in (-1.0, 2.0)  # the nearer end (smaller |g|)
    assert float(res.value) == -1.0


def test_find_root_with_given_end_values():
    g = lambda x: x**3 - 2.0  # noqa: E731
    res = find_root(g, 0.0, 2.0, g_lo=-2.0, g_hi=6.0)
    assert float(res.value) == pytest.approx(2 ** (1 / 3), abs=1e-15)


def test_find_root_under_vmap():
    # Roots of x^3 - a for many a, and of cos(x) - b x over brackets that differ lane by lane.
    a = jnp.linspace(0.1, 20.0, 64)
    solve = jax.jit(jax.vmap(lambda ai: find_root(lambda x: x**3 - ai, 0.0, 3.0)))
    res = solve(a)
    assert res.value.shape == (64,)
    assert bool(jnp.all(res.converged))
    np.testing.assert_allclose(res.value, np.cbrt(np.asarray(a)), rtol=1e-14)

    lo = jnp.linspace(-0.5, 0.5, 17)
    hi = lo + 2.0
    res2 = jax.vmap(lambda a, b: find_root(lambda x: jnp.cos(x) - x, a, b))(lo, hi)
    assert bool(jnp.all(res2.converged))
    np.testing.assert_allclose(res2.value, DOTTIE, atol=1e-15)


# --- symmetric coordinates and linearise ---------------------------------------------------------


def test_sym_vec_round_trip():
    S = jnp.array([[1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [3.0, 5.0, 6.0]])
    v = sym_to_vec(S)
    np.testing.assert_array_equal(v, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(vec_to_sym(v, 3), S)
    batch = jnp.stack([S, 2 * S])
    assert sym_to_vec(batch).shape == (2, 6)
    np.testing.assert_array_equal(vec_to_sym(sym_to_vec(batch), 3), batch)


def test_linearise_against_hand_jacobian():
    def F(x):
        return jnp.array([x[0] ** 2 + x[1], jnp.sin(x[0]) * x[1], jnp.exp(x[2]) * x[0]])

    x = jnp.array([0.7, -1.2, 0.3])
    J = np.array(
        [
            [2 * 0.7, 1.0, 0.0],
            [math.cos(0.7) * -1.2, math.sin(0.7), 0.0],
            [math.exp(0.3), 0.0, math.exp(0.3) * 0.7],
        ]
    )
    np.testing.assert_allclose(linearise(F, x), J, rtol=1e-14)


def test_linearise_matrix_state_flattens():
    # F(X) = M X on 2 x 2 matrices: the Jacobian on the row-major flattening is kron(M, I).
    J = linearise(lambda X: jnp.asarray(M) @ X, jnp.ones((2, 2)))
    np.testing.assert_allclose(J, np.kron(M, np.eye(2)), rtol=1e-15)


def test_linearise_symmetric():
    # F(S) = A S A^T maps symmetric matrices to symmetric matrices.
    A = jnp.array([[0.9, 0.2, 0.0], [0.1, 0.5, 0.3], [0.0, 0.4, 0.7]])
    S = jnp.eye(3) + 0.1

    def F(X):
        return A @ X @ A.T

    J = linearise(F, S, symmetric=True)
    assert J.shape == (6, 6)  # n (n + 1) / 2
    # Column k: the image of the symmetric unit perturbation of upper-triangle coordinate k.
    n = 3
    for k in range(6):
        e = np.zeros(6)
        e[k] = 1.0
        E = vec_to_sym(jnp.asarray(e), n)
        np.testing.assert_allclose(J[:, k], sym_to_vec(F(E)), rtol=1e-14, atol=1e-15)
    # Eigenvalues of X -> A X A^T on symmetric matrices: products a_i a_j, i <= j.
    a = np.linalg.eigvals(np.asarray(A))
    expected = np.sort(np.abs([a[i] * a[j] for i in range(3) for j in range(i, 3)]))
    np.testing.assert_allclose(
        np.sort(np.abs(np.linalg.eigvals(np.asarray(J)))), expected, rtol=1e-12
    )


def test_depth_scales_at():
    A = np.diag([0.5, -0.25, 0.9])
    lam, xi = depth_scales_at(lambda x: jnp.asarray(A) @ x, jnp.zeros(3))
    np.testing.assert_allclose(np.real(lam), [0.9, 0.5, -0.25], rtol=1e-15)
    np.testing.assert_allclose(
        xi, [-1 / math.log(0.9), 1 / math.log(2), 1 / math.log(4)], rtol=1e-14
    )


# --- depth_scale --------------------------------------------------------------------------------


def test_depth_scale_values():
    assert float(depth_scale(0.5)) == pytest.approx(1 / math.log(2), rel=1e-15)
    assert float(depth_scale(-0.5)) == pytest.approx(1 / math.log(2), rel=1e-15)
    assert float(depth_scale(1.0)) == math.inf
    assert float(depth_scale(1.2)) == math.inf
    assert float(depth_scale(-3.0)) == math.inf
    assert float(depth_scale(0.0)) == 0.0


def test_depth_scale_never_nan():
    lam = jnp.array([0.0, 1e-300, 0.3, 0.999999, 1.0, 1.0 + 1e-15, 2.0, 1e300, -1.0, jnp.inf])
    xi = np.asarray(depth_scale(lam))
    assert xi.shape == lam.shape
    assert not np.any(np.isnan(xi))
    assert np.all(xi[4:] == np.inf)
    assert np.all(np.diff(xi[:4]) > 0)
    # The gradient is finite too where |lambda| < 1 (depth_scale is used inside jitted sweeps).
    g = jax.vmap(jax.grad(lambda x: depth_scale(x)))(jnp.array([0.2, 0.5, 0.9]))
    assert np.all(np.isfinite(np.asarray(g)))


def test_depth_scales_at_complex_eigenvalues_use_the_modulus():
    """A rotation-like linearisation has complex eigenvalues; xi = -1/log|lambda| needs the modulus.

    depth_scales_at passes jnp.linalg.eigvals's complex output to depth_scale, which must not drop
    the imaginary part: 0.6 +- 0.6i decays as 0.849^l (xi = 6.09), and 0.6 +- 0.9i grows (xi = inf).
    """
    for a, b in ((0.6, 0.6), (0.6, 0.9)):
        A = jnp.array([[a, -b], [b, a]])
        lam, xi = depth_scales_at(lambda x, A=A: A @ x, jnp.zeros(2))
        modulus = math.hypot(a, b)
        np.testing.assert_allclose(np.abs(np.asarray(lam)), modulus, rtol=1e-14)
        expected = -1 / math.log(modulus) if modulus < 1 else math.inf
        np.testing.assert_allclose(np.asarray(xi), expected, rtol=1e-12)
    # and depth_scale itself on complex input
    np.testing.assert_allclose(
        depth_scale(jnp.array([0.6 + 0.6j, 0.3j])),
        [-1 / math.log(math.hypot(0.6, 0.6)), -1 / math.log(0.3)],
    )


# --- grid_map -----------------------------------------------------------------------------------


def test_grid_map_shapes_and_axis_order():
    def fn(a, b):
        return {"sum": a + 10 * b, "prod": a * b}

    a = np.array([1.0, 2.0, 3.0])
    b = np.array([0.0, 1.0])
    out = grid_map(fn, a, b)
    assert set(out) == {"sum", "prod"}
    assert out["sum"].shape == (3, 2)  # axis 0 = first grid
    np.testing.assert_array_equal(out["sum"], a[:, None] + 10 * b[None, :])
    np.testing.assert_array_equal(out["prod"], a[:, None] * b[None, :])


def test_grid_map_three_grids_and_fixed_points():
    out = grid_map(
        lambda a, b, c: {"x": a + 2 * b + 4 * c}, np.arange(2.0), np.arange(3.0), np.arange(4.0)
    )
    assert out["x"].shape == (2, 3, 4)
    assert float(out["x"][1, 2, 3]) == 1 + 4 + 12

    # A sweep of fixed points: x = a cos(x) for a grid of a.
    a = np.linspace(0.2, 1.0, 5)
    res = grid_map(lambda ai: {"x": find_root(lambda x: ai * jnp.cos(x) - x, 0.0, 2.0).value}, a)
    np.testing.assert_allclose(a * np.cos(np.asarray(res["x"])), res["x"], atol=1e-15)


def test_module_exports():
    for name in (
        "iterate",
        "fixed_point",
        "newton_fixed_point",
        "find_root",
        "linearise",
        "sym_to_vec",
        "vec_to_sym",
        "depth_scale",
        "depth_scales_at",
        "grid_map",
    ):
        assert callable(getattr(dynamics, name))
