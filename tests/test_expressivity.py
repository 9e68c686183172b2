"""Tests for mftlib.expressivity: the circle input, curve geometry, mean-field theory of the
manifold's length and curvature, theory against sampled networks, and validation.

Simulation tolerances come from the spread over seeds, measured once with 8 seeds at the settings
used here (tanh, sigma_b2 = 0.09, width 1000, depth 6, 128 points on the circle):

* per-layer log growth rate of the Euclidean length, log(L^6 / L^0) / 6: standard deviation over
  seeds 0.0029 (sigma_w2 = 16, theory +0.431) and 0.0035 (sigma_w2 = 1.69, theory -0.031);
* kappa_bar and the Grassmannian length at layer 6, relative to theory: sd 0.010-0.025.

With 3 seeds the standard error of a mean is sd / sqrt(3), about 0.002 for the rate and 0.015 for
the curvature ratios. The tolerances below are about 6 of those standard errors (0.012 on the
rate, 6% on the curvatures), far below the gap between the phases (rates +0.43 and -0.03), so a
changed key will not make a test fail by chance while a wrong factor (say chi_1 instead of
sqrt(chi_1) per layer) still fails it. All keys are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mftlib as mft
from mftlib import expressivity as ex
from mftlib.networks import expressivity as ex_nets

SB2 = 0.09  # sigma_b = 0.3, the paper's value
CHAOTIC, ORDERED = 16.0, 1.69  # sigma_w = 4 and 1.3
WIDTH, DEPTH, N_POINTS, SEEDS = 1000, 6, 128, 3


def _q_star(sw2):
    return float(mft.q_star("tanh", sw2, SB2))


# --- the circle -----------------------------------------------------------------------------------


def test_circle_has_prescribed_length_and_radius():
    q, width, n = 0.7, 500, 64
    theta = ex.theta_grid(n)
    hs, vs, accs = ex_nets.propagate_circle(
        jax.random.PRNGKey(3), "tanh", 2.0, 0.1, width, 0, q, theta
    )
    h0 = np.asarray(hs[0])
    np.testing.assert_allclose(np.sum(h0**2, axis=1) / width, q, rtol=1e-12)
    # Exact derivatives of sqrt(Nq)[u0 cos t + u1 sin t]: v . v = Nq, a = -h, so kappa = 1/sqrt(Nq).
    np.testing.assert_allclose(np.sum(np.asarray(vs[0]) ** 2, axis=1), width * q, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(accs[0]), -h0, atol=1e-12)
    geo = ex.curve_geometry(hs[0], vs[0], accs[0])
    radius = math.sqrt(width * q)
    np.testing.assert_allclose(float(geo["euclidean_length"]), 2 * math.pi * radius, rtol=1e-12)
    np.testing.assert_allclose(float(geo["curvature"]), 1 / radius, rtol=1e-10)
    np.testing.assert_allclose(float(geo["grassmannian_length"]), 2 * math.pi, rtol=1e-10)
    # A regular n-gon inscribed in the circle: perimeter 2 n r sin(pi / n).
    polygon = 2 * n * radius * math.sin(math.pi / n)
    np.testing.assert_allclose(float(geo["chord_length"]), polygon, rtol=1e-12)
    # Each unit is spread like N(0, q) over units: its variance across units is q at every theta.
    np.testing.assert_allclose(np.var(h0, axis=1), q, rtol=0.2)


def test_theory_starts_from_the_circle():
    th = ex.manifold_theory("tanh", 2.0, 0.1, 0.7, 0, width=500)
    np.testing.assert_allclose(float(th["euclidean_length"][0]), 2 * math.pi * math.sqrt(350.0))
    np.testing.assert_allclose(float(th["curvature"][0]), 1 / math.sqrt(350.0))
    np.testing.assert_allclose(float(th["grassmannian_length"][0]), 2 * math.pi)


# --- theory -------------------------------------------------------------------------------------


def test_length_grows_by_sqrt_chi1_at_the_fixed_point():
    for sw2 in (ORDERED, 6.25, CHAOTIC):
        q = _q_star(sw2)
        th = ex.manifold_theory("tanh", sw2, SB2, q, 8, width=WIDTH)
        chi = float(mft.chi1("tanh", sw2, SB2))
        ratio = np.asarray(th["euclidean_length"][1:] / th["euclidean_length"][:-1])
        np.testing.assert_allclose(ratio, math.sqrt(chi), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(th["q"]), q, rtol=1e-10)


def test_curvature_recursion_fixed_point_and_linear_network():
    # In the chaotic phase kappa_bar^2 -> 3 chi2 / (chi1 (chi1 - 1)), the fixed point of the map.
    q = _q_star(CHAOTIC)
    th = ex.manifold_theory("tanh", CHAOTIC, SB2, q, 60)
    chi, chi2 = float(th["chi"][-1]), float(th["chi2"][-1])
    np.testing.assert_allclose(float(th["kappa_bar"][-1]) ** 2, 3 * chi2 / (chi * (chi - 1)))
    # Linear network: chi = sigma_w2, chi2 = 0, kappa_bar^2 = 1 / (q0 sigma_w2^l), L^G = 2 pi.
    lin = ex.manifold_theory("linear", 2.0, 0.0, 1.0, 3)
    np.testing.assert_allclose(np.asarray(lin["g_E_bar"]), [1, 2, 4, 8])
    np.testing.assert_allclose(np.asarray(lin["kappa_bar"]) ** 2, [1, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(np.asarray(lin["grassmannian_length"]), 2 * math.pi)


def test_polygon_theory_converges_to_the_smooth_length():
    # Off the fixed point (q0 = 3 q*): the transient, where chi(q^l) changes from layer to layer.
    q0 = 3 * _q_star(CHAOTIC)
    smooth = np.asarray(ex.manifold_theory("tanh", CHAOTIC, SB2, q0, 5, WIDTH)["euclidean_length"])
    fine = np.asarray(ex.polygon_length_theory("tanh", CHAOTIC, SB2, q0, 5, WIDTH, 4096))
    # A chord of an arc of length s and curvature kappa is shorter by (kappa s)^2 / 24 relative:
    # here (L^G / n)^2 / 24 with the Grassmannian length L^G <= 400 over these layers.
    grass = np.asarray(ex.manifold_theory("tanh", CHAOTIC, SB2, q0, 5)["grassmannian_length"])
    np.testing.assert_allclose(fine / smooth, 1 - (grass / 4096) ** 2 / 24, rtol=2e-5)
    coarse = np.asarray(ex.polygon_length_theory("tanh", CHAOTIC, SB2, q0, 5, WIDTH, 32))
    # 32 points: neighbours decorrelate with depth and the polygon cuts ever larger corners.
    assert np.all(coarse[1:] < smooth[1:]) and np.all(coarse[4:] < 0.6 * smooth[4:])


def test_correlation_trajectory_matches_covariance_map_and_c_star():
    sw2 = np.array([ORDERED, CHAOTIC])
    c = np.asarray(ex.correlation_trajectory("tanh", sw2[:, None], SB2, [-0.4, 0.5, 0.99], 40))
    assert c.shape == (41, 2, 3)
    for i, s in enumerate(sw2):
        q = _q_star(s)
        for j, c0 in enumerate((-0.4, 0.5, 0.99)):
            S = mft.covariance_trajectory("tanh", s, SB2, q * np.array([[1, c0], [c0, 1]]), 3)
            np.testing.assert_allclose(c[:4, i, j], np.asarray(S[:, 0, 1] / S[:, 0, 0]), rtol=1e-9)
    # Chaotic: every start flows to c*; ordered: towards 1 (slowly: chi_1 = 0.94).
    # After 40 layers still ~6e-5 away: the approach has depth scale xi_c = 3.6, e^(-40/3.6) ~ 1e-5.
    np.testing.assert_allclose(c[-1, 1], float(mft.c_star("tanh", CHAOTIC, SB2)), atol=2e-4)
    assert np.all(np.diff(c[:, 0], axis=0) > 0)
    with pytest.raises(ValueError, match="c0"):
        ex.correlation_trajectory("tanh", 2.0, 0.1, 1.5, 3)


def test_geometry_is_jit_and_vmap_friendly():
    hs, vs, accs = ex_nets.propagate_circle(
        jax.random.PRNGKey(0), "tanh", 4.0, 0.1, 50, 1, 1.0, ex.theta_grid(16)
    )
    batch = [jnp.stack([x[0], x[1]]) for x in (hs, vs, accs)]
    out = jax.jit(jax.vmap(ex.curve_geometry))(*batch)
    direct = ex.curve_geometry(hs[1], vs[1], accs[1])
    for k, value in direct.items():
        np.testing.assert_allclose(float(out[k][1]), float(value), rtol=1e-12)


# --- theory against sampled networks ------------------------------------------------------------


@pytest.fixture(scope="module")
def sims():
    out = {}
    for sw2 in (CHAOTIC, ORDERED):
        q = _q_star(sw2)
        out[sw2] = (
            ex.manifold_theory("tanh", sw2, SB2, q, DEPTH, width=WIDTH),
            ex_nets.manifold_geometry(
                jax.random.PRNGKey(11), "tanh", sw2, SB2, WIDTH, DEPTH, q, N_POINTS, SEEDS
            ),
        )
    return out


def _rates(length):
    return np.log(length[..., -1] / length[..., 0]) / DEPTH


@pytest.mark.slow
def test_chaotic_length_grows_as_theory(sims):
    th, sim = sims[CHAOTIC]
    theory_rate = 0.5 * math.log(float(mft.chi1("tanh", CHAOTIC, SB2)))
    np.testing.assert_allclose(float(_rates(np.asarray(th["euclidean_length"]))), theory_rate)
    rates = _rates(sim["euclidean_length"])
    assert abs(rates.mean() - theory_rate) < 0.012, (rates, theory_rate)
    # Layer by layer too: the mean over seeds within 6% (per-seed sd <= 0.022 in the 8-seed run).
    ratio = sim["euclidean_length"].mean(axis=0) / np.asarray(th["euclidean_length"])
    np.testing.assert_allclose(ratio, 1.0, atol=0.06)


def test_ordered_length_shrinks_as_theory(sims):
    th, sim = sims[ORDERED]
    theory_rate = 0.5 * math.log(float(mft.chi1("tanh", ORDERED, SB2)))
    assert theory_rate < 0
    rates = _rates(sim["euclidean_length"])
    assert np.all(rates < 0), rates  # every seed shrinks (8-seed run: -0.027 to -0.039)
    assert abs(rates.mean() - theory_rate) < 0.012, (rates, theory_rate)


@pytest.mark.parametrize("sw2", [CHAOTIC, ORDERED])
def test_curvature_and_grassmannian_length_as_theory(sims, sw2):
    th, sim = sims[sw2]
    for key in ("kappa_bar", "grassmannian_length"):
        ratio = sim[key].mean(axis=0)[1:] / np.asarray(th[key])[1:]
        np.testing.assert_allclose(ratio, 1.0, atol=0.06, err_msg=key)
    # The paper's qualitative claims: the Grassmannian length grows in both phases, exponentially
    # (about as fast as the Euclidean length) in the chaotic one; the curvature grows in the
    # ordered phase (the manifold shrinks faster than it straightens).
    grass = sim["grassmannian_length"].mean(axis=0)
    assert np.all(np.diff(grass) > 0)
    if sw2 == CHAOTIC:
        assert grass[-1] / grass[1] > 0.5 * math.sqrt(float(mft.chi1("tanh", sw2, SB2))) ** 5
    else:
        assert np.all(np.diff(sim["kappa_bar"].mean(axis=0)) > 0)


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "err", "name"),
    [
        (dict(sigma_w2=-1.0), ValueError, "sigma_w2"),
        (dict(sigma_b2=float("nan")), ValueError, "sigma_b2"),
        (dict(q0=0.0), ValueError, "q0"),
        (dict(q0=[1.0, 2.0]), TypeError, "q0"),
        (dict(depth=-1), ValueError, "depth"),
        (dict(depth=2.0), TypeError, "depth"),
        (dict(width=0), ValueError, "width"),
        (dict(phi="nope"), ValueError, "tanh"),
    ],
)
def test_theory_rejects_bad_inputs(kwargs, err, name):
    args = dict(phi="tanh", sigma_w2=2.0, sigma_b2=0.1, q0=1.0, depth=3, width=10) | kwargs
    with pytest.raises(err, match=name):
        ex.manifold_theory(**args)


def test_simulation_rejects_bad_inputs():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="n_points"):
        ex.theta_grid(2)
    with pytest.raises(ValueError, match="width"):
        ex_nets.circle_basis(key, 1, 1.0)
    with pytest.raises(ValueError, match="q"):
        ex_nets.circle_basis(key, 10, -1.0)
    with pytest.raises(ValueError, match="theta"):
        ex_nets.propagate_circle(key, "tanh", 2.0, 0.1, 10, 1, 1.0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="n_seeds"):
        ex_nets.manifold_geometry(key, "tanh", 2.0, 0.1, 10, 1, 1.0, 8, 0)
    with pytest.raises(TypeError, match="sigma_w2"):
        ex_nets.manifold_geometry(key, "tanh", [2.0, 1.0], 0.1, 10, 1, 1.0, 8, 1)
    with pytest.raises(ValueError, match="n_points"):
        ex.polygon_length_theory("tanh", 2.0, 0.1, 1.0, 2, 10, 1)
