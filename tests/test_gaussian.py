"""Tests for mftlib.gaussian: 1-D and 2-D Gaussian expectations against adaptive quadrature.

References are scipy.integrate.quad (QUADPACK, adaptive) in the standard-normal variable z, split at
the point where the activation's argument vanishes, with tight tolerances and wide limits. They are
independent of mftlib's composite Gauss-Legendre rule.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import LIMIT, SQRT2PI, ref_expect1
from reference import pdf as _pdf
from scipy import integrate, special

import mftlib  # noqa: F401  (switches JAX to float64)
from mftlib import gaussian
from mftlib.gaussian import DEFAULT_RULE, DEFAULT_RULE_2D, QuadratureRule

QUAD2 = dict(epsabs=1e-15, epsrel=1e-12, limit=400)


def ref_expect2(f, g, q11, q22, c):
    """E[f(u1) g(u2)], u1 = sqrt(q11) z1, u2 = sqrt(q22)(c z1 + sqrt(1-c^2) z2), nested quad.

    The inner integral (over z2) is split where u2 = 0, the outer one (over z1) at 0. At c = +-1
    the pair is degenerate (u2 = c sqrt(q22/q11) u1) and the reference is a 1-D integral.
    """
    s1, s2 = math.sqrt(q11), math.sqrt(q22)
    if abs(c) == 1.0:

        def h(z):
            return f(s1 * z) * g(s2 * c * z) * _pdf(z)

        return integrate.quad(h, -LIMIT, 0, **QUAD2)[0] + integrate.quad(h, 0, LIMIT, **QUAD2)[0]
    s = math.sqrt(1.0 - c * c)

    def inner(z1):
        zs = min(max(-c * z1 / s, -LIMIT), LIMIT)

        def k(z2):
            return g(s2 * (c * z1 + s * z2)) * _pdf(z2)

        return integrate.quad(k, -LIMIT, zs, **QUAD2)[0] + integrate.quad(k, zs, LIMIT, **QUAD2)[0]

    def outer(z1):
        return f(s1 * z1) * inner(z1) * _pdf(z1)

    return (
        integrate.quad(outer, -LIMIT, 0, **QUAD2)[0] + integrate.quad(outer, 0, LIMIT, **QUAD2)[0]
    )


def _np_gelu(u):
    return 0.5 * u * (1.0 + special.erf(u / math.sqrt(2.0)))


# name -> (jax function, scalar numpy function)
FUNCTIONS_1D = {
    "tanh": (jnp.tanh, math.tanh),
    "tanh^2": (lambda u: jnp.tanh(u) ** 2, lambda u: math.tanh(u) ** 2),
    "relu^2": (lambda u: jax.nn.relu(u) ** 2, lambda u: max(u, 0.0) ** 2),
    "erf^2": (lambda u: jax.scipy.special.erf(u) ** 2, lambda u: math.erf(u) ** 2),
    "sigmoid": (jax.nn.sigmoid, special.expit),
    "softplus": (jax.nn.softplus, lambda u: float(np.logaddexp(0.0, u))),
    "gelu^2": (lambda u: jax.nn.gelu(u, approximate=False) ** 2, lambda u: _np_gelu(u) ** 2),
    "(1-tanh^2)^2": (
        lambda u: (1.0 - jnp.tanh(u) ** 2) ** 2,
        lambda u: (1.0 - math.tanh(u) ** 2) ** 2,
    ),
}
QS = (1e-4, 1e-2, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0)


# --- expect1 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FUNCTIONS_1D))
def test_expect1_against_adaptive_quadrature(name):
    fj, fn = FUNCTIONS_1D[name]
    got = np.asarray(jax.jit(lambda q: gaussian.expect1(fj, q))(jnp.asarray(QS)))
    assert got.shape == (len(QS),)
    for q, value in zip(QS, got, strict=True):
        ref = ref_expect1(fn, q)
        # tanh is odd: its expectation is 0, so the error is measured relative to the scale of the
        # integrand, sqrt(E f^2), instead of |E f|.
        scale = abs(ref) if name != "tanh" else math.sqrt(ref_expect1(lambda u: fn(u) ** 2, q))
        assert abs(value - ref) <= 1e-8 * scale, (name, q, value, ref, abs(value - ref) / scale)


def test_expect1_gauss_hermite_comparison():
    """Why expect1 does not use a fixed Gauss-Hermite rule (ARCHITECTURE.md, fast paths).

    25 Gauss-Hermite nodes integrate E[tanh(10 z)^2] with an error of ~0.17 (the rule cannot resolve
    tanh's transition of width 1/sqrt(q) = 0.1 in z between its nodes); expect1 is correct to 1e-8.
    """
    q = 100.0
    ref = ref_expect1(lambda u: math.tanh(u) ** 2, q)
    z, w = np.polynomial.hermite_e.hermegauss(25)
    gauss_hermite = float(np.sum(w / SQRT2PI * np.tanh(math.sqrt(q) * z) ** 2))
    ours = float(gaussian.expect1(lambda u: jnp.tanh(u) ** 2, q))
    assert abs(gauss_hermite - ref) > 1e-4
    assert abs(ours - ref) <= 1e-8 * ref


def test_expect1_vectorises_and_jits():
    f = jnp.tanh
    q = jnp.array([[0.5, 1.0, 2.0], [3.0, 10.0, 100.0]])
    eager = gaussian.expect1(lambda u: f(u) ** 2, q)
    jitted = jax.jit(lambda qq: gaussian.expect1(lambda u: f(u) ** 2, qq))(q)
    assert eager.shape == q.shape and jitted.shape == q.shape
    assert eager.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-14)
    elementwise = [float(gaussian.expect1(lambda u: f(u) ** 2, float(x))) for x in q.ravel()]
    np.testing.assert_allclose(np.asarray(eager).ravel(), elementwise, rtol=1e-14)
    vmapped = jax.vmap(lambda qq: gaussian.expect1(lambda u: f(u) ** 2, qq))(q.ravel())
    np.testing.assert_allclose(np.asarray(vmapped), elementwise, rtol=1e-14)


def test_expect1_at_zero_variance_is_f_of_zero():
    # At q = 0 every node maps to u = 0: the result is f(0) times the total weight (1 - 2e-15).
    assert float(gaussian.expect1(jax.nn.sigmoid, 0.0)) == pytest.approx(0.5, rel=1e-13)
    assert float(gaussian.expect1(lambda u: jnp.cos(u) + 0 * u, 0.0)) == pytest.approx(
        1.0, rel=1e-13
    )


def _truncated_moments(L):
    """int_{-L}^{L} z^k Dz for k = 0, 2, 4, 6 (integration by parts)."""
    m0 = math.erf(L / math.sqrt(2.0))
    p = 2.0 * _pdf(L)
    m2 = m0 - p * L
    m4 = 3 * m2 - p * L**3
    m6 = 5 * m4 - p * L**5
    return m0, m2, m4, m6


def test_expect1_polynomial_moments():
    # Gauss-Legendre panels integrate the polynomial part exactly, so on [-L, L] the rule gives the
    # truncated moments of the normal distribution: E[u^2] = q, E[u^4] = 3 q^2, E[u^6] = 15 q^3 up
    # to the mass beyond |z| = 8 (5e-12 relative for z^4).
    q = jnp.array([0.3, 1.0, 7.0])
    _, m2, m4, m6 = _truncated_moments(DEFAULT_RULE.half_width)
    np.testing.assert_allclose(gaussian.expect1(lambda u: u**2, q), m2 * q, rtol=1e-13)
    np.testing.assert_allclose(gaussian.expect1(lambda u: u**4, q), m4 * q**2, rtol=1e-13)
    np.testing.assert_allclose(gaussian.expect1(lambda u: u**6, q), m6 * q**3, rtol=1e-13)
    np.testing.assert_allclose(gaussian.expect1(lambda u: u**4, q), 3 * q**2, rtol=1e-10)
    np.testing.assert_allclose(gaussian.expect1(lambda u: u**3, q), 0.0, atol=1e-13)


# --- the rule itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("zstar", [0.0, 0.37, -2.5, 7.9, 30.0])
def test_nodes_and_weights(zstar):
    rule = DEFAULT_RULE
    z, w = gaussian.nodes_and_weights(jnp.float64(zstar), rule)
    assert z.shape == (rule.size,) and w.shape == (rule.size,)
    z, w = np.asarray(z), np.asarray(w)
    assert np.all(w >= 0.0)
    assert np.all(np.abs(z) <= rule.half_width + 1e-12)
    m0, m2, m4, _ = _truncated_moments(rule.half_width)
    assert np.sum(w) == pytest.approx(m0, rel=1e-14)
    assert np.sum(w * z**2) == pytest.approx(m2, rel=1e-13)
    assert np.sum(w * z**4) == pytest.approx(m4, rel=1e-13)
    # A graded point inside [-L, L] is a panel boundary: a kink there is integrated exactly.
    if abs(zstar) < rule.half_width:
        ref = ref_expect1(lambda x: max(x - zstar, 0.0), 1.0)
        assert np.sum(w * np.maximum(z - zstar, 0.0)) == pytest.approx(ref, rel=1e-12)


def test_quadrature_rule_size():
    assert DEFAULT_RULE.size == (8 + 2 * 8 + 1) * 10
    assert QuadratureRule(uniform_panels=2, graded_panels=1, nodes=5).size == (2 + 2 * 1 + 1) * 5
    assert DEFAULT_RULE_2D.size == (6 + 2 * 7 + 1) * 10


def test_expect1_custom_rule_converges():
    # A coarser rule is less accurate, the default one more: both are parameters, not constants.
    coarse = QuadratureRule(uniform_panels=4, graded_panels=2, nodes=4)
    ref = ref_expect1(lambda u: math.tanh(u) ** 2, 30.0)
    err_coarse = abs(float(gaussian.expect1(lambda u: jnp.tanh(u) ** 2, 30.0, coarse)) - ref)
    err_default = abs(float(gaussian.expect1(lambda u: jnp.tanh(u) ** 2, 30.0)) - ref)
    assert err_default < 1e-10 < err_coarse


# --- expect2 ------------------------------------------------------------------------------------

PAIRS = {
    "tanh": (jnp.tanh, math.tanh),
    "erf": (jax.scipy.special.erf, math.erf),
    "sigmoid": (jax.nn.sigmoid, special.expit),
}
PAIR_CASES = [("tanh", "tanh"), ("erf", "sigmoid"), ("sigmoid", "tanh")]
# (q11, q22, c): equal and unequal variances, c = +-1 exactly, c close to 1, small and large q.
POINTS_2D = [
    (1.0, 1.0, 0.5),
    (1.0, 1.0, 1.0),
    (1.0, 1.0, -1.0),
    (0.3, 20.0, 0.7),
    (5.0, 0.01, -0.3),
    (100.0, 100.0, 0.99),
    (100.0, 100.0, -1.0),
    (2.0, 2.0, 0.999999),
    (30.0, 0.5, 1.0),
]


@pytest.fixture(scope="module")
def expect2_jitted():
    return {
        (a, b): jax.jit(
            lambda q11, q22, q12, f=PAIRS[a][0], g=PAIRS[b][0]: gaussian.expect2(
                f, g, q11, q22, q12
            )
        )
        for a, b in PAIR_CASES
    }


@pytest.mark.parametrize("point", POINTS_2D, ids=lambda p: f"q11={p[0]},q22={p[1]},c={p[2]}")
@pytest.mark.parametrize("pair", PAIR_CASES, ids=lambda p: f"{p[0]}-{p[1]}")
def test_expect2_against_nested_quadrature(expect2_jitted, pair, point):
    q11, q22, c = point
    fn, gn = PAIRS[pair[0]][1], PAIRS[pair[1]][1]
    got = float(expect2_jitted[pair](q11, q22, c * math.sqrt(q11 * q22)))
    ref = ref_expect2(fn, gn, q11, q22, c)
    scale = math.sqrt(
        ref_expect1(lambda u: fn(u) ** 2, q11) * ref_expect1(lambda u: gn(u) ** 2, q22)
    )
    assert abs(got - ref) <= 1e-8 * scale, (got, ref, abs(got - ref) / scale)


def test_expect2_erf_closed_form_on_grid():
    """E[erf(u1) erf(u2)] = (2/pi) arcsin(2 q12 / sqrt((1 + 2 q11)(1 + 2 q22))) (Williams 1997)."""
    qs = np.array([1e-3, 0.1, 1.0, 4.0, 25.0, 100.0])
    cs = np.array([-1.0, -0.9, -0.4, 0.0, 0.3, 0.8, 0.99, 1.0])
    Q11, Q22, C = np.meshgrid(qs, qs, cs, indexing="ij")
    Q12 = C * np.sqrt(Q11 * Q22)
    erf = jax.scipy.special.erf
    f = jax.jit(jax.vmap(lambda a, b, c: gaussian.expect2(erf, erf, a, b, c)))
    got = np.asarray(f(Q11.ravel(), Q22.ravel(), Q12.ravel())).reshape(Q11.shape)
    closed = 2 / np.pi * np.arcsin(2 * Q12 / np.sqrt((1 + 2 * Q11) * (1 + 2 * Q22)))
    scale = (
        2 / np.pi * np.sqrt(np.arcsin(2 * Q11 / (1 + 2 * Q11)) * np.arcsin(2 * Q22 / (1 + 2 * Q22)))
    )
    err = np.abs(got - closed) / scale
    assert err.max() <= 1e-8, (err.max(), np.unravel_index(err.argmax(), err.shape))


def test_expect2_symmetries():
    f, g = jnp.tanh, jax.nn.sigmoid
    a = float(gaussian.expect2(f, g, 2.0, 0.5, 0.6))
    b = float(gaussian.expect2(g, f, 0.5, 2.0, 0.6))  # swap the pair
    c = float(gaussian.expect2(f, g, 2.0, 0.5, -0.6))  # tanh odd: E[f(-u1) g(u2)] = -E[f(u1) g(u2)]
    assert a == pytest.approx(b, abs=1e-12)
    assert c == pytest.approx(-a, abs=1e-12)
    # Independence at c = 0: E[f] E[g] = 0 * 0.5.
    assert float(gaussian.expect2(f, g, 2.0, 0.5, 0.0)) == pytest.approx(0.0, abs=1e-14)


# --- the custom JVP of expect2 ------------------------------------------------------------------


def _d(f):
    return lambda x: jax.jvp(f, (x,), (jnp.ones_like(x),))[1]


@pytest.mark.parametrize("c", [-1.0, -0.3, 0.5, 0.95, 1.0])
def test_expect2_grad_q12_is_price_theorem(c):
    """d/dq12 E[f(u1) g(u2)] = E[f'(u1) g'(u2)] (Price's theorem); finite at c = +-1."""
    f, g = jnp.tanh, jax.scipy.special.erf
    q11, q22 = 1.5, 0.8
    q12 = c * math.sqrt(q11 * q22)
    grad = float(jax.grad(lambda x: gaussian.expect2(f, g, q11, q22, x))(q12))
    assert math.isfinite(grad)
    price = float(gaussian.expect2(_d(f), _d(g), q11, q22, q12))
    assert grad == pytest.approx(price, rel=1e-12)
    # An independent reference for the derivative.
    ref = ref_expect2(
        lambda u: 1 - math.tanh(u) ** 2,
        lambda u: 2 / math.sqrt(math.pi) * math.exp(-u * u),
        q11,
        q22,
        c,
    )
    assert grad == pytest.approx(ref, rel=1e-9)


def test_expect2_grad_q12_at_c_equal_one_is_one_dimensional():
    q = 3.0
    grad = float(jax.grad(lambda x: gaussian.expect2(jnp.tanh, jnp.tanh, q, q, x))(q))
    ref = ref_expect1(lambda u: (1 - math.tanh(u) ** 2) ** 2, q)  # E[tanh'(u)^2]
    assert grad == pytest.approx(ref, rel=1e-9)


def test_expect2_grad_q12_matches_finite_difference():
    f, g = jnp.tanh, jax.nn.sigmoid
    q11, q22, q12 = 1.2, 2.0, 0.7
    h = 1e-4
    fd = (
        float(gaussian.expect2(f, g, q11, q22, q12 + h))
        - float(gaussian.expect2(f, g, q11, q22, q12 - h))
    ) / (2 * h)
    grad = float(jax.grad(lambda x: gaussian.expect2(f, g, q11, q22, x))(q12))
    assert grad == pytest.approx(fd, rel=1e-7)


def test_expect2_grad_q11_q22_against_finite_difference():
    """d/dq11 E[f g] = E[f'' g] / 2 (heat equation), against a central difference at c = 0.5.

    q12 is held fixed, so c moves with q11; the central difference with h = 1e-4 errs by O(h^2).
    """
    f, g = jnp.tanh, jax.scipy.special.erf
    q11, q22 = 1.3, 0.7
    q12 = 0.5 * math.sqrt(q11 * q22)
    h = 1e-4

    def E(a, b):
        return float(gaussian.expect2(f, g, a, b, q12))

    d11, d22 = jax.grad(lambda a, b: gaussian.expect2(f, g, a, b, q12), argnums=(0, 1))(q11, q22)
    fd11 = (E(q11 + h, q22) - E(q11 - h, q22)) / (2 * h)
    fd22 = (E(q11, q22 + h) - E(q11, q22 - h)) / (2 * h)
    assert float(d11) == pytest.approx(fd11, rel=1e-7, abs=1e-10)
    assert float(d22) == pytest.approx(fd22, rel=1e-7, abs=1e-10)


def test_expect2_jvp_finite_everywhere_at_degenerate_pair():
    q = 2.0
    grads = jax.grad(
        lambda a, b, c: gaussian.expect2(jnp.tanh, jnp.tanh, a, b, c), argnums=(0, 1, 2)
    )
    for c in (1.0, -1.0):
        g = np.array([float(x) for x in grads(q, q, c * q)])
        assert np.all(np.isfinite(g)), g
    # d/dq of E[tanh(u)^2] along the diagonal q11 = q22 = q12 = q is d11 + d22 + d12.
    total = sum(float(x) for x in grads(q, q, q))
    h = 1e-4
    fd = (
        ref_expect1(lambda u: math.tanh(u) ** 2, q + h)
        - ref_expect1(lambda u: math.tanh(u) ** 2, q - h)
    ) / (2 * h)
    assert total == pytest.approx(fd, rel=1e-7)
