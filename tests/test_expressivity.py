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

The later tests cover the convergence depth of the length map, the decision boundary (its
mean-field recursion in closed form, and the autodiff pull-back of the gradient and Hessian
against ``jax.hessian`` of the whole network), the deep-against-shallow lengths and the bound of
one hidden layer, the principal components of the circle, and (marked slow) each new simulation
against its theory with tolerances stated where they are used.
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
from mftlib.networks.dense import draw_layer

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


# --- how fast the length converges ----------------------------------------------------------------


def test_length_convergence_depth_matches_direct_iteration():
    sw2 = np.array([ORDERED, 6.25, CHAOTIC])
    q0 = np.array([0.2, 4.0, 15.0])
    depth = np.asarray(ex.length_convergence_depth("tanh", sw2, SB2, q0))
    assert depth.shape == (3, 3)
    for i, s in enumerate(sw2):
        qs, q, layers = _q_star(s), q0.copy(), np.zeros(3)
        for _ in range(30):  # all three lengths at once
            layers += np.abs(q - qs) > 0.01 * qs
            q = np.asarray(mft.length_map("tanh", s, SB2, q))
        np.testing.assert_array_equal(depth[i], layers)
    # A 10% tolerance never needs more layers; q* = 0 (ordered, no bias): undefined.
    coarse = ex.length_convergence_depth("tanh", sw2, SB2, q0, tol=0.1)
    assert np.all(np.asarray(coarse) <= depth)
    assert np.isnan(float(ex.length_convergence_depth("tanh", 0.5, 0.0, 1.0)))
    with pytest.raises(ValueError, match="tol"):
        ex.length_convergence_depth("tanh", 2.0, 0.1, 1.0, tol=0.0)
    with pytest.raises(ValueError, match="q0"):
        ex.length_convergence_depth("tanh", 2.0, 0.1, -1.0)


# --- the decision boundary ------------------------------------------------------------------------


def test_boundary_theory_closed_forms():
    # At q*: |g^l|^2 grows by chi_1 per layer towards the input, and S^l sums a geometric series.
    q, depth = _q_star(CHAOTIC), 8
    th = {
        k: np.asarray(v)
        for k, v in ex.boundary_curvature_theory("tanh", CHAOTIC, SB2, q, depth).items()
    }
    chi, chi2 = float(mft.chi1("tanh", CHAOTIC, SB2)), th["chi2"][0]
    k = depth - np.arange(depth + 1)  # layers below the readout
    np.testing.assert_allclose(th["grad_sq"], chi**k, rtol=1e-10)
    np.testing.assert_allclose(th["sum_sq"], chi2 / chi * (chi**k - 1) / (chi - 1), rtol=1e-10)
    assert th["sum_sq"][-1] == 0.0
    # Ordered phase: S saturates at chi2 / (chi (1 - chi)).
    qo = _q_star(ORDERED)
    ordered = ex.boundary_curvature_theory("tanh", ORDERED, SB2, qo, 400)
    chi_o, chi2_o = float(ordered["chi"][0]), float(ordered["chi2"][0])
    np.testing.assert_allclose(float(ordered["sum_sq"][0]), chi2_o / (chi_o * (1 - chi_o)))
    # A linear network's boundary stays a hyperplane.
    lin = ex.boundary_curvature_theory("linear", 2.0, 0.0, 1.0, 4)
    np.testing.assert_array_equal(np.asarray(lin["sum_sq"]), 0.0)
    with pytest.raises(ValueError, match="q0"):
        ex.boundary_curvature_theory("tanh", 2.0, 0.1, 0.0, 3)


