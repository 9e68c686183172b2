"""Tests for mftlib.dense: length/correlation/covariance maps, fixed points, chi_1, depth scales,
phase diagrams and NNGP kernels.

Independent references use scipy.integrate.quad (adaptive) and scipy.optimize.brentq; nothing in
them calls mftlib's quadrature.
"""

from __future__ import annotations

import math
from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import pdf as _pdf
from reference import ref_expect1
from scipy import integrate, optimize, special

import mftlib as mft
from mftlib import dense, dynamics

QUAD2 = dict(epsabs=1e-15, epsrel=1e-12, limit=200)


def ref_pair(f, q, c):
    """E[f(u1) f(u2)] at equal variances q and correlation |c| < 1: nested adaptive quadrature."""
    s, sq = math.sqrt(1 - c * c), math.sqrt(q)

    def inner(z1):
        zs = -c * z1 / s

        def k(z2):
            return f(sq * (c * z1 + s * z2)) * _pdf(z2)

        return integrate.quad(k, -40, zs, **QUAD2)[0] + integrate.quad(k, zs, 40, **QUAD2)[0]

    def outer(z1):
        return f(sq * z1) * inner(z1) * _pdf(z1)

    return integrate.quad(outer, -40, 0, **QUAD2)[0] + integrate.quad(outer, 0, 40, **QUAD2)[0]


NP = {  # numpy activations and derivatives, for the references
    "tanh": (math.tanh, lambda u: 1 - math.tanh(u) ** 2),
    "erf": (math.erf, lambda u: 2 / math.sqrt(math.pi) * math.exp(-u * u)),
    "sigmoid": (special.expit, lambda u: special.expit(u) * (1 - special.expit(u))),
}


@cache
def ref_q_star(phi, sw, sb):
    f = NP[phi][0]
    return optimize.brentq(
        lambda q: sw * ref_expect1(lambda u: f(u) ** 2, q) + sb - q,
        1e-12,
        1e3,
        xtol=1e-15,
        rtol=1e-15,
    )


@cache
def ref_c_star(phi, sw, sb):
    """brentq on the scipy-quad correlation map C(c) - c in [0, 0.999] (chaotic phase)."""
    f = NP[phi][0]
    q = ref_q_star(phi, sw, sb)
    return optimize.brentq(lambda c: (sw * ref_pair(f, q, c) + sb) / q - c, 0.0, 0.999, xtol=1e-13)


def _f(x):
    return float(np.asarray(x))


# --- (a) the paper value and criticality ---------------------------------------------------------


def test_critical_tanh_matches_schoenholz():
    """Schoenholz et al. (2017): the tanh critical line passes sigma_w2 ~ 1.76 at
    sigma_b2 = 0.05. (A scipy brentq/quad reference gives 1.76095463960674.)"""
    sw = _f(mft.critical_sigma_w2("tanh", 0.05))
    assert abs(sw - 1.76) <= 0.005
    assert sw == pytest.approx(1.76095463960674, rel=1e-10)
    assert _f(mft.chi1("tanh", sw, 0.05)) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("sb", [0.0, 0.05, 0.7, 3.0])
def test_critical_relu_is_two(sb):
    assert _f(mft.critical_sigma_w2("relu", sb)) == 2.0
    assert _f(mft.critical_sigma_w2("linear", sb)) == 1.0


def test_critical_tanh_at_zero_bias_is_one():
    assert _f(mft.critical_sigma_w2("tanh", 0.0)) == pytest.approx(1.0, abs=1e-8)


def test_critical_line_increases_with_bias():
    crit = [_f(mft.critical_sigma_w2("tanh", sb)) for sb in (0.0, 0.05, 0.3, 1.0)]
    assert np.all(np.diff(crit) > 0)
    for sb, sw in zip((0.3, 1.0), crit[2:], strict=True):
        assert _f(mft.chi1("tanh", sw, sb)) == pytest.approx(1.0, abs=1e-10)


# --- (b) fixed points are fixed ----------------------------------------------------------------

