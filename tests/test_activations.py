"""Tests for mftlib.activations: registry, derivatives, closed-form moments, quadratures."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import pdf as _pdf
from reference import ref_expect1
from scipy import special

import mftlib
from mftlib import gaussian
from mftlib.activations import Activation, activation, known_activations

REQUIRED = ("linear", "tanh", "relu", "erf", "gelu", "sigmoid", "softplus")
CLOSED = ("linear", "relu", "erf")


def _Phi(u):
    return 0.5 * (1.0 + math.erf(u / math.sqrt(2.0)))


# Independent numpy versions of each activation and its derivative (for the references).
NUMPY = {
    "linear": (lambda u: u, lambda u: 1.0),
    "relu": (lambda u: max(u, 0.0), lambda u: 1.0 if u > 0 else 0.0),
    "erf": (math.erf, lambda u: 2 / math.sqrt(math.pi) * math.exp(-u * u)),
    "tanh": (math.tanh, lambda u: 1 - math.tanh(u) ** 2),
    "gelu": (lambda u: u * _Phi(u), lambda u: _Phi(u) + u * _pdf(u)),
    "sigmoid": (special.expit, lambda u: special.expit(u) * (1 - special.expit(u))),
    "softplus": (lambda u: float(np.logaddexp(0.0, u)), special.expit),
}


# --- registry -----------------------------------------------------------------------------------


def test_registry_has_the_required_activations():
    names = known_activations()
    for name in REQUIRED:
        assert name in names
        act = activation(name)
        assert isinstance(act, Activation)
        assert act.name == name
    assert set(NUMPY) >= set(REQUIRED)


def test_registry_is_case_and_space_insensitive_and_passes_activations_through():
    assert activation(" TANH ") is activation("tanh")
    custom = Activation("mine", jnp.sin)
    assert activation(custom) is custom
    assert mftlib.activation("relu") is activation("relu")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="phi") as info:
        activation("swish")
    message = str(info.value)
    assert "swish" in message
    for name in known_activations():
        assert name in message


@pytest.mark.parametrize("bad", [3, 1.5, None, jnp.tanh, ["tanh"]])
def test_non_string_is_type_error(bad):
    with pytest.raises(TypeError, match="phi"):
        activation(bad)


def test_closed_form_flags():
    for name in CLOSED:
        assert activation(name).has_closed_form
    for name in ("tanh", "gelu", "sigmoid", "softplus"):
        assert not activation(name).has_closed_form
    assert activation("relu").homogeneous and activation("linear").homogeneous
    assert not activation("tanh").homogeneous


def test_activations_are_hashable_static_arguments():
    act = activation("tanh")
    f = jax.jit(lambda a, x: a(x), static_argnums=0)
    np.testing.assert_allclose(f(act, jnp.array([0.5])), np.tanh([0.5]), rtol=1e-15)
    assert repr(act) == "Activation('tanh')"


# --- derivatives --------------------------------------------------------------------------------

XS = np.array([-3.1, -1.0, -0.2, 0.15, 0.7, 2.4])  # no point at relu's kink


@pytest.mark.parametrize("name", REQUIRED)
def test_derivatives_against_finite_differences(name):
    act = activation(name)
    x = jnp.asarray(XS)
    h = 1e-5
    fd1 = (np.asarray(act(x + h)) - np.asarray(act(x - h))) / (2 * h)
    np.testing.assert_allclose(np.asarray(act.derivative(x)), fd1, rtol=1e-8, atol=1e-9)
    fd2 = (np.asarray(act.derivative(x + h)) - np.asarray(act.derivative(x - h))) / (2 * h)
    np.testing.assert_allclose(np.asarray(act.second_derivative(x)), fd2, rtol=1e-7, atol=1e-8)
    # and against the analytic derivative
    exact = np.array([NUMPY[name][1](float(v)) for v in XS])
    np.testing.assert_allclose(np.asarray(act.derivative(x)), exact, rtol=1e-13, atol=1e-15)


def test_derivatives_are_elementwise_on_arrays():
    act = activation("tanh")
    x = jnp.linspace(-2, 2, 12).reshape(3, 4)
    d = act.derivative(x)
    assert d.shape == x.shape
    np.testing.assert_allclose(d, 1 - np.tanh(np.asarray(x)) ** 2, rtol=1e-14)


# --- closed-form pair moments against quadrature of the raw functions --------------------------

Q_GRID = (0.01, 0.5, 1.0, 4.0, 50.0)
C_GRID = (-1.0, -0.7, 0.0, 0.3, 0.9, 1.0)


def _grid():
    q11, q22, c = (a.ravel() for a in np.meshgrid(Q_GRID, Q_GRID, C_GRID, indexing="ij"))
    return q11, q22, c * np.sqrt(q11 * q22)


@pytest.mark.parametrize("name", CLOSED)
def test_closed_pair_moment_against_quadrature(name):
    """Closed forms (arc-cosine, arcsin, linear) against expect2 of the raw function.

    Tolerance 1e-10 relative to sqrt(E phi(u1)^2 E phi(u2)^2). relu's kinks might be expected to
    cost accuracy, but gaussian.expect2 puts a panel boundary exactly on both of them (the outer
    rule is graded at z1 = 0, the inner at the z2 where u2 = 0), so relu is integrated as
    accurately as the smooth functions: measured 2e-13. The remaining error is the 2-D inner
    rule's ~1e-11.
    """
    act = activation(name)
    q11, q22, q12 = _grid()
    closed = np.asarray(jax.vmap(act.pair_moment)(q11, q22, q12))
    quad = np.asarray(
        jax.jit(jax.vmap(lambda a, b, c: gaussian.expect2(act.fn, act.fn, a, b, c)))(q11, q22, q12)
    )
    scale = np.sqrt(np.asarray(act.mean_square(q11)) * np.asarray(act.mean_square(q22)))
    err = np.abs(closed - quad) / scale
    assert err.max() <= 1e-10, (err.max(), q11[err.argmax()], q22[err.argmax()], q12[err.argmax()])


@pytest.mark.parametrize("name", CLOSED)
def test_closed_deriv_pair_moment_against_quadrature(name):
    """E[phi'(u1) phi'(u2)] closed forms against expect2 of the autodiff derivatives.

    Tolerance 2e-8 relative. For erf the integrand is phi'(u) ~ exp(-u^2), at q = 50 a bump of width
    0.1 in z; the quadrature resolves it to ~6e-9 (measured worst, at q11 = q22 = 50, c = 0.9).
    relu and linear: ~1e-13 (relu' is a step; the panel boundary sits on it).
    """
    act = activation(name)
    q11, q22, q12 = _grid()
    closed = np.asarray(jax.vmap(act.deriv_pair_moment)(q11, q22, q12))
    quad = np.asarray(
        jax.jit(
            jax.vmap(lambda a, b, c: gaussian.expect2(act.derivative, act.derivative, a, b, c))
        )(q11, q22, q12)
    )
    # Relative to sqrt(E phi'(u1)^2 E phi'(u2)^2): relu's moment is 0 at c = -1.
    scale = np.sqrt(
        np.asarray(act.mean_square_derivative(q11)) * np.asarray(act.mean_square_derivative(q22))
    )
    err = np.abs(closed - quad) / scale
    assert err.max() <= 2e-8, (err.max(), q11[err.argmax()], q22[err.argmax()], q12[err.argmax()])


def test_closed_forms_explicit_values():
    relu, erf, lin = activation("relu"), activation("erf"), activation("linear")
    # relu: E[relu(u)^2] = q/2; at c = 0, E[relu(u1) relu(u2)] = sqrt(q11 q22)/(2 pi).
    assert float(relu.pair_moment(3.0, 3.0, 3.0)) == pytest.approx(1.5, rel=1e-15)
    assert float(relu.pair_moment(2.0, 8.0, 0.0)) == pytest.approx(4 / (2 * math.pi), rel=1e-15)
    assert float(relu.pair_moment(2.0, 8.0, -4.0)) == pytest.approx(0.0, abs=1e-15)
    assert float(relu.deriv_pair_moment(2.0, 8.0, 0.0)) == pytest.approx(0.25, rel=1e-15)
    assert float(relu.deriv_pair_moment(2.0, 8.0, 4.0)) == pytest.approx(0.5, rel=1e-15)
    assert float(erf.pair_moment(1.0, 1.0, 1.0)) == pytest.approx(
        2 / math.pi * math.asin(2 / 3), rel=1e-15
    )
    assert float(erf.deriv_pair_moment(1.0, 1.0, 0.0)) == pytest.approx(4 / math.pi / 3, rel=1e-15)
    assert float(lin.pair_moment(2.0, 3.0, -1.1)) == pytest.approx(-1.1, rel=1e-15)
    assert float(lin.deriv_pair_moment(2.0, 3.0, -1.1)) == 1.0


# --- one-dimensional moments for every registered activation ------------------------------------

Q_1D = (0.01, 0.3, 1.0, 4.0, 20.0)


@pytest.mark.parametrize("name", REQUIRED)
def test_mean_square_and_mean_square_derivative(name):
    act = activation(name)
    f, df = NUMPY[name]
    q = jnp.asarray(Q_1D)
    ms = np.asarray(act.mean_square(q))
    msd = np.asarray(act.mean_square_derivative(q))
    assert ms.shape == msd.shape == (len(Q_1D),)
    for i, qi in enumerate(Q_1D):
        assert ms[i] == pytest.approx(ref_expect1(lambda u: f(u) ** 2, qi), rel=1e-10)
        assert msd[i] == pytest.approx(ref_expect1(lambda u: df(u) ** 2, qi), rel=1e-9)


@pytest.mark.parametrize("name", REQUIRED)
def test_mean_square_slope_against_finite_difference(name):
    """d/dq E[phi(sqrt q z)^2] (heat equation: E[phi'^2 + phi phi'']) vs a central difference."""
    act = activation(name)
    q = np.array([0.05, 0.5, 2.0, 10.0])
    h = 1e-4 * q
    fd = (np.asarray(act.mean_square(q + h)) - np.asarray(act.mean_square(q - h))) / (2 * h)
    slope = np.asarray(act.mean_square_slope(jnp.asarray(q)))
    assert slope.shape == q.shape
    np.testing.assert_allclose(slope, fd, rtol=1e-7)


@pytest.mark.parametrize("name", REQUIRED)
def test_moments_at_zero_variance_are_limits(name):
    """At q = 0 the moments must be the limits q -> 0+ (q* = 0 is common: sigma_b2 = 0).

    E[phi(sqrt(q) z)^2] -> phi(0)^2, d/dq of it -> phi'(0)^2 + phi(0) phi''(0), and
    E[phi'(sqrt(q) z)^2] -> phi'(0)^2 for smooth phi. For relu (and linear) E[phi^2] = q E[phi(z)^2]
    exactly, so the slope is E[phi(z)^2] = 1/2 (1) at every q, and E[phi'^2] = 1/2 (1) at every
    q > 0.
    """
    act = activation(name)
    eps = 1e-9
    wrong = []
    for moment in ("mean_square", "mean_square_slope", "mean_square_derivative"):
        at_zero = float(getattr(act, moment)(0.0))
        near_zero = float(getattr(act, moment)(eps))
        if at_zero != pytest.approx(near_zero, rel=1e-6, abs=1e-8):
            wrong.append(f"{moment}(0) = {at_zero}, {moment}({eps}) = {near_zero}")
    assert not wrong, f"{name}: " + "; ".join(wrong)


def test_relu_closed_form_is_scale_free():
    """relu is positively homogeneous: E[relu(u1) relu(u2)] = q k(c), E[relu'^2] = 1/2 for q > 0.

    Checked over the whole float64 range of variances (a relu net with sigma_w2 < 2, sigma_b2 = 0
    shrinks q geometrically with depth); sqrt(q11 q22) must not under- or overflow.
    """
    relu = activation("relu")
    k = (math.sqrt(1 - 0.25) + (math.pi - math.acos(0.5)) * 0.5) / (2 * math.pi)
    wrong = []
    for q in (1e-200, 1e-100, 1e-9, 1.0, 1e6, 1e100, 1e200):
        got = {
            "mean_square/q": float(relu.mean_square(q)) / q,
            "pair_moment(c=0.5)/q": float(relu.pair_moment(q, q, 0.5 * q)) / q,
            "mean_square_slope": float(relu.mean_square_slope(q)),
            "mean_square_derivative": float(relu.mean_square_derivative(q)),
        }
        want = {
            "mean_square/q": 0.5,
            "pair_moment(c=0.5)/q": k,
            "mean_square_slope": 0.5,
            "mean_square_derivative": 0.5,
        }
        wrong += [
            f"q={q}: {key} = {got[key]} != {want[key]}"
            for key in got
            if got[key] != pytest.approx(want[key], rel=1e-12)
        ]
    assert not wrong, "; ".join(wrong)


# --- properties ---------------------------------------------------------------------------------

PROPERTY_ACTS = ("tanh", "erf", "relu")


@pytest.fixture(scope="module")
def normalised_pair():
    """jitted (q, c) -> (E[phi(u1) phi(u2)], E[phi(u)^2]) at equal variances q, correlation c."""
    out = {}
    for name in PROPERTY_ACTS:
        act = activation(name)
        out[name] = jax.jit(lambda q, c, a=act: (a.pair_moment(q, q, c * q), a.mean_square(q)))
    return out


@pytest.fixture(scope="module")
def relu_grad():
    relu = activation("relu")
    return jax.jit(jax.grad(lambda a, b, c: relu.pair_moment(a, b, c), argnums=(0, 1, 2)))


@settings(max_examples=20, deadline=None)
@given(q=st.floats(1e-3, 50.0), c=st.floats(-1.0, 1.0))
def test_pair_moment_cauchy_schwarz(normalised_pair, relu_grad, q, c):
    for name in PROPERTY_ACTS:
        pair, ms = (float(v) for v in normalised_pair[name](q, c))
        assert math.isfinite(pair)
        assert abs(pair) <= ms * (1 + 1e-10) + 1e-15, (name, q, c, pair, ms)
    # The relu pair moment's JVP is written out to stay finite at c = 1 (arccos' is infinite there).
    grads = [float(g) for g in relu_grad(q, q, q)]
    assert all(math.isfinite(g) for g in grads), grads
    # d/dq of E[relu(u)^2] = q/2 along the diagonal: d11 + d22 + d12 = 1/2.
    assert sum(grads) == pytest.approx(0.5, rel=1e-12)
    grads_c = [float(g) for g in relu_grad(q, q, c * q)]
    assert all(math.isfinite(g) for g in grads_c), grads_c