@pytest.mark.slow  # a finite network's exact Hessian by jax.hessian (about 6 s)
def test_boundary_curvatures_are_those_of_the_exact_hessian():
    """The layer-by-layer autodiff pull-back against jax.hessian of the whole sub-network."""
    key, sw2, width, depth = jax.random.PRNGKey(5), 4.0, 10, 2
    out = ex_nets.boundary_curvatures(
        key, "tanh", sw2, SB2, width, depth, 1.0, n_points=1, newton_steps=30
    )
    assert out["curvatures"].shape == (1, 1, depth + 1, width - 1)
    assert out["offset"][0, 0] < 1e-10
    # Rebuild the network from the documented keys.
    k_net, k_read, _ = jax.random.split(jax.random.split(key, 1)[0], 3)
    layers = [
        draw_layer(k_net, i, sw2, SB2, fan_in=width, fan_out=width) for i in range(1, depth + 1)
    ]
    v = jax.random.normal(k_read, (width,), dtype=jnp.float64) / math.sqrt(width)

    @jax.jit
    def grads_and_hessians(h0):
        hs = [h0]
        for W, b in layers:
            hs.append(W @ jnp.tanh(hs[-1]) + b)
        out = []
        for layer in range(depth + 1):

            def f(h, layer=layer):
                for W, b in layers[layer:]:
                    h = W @ jnp.tanh(h) + b
                return v @ h

            out.append((f(hs[layer]), jax.grad(f)(hs[layer]), jax.hessian(f)(hs[layer])))
        return out

    for layer, (y, g, H) in enumerate(grads_and_hessians(jnp.asarray(out["points"][0, 0]))):
        assert abs(float(y)) < 1e-9
        n = g / jnp.linalg.norm(g)
        P = jnp.eye(width) - jnp.outer(n, n)
        kappa = np.sort(np.linalg.eigvalsh(np.asarray(P @ H @ P)) / float(jnp.linalg.norm(g)))
        # P H P has one extra zero eigenvalue (along g): drop the one closest to zero.
        kappa = np.delete(kappa, np.argmin(np.abs(kappa)))
        np.testing.assert_allclose(out["curvatures"][0, 0, layer], kappa, atol=1e-9)
        np.testing.assert_allclose(out["grad_sq"][0, 0, layer], float(g @ g), rtol=1e-12)
    np.testing.assert_array_equal(out["curvatures"][0, :, depth], 0.0)
    # The sum of squares without the eigendecomposition is the same number.
    np.testing.assert_allclose(out["sum_sq"], np.sum(out["curvatures"] ** 2, axis=-1), rtol=1e-9)
    quick = ex_nets.boundary_curvatures(
        key, "tanh", sw2, SB2, width, depth, 1.0, n_points=1, newton_steps=30, spectrum=False
    )
    assert "curvatures" not in quick
    np.testing.assert_allclose(quick["sum_sq"], out["sum_sq"], rtol=1e-12)


# --- deep against shallow -------------------------------------------------------------------------


def test_circle_length_theory_against_manifold_theory_and_bounds():
    # Without a bias the circle of manifold_theory: Lambda^l = L^E(h^{l+1}) / (sigma_w sqrt N).
    q = _q_star(CHAOTIC)
    th = ex.circle_length_theory("tanh", CHAOTIC, 0.0, q, 5)
    man = ex.manifold_theory("tanh", CHAOTIC, 0.0, q, 6, width=WIDTH)
    np.testing.assert_allclose(
        np.asarray(th["post_length"]),
        np.asarray(man["euclidean_length"][1:]) / math.sqrt(CHAOTIC * WIDTH),
        rtol=1e-10,
    )
    # The bias adds to q^0 only: q^0 = q_theta + sigma_b^2, g^0 = q_theta.
    biased = ex.circle_length_theory("tanh", CHAOTIC, SB2, 2.0, 0)
    np.testing.assert_allclose(float(biased["q"][0]), 2.0 + SB2)
    np.testing.assert_allclose(float(biased["g_E_bar"][0]), 2.0)
    assert ex.activation_range("tanh") == pytest.approx(2.0)
    assert ex.activation_range("erf") == pytest.approx(2.0)
    assert ex.activation_range("sigmoid") == pytest.approx(1.0)
    assert ex.shallow_length_bound("tanh", 100) == pytest.approx(400.0)
    np.testing.assert_allclose(np.asarray(ex.shallow_width_needed("tanh", [4.0, 40.0])), [1, 100])
    for phi in ("relu", "linear", "gelu", "softplus"):
        with pytest.raises(ValueError, match="bounded"):
            ex.activation_range(phi)
    with pytest.raises(ValueError, match="width"):
        ex.shallow_length_bound("tanh", 0)


@pytest.mark.slow
def test_shallow_length_never_exceeds_its_bound():
    # One hidden layer of 50 units with large weights: each unit nearly a step, the length close
    # to (and never above) the sum of the units' total variations, itself <= 2 R N_1.
    out = ex_nets.circle_lengths(
        jax.random.PRNGKey(2), "tanh", 400.0, 0.25, 50, 0, 400.0, n_points=4096, n_seeds=2
    )
    length, tv = out["post_length"][:, 0], out["total_variation"]
    bound = ex.shallow_length_bound("tanh", 50) / math.sqrt(50)
    assert np.all(length <= tv * (1 + 1e-6)) and np.all(tv <= bound)
    assert np.all(length > 0.5 * tv)


# --- pairs, lengths and the spectrum of the circle ------------------------------------------------