FIXED_POINT_CASES = [
    ("tanh", 1.2, 0.1),  # ordered
    ("tanh", 2.5, 0.05),  # chaotic
    ("tanh", 4.0, 0.3),  # chaotic
    ("erf", 1.2, 0.1),
    ("erf", 2.5, 0.05),
    ("erf", 4.0, 0.3),
    ("relu", 1.5, 0.1),  # relu has a finite q* only for sigma_w2 < 2: always ordered
    ("relu", 1.9, 1.0),
    ("sigmoid", 2.5, 0.05),  # ordered (sigmoid's mean keeps c* = 1 up to sigma_w2 ~ 100)
    ("sigmoid", 300.0, 0.0),  # chaotic (q* = 140)
]


@pytest.mark.parametrize("phi,sw,sb", FIXED_POINT_CASES)
def test_fixed_points_are_fixed(phi, sw, sb):
    q = _f(mft.q_star(phi, sw, sb))
    assert math.isfinite(q) and q > 0
    assert _f(mft.length_map(phi, sw, sb, q)) == pytest.approx(q, rel=1e-12)
    c = _f(mft.c_star(phi, sw, sb))
    assert 0.0 <= c <= 1.0
    chi = _f(mft.chi1(phi, sw, sb))
    assert (c == 1.0) == (chi <= 1.0)
    assert _f(mft.correlation_map(phi, sw, sb, c)) == pytest.approx(c, abs=1e-10)
    # c = 1 is always a fixed point at q*
    assert _f(mft.correlation_map(phi, sw, sb, 1.0)) == pytest.approx(1.0, abs=1e-10)


# --- (c), (d) independent references ----------------------------------------------------------

REF_CASES = [
    ("tanh", 1.5, 0.1),
    ("tanh", 2.5, 0.05),
    ("tanh", 4.0, 0.3),
    ("erf", 2.0, 0.2),
    ("sigmoid", 3.0, 0.5),
]


@pytest.mark.parametrize("phi,sw,sb", REF_CASES)
def test_q_star_and_chi1_against_scipy(phi, sw, sb):
    q_ref = ref_q_star(phi, sw, sb)
    assert _f(mft.q_star(phi, sw, sb)) == pytest.approx(q_ref, rel=1e-9)
    chi_ref = sw * ref_expect1(lambda u: NP[phi][1](u) ** 2, q_ref)
    assert _f(mft.chi1(phi, sw, sb)) == pytest.approx(chi_ref, rel=1e-9)


def test_q_star_closed_forms():
    # relu: q* = sb / (1 - sw/2); linear: q* = sb / (1 - sw).
    assert _f(mft.q_star("relu", 1.5, 0.2)) == pytest.approx(0.2 / (1 - 0.75), rel=1e-15)
    assert _f(mft.q_star("linear", 0.5, 0.2)) == pytest.approx(0.4, rel=1e-15)
    # relu at the critical point without bias: every q is a fixed point, q* = q0.
    assert _f(mft.q_star("relu", 2.0, 0.0, q0=3.7)) == 3.7
    # tanh without bias in the ordered phase: q* = 0.
    assert _f(mft.q_star("tanh", 0.8, 0.0)) == 0.0


@pytest.mark.parametrize("sw,sb", [(2.5, 0.05), (4.0, 0.3)])
def test_c_star_against_scipy(sw, sb):
    assert _f(mft.c_star("tanh", sw, sb)) == pytest.approx(ref_c_star("tanh", sw, sb), abs=1e-8)


# --- (e) depth scales ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phi,sw,sb", [("tanh", 1.2, 0.1), ("tanh", 1.5, 0.3), ("erf", 1.0, 0.2), ("relu", 1.5, 0.1)]
)
def test_xi_c_ordered_is_minus_inverse_log_chi1(phi, sw, sb):
    chi = _f(mft.chi1(phi, sw, sb))
    assert chi < 1
    _, xi_c = mft.depth_scales(phi, sw, sb)
    assert _f(xi_c) == pytest.approx(-1 / math.log(chi), rel=1e-12)
    assert _f(mft.gradient_depth_scale(phi, sw, sb)) == pytest.approx(-1 / math.log(chi), rel=1e-12)


def test_gradient_depth_scale_chaotic_is_growth_scale():
    chi = _f(mft.chi1("tanh", 3.0, 0.1))
    assert chi > 1
    assert _f(mft.gradient_depth_scale("tanh", 3.0, 0.1)) == pytest.approx(
        1 / math.log(chi), rel=1e-12
    )


