"""Tests for mftlib.spectra: power-series S-transforms, Jacobian moments against closed forms
(Fuss-Catalan, Pennington et al. 2017 eq. 16) and against sampled random networks, densities
against Marchenko-Pastur and sampled histograms, bad inputs."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_expect1

from mftlib import dense
from mftlib import spectra as S
from mftlib.networks import spectra as spectra_nets


def fuss_catalan(L: int, k: int) -> float:
    """k-th moment of the product of L square Wishart matrices (linear Gaussian net, sigma_w2=1)."""
    return math.comb((L + 1) * k, k) / (L * k + 1)


def test_marchenko_pastur_s_transform():
    np.testing.assert_allclose(S.s_transform_series([1, 2, 5, 14, 42]), [1, -1, 1, -1, 1])


@pytest.mark.parametrize("L", [1, 2, 5, 10])
def test_linear_gaussian_fuss_catalan(L):
    m = S.jacobian_moments(np.ones(5), 1.0, L, "gaussian")
    np.testing.assert_allclose(m, [fuss_catalan(L, k) for k in range(1, 6)], rtol=1e-10)
    assert abs((m[1] - m[0] ** 2) - L) < 1e-9  # variance grows linearly in depth


@pytest.mark.parametrize("L", [1, 7, 50])
def test_linear_orthogonal_is_isometric(L):
    np.testing.assert_allclose(S.jacobian_moments(np.ones(4), 1.0, L, "orthogonal"), 1.0)


def test_variance_formula_pennington():
    # m1 = chi1^L; sigma^2/m1^2 from S-transform coefficients: L(mu2/mu1^2 - 1 + g) + O(L^2) terms
    mu = np.array([0.5, 0.4])
    for g, w in [(1, "gaussian"), (0, "orthogonal")]:
        m = S.jacobian_moments(mu, 2.0, 1, w)
        assert m[0] == pytest.approx(1.0)
        assert m[1] - m[0] ** 2 == pytest.approx(mu[1] / mu[0] ** 2 - 1 + g)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(0.05, 3.0), min_size=1, max_size=4),
    st.lists(st.floats(0.1, 1.0), min_size=4, max_size=4),
)
def test_series_round_trip(atoms, ws):
    a = np.array(atoms)
    w = np.array(ws[: len(a)])
    w = w / w.sum()
    m = np.array([np.sum(w * a**k) for k in range(1, 6)])
    np.testing.assert_allclose(S.moments_from_s_series(S.s_transform_series(m)), m, rtol=1e-9)


def test_derivative_moments_quadpack():
    q = 0.7
    mu = S.derivative_moments("tanh", q, 3)
    for k in range(3):
        ref = ref_expect1(lambda u, k=k: (1 - math.tanh(u) ** 2) ** (2 * k + 2), q)
        assert mu[k] == pytest.approx(ref, rel=1e-10)


def test_density_marchenko_pastur():
    lam = np.linspace(0.05, 3.9, 12)
    rho = S.jacobian_density(lam, [1.0], [1.0], 1.0, 1, "gaussian", eps=1e-6)
    np.testing.assert_allclose(rho, np.sqrt((4 - lam) / lam) / (2 * np.pi), rtol=1e-4)


def _sampled(phi, sw, sb, L, w, n=200, seeds=4):
    ev = np.array(
        [
            spectra_nets.sample_jacobian_spectrum(jax.random.PRNGKey(s), phi, sw, sb, n, L, w)
            for s in range(seeds)
        ]
    )
    return S.empirical_moments(ev, 2)


@pytest.mark.slow  # samples finite networks: the slow suite
@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
def test_tanh_moments_against_sampled(weights):
    sb = 0.05
    sw = float(dense.critical_sigma_w2("tanh", sb))
    L = 8
    summ = S.spectrum_summary("tanh", sw, sb, L, weights)
    m = _sampled("tanh", sw, sb, L, weights)
    mean, se = m.mean(0), m.std(0, ddof=1) / np.sqrt(len(m))
    # 5 standard errors of the seed mean plus an O(L/N) finite-width allowance
    tol = 5 * se + 0.1 * L / 200 * summ["moments"]
    assert np.all(np.abs(mean - summ["moments"]) < tol), (mean, summ["moments"], tol)


@pytest.mark.slow
def test_linear_gaussian_variance_grows_linearly_sampled():
    var = []
    for L in (2, 4, 8):
        m = _sampled("linear", 1.0, 0.0, L, "gaussian")
        var.append(np.mean(m[:, 1] - m[:, 0] ** 2))
    slope = np.polyfit([2, 4, 8], var, 1)[0]
    assert slope == pytest.approx(1.0, abs=0.25)  # theory: exactly 1 per layer
    m = _sampled("linear", 1.0, 0.0, 8, "orthogonal")
    np.testing.assert_allclose(m, 1.0, atol=1e-8)


def test_bad_inputs():
    with pytest.raises(ValueError, match="weights"):
        S.jacobian_moments([1.0], 1.0, 2, "uniform")
    with pytest.raises(ValueError, match="depth"):
        S.jacobian_moments([1.0], 1.0, -1)
    with pytest.raises(TypeError, match="depth"):
        S.jacobian_moments([1.0], 1.0, 2.0)
    with pytest.raises(ValueError, match="sigma_w2"):
        S.jacobian_moments([1.0], 0.0, 2)
    with pytest.raises(ValueError, match="first moment"):
        S.s_transform_series([0.0, 1.0])
    with pytest.raises(ValueError, match="q"):
        S.derivative_moments("tanh", -1.0)
    with pytest.raises(ValueError, match="lams"):
        S.jacobian_density([-1.0], [1.0], [1.0], 1.0, 1)
    with pytest.raises(ValueError, match="width"):
        spectra_nets.sample_jacobian_spectrum(jax.random.PRNGKey(0), "tanh", 1.0, 0.1, 0, 2)
    with pytest.raises(TypeError, match="phi"):
        S.derivative_moments(3, 1.0)


@pytest.mark.parametrize("weights,g", [("gaussian", 1), ("orthogonal", 0)])
def test_normalised_variance_is_additive_in_depth(weights, g):
    # second order of the S-transform series: (m2 - m1^2)/m1^2 = L (mu2/mu1^2 - 1 + g), exactly
    s = S.spectrum_summary("tanh", 1.5, 0.05, 7, weights)
    mu = S.derivative_moments("tanh", s["q_star"], 2)
    assert s["mean"] == pytest.approx(s["chi1"] ** 7, rel=1e-12)
    assert s["variance"] / s["mean"] ** 2 == pytest.approx(7 * (mu[1] / mu[0] ** 2 - 1 + g))


@pytest.mark.slow  # samples finite networks: the slow suite
def test_spectra_by_depth_matches_single_depth():
    a = spectra_nets.sample_jacobian_spectra_by_depth(
        jax.random.PRNGKey(0), "tanh", 1.2, 0.1, 32, [2, 5]
    )
    b = spectra_nets.sample_jacobian_spectrum(jax.random.PRNGKey(0), "tanh", 1.2, 0.1, 32, 5)
    np.testing.assert_allclose(a[1], b, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="depths"):
        spectra_nets.sample_jacobian_spectra_by_depth(
            jax.random.PRNGKey(0), "tanh", 1.2, 0.1, 32, [0]
        )