@pytest.mark.slow
def test_pair_correlations_and_length_trajectories_start_where_asked():
    key = jax.random.PRNGKey(4)
    c0 = np.array([-0.5, 0.2, 0.9])
    out = ex_nets.pair_correlations(key, "tanh", 2.0, 0.1, 2000, 1, c0, n_seeds=2)
    assert out["c"].shape == (2, 2, 3) and out["q"].shape == (2, 2, 4)
    # Layer 0 has the prescribed correlations and length q* (to O(N^-1/2) = 0.02); layer 1 is
    # one step of the correlation map from the measured layer-0 values.
    q = float(mft.q_star("tanh", 2.0, 0.1))
    np.testing.assert_allclose(out["c"][:, 0].mean(0), c0, atol=0.05)
    np.testing.assert_allclose(out["q"][:, 0].mean(), q, rtol=0.05)
    pred = np.asarray(mft.correlation_map("tanh", 2.0, 0.1, out["c"][:, 0]))
    np.testing.assert_allclose(out["c"][:, 1], pred, atol=0.05)
    traj = ex_nets.length_trajectories(key, "tanh", 2.0, 0.1, 2000, 2, [0.5, 4.0], 4, 2)
    assert traj.shape == (2, 3, 2)
    theory = np.asarray(mft.covariance_trajectory("tanh", 2.0, 0.1, np.diag([0.5, 4.0]), 2))
    np.testing.assert_allclose(traj.mean(0), np.diagonal(theory, axis1=1, axis2=2), rtol=0.05)
    with pytest.raises(ValueError, match="c0 must be >="):
        ex_nets.pair_correlations(key, "tanh", 2.0, 0.5, 100, 1, [-0.9])
    with pytest.raises(ValueError, match="q0 must be >= sigma_b2"):
        ex_nets.length_trajectories(key, "tanh", 2.0, 0.5, 100, 1, [0.1])


def test_circle_spectrum_theory_and_simulation_at_the_input():
    # Layer 0 is the circle itself: two principal components (cos, sin) with half the variance
    # each, in theory and in a sampled network, whatever the weights.
    th = np.asarray(ex.circle_spectrum_theory("tanh", CHAOTIC, SB2, 64, 3))
    assert th.shape == (4, 63)
    np.testing.assert_allclose(th.sum(axis=1), 1.0)
    assert np.all(np.diff(th, axis=1) <= 1e-15)
    np.testing.assert_allclose(th[0, :2], 0.5, atol=1e-12)
    sim = ex_nets.circle_principal_components(
        jax.random.PRNGKey(1), "tanh", CHAOTIC, SB2, 50, 2, 1.0, 64, n_seeds=2
    )
    assert sim["fractions"].shape == (2, 3, 63) and sim["projection"].shape == (3, 64, 2)
    np.testing.assert_allclose(sim["fractions"][:, 0, :2], 0.5, atol=1e-10)
    # Deeper, the chaotic curve spreads over more components, in theory and in simulation.
    assert th[3, :2].sum() < th[1, :2].sum() < 1.0
    assert sim["fractions"][:, 2, :2].sum(-1).mean() < 1.0


@pytest.mark.parametrize(
    ("call", "err", "name"),
    [
        (
            lambda k: ex_nets.circle_autocorrelation(k, "tanh", 2.0, 0.1, 10, 1, 1.0, [[0.1]]),
            ValueError,
            "offsets",
        ),
        (
            lambda k: ex_nets.circle_autocorrelation(k, "tanh", 2.0, 0.1, 10, 1, 1.0, [0.1], 0),
            ValueError,
            "n_base",
        ),
        (
            lambda k: ex_nets.boundary_curvatures(k, "tanh", 2.0, 0.1, 1, 2, 1.0),
            ValueError,
            "width",
        ),
        (
            lambda k: ex_nets.boundary_curvatures(k, "tanh", 2.0, 0.1, 10, 0, 1.0),
            ValueError,
            "depth",
        ),
        (lambda k: ex_nets.boundary_curvatures(k, "tanh", 2.0, 0.1, 10, 2, -1.0), ValueError, "q"),
        (lambda k: ex_nets.circle_lengths(k, "tanh", 0.0, 0.1, 10, 1, 1.0), ValueError, "sigma_w2"),
        (lambda k: ex_nets.circle_lengths(k, "tanh", 2.0, 0.1, 10, 1, 0.0), ValueError, "q_theta"),
        (lambda k: ex.circle_spectrum_theory("tanh", 2.0, 0.1, 2, 1), ValueError, "n_points"),
        (lambda k: ex.circle_length_theory("tanh", 2.0, -0.1, 1.0, 1), ValueError, "sigma_b2"),
        (
            lambda k: ex.length_convergence_depth("tanh", 2.0, 0.1, 1.0, max_depth=0),
            ValueError,
            "max_depth",
        ),
    ],
)
def test_new_functions_reject_bad_inputs(call, err, name):
    with pytest.raises(err, match=name):
        call(jax.random.PRNGKey(0))


# --- theory against simulation for the new experiments (slow) -------------------------------------