@pytest.mark.parametrize(
    "phi,sw,sb",
    [
        ("tanh", 1.2, 0.1),
        ("tanh", 2.5, 0.05),
        ("erf", 3.0, 0.5),
        ("sigmoid", 4.0, 0.2),
        ("relu", 1.5, 0.1),
    ],
)
def test_xi_q_is_length_map_slope(phi, sw, sb):
    q = _f(mft.q_star(phi, sw, sb))
    h = 1e-5 * q
    slope = (_f(mft.length_map(phi, sw, sb, q + h)) - _f(mft.length_map(phi, sw, sb, q - h))) / (
        2 * h
    )
    xi_q, _ = mft.depth_scales(phi, sw, sb)
    assert _f(xi_q) == pytest.approx(-1 / math.log(slope), rel=1e-7)


@pytest.mark.parametrize("sb", [0.05, 0.3])
def test_xi_c_diverges_at_criticality(sb):
    crit = _f(mft.critical_sigma_w2("tanh", sb))
    for sw in (crit * (1 - 1e-5), crit * (1 + 1e-5)):
        _, xi_c = mft.depth_scales("tanh", sw, sb)
        assert _f(xi_c) > 1e3
    # and is finite and moderate away from it
    assert 1 < _f(mft.depth_scales("tanh", crit * 0.7, sb)[1]) < 1e2
    assert 1 < _f(mft.depth_scales("tanh", crit * 1.5, sb)[1]) < 1e2


def test_depth_scales_infinite_at_marginal_zero_fixed_point():
    """tanh at sigma_w2 = 1, sigma_b2 = 0: q* = 0 with chi_q = chi_1 = tanh'(0)^2 = 1 exactly.

    dense.depth_scales documents ``inf`` 'at criticality, or where q = 0 is marginal'. The
    quadrature's weights sum to 1 - 1.2e-15 (the Gaussian mass beyond |z| = 8 is dropped), so
    chi_1 comes out as 0.9999999999999986 and xi = 6.9e14 instead of inf.
    """
    assert _f(mft.q_star("tanh", 1.0, 0.0)) == 0.0
    xi_q, xi_c = mft.depth_scales("tanh", 1.0, 0.0)
    assert _f(xi_q) == math.inf and _f(xi_c) == math.inf, (_f(xi_q), _f(xi_c))


def test_relu_without_bias_chi1_and_depth_scales():
    """relu, sigma_b2 = 0, sigma_w2 < 2: q* = 0, and the length map is q -> (sigma_w2/2) q exactly.

    Its slope, and chi_1 = sigma_w2 E[relu'(u)^2] = sigma_w2/2 (the per-layer factor of squared
    gradient norms at every q > 0), do not depend on q; q* = 0 must not change them. The library
    evaluates the relu closed forms at q = 0 with c := 0 and gets sigma_w2/4.
    """
    sw = 1.5
    assert _f(mft.q_star("relu", sw, 0.0)) == 0.0
    chi = _f(mft.chi1("relu", sw, 0.0))
    xi_q, xi_c = (_f(x) for x in mft.depth_scales("relu", sw, 0.0))
    expected_xi = -1 / math.log(sw / 2)
    wrong = []
    if chi != pytest.approx(sw / 2, rel=1e-12):
        wrong.append(f"chi1 = {chi}, expected {sw / 2}")
    if xi_q != pytest.approx(expected_xi, rel=1e-12):
        wrong.append(f"xi_q = {xi_q}, expected {expected_xi}")
    if xi_c != pytest.approx(expected_xi, rel=1e-12):
        wrong.append(f"xi_c = {xi_c}, expected {expected_xi}")
    # the same values as with a tiny bias, where q* > 0
    assert _f(mft.chi1("relu", sw, 1e-12)) == pytest.approx(sw / 2, rel=1e-12)
    assert not wrong, "; ".join(wrong)


# --- (f) the generic toolbox agrees with the dense formulas --------------------------------------


