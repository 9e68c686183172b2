"""Residual networks: alpha-ReLU moments, the maps, their asymptotic laws, and simulation."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from mftlib import fitting, gaussian, resnet
from mftlib.activations import alpha_relu
from mftlib.networks import resnet as rn

RNG = np.random.default_rng(0)
N = 256
X2 = RNG.normal(size=(2, N))
X2[1] = 0.8 * X2[0] + 0.6 * X2[1]


def _gauss_quad(f, q):
    return integrate.quad(lambda z: f(np.sqrt(q) * z) * np.exp(-z * z / 2), 0, np.inf, limit=200)[
        0
    ] / np.sqrt(2 * np.pi)


@pytest.mark.parametrize("alpha", [0.6, 0.75, 0.9])
@pytest.mark.parametrize("q", [0.3, 2.0])
def test_alpha_relu_moments_against_adaptive_quadrature(alpha, q):
    act = alpha_relu(alpha)
    ms = _gauss_quad(lambda u: u ** (2 * alpha), q)
    # phi'^2 = alpha^2 u^(2 alpha - 2): an integrable singularity at 0 that scipy's QUADPACK
    # handles; the closed form must agree to its precision.
    md = _gauss_quad(lambda u: alpha**2 * u ** (2 * alpha - 2), q)
    assert float(act.mean_square(q)) == pytest.approx(ms, rel=1e-9)
    assert float(act.mean_square_derivative(q)) == pytest.approx(md, rel=1e-7)
    # The library's Gaussian rule agrees on the smooth moment.
    assert float(gaussian.expect1(lambda u: act.fn(u) ** 2, q)) == pytest.approx(ms, rel=1e-8)


@pytest.mark.parametrize("alpha", [0.5, 0.2, 1.5, float("nan")])
def test_alpha_relu_rejects_alpha_outside_half_to_one(alpha):
    with pytest.raises(ValueError, match="alpha"):
        alpha_relu(alpha)


def test_alpha_one_is_relu():
    assert alpha_relu(1.0).name == "relu"


@pytest.mark.parametrize("phi", ["tanh", alpha_relu(0.8)])
@pytest.mark.parametrize("sigma_w2", [None, 1.5])
def test_covariance_diagonal_is_the_length_map(phi, sigma_w2):
    S0 = X2 @ X2.T / N
    traj = resnet.covariance_trajectory(phi, 0.7, 0.1, S0, 12, sigma_w2=sigma_w2)
    p = resnet.length_trajectory(phi, 0.7, 0.1, S0[0, 0], 12, sigma_w2=sigma_w2)["p"]
    np.testing.assert_allclose(traj[:, 0, 0], p, rtol=1e-10)


def test_reduced_net_is_full_net_with_identity_weights_in_the_mean():
    a = resnet.covariance_trajectory("tanh", 1.0, 0.0, np.eye(2) + 0.3, 10)
    b = resnet.covariance_trajectory("tanh", 1.0, 0.0, np.eye(2) + 0.3, 10, sigma_w2=1.0)
    np.testing.assert_allclose(a, b, rtol=1e-12)


# Compiled once: every hypothesis example then costs microseconds, not an op-by-op dispatch.
_tanh_residual_map = jax.jit(
    lambda sv, sa, S, sw: resnet.covariance_map("tanh", sv, sa, S, sigma_w2=sw)
)


@settings(max_examples=15, deadline=None)
@given(
    c=st.floats(-0.99, 0.99),
    sv=st.floats(0.05, 4.0),
    sa=st.floats(0.0, 1.0),
    sw=st.floats(0.1, 4.0),
)
def test_map_keeps_covariances_valid(c, sv, sa, sw):
    S = np.array([[1.3, c * 1.3], [c * 1.3, 1.3]])
    out = np.asarray(_tanh_residual_map(sv, sa, S, sw))
    np.testing.assert_allclose(out, out.T, atol=1e-14)
    assert np.linalg.eigvalsh(out).min() >= -1e-12
    # The identity is added: lengths never decrease.
    assert np.all(np.diag(out) >= np.diag(S) - 1e-14)
    assert -1 - 1e-12 <= out[0, 1] / np.sqrt(out[0, 0] * out[1, 1]) <= 1 + 1e-12


def test_gradient_trajectory_ends_at_one_and_grows_towards_the_input():
    g = resnet.gradient_trajectory("tanh", 1.0, 0.0, 1.0, 50, sigma_w2=1.0)
    assert g[-1] == 1.0
    assert np.all(np.diff(g) < 0)


@pytest.mark.parametrize("phi", [alpha_relu(0.7), alpha_relu(0.9)])
def test_alpha_relu_power_laws_from_the_iterated_maps(phi):
    # The laws are asymptotic; at L = 2e4 the map's local slopes agree to < 1 %.
    e = resnet.exponents(phi)
    L = 20_000
    p = resnet.length_trajectory(phi, 1.0, 0.0, 1.0, L)["p"]
    gamma = fitting.power_law(p, np.arange(L + 1), window=(L // 10, None)).value
    assert gamma == pytest.approx(e["length"], rel=0.01)
    g1 = resnet.gradient_trajectory(phi, 1.0, 0.0, 1.0, L // 10)[0]
    g2 = resnet.gradient_trajectory(phi, 1.0, 0.0, 1.0, L)[0]
    assert np.log(g2 / g1) / np.log(10) == pytest.approx(e["gradient"], rel=0.01)


@pytest.mark.parametrize("sa2", [0.0, 0.5])
def test_tanh_gradient_grows_like_exp_sqrt_depth(sa2):
    e = resnet.exponents("tanh", 1.0, sa2, sigma_w2=2.0)
    logs = [
        np.log(resnet.gradient_trajectory("tanh", 1.0, sa2, 1.0, L, sigma_w2=2.0)[0])
        for L in (5_000, 20_000)
    ]
    # d log(chi0/chiL) / d sqrt(L) between the two depths removes the O(1) offset.
    slope = (logs[1] - logs[0]) / (np.sqrt(20_000) - np.sqrt(5_000))
    assert slope == pytest.approx(e["gradient"], rel=0.02)
    p = resnet.length_trajectory("tanh", 1.0, sa2, 1.0, 20_000, sigma_w2=2.0)["p"]
    assert (p[-1] - p[10_000]) / 10_000 == pytest.approx(1.0 + sa2, rel=0.01)


def test_exponents_reject_activations_without_a_derived_law():
    with pytest.raises(ValueError, match="derived for tanh"):
        resnet.exponents("relu")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: resnet.length_trajectory("tanh", -1.0, 0.0, 1.0, 5), "sigma_v2"),
        (lambda: resnet.length_trajectory("tanh", 1.0, 0.0, 1.0, 0), "depth"),
        (lambda: resnet.covariance_map("tanh", 1.0, 0.0, np.eye(2), sigma_b2=0.1), "sigma_b2"),
        (lambda: resnet.covariance_map("tanh", 1.0, 0.0, -np.eye(2)), "Sigma"),
        (lambda: resnet.covariance_map("tanh", np.ones(3), 0.0, np.eye(2)), "scalar"),
        (lambda: rn.simulate(jax.random.PRNGKey(0), X2, "tanh", 1.0, 0.0, 3, sigma_b2=1.0), "b2"),
        (lambda: rn.simulate(jax.random.PRNGKey(0), X2, "tanh", 0.0, 0.0, 3), "sigma_v2"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.slow
@pytest.mark.parametrize("phi, sigma_w2", [("tanh", 1.0), (alpha_relu(0.7), None)])
def test_theory_against_simulated_residual_nets(phi, sigma_w2):
    L, seeds = 40, 4
    sim = rn.simulate(jax.random.PRNGKey(3), X2, phi, 1.0, 0.0, L, sigma_w2=sigma_w2, n_seeds=seeds)
    S0 = X2 @ X2.T / N
    traj = np.asarray(resnet.covariance_trajectory(phi, 1.0, 0.0, S0, L, sigma_w2=sigma_w2))
    p_sim = sim["cov"][:, :, 0, 0]
    # Each layer adds O(1/sqrt(N)) relative noise to the length; over 40 layers the seed spread
    # is ~10-25 %, so compare the seed mean within 4 standard errors plus 5 % (finite width).
    for layer in (10, 40):
        se = p_sim[:, layer].std(ddof=1) / np.sqrt(seeds)
        assert abs(p_sim[:, layer].mean() - traj[layer, 0, 0]) < 4 * se + 0.05 * traj[layer, 0, 0]
    c_sim = sim["cov"][:, -1, 0, 1] / np.sqrt(sim["cov"][:, -1, 0, 0] * sim["cov"][:, -1, 1, 1])
    c_th = traj[-1, 0, 1] / np.sqrt(traj[-1, 0, 0] * traj[-1, 1, 1])
    assert abs(c_sim.mean() - c_th) < 4 * c_sim.std(ddof=1) / np.sqrt(seeds) + 0.02
    # Gradient amplification over 20 blocks: log-normal across seeds; finite-width corrections
    # grow like L/N (~10 % here), so the log of the mean is compared within 0.25.
    g_th = resnet.gradient_trajectory(phi, 1.0, 0.0, S0[0, 0], 20, sigma_w2=sigma_w2)[0]
    assert abs(np.log(sim["amplification"][:, 20].mean()) - np.log(g_th)) < 0.25
    # The readout's own layer: |v|^2 / N^2 per unit with B N = 512 degrees of freedom.
    np.testing.assert_allclose(sim["grad_norms"][:, -1], 1 / N, rtol=0.25)
    np.testing.assert_allclose(sim["amplification"][:, 0], 1.0)


def test_classifier_shapes_and_variance_per_model():
    p = rn.init_classifier(jax.random.PRNGKey(0), 64, 16, 3, 10, [0.1, 4.0], n_models=2)
    assert p["V"].shape == (2, 3, 16, 16)
    ratio = np.var(np.asarray(p["V"][1])) / np.var(np.asarray(p["V"][0]))
    assert ratio == pytest.approx(40.0, rel=0.15)
    out = rn.classifier("tanh")(jax.tree_util.tree_map(lambda a: a[0], p), np.ones((5, 64)))
    assert out.shape == (5, 10)


def test_amplification_of_every_depth_matches_separate_networks():
    amp = resnet.gradient_amplification("tanh", 0.8, 0.1, 1.2, 30, sigma_w2=1.3, sigma_b2=0.05)
    assert amp[0] == 1.0
    for L in (1, 7, 30):
        g = resnet.gradient_trajectory("tanh", 0.8, 0.1, 1.2, L, sigma_w2=1.3, sigma_b2=0.05)
        assert amp[L] == pytest.approx(g[0], rel=1e-12)


# --- layer-dependent variances and widths (chapter 6) ---------------------------------------


def test_schedule_and_constant_arrays_equal_scalars():
    np.testing.assert_allclose(resnet.schedule(2.0, 0.5, 4), 2.0 / np.sqrt([1, 2, 3, 4]))
    a = resnet.length_trajectory("tanh", 0.7, 0.1, 1.0, 9, sigma_w2=1.3)["p"]
    b = resnet.length_trajectory(
        "tanh", np.full(9, 0.7), np.full(9, 0.1), 1.0, 9, sigma_w2=np.full(9, 1.3)
    )["p"]
    np.testing.assert_allclose(a, b, rtol=1e-14)
    S = resnet.covariance_trajectory("tanh", np.full(9, 0.7), 0.1, np.eye(2), 9, sigma_w2=1.3)
    np.testing.assert_allclose(np.asarray(S)[:, 0, 0], a, rtol=1e-12)


def test_layer_dependent_variance_needs_one_value_per_block():
    with pytest.raises(ValueError, match="one value per block"):
        resnet.length_trajectory("tanh", np.ones(5), 0.0, 1.0, 6)
    with pytest.raises(ValueError, match="one value per block"):
        rn.simulate(jax.random.PRNGKey(0), X2, "tanh", np.ones(5), 0.0, 6, sigma_w2=1.0)


def test_weight_gradients_scale_with_inverse_hidden_width():
    kw = dict(sigma_w2=1.0, width=256)
    full = resnet.weight_gradients("tanh", 1.0, 0.0, 1.0, 6, **kw)
    m = np.array([256, 128, 64, 32, 16, 8])
    narrow = resnet.weight_gradients("tanh", 1.0, 0.0, 1.0, 6, hidden_widths=m, **kw)
    np.testing.assert_allclose(narrow["W"], full["W"] * 256 / m, rtol=1e-12)
    np.testing.assert_allclose(narrow["V"], full["V"], rtol=1e-12)
    assert full["chi"][-1] == pytest.approx(1 / 256)
    with pytest.raises(ValueError, match="hidden_widths"):
        resnet.weight_gradients("tanh", 1.0, 0.0, 1.0, 6, hidden_widths=[4, 4], **kw)
    with pytest.raises(ValueError, match="full net"):
        resnet.weight_gradients("tanh", 1.0, 0.0, 1.0, 6, sigma_w2=None)


def test_phase_diagram_matches_the_amplification_of_one_schedule():
    grid = resnet.decay_phase_diagram("tanh", [0.0, 0.5], [0.25], 40, p0=1.0)
    amp = resnet.gradient_amplification(
        "tanh", resnet.schedule(1.0, 0.5, 40), 0.0, 1.0, 40, sigma_w2=resnet.schedule(1.0, 0.25, 40)
    )
    assert grid.shape == (2, 1)
    assert grid[1, 0] == pytest.approx(np.log(amp[-1]), rel=1e-12)


def test_relu_variance_decay_exponent():
    # log(chi0/chiL) ~ L^(1 - beta); between L = 1e3 and 1e4 the apparent exponent is within
    # 0.03 of the asymptote (sub-leading terms decay like L^-(1-beta)).
    g = [resnet.decay_phase_diagram("relu", [0.5], [0.0], d)[0, 0] for d in (1_000, 10_000)]
    assert np.log(g[1] / g[0]) / np.log(10) == pytest.approx(0.5, abs=0.03)
    bounded = [resnet.decay_phase_diagram("relu", [1.0], [0.5], d)[0, 0] for d in (1_000, 10_000)]
    assert bounded[1] - bounded[0] < 0.05


# The simulation tests share one compiled network (tanh, full, depth 40, 4 seeds, N = 256).
@pytest.mark.slow
def test_width_variation_in_simulation():
    L, seeds = 40, 4
    m = np.linspace(256, 32, L).round().astype(int)
    sim = rn.simulate(
        jax.random.PRNGKey(7), X2, "tanh", 1.0, 0.0, L, sigma_w2=1.0, n_seeds=seeds, hidden_widths=m
    )
    p0 = X2[0] @ X2[0] / N
    th = resnet.weight_gradients("tanh", 1.0, 0.0, p0, L, sigma_w2=1.0, width=N, hidden_widths=m)
    p = resnet.length_trajectory("tanh", 1.0, 0.0, p0, L, sigma_w2=1.0)["p"]
    # Forward: the lengths do not depend on the hidden widths (seed spread ~5 % at N = 256).
    np.testing.assert_allclose(sim["cov"][:, -1, 0, 0].mean(), p[-1], rtol=0.1)
    # Per-weight gradients: with narrow hidden layers the backward pass fluctuates from seed to
    # seed by a log-variance ~ sum_l 1/M_l (~0.4 here), so the seed mean is compared within 4
    # standard errors plus 10 %, every 4th block.
    g = sim["weight_grad"][:, ::4]
    se = g.std(0, ddof=1) / np.sqrt(seeds)
    assert np.all(np.abs(g.mean(0) - th["W"][::4]) < 4 * se + 0.1 * th["W"][::4])
    with pytest.raises(ValueError, match="hidden_widths"):
        rn.simulate(jax.random.PRNGKey(0), X2, "tanh", 1.0, 0.0, L, hidden_widths=m)


@pytest.mark.slow  # simulates finite networks
def test_variance_decay_in_simulation():
    L = 40
    sv, sw = resnet.schedule(1.0, 0.5, L), resnet.schedule(1.0, 0.5, L)
    sim = rn.simulate(jax.random.PRNGKey(8), X2, "tanh", sv, 0.0, L, sigma_w2=sw, n_seeds=4)
    amp = resnet.gradient_amplification("tanh", sv, 0.0, X2[0] @ X2[0] / N, L, sigma_w2=sw)
    # On the phase boundary the amplification is ~7 at L = 40; seed spread ~5 %.
    np.testing.assert_allclose(sim["amplification"][:, -1].mean(), amp[-1], rtol=0.15)


def test_correlation_fixed_point_of_tanh_in_closed_form():
    fp = resnet.correlation_fixed_point("tanh")
    assert fp["e_star"] == 0.0
    assert fp["mu"] == pytest.approx(1 - 2 / np.pi, rel=1e-12)
    sv, sa = 1.0, 0.5
    fp = resnet.correlation_fixed_point("tanh", sv, sa)
    e = fp["e_star"]
    assert 0 < e < 1
    assert (sv * 2 / np.pi * np.arcsin(e) + sa) / (sv + sa) == pytest.approx(e, abs=1e-12)
    # G'(e*) = sigma_v^2 (2/pi)/sqrt(1 - e*^2) / (sigma_v^2 + sigma_a^2)
    assert fp["slope"] == pytest.approx(sv * 2 / np.pi / np.sqrt(1 - e * e) / (sv + sa))


@pytest.mark.slow  # nested adaptive quadrature (~9 s)
def test_alpha_relu_kernel_fixed_point_against_adaptive_quadrature():
    act = alpha_relu(0.7)
    fp = resnet.correlation_fixed_point(act)
    e = fp["e_star"]

    def pair(
        c,
    ):  # E[phi(z1) phi(z2)], conditioning on z1 (finite ranges: QUADPACK
        # misses the mass of an infinite range this narrow)
        def inner(z1):
            m, s = c * z1, np.sqrt(1 - c * c)
            return integrate.quad(
                lambda z2: (m + s * z2) ** 0.7 * np.exp(-z2 * z2 / 2) / np.sqrt(2 * np.pi),
                -m / s,
                -m / s + 40,
                limit=200,
            )[0]

        return integrate.quad(
            lambda z1: z1**0.7 * inner(z1) * np.exp(-z1 * z1 / 2) / np.sqrt(2 * np.pi),
            0,
            12,
            limit=200,
        )[0]

    norm = float(act.mean_square(1.0))
    assert pair(e) / norm == pytest.approx(e, abs=1e-4)  # (Monte Carlo agrees)
    # The fixed point attracts: K'(e*) < 1, and mu = (1 - K'(e*)) / (1 - alpha).
    assert 0 < fp["slope"] < 1
    assert fp["mu"] == pytest.approx((1 - fp["slope"]) / 0.3)


@pytest.mark.slow  # 300 blocks of the 2x2 map with quadrature (~6 s)
def test_alpha_relu_correlation_exponent_from_the_map():
    # Near e*, de/dlog p = K(e) - e: |e* - e^l| ~ p^-nu with nu = 1 - K'(e*). The map, started
    # 0.002 below e*, reaches the predicted local slope to 15 % within 300 blocks.
    phi = alpha_relu(0.7)
    fp = resnet.correlation_fixed_point(phi)
    e0 = fp["e_star"] - 0.002
    T = np.asarray(resnet.covariance_trajectory(phi, 1.0, 0.0, np.array([[1, e0], [e0, 1]]), 300))
    p, e = T[:, 0, 0], T[:, 0, 1] / T[:, 0, 0]
    nu = -fitting.power_law(fp["e_star"] - e[30:], p[30:]).value
    assert nu == pytest.approx(fp["nu"], rel=0.15)


@pytest.mark.slow  # iterates the maps 2,400 blocks (~5 s)
@pytest.mark.parametrize("phi", ["tanh", alpha_relu(0.7)])
def test_amplification_depends_on_sigma_v2_times_depth(phi):
    # Dimensional analysis: at fixed p0 the amplification is a function of sigma_v^2 L; the
    # discrete map obeys it up to corrections that vanish as l0 grows (a few % here).
    a = np.log(resnet.gradient_amplification(phi, 0.25, 0.0, 1.0, 1600, sigma_w2=1.0)[-1])
    b = np.log(resnet.gradient_amplification(phi, 0.5, 0.0, 1.0, 800, sigma_w2=1.0)[-1])
    assert a == pytest.approx(b, rel=0.03)
    law = resnet.amplification_law(phi, 0.25, 1.0, 1600, sigma_w2=1.0)
    # The alpha-ReLU law is the continuum limit of the map (1 %); tanh's replaces
    # E sech^4 by its large-q form, which undercounts the first blocks (10 %).
    tol = 0.01 if phi != "tanh" else 0.1
    assert np.log(law["amplification"][-1]) == pytest.approx(a, rel=tol)


def test_amplification_law_rejects_bad_input():
    with pytest.raises(ValueError, match="sigma_a2"):
        resnet.amplification_law(alpha_relu(0.7), 1.0, 1.0, 10, sigma_a2=0.1)
    with pytest.raises(ValueError, match="p0"):
        resnet.amplification_law("tanh", 1.0, 0.0, 10)


@pytest.mark.slow  # compiles two simulators
def test_simulate_stream_is_the_cheap_part_of_simulate():
    key = jax.random.PRNGKey(3)
    a = rn.simulate(key, X2, "tanh", 1.0, 0.1, 6, sigma_w2=1.2, n_seeds=2)
    b = rn.simulate_stream(key, X2, "tanh", 1.0, 0.1, 6, sigma_w2=1.2, n_seeds=2)
    np.testing.assert_allclose(b["cov"], a["cov"], rtol=1e-12)
    np.testing.assert_allclose(b["grad_norms"], a["grad_norms"], rtol=1e-12)


def test_squared_distance_follows_the_covariance_map_relu():
    # relu's arc-cosine kernel in numpy, iterated by hand: equal to rounding.
    S = np.array([[1.0, 0.3], [0.3, 0.7]])
    s = resnet.squared_distance("relu", [2.0], S, 4, sigma_w2=1.5)
    assert s.shape == (1, 1, 5)
    want = []
    for _ in range(5):
        want.append(S[0, 0] + S[1, 1] - 2 * S[0, 1])
        q = 1.5 * S
        th = np.arccos(q[0, 1] / np.sqrt(q[0, 0] * q[1, 1]))
        k = np.sqrt(q[0, 0] * q[1, 1]) / (2 * np.pi) * (np.sin(th) + (np.pi - th) * np.cos(th))
        S = S + 2.0 * np.array([[q[0, 0] / 2, k], [k, q[1, 1] / 2]])
    np.testing.assert_allclose(s[0, 0], want, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sigma_v2s": [0.0, 1.0]}, "sigma_v2s"),
        ({"Sigma0": np.eye(3)}, "Sigma0"),
        ({"Sigma0": np.array([[1.0, 2.0], [2.0, 1.0]])}, "Sigma0"),
    ],
)
def test_squared_distance_rejects_bad_input(kwargs, match):
    args = {"sigma_v2s": [1.0], "Sigma0": np.eye(2)} | kwargs
    with pytest.raises(ValueError, match=match):
        resnet.squared_distance("relu", args["sigma_v2s"], args["Sigma0"], 3)


@pytest.mark.slow  # compiles the 2-D quadrature map twice
@pytest.mark.parametrize(
    "phi, sigma_w2, rtol", [("tanh", 1.0, 1e-7), (alpha_relu(0.7), None, 1e-4)]
)
def test_squared_distance_coarse_rule_matches_the_covariance_map(phi, sigma_w2, rtol):
    # DISTANCE_RULE is coarser than the default 2-D rule; its error, measured at 3e-8 (tanh)
    # and 1e-5 (alpha-ReLU) relative, must stay below the stated bound.
    S0 = np.array([[0.9, 0.2], [0.2, 1.1]])
    s = resnet.squared_distance(phi, [1.0], S0, 12, sigma_w2=sigma_w2)[0, 0]
    T = np.asarray(resnet.covariance_trajectory(phi, 1.0, 0.0, S0, 12, sigma_w2=sigma_w2))
    np.testing.assert_allclose(s, T[:, 0, 0] + T[:, 1, 1] - 2 * T[:, 0, 1], rtol=rtol)