@pytest.mark.slow
def test_circle_autocorrelation_follows_the_correlation_map():
    # Width 1000: in the ordered phase the whole network's correlation level drifts by ~0.04
    # (shared by all angles, so averaging over angles does not remove it); the mean over 16 angles
    # and 2 networks is within 0.08 of the theory (measured: at most 0.045 at these settings).
    offsets = np.array([0.01, 0.1, 0.5, 1.5, 3.0])
    for sw2 in (CHAOTIC, ORDERED):
        sim = ex_nets.circle_autocorrelation(
            jax.random.PRNGKey(7), "tanh", sw2, SB2, WIDTH, 5, _q_star(sw2), offsets, 16, 2
        )
        th = np.asarray(ex.correlation_trajectory("tanh", sw2, SB2, np.cos(offsets), 5))
        np.testing.assert_allclose(sim["mean"].mean(0), th, atol=0.08)
        np.testing.assert_allclose(
            sim["mean"][:, 0], np.cos(offsets)[None].repeat(2, 0), atol=1e-10
        )


@pytest.mark.slow
def test_boundary_curvatures_follow_the_mean_field_recursion():
    # Width 200, 3 networks x 4 random points: the mean of S^l over points and networks is within
    # 35% of the theory at every layer (measured: within 30% at this depth), and |g|^2 grows by
    # chi_1 per layer.
    for sw2 in (CHAOTIC, ORDERED):
        q = _q_star(sw2)
        sim = ex_nets.boundary_curvatures(
            jax.random.PRNGKey(9), "tanh", sw2, SB2, 200, 6, q, 4, 3, spectrum=False
        )
        th = np.asarray(ex.boundary_curvature_theory("tanh", sw2, SB2, q, 6)["sum_sq"])
        ratio = sim["sum_sq"].mean(axis=(0, 1))[:-1] / th[:-1]
        np.testing.assert_allclose(ratio, 1.0, atol=0.35)
        grad = sim["grad_sq"].mean(axis=(0, 1))
        chi = float(mft.chi1("tanh", sw2, SB2))
        # One layer's factor scatters by ~25% at width 200; over six layers the mean is within
        # 30% of chi_1^6 (measured: within 22%).
        np.testing.assert_allclose(grad[0] / grad[-1], chi**6, rtol=0.3)


@pytest.mark.slow
def test_post_activation_lengths_follow_the_theory():
    # Deep (width 1000, 2 networks) and shallow (width 3000): within 5% of the mean-field length.
    q = _q_star(CHAOTIC) - SB2
    deep = ex_nets.circle_lengths(jax.random.PRNGKey(3), "tanh", CHAOTIC, SB2, WIDTH, 6, q, 256, 2)
    th = np.asarray(ex.circle_length_theory("tanh", CHAOTIC, SB2, q, 6)["post_length"])
    np.testing.assert_allclose(deep["post_length"].mean(0), th, rtol=0.05)
    shallow = ex_nets.circle_lengths(
        jax.random.PRNGKey(4), "tanh", 1.0, SB2, 3000, 0, 10.0, 2048, 2
    )
    th0 = float(ex.circle_length_theory("tanh", 1.0, SB2, 10.0, 0)["post_length"][0])
    np.testing.assert_allclose(shallow["post_length"][:, 0], th0, rtol=0.05)
    assert np.all(shallow["post_length"][:, 0] <= shallow["total_variation"])


def test_decorrelation_angle_and_sampled_spectrum():
    # A correlation function linear in log(dtheta) between a and b crosses (1 + c*)/2 at sqrt(ab).
    off = np.geomspace(1e-3, 3.0, 40)
    a, b, cs = 0.01, 0.5, 0.2
    frac = np.clip(np.log(off / a) / np.log(b / a), 0.0, 1.0)
    c = 1.0 - (1.0 - cs) * frac
    np.testing.assert_allclose(float(ex.decorrelation_angle(off, c, cs)), math.sqrt(a * b))
    both = np.asarray(ex.decorrelation_angle(off, np.stack([c, np.ones_like(c)]), cs))
    assert both[0] == pytest.approx(math.sqrt(a * b)) and np.isnan(both[1])
    with pytest.raises(ValueError, match="increasing"):
        ex.decorrelation_angle(off[::-1], c, cs)
    # Many units drawn from the mean-field kernel recover its spectrum.
    th = np.asarray(ex.circle_spectrum_theory("tanh", CHAOTIC, SB2, 16, 2))
    smp = np.asarray(
        ex.circle_spectrum_sampled(jax.random.PRNGKey(0), "tanh", CHAOTIC, SB2, 16, 2, 20000)
    )
    assert smp.shape == (1, 3, 15)
    np.testing.assert_allclose(smp[0], th, atol=0.015)