@pytest.mark.parametrize(
    "phi,sw,sb", [("tanh", 1.5, 0.1), ("tanh", 2.5, 0.05), ("erf", 3.0, 0.3), ("erf", 1.0, 0.2)]
)
def test_linearised_covariance_map_eigenvalues(phi, sw, sb):
    """Linearising the 2 x 2 covariance map at Sigma* = q* [[1, c*], [c*, 1]] (upper-triangle
    coordinates) gives the eigenvalues {chi_q, chi_q, chi_c} whose depth scales dense reports."""
    act = mft.activation(phi)
    q, c = _f(mft.q_star(phi, sw, sb)), _f(mft.c_star(phi, sw, sb))
    S = q * np.array([[1.0, c], [c, 1.0]])
    F_S, J, xis = _linearised(act, sw, sb, jnp.asarray(S))
    # Sigma* is a fixed point of the covariance map
    np.testing.assert_allclose(np.asarray(F_S), S, rtol=1e-10, atol=1e-12)
    J = np.asarray(J)
    assert J.shape == (3, 3)
    lam = np.sort(np.real(np.linalg.eigvals(J)))
    xi_q, xi_c = (_f(x) for x in mft.depth_scales(phi, sw, sb))
    chi_q, chi_c = math.exp(-1 / xi_q), math.exp(-1 / xi_c)
    np.testing.assert_allclose(lam, np.sort([chi_q, chi_q, chi_c]), rtol=1e-9)
    # and through depth_scales_at
    np.testing.assert_allclose(np.sort(np.asarray(xis)), np.sort([xi_q, xi_q, xi_c]), rtol=1e-8)


@partial(jax.jit, static_argnums=0)
def _linearised(act, sw, sb, S):
    """The covariance map at S, its linearisation there, and its depth scales (jitted per act).

    The public covariance_map validates its input and cannot be traced: jacfwd goes through the
    private dense._covariance_map.
    """

    def F(X):
        return dense._covariance_map(act, sw, sb, X)

    _, xis = dynamics.depth_scales_at(F, S, symmetric=True)
    return F(S), dynamics.linearise(F, S, symmetric=True), xis


def test_covariance_map_matches_length_and_correlation_maps():
    # erf: closed forms, so this runs without compiling the quadrature (tanh's covariance map is
    # exercised through covariance_trajectory below).
    sw, sb, q, c = 2.0, 0.1, 0.8, 0.4
    S = q * np.array([[1.0, c], [c, 1.0]])
    out = np.asarray(mft.covariance_map("erf", sw, sb, S))
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, out.T, rtol=1e-12)
    assert out[0, 0] == pytest.approx(_f(mft.length_map("erf", sw, sb, q)), rel=1e-14)
    cmap = _f(mft.correlation_map("erf", sw, sb, c, q=q))
    assert out[0, 1] / q == pytest.approx(cmap, rel=1e-12)


# --- (g) the correlation map is a map of correlations -------------------------------------------


@pytest.fixture(scope="module")
def warm_correlation_map():
    for phi in ("tanh", "erf"):
        mft.correlation_map(phi, 2.0, 0.1, 0.5)
    return mft.correlation_map


@pytest.mark.slow
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sw=st.floats(0.5, 4.0), sb=st.floats(0.0, 1.0), c=st.floats(-1.0, 1.0))
def test_correlation_map_keeps_correlations(warm_correlation_map, sw, sb, c):
    cmap = warm_correlation_map
    for phi in ("tanh", "erf"):
        # q* = 0 (sigma_b2 = 0, ordered phase) has no correlation map: a ValueError, tested below.
        assume(_f(mft.q_star(phi, sw, sb)) > 0)
        out = np.asarray(cmap(phi, sw, sb, np.array([c, 1.0, -1.0])))
        assert np.all(np.isfinite(out)), (phi, sw, sb, c, out)
        assert np.all(out >= -1 - 1e-10) and np.all(out <= 1 + 1e-10), (phi, sw, sb, c, out)
        assert out[1] == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("phi,sw", [("tanh", 0.5), ("erf", 0.5), ("relu", 1.5)])
def test_correlation_map_at_zero_fixed_point_is_not_silent_nan(phi, sw):
    """With sigma_b2 = 0 in the ordered phase q* = 0 and (sw E[phi phi] + sb)/q* is 0/0.

    Convention (ARCHITECTURE.md): never a silent NaN. Either a ValueError (as for q* = inf) or
    finite correlations with C(1) = 1 are acceptable; the library returns NaN.
    """
    assert _f(mft.q_star(phi, sw, 0.0)) == 0.0
    try:
        out = np.asarray(mft.correlation_map(phi, sw, 0.0, np.array([0.3, 1.0])))
    except ValueError:
        return
    assert np.all(np.isfinite(out)), out
    assert out[1] == pytest.approx(1.0, abs=1e-10)


def test_q_star_relative_accuracy_for_tiny_bias():
    """q_star's docstring promises ~1e-15 relative accuracy; for q* below ~1e-14 it is lost.

    dynamics.find_root stops when the bracket is narrower than xtol * max(1, |root|) = 1e-15
    *absolute*, so a q* of 2e-16 (tanh, sigma_w2 = 0.5, sigma_b2 = 1e-16) comes back 3.5% off
    (2.0699e-16), the length map does not fix it, and the correlation map at q* gives
    C(1) = 0.983 instead of 1.
    """
    wrong = []
    for phi in ("tanh", "erf"):
        for sb in (1e-16, 1e-20, 1e-50):
            q = _f(mft.q_star(phi, 0.5, sb))
            lq = _f(mft.length_map(phi, 0.5, sb, q))
            if lq != pytest.approx(q, rel=1e-12):
                wrong.append(f"{phi} sigma_b2={sb}: q*={q}, length_map(q*)={lq}")
    assert not wrong, "; ".join(wrong)
    assert _f(mft.correlation_map("tanh", 0.5, 1e-20, 1.0)) == pytest.approx(1.0, abs=1e-10)


# --- (h) phase diagrams -------------------------------------------------------------------------

SW_GRID = np.linspace(0.8, 4.0, 6)
SB_GRID = np.array([0.0, 0.05, 0.2, 0.5, 1.0])


@pytest.mark.parametrize("phi", ["tanh", "erf", "relu"])
def test_phase_diagram_matches_scalar_functions(phi):
    pd = mft.phase_diagram(phi, SW_GRID, SB_GRID)
    for key in ("q_star", "c_star", "chi1", "chi_c", "xi_q", "xi_c", "diverged"):
        assert pd[key].shape == (len(SW_GRID), len(SB_GRID)), key
    scalar = {
        k: np.empty((len(SW_GRID), len(SB_GRID)))
        for k in ("q_star", "c_star", "chi1", "xi_q", "xi_c")
    }
    for i, sw in enumerate(SW_GRID):
        for j, sb in enumerate(SB_GRID):
            scalar["q_star"][i, j] = _f(mft.q_star(phi, sw, sb))
            scalar["c_star"][i, j] = _f(mft.c_star(phi, sw, sb))
            scalar["chi1"][i, j] = _f(mft.chi1(phi, sw, sb))
            xi_q, xi_c = mft.depth_scales(phi, sw, sb)
            scalar["xi_q"][i, j], scalar["xi_c"][i, j] = _f(xi_q), _f(xi_c)
    for key, ref in scalar.items():
        # Where c* = 0 (odd phi, no bias, chaotic) the scalar root search returns up to ~7e-12 (the
        # quadrature's rounding in C(c) - c near 0), the Hermite series ~1e-15: an absolute floor.
        atol = 1e-10 if key == "c_star" else 1e-12
        np.testing.assert_allclose(np.asarray(pd[key]), ref, rtol=1e-8, atol=atol, err_msg=key)
    np.testing.assert_array_equal(np.asarray(pd["diverged"]), ~np.isfinite(scalar["q_star"]))
    chi, c = np.asarray(pd["chi1"]), np.asarray(pd["c_star"])
    ordered = chi < 1
    assert ordered.any()
    assert np.all(c[ordered] == 1.0)
    chaotic = chi > 1
    assert np.all(c[chaotic] < 1.0)
    if phi != "relu":
        assert chaotic.any()


def test_phase_diagram_relu_divergence_mask():
    pd = mft.phase_diagram("relu", np.array([1.0, 3.0]), np.array([0.1, 0.5]))
    np.testing.assert_array_equal(np.asarray(pd["diverged"]), [[False, False], [True, True]])
    assert np.all(np.isinf(np.asarray(pd["q_star"])[1]))
    assert np.all(np.isnan(np.asarray(pd["chi1"])[1]))


# --- (i) NNGP kernels ---------------------------------------------------------------------------

N_IN, D_IN = 4, 3


def _check_symmetric_psd(x, sw, sb, phis, depths):
    for phi in phis:
        for depth in depths:
            K = np.asarray(mft.nngp_kernel(x, None, phi, sw, sb, depth))
            assert K.shape == (N_IN, N_IN)
            assert np.all(np.isfinite(K)), (phi, depth, K)
            scale = max(np.abs(K).max(), 1e-300)
            np.testing.assert_allclose(K, K.T, rtol=0, atol=1e-10 * scale)
            ev = np.linalg.eigvalsh((K + K.T) / 2)
            assert ev.min() >= -1e-10 * scale, (phi, depth, ev)


INPUT_SETS = arrays(np.float64, (N_IN, D_IN), elements=st.floats(-3.0, 3.0))


@settings(max_examples=12, deadline=None)
@given(x=INPUT_SETS, sw=st.floats(0.5, 3.0), sb=st.floats(0.0, 1.0))
def test_nngp_kernel_symmetric_psd_closed_forms(x, sw, sb):
    _check_symmetric_psd(x, sw, sb, ("relu", "erf"), (0, 1, 5))


# tanh goes through quadrature / Hermite series: each call costs ~0.5 s, so fewer examples.
@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(x=INPUT_SETS, sw=st.floats(0.5, 3.0), sb=st.floats(0.0, 1.0))
def test_nngp_kernel_symmetric_psd_tanh(x, sw, sb):
    _check_symmetric_psd(x, sw, sb, ("tanh",), (1, 5))


@pytest.mark.parametrize("phi", ["relu", "erf", "tanh", "sigmoid"])
def test_nngp_zero_input_without_bias(phi):
    """x = 0 with sigma_b2 = 0 has pre-activation variance 0: u = 0 exactly, so phi(u) = phi(0).

    Then K^1(0, x') = sigma_w2 phi(0) E[phi(u')] and K^1(0, 0) = sigma_w2 phi(0)^2: finite, no NaN.
    (The quadrature path handles q = 0; the Hermite-series layer divides k12 by sqrt(d1 d2) = 0.)
    """
    x = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, -1.0]])
    sw = 1.5
    act = mft.activation(phi)
    K = np.asarray(mft.nngp_kernel(x, None, phi, sw, 0.0, 1))
    assert np.all(np.isfinite(K)), K
    q2 = sw * 2.0 / 3.0  # variance of the second input's pre-activation
    phi0 = _f(act(0.0))
    # E[phi(u')]: 0 for the odd tanh and erf, 1/2 for sigmoid; relu has phi(0) = 0, so it drops out.
    mean = 0.5 if phi == "sigmoid" else 0.0
    cross = sw * phi0 * mean
    expected = np.array([[sw * phi0**2, cross], [cross, _f(mft.length_map(phi, sw, 0.0, q2))]])
    np.testing.assert_allclose(K, expected, rtol=1e-10, atol=1e-14)
    # deeper: finite as well
    assert np.all(np.isfinite(np.asarray(mft.nngp_kernel(x, None, phi, sw, 0.0, 3))))


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(1234)
    return rng.normal(size=(5, 3)), rng.normal(size=(3, 3))


def test_nngp_depth_zero_is_linear_kernel(inputs):
    x1, x2 = inputs
    sw, sb = 1.7, 0.3
    K = np.asarray(mft.nngp_kernel(x1, x2, "tanh", sw, sb, 0))
    np.testing.assert_allclose(K, sb + sw * x1 @ x2.T / 3, rtol=1e-14)


@pytest.mark.parametrize("phi", ["relu", "erf", "tanh"])
def test_nngp_equals_covariance_trajectory(inputs, phi):
    depth = 3
    x1, x2 = inputs
    X = np.concatenate([x1, x2])
    sw, sb = 1.7, 0.1
    K = np.asarray(mft.nngp_kernel(X, None, phi, sw, sb, depth))
    S0 = sb + sw * X @ X.T / X.shape[1]
    S0 = (S0 + S0.T) / 2
    traj = np.asarray(mft.covariance_trajectory(phi, sw, sb, S0, depth))
    assert traj.shape == (depth + 1, 8, 8)
    np.testing.assert_allclose(traj[0], S0, rtol=1e-14)
    np.testing.assert_allclose(K, traj[-1], rtol=1e-10, atol=1e-12)
    # the cross kernel is the off-diagonal block of the joint kernel
    K12 = np.asarray(mft.nngp_kernel(x1, x2, phi, sw, sb, depth))
    assert K12.shape == (5, 3)
    np.testing.assert_allclose(K12, K[:5, 5:], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,fn", [("relu", jax.nn.relu), ("erf", jax.scipy.special.erf)])
def test_nngp_closed_form_vs_quadrature_activation(inputs, name, fn):
    """The closed forms against a pure-quadrature Activation built from the same function."""
    x1, x2 = inputs
    quad_act = mft.Activation(name + "_q", fn)
    assert not quad_act.has_closed_form
    for depth in (1, 3):
        closed = np.asarray(mft.nngp_kernel(x1, x2, name, 1.8, 0.2, depth))
        quad = np.asarray(mft.nngp_kernel(x1, x2, quad_act, 1.8, 0.2, depth))
        np.testing.assert_allclose(quad, closed, rtol=1e-6, atol=1e-8)


def test_nngp_relu_single_input_is_length_map():
    x = np.array([[1.0, -2.0, 0.5]])
    sw, sb = 1.5, 0.2
    q = sb + sw * np.sum(x * x) / 3
    for _ in range(3):
        q = sw * q / 2 + sb
    assert _f(mft.nngp_kernel(x, None, "relu", sw, sb, 3)[0, 0]) == pytest.approx(q, rel=1e-14)


# --- (j) bad inputs -----------------------------------------------------------------------------

X_OK = np.ones((3, 2))


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: mft.q_star("tanh", -1.0, 0.1), ValueError, "sigma_w2"),
        (lambda: mft.q_star("tanh", 1.0, float("nan")), ValueError, "sigma_b2"),
        (lambda: mft.chi1("tanh", float("inf"), 0.1), ValueError, "sigma_w2"),
        (lambda: mft.c_star("tanh", 1.0, -0.1), ValueError, "sigma_b2"),
        (lambda: mft.depth_scales("tanh", 1.0, float("-inf")), ValueError, "sigma_b2"),
        (lambda: mft.length_map("tanh", 1.0, 0.1, -2.0), ValueError, "q"),
        (lambda: mft.q_star(3, 1.0, 0.1), TypeError, "phi"),
        (lambda: mft.q_star(True, 1.0, 0.1), TypeError, "phi"),
        (lambda: mft.q_star("tanh", True, 0.1), TypeError, "sigma_w2"),
        (lambda: mft.correlation_map("tanh", 1.0, 0.1, 1.5), ValueError, "c"),
        (lambda: mft.correlation_map("tanh", 1.0, 0.1, float("nan")), ValueError, "c"),
        (lambda: mft.correlation_map("tanh", 1.0, 0.1, 0.5, q=0.0), ValueError, "q"),
        (lambda: mft.nngp_kernel(X_OK, None, "relu", 1.0, 0.1, -1), ValueError, "depth"),
        (lambda: mft.nngp_kernel(X_OK, None, "relu", 1.0, 0.1, 2.5), TypeError, "depth"),
        (lambda: mft.nngp_kernel(X_OK, None, "relu", 1.0, 0.1, 2.0), TypeError, "depth"),
        (
            lambda: mft.nngp_kernel(X_OK, np.ones((2, 3)), "relu", 1.0, 0.1, 1),
            ValueError,
            "x1 and x2",
        ),
        (lambda: mft.nngp_kernel(np.ones(3), None, "relu", 1.0, 0.1, 1), ValueError, "x1"),
        (
            lambda: mft.nngp_kernel(np.array([[np.nan, 1.0]]), None, "relu", 1.0, 0.1, 1),
            ValueError,
            "x1",
        ),
        (
            lambda: mft.nngp_kernel(X_OK, np.array([[np.inf, 1.0]]), "relu", 1.0, 0.1, 1),
            ValueError,
            "x2",
        ),
        (lambda: mft.nngp_kernel(X_OK, None, "relu", -1.0, 0.1, 1), ValueError, "sigma_w2"),
        (
            lambda: mft.phase_diagram("tanh", np.ones((2, 2)), np.ones(2)),
            ValueError,
            "sigma_w2_grid",
        ),
        (
            lambda: mft.phase_diagram("tanh", np.ones(2), np.ones((2, 2))),
            ValueError,
            "sigma_b2_grid",
        ),
        (
            lambda: mft.phase_diagram("tanh", np.array([1.0, -1.0]), np.ones(2)),
            ValueError,
            "sigma_w2_grid",
        ),
        (
            lambda: mft.phase_diagram("tanh", np.ones(2), np.array([0.1, np.nan])),
            ValueError,
            "sigma_b2_grid",
        ),
        (
            lambda: mft.covariance_map("tanh", 1.0, 0.1, np.array([[1.0, 0.5], [0.2, 1.0]])),
            ValueError,
            "Sigma",
        ),
        (
            lambda: mft.covariance_map("tanh", 1.0, 0.1, np.array([[1.0, 2.0], [2.0, 1.0]])),
            ValueError,
            "Sigma",
        ),
        (lambda: mft.covariance_map("tanh", 1.0, 0.1, np.ones((2, 3))), ValueError, "Sigma"),
        (lambda: mft.covariance_trajectory("tanh", 1.0, 0.1, np.eye(2), -3), ValueError, "depth"),
        (lambda: mft.critical_sigma_w2("tanh", -0.5), ValueError, "sigma_b2"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: mft.q_star("swish", 1.0, 0.1),
        lambda: mft.nngp_kernel(X_OK, None, "swish", 1.0, 0.1, 1),
        lambda: mft.phase_diagram("swish", np.ones(2), np.ones(2)),
        lambda: mft.critical_sigma_w2("swish", 0.1),
    ],
)
def test_unknown_activation_lists_known(call):
    with pytest.raises(ValueError, match="phi") as info:
        call()
    for name in mft.known_activations():
        assert name in str(info.value)


def test_relu_divergent_length_map():
    """relu at sigma_w2 = 3 > 2: the length map q -> 1.5 q + 0.1 has no finite fixed point.

    Documented: q_star is inf, the quantities that need q* are NaN, and correlation_map at q*
    (q=None) raises a ValueError saying so.
    """
    assert _f(mft.q_star("relu", 3.0, 0.1)) == math.inf
    assert math.isnan(_f(mft.chi1("relu", 3.0, 0.1)))
    assert math.isnan(_f(mft.c_star("relu", 3.0, 0.1)))
    with pytest.raises(ValueError, match="sigma_w2"):
        mft.correlation_map("relu", 3.0, 0.1, 0.5)
    # with an explicit q the map is well defined
    out = _f(mft.correlation_map("relu", 3.0, 0.1, 1.0, q=2.0))
    assert out == pytest.approx((3.0 * 1.0 + 0.1) / 2.0, rel=1e-14)


@pytest.mark.parametrize("phi, sigma_w2, sigma_b2", [("erf", 4.0, 0.0), ("tanh", 4.0, 0.1)])
def test_nngp_diagonal_follows_the_length_map_deep_in_the_chaotic_phase(phi, sigma_w2, sigma_b2):
    """c = 1 is unstable in the chaotic phase: identical inputs must still stay identical."""
    x = np.random.default_rng(0).normal(size=(4, 10))
    depth = 100
    q = sigma_w2 * np.sum(x**2, axis=1) / x.shape[1] + sigma_b2
    for _ in range(depth):
        q = np.asarray(mft.length_map(phi, sigma_w2, sigma_b2, q))
    K = np.asarray(mft.nngp_kernel(x, None, phi, sigma_w2, sigma_b2, depth=depth))
    np.testing.assert_allclose(np.diag(K), q, rtol=1e-12)
    # the same input, reached through a reordered second argument
    K2 = np.asarray(mft.nngp_kernel(x, x[::-1], phi, sigma_w2, sigma_b2, depth=depth))
    np.testing.assert_allclose(np.diag(K2[:, ::-1]), q, rtol=1e-12)
    assert np.all(np.abs(K - np.diag(np.diag(K))) < 0.9 * q.min())  # distinct inputs decorrelate
