"""Tests of mftlib.recurrent (mean field of RNNs) and mftlib.networks.recurrent (finite RNNs)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mftlib as mft
from mftlib import dense, dynamics, fitting, recurrent
from mftlib.networks import recurrent as rnn

KEY = jax.random.PRNGKey(0)


# --- closed forms and identities ------------------------------------------------------------------


def test_vanilla_map_is_dense_map_with_input_as_bias():
    S = jnp.array([[0.8, 0.3], [0.3, 0.5]])
    R = jnp.array([[1.0, 0.4], [0.4, 2.0]])
    out = recurrent.vanilla_map("tanh", 1.5, 0.2, 0.05, S, R)
    # Equal input covariance entries: exactly the dense map with bias sb + su r.
    same = recurrent.vanilla_map("tanh", 1.5, 0.2, 0.05, S, 0.7 * jnp.ones((2, 2)))
    ref = jax.jit(lambda S: dense.covariance_map("tanh", 1.5, 0.05 + 0.2 * 0.7, S))(S)
    np.testing.assert_allclose(same, ref, rtol=1e-13)
    np.testing.assert_allclose(out - same, 0.2 * (R - 0.7), rtol=1e-12, atol=1e-14)


def test_vanilla_fixed_point_matches_dense_with_effective_bias():
    fp = recurrent.vanilla_fixed_point("tanh", 1.3, 0.1, 0.01, r=2.0)
    np.testing.assert_allclose(fp["q_star"], mft.q_star("tanh", 1.3, 0.21), rtol=1e-12)
    np.testing.assert_allclose(fp["chi_c"], mft.chi1("tanh", 1.3, 0.21), rtol=1e-10)
    assert float(fp["c_star"]) == 1.0
    np.testing.assert_allclose(fp["xi_c"], -1.0 / np.log(float(fp["chi_c"])), rtol=1e-12)


def test_minimal_fixed_point_solves_the_map_and_chi_is_its_linearisation():
    p = (1.3, 0.1, 0.02, 1.5)
    fp = recurrent.minimal_fixed_point(*p, r=1.0)
    Q = float(fp["q_star"])
    assert 0.0 < Q <= 1.0  # a convex combination of inputs of variance r = 1
    ones = jnp.ones((2, 2))
    np.testing.assert_allclose(recurrent.minimal_map(*p, Q * ones, ones), Q * ones, rtol=1e-12)
    # The closed form chi_c = E[u^2] + sw E[u'^2](Q + r) and chi_q are the eigenvalues of the
    # Jacobian of the 2 x 2 map (jax.jacfwd through the 2-D quadrature's custom JVP).
    F = lambda S: recurrent._minimal_map(*map(jnp.float64, p), S, ones)  # noqa: E731
    J = jax.jit(lambda x: dynamics.linearise(F, x, symmetric=True))(Q * ones)
    lam = np.sort(np.linalg.eigvals(J).real)
    ref = np.sort([float(fp["chi_c"]), float(fp["chi_q"]), float(fp["chi_q"])])
    np.testing.assert_allclose(lam, ref, rtol=1e-9)


def test_gru_chi_closed_form_against_finite_differences():
    p = (1.7, 0.3, 0.05, 1.0, -0.5)
    fp = recurrent.gru_fixed_point(*p, r=1.0)
    Q = float(fp["q_star"])
    ones = jnp.ones((2, 2))
    np.testing.assert_allclose(recurrent.gru_map(*p, Q * ones, ones), Q * ones, rtol=1e-11)

    def off(q12):
        return recurrent._gru_map(*map(jnp.float64, p), jnp.array([[Q, q12], [q12, Q]]), ones)[0, 1]

    # One-sided (c <= 1) second-order difference; error O(h^2) ~ 1e-8 relative.
    h = 1e-4 * Q
    f = jax.jit(jax.vmap(off))(jnp.array([Q, Q - h, Q - 2 * h]))
    fd = (3 * f[0] - 4 * f[1] + f[2]) / (2 * h)
    np.testing.assert_allclose(fp["chi_c"], fd, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("sw, sb", [(1.3, 0.01), (3.0, 0.01)])
def test_vanilla_chi_is_the_linearisation_of_the_map(sw, sb):
    """chi_c (dense.phase_diagram at the effective bias) and chi_q against the eigenvalues of
    dynamics.linearise of vanilla_map at its fixed point, ordered (c* = 1) and chaotic."""
    su, r = 0.1, 2.0
    fp = recurrent.vanilla_fixed_point("tanh", sw, su, sb, r=r)
    q, c = float(fp["q_star"]), float(fp["c_star"])
    S = q * jnp.array([[1.0, c], [c, 1.0]])
    R = r * jnp.ones((2, 2))
    act = mft.activation("tanh")
    F = lambda S: recurrent._vanilla_map(act, *map(jnp.float64, (sw, su, sb)), S, R)  # noqa: E731
    np.testing.assert_allclose(F(S), S, rtol=1e-11)
    lam = np.sort(np.linalg.eigvals(dynamics.linearise(F, S, symmetric=True)).real)
    chi_q = np.exp(-1.0 / float(fp["xi_q"]))
    np.testing.assert_allclose(lam, np.sort([float(fp["chi_c"]), chi_q, chi_q]), rtol=1e-9)


def test_gru_chi_is_the_linearisation_of_the_map():
    """The GRU's closed forms chi_c (Price's theorem) and chi_q against the eigenvalues of
    dynamics.linearise of gru_map at Q* 11^T (through the 2-D quadrature's custom JVP)."""
    p = (1.7, 0.3, 0.05, 1.0, -0.5)
    fp = recurrent.gru_fixed_point(*p, r=1.0)
    Q, ones = float(fp["q_star"]), jnp.ones((2, 2))
    F = lambda S: recurrent._gru_map(*map(jnp.float64, p), S, ones)  # noqa: E731
    J = jax.jit(lambda x: dynamics.linearise(F, x, symmetric=True))(Q * ones)
    lam = np.sort(np.linalg.eigvals(J).real)
    ref = np.sort([float(fp["chi_c"]), float(fp["chi_q"]), float(fp["chi_q"])])
    np.testing.assert_allclose(lam, ref, rtol=1e-9)


def test_gate_bias_lengthens_memory_monotonically_towards_one():
    out = recurrent.minimal_timescales([0.5, 2.0], np.linspace(-2, 8, 21), 0.1, 0.0)
    chi = np.asarray(out["chi_c"])
    assert np.all(np.diff(chi, axis=1) > 0)
    assert np.all(chi < 1) and np.all(chi[:, -1] > 0.999)
    gru = recurrent.gru_timescales([1.0], np.array([0.0, 3.0, 6.0]), 0.1, 0.0)
    assert np.all(np.diff(np.asarray(gru["xi_c"])[0]) > 0)


def test_trajectories_start_at_initial_state_and_perturbation_relaxes():
    Rs = recurrent.perturbation_inputs(1.0, 30, 0)
    np.testing.assert_allclose(Rs[0], jnp.eye(2))
    np.testing.assert_allclose(Rs[1], jnp.ones((2, 2)))
    q = float(recurrent.minimal_fixed_point(1.0, 0.1, 0.0, 2.0)["q_star"])
    tr = recurrent.minimal_trajectory(1.0, 0.1, 0.0, 2.0, q * jnp.ones((2, 2)), Rs)
    assert tr.shape == (31, 2, 2)
    c = np.asarray(recurrent.correlation(tr))
    assert c[0] == pytest.approx(1.0) and c[1] < 0.9 and np.all(np.diff(c[1:]) > 0)
    # Linear regime: the ratio of successive 1 - c tends to chi_c.
    chi = float(recurrent.minimal_fixed_point(1.0, 0.1, 0.0, 2.0)["chi_c"])
    assert (1 - c[-1]) / (1 - c[-2]) == pytest.approx(chi, rel=1e-3)


# --- theory against simulation --------------------------------------------------------------------


def _fitted(cell, q0, **hyper):
    L, t = 40, np.arange(1, 41)
    Q = rnn.perturbation_covariances(KEY, cell, 256, L, 4, q0=q0, **hyper)
    y = 1 - np.asarray(jax.vmap(recurrent.correlation)(Q))
    return fitting.exponential_scale(y, t, window=(t[4], None), floor=1e-11).value


@pytest.mark.slow
def test_simulated_vanilla_and_minimal_memory_times_match_theory():
    # Width 256, 4 seeds: the seed-to-seed spread of the fitted xi is ~5% at these points
    # (finite-N fluctuations of the per-step slope, O(1/sqrt(N)) per step, averaged over the fit
    # window), so the seed mean is within 10% of the infinite-width value.
    fp = recurrent.vanilla_fixed_point("tanh", 1.0, 0.1, 0.01)
    xi = _fitted("vanilla", float(fp["q_star"]), sigma_w2=1.0, sigma_u2=0.1, sigma_b2=0.01)
    assert xi.mean() == pytest.approx(float(fp["xi_c"]), rel=0.1)
    fp = recurrent.minimal_fixed_point(1.0, 0.1, 0.0, 2.0)
    xi = _fitted("minimal", float(fp["q_star"]), sigma_w2=1.0, sigma_u2=0.1, sigma_b2=0.0, mu_b=2.0)
    assert xi.mean() == pytest.approx(float(fp["xi_c"]), rel=0.1)


def test_state_jacobian_of_vanilla_cell_is_product_of_w_d():
    p = rnn.init(KEY, "vanilla", 16, 3, 1.5, 0.5, 0.1)
    h0 = jax.random.normal(jax.random.PRNGKey(1), (16,))
    xs = jax.random.normal(jax.random.PRNGKey(2), (2, 3))
    J = rnn.state_jacobian("vanilla", p, h0, xs)
    e1 = rnn.step("vanilla", p, h0, xs[0])
    d = lambda e: 1 - jnp.tanh(e) ** 2  # noqa: E731
    ref = p["W"] @ jnp.diag(d(e1)) @ p["W"] @ jnp.diag(d(h0))
    np.testing.assert_allclose(J, ref, rtol=1e-10, atol=1e-12)
    Js = rnn.state_jacobian("vanilla", p, h0, xs, all_steps=True)
    assert Js.shape == (2, 16, 16)
    np.testing.assert_allclose(Js[0], p["W"] @ jnp.diag(d(h0)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Js[1], J, rtol=1e-12, atol=1e-14)


def test_init_variances_and_orthogonal_weights():
    p = rnn.init(KEY, "gru", 400, 50, 2.0, 0.5, 0.1, mu_u=3.0, mu_r=-1.0)
    # 160,000 entries: sample variance within a few parts in 1e3 of sigma_w2 / n.
    assert float(jnp.var(p["Wu"])) * 400 == pytest.approx(2.0, rel=0.03)
    assert float(jnp.var(p["Uh"])) * 50 == pytest.approx(0.5, rel=0.03)
    assert float(jnp.mean(p["bu"])) == pytest.approx(3.0, abs=0.1)  # 400 draws of sd 0.32
    W = rnn.init(KEY, "vanilla", 64, 8, 1.2, 0.1, 0.0, orthogonal=True)["W"]
    np.testing.assert_allclose(W @ W.T, 1.2 * np.eye(64), atol=1e-10)


@pytest.mark.slow
def test_memory_task_and_a_tiny_training_run():
    xs, y = rnn.memory_task(KEY, 8, 10, 3, 4)
    assert xs.shape == (10, 8, 4)
    np.testing.assert_allclose(xs[6, :, 0], (2.0 * y - 1.0) * 2.0)
    np.testing.assert_allclose(xs[6, :, 1:], 0.0)
    keys = jax.random.split(KEY, 2)
    params = jax.vmap(lambda k: rnn.init_classifier(k, "vanilla", 8, 4, 1.0, 1.0, 0.0))(keys)
    out = rnn.train_memory(
        KEY,
        "vanilla",
        params,
        [1, 2],
        length=5,
        d=4,
        steps=60,
        batch_size=16,
        learning_rate=3e-2,
        n_test=64,
    )
    assert out["test_accuracy"].shape == (2,)
    # Delay 1 of 5 with a width-8 net: learnt to well above chance in 60 Adam steps.
    assert np.all(out["test_accuracy"] > 0.8)


# --- LSTM ----------------------------------------------------------------------------------------

LSTM = (1.0, 1.0, 0.0)  # sigma_w2, sigma_u2, sigma_b2 of the LSTM tests


@pytest.mark.slow
def test_lstm_fixed_point_is_fixed_and_chi_is_the_slope_of_the_map():
    p = (*LSTM, 2.0, 0.5, -0.5)  # mu_f, mu_i, mu_o
    fp = recurrent.lstm_fixed_point(*p, r=1.0)
    C, Q = float(fp["c_star"]), float(fp["q_star"])
    assert 0.0 < Q < 1.0 and C > 0.0
    ones = jnp.ones((2, 2))
    C1, Q1 = recurrent.lstm_map(*p, C * ones, Q * ones, ones)
    np.testing.assert_allclose(C1, C * ones, rtol=1e-11)
    np.testing.assert_allclose(Q1, Q * ones, rtol=1e-11)

    # chi_c (Price's theorem, 1-D integrals) against forward-mode autodiff of the map's
    # off-diagonals (C^ab, Q^ab) through the 2-D quadrature at c = 1.
    def off(v):
        Cn, Qn = recurrent._lstm_map(
            *map(jnp.float64, p),
            jnp.array([[C, v[0]], [v[0], C]]),
            jnp.array([[Q, v[1]], [v[1], Q]]),
            ones,
        )
        return jnp.array([Cn[0, 1], Qn[0, 1]])

    J = jax.jit(lambda x: dynamics.linearise(off, x))(jnp.array([C, Q]))
    np.testing.assert_allclose(np.max(np.linalg.eigvals(J).real), fp["chi_c"], rtol=1e-9)
    np.testing.assert_allclose(fp["xi_c"], -1.0 / np.log(float(fp["chi_c"])), rtol=1e-12)


@pytest.mark.slow
def test_lstm_forget_bias_lengthens_memory_and_trajectory_relaxes_at_chi():
    out = recurrent.lstm_timescales([0.5, 2.0], np.linspace(-2, 8, 11), 0.1, 0.0)
    chi = np.asarray(out["chi_c"])
    # Up to mu_f = 3: chi_c < 1 and rising with the forget bias. At large mu_f the Gaussian
    # closure puts chi_c marginally above 1 (f -> 1: a cell-state difference no longer decays,
    # and the gates keep feeding it), and chi_c -> 1 as mu_f -> infinity.
    assert np.all(np.diff(chi[:, :6], axis=1) > 0) and np.all(chi[:, :6] < 1)
    assert np.all(np.abs(chi[:, -1] - 1) < 0.01) and np.all(chi[:, 8:] > 0.999)
    fp = recurrent.lstm_fixed_point(*LSTM, 1.0)
    C, Q = float(fp["c_star"]), float(fp["q_star"])
    ones = jnp.ones((2, 2))
    Cs, Qs = recurrent.lstm_trajectory(
        *LSTM, 1.0, 0.0, 0.0, C * ones, Q * ones, recurrent.perturbation_inputs(1.0, 40, 0)
    )
    assert Cs.shape == Qs.shape == (41, 2, 2)
    y = 1 - np.asarray(recurrent.correlation(Qs))
    assert y[0] == pytest.approx(0.0, abs=1e-12) and y[1] > 0.1
    assert y[-1] / y[-2] == pytest.approx(float(fp["chi_c"]), rel=1e-3)


@pytest.mark.slow
def test_simulated_lstm_memory_time_matches_theory_with_fresh_weights():
    # Width 128, 4 seeds, fresh recurrent weights each step (the network whose gates the
    # mean field decouples exactly; the Gaussian closure of the cell state is the remaining
    # approximation). The fitted xi scatters by ~2-5% between seeds here, so the seed mean
    # lies within 10% of the infinite-width value. Forget-gate biases 0 and 2 (xi ~ 0.9, 3.6).
    L, t = 30, np.arange(1, 31)
    for mu_f in (0.0, 2.0):
        fp = recurrent.lstm_fixed_point(*LSTM, mu_f)
        Q = rnn.perturbation_covariances(
            KEY, "lstm", 128, L, 4, sigma_w2=1.0, sigma_u2=1.0, sigma_b2=0.0, mu_f=mu_f,
            q0=float(fp["q_star"]), c0=float(fp["c_star"]), annealed=True,
        )  # fmt: skip
        y = 1 - np.asarray(jax.vmap(recurrent.correlation)(Q))
        xi = fitting.exponential_scale(y, t, window=(t[4], None), floor=1e-11).value
        assert np.mean(xi) == pytest.approx(float(fp["xi_c"]), rel=0.1)
        # The hidden state's variance sits at Q* (finite-N error O(1/sqrt(N)) ~ 10%).
        assert float(Q[:, -1, 0, 0].mean()) == pytest.approx(float(fp["q_star"]), rel=0.15)


def test_lstm_cell_step_and_state_layout():
    p = rnn.init(KEY, "lstm", 8, 3, 1.0, 1.0, 0.0, mu_f=5.0)
    assert float(jnp.mean(p["bf"])) == pytest.approx(5.0) and p["Wg"].shape == (8, 8)
    s0 = jax.random.normal(jax.random.PRNGKey(1), (rnn.state_size("lstm", 8),))
    x = jax.random.normal(jax.random.PRNGKey(2), (3,))
    s1 = rnn.step("lstm", p, s0, x)
    c0, h0 = s0[:8], s0[8:]
    pre = lambda k: p["W" + k] @ h0 + p["U" + k] @ x + p["b" + k]  # noqa: E731
    f, i, o = (jax.nn.sigmoid(pre(k)) for k in "fio")
    c1 = f * c0 + i * jnp.tanh(pre("g"))
    np.testing.assert_allclose(s1, jnp.concatenate([c1, o * jnp.tanh(c1)]), rtol=1e-12)
    np.testing.assert_allclose(rnn.features("lstm", s1), o * jnp.tanh(c1), rtol=1e-12)


# --- bad input ------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    ones = jnp.ones((2, 2))
    with pytest.raises(ValueError, match="sigma_w2"):
        recurrent.minimal_fixed_point(-1.0, 0.1, 0.0, 1.0)
    with pytest.raises(ValueError, match="mu_b"):
        recurrent.minimal_fixed_point(1.0, 0.1, 0.0, np.nan)
    with pytest.raises(ValueError, match="2 x 2"):
        recurrent.minimal_map(1.0, 0.1, 0.0, 1.0, jnp.eye(3), jnp.eye(3))
    with pytest.raises(ValueError, match="same shape"):
        recurrent.vanilla_map("tanh", 1.0, 0.1, 0.0, ones, jnp.eye(3))
    with pytest.raises(ValueError, match="unknown activation"):
        recurrent.vanilla_fixed_point("tanhh", 1.0, 0.1, 0.0)
    with pytest.raises(ValueError, match="t0"):
        recurrent.perturbation_inputs(1.0, 5, 5)
    with pytest.raises(ValueError, match="cell"):
        rnn.init(KEY, "lstmm", 4, 4, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="d == n"):
        rnn.init(KEY, "minimal", 4, 3, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="mu_f"):
        recurrent.lstm_fixed_point(1.0, 0.1, 0.0, np.inf)
    with pytest.raises(ValueError, match="sigma_u2"):
        recurrent.lstm_map(1.0, -0.1, 0.0, 1.0, 0.0, 0.0, ones, ones, ones)
    with pytest.raises(ValueError, match="2 x 2"):
        recurrent.lstm_map(1.0, 0.1, 0.0, 1.0, 0.0, 0.0, jnp.eye(3), ones, ones)
    with pytest.raises(ValueError, match="Rs"):
        recurrent.lstm_trajectory(1.0, 0.1, 0.0, 1.0, 0.0, 0.0, ones, ones, jnp.ones((4, 3, 3)))
    with pytest.raises(ValueError, match="c0"):
        rnn.perturbation_covariances(KEY, "lstm", 8, 5, 2, sigma_w2=1.0, sigma_u2=1.0,
                                     sigma_b2=0.0, c0=-1.0)  # fmt: skip
    with pytest.raises(ValueError, match="mu_o"):
        rnn.init(KEY, "lstm", 4, 4, 1.0, 1.0, 0.0, mu_o=np.nan)
    with pytest.raises(ValueError, match="delays"):
        rnn.train_memory(KEY, "vanilla", {}, [7], length=5, d=4)


# --- per-gate variances (Gilboa et al. 2019) ---------------------------------------------------


def test_gate_variances_forms_and_clear_errors():
    g = recurrent.GRU_GATES
    np.testing.assert_array_equal(recurrent.gate_variances("s", 0.5, g), [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(recurrent.gate_variances("s", (1, 2, 3), g), [1, 2, 3])
    by_name = {"h": 3.0, "u": 1.0, "r": 2.0}
    np.testing.assert_array_equal(recurrent.gate_variances("s", by_name, g), [1, 2, 3])
    with pytest.raises(ValueError, match="missing"):
        recurrent.gate_variances("s", {"u": 1.0, "r": 2.0}, g)
    with pytest.raises(ValueError, match="unknown"):
        recurrent.gate_variances("s", {"u": 1.0, "r": 2.0, "h": 1.0, "f": 1.0}, g)
    with pytest.raises(ValueError, match="3 values"):
        recurrent.gate_variances("s", (1.0, 2.0), g)
    with pytest.raises(ValueError, match="sigma_w2"):
        recurrent.gru_map((1.0, -1.0, 1.0), 0.1, 0.0, 0.0, 0.0, jnp.eye(2), jnp.eye(2))
    with pytest.raises(ValueError, match="4 values"):
        recurrent.lstm_fixed_point((1.0, 1.0, 1.0), 0.1, 0.0, 1.0)
    with pytest.raises(ValueError, match="one sigma_w2"):
        rnn.init(KEY, "vanilla", 4, 4, (1.0, 1.0), 0.1, 0.0)


@pytest.mark.slow  # compiles the maps / the draw (seconds)
def test_init_draws_per_gate_variances():
    # 300 x 300 (300 x 50) Gaussian entries per matrix: the sample variance is within 1% of
    # its expectation (relative s.e. sqrt(2/90000) ~ 0.5%, 15000 entries: ~1.2%); 4% tolerance.
    sw, su = {"u": 0.5, "r": 2.0, "h": 4.0}, (0.3, 1.0, 3.0)
    p = rnn.init(KEY, "gru", 300, 50, sw, su, (0.1, 0.2, 0.4), mu_u=3.0)
    for k, gate in enumerate("urh"):
        assert float(p["W" + gate].var()) * 300 == pytest.approx(sw[gate], rel=0.04)
        assert float(p["U" + gate].var()) * 50 == pytest.approx(su[k], rel=0.04)
    assert float(p["bu"].mean()) == pytest.approx(3.0, abs=4 * np.sqrt(0.1 / 300))
    q = rnn.init(KEY, "lstm", 300, 50, (0.5, 1.0, 2.0, 4.0), 1.0, 0.0)
    for k, gate in enumerate("fiog"):
        assert float(q["W" + gate].var()) * 300 == pytest.approx((0.5, 1, 2, 4)[k], rel=0.04)


@pytest.mark.slow  # compiles the maps / the draw (seconds)
def test_per_gate_equal_reproduces_the_shared_maps_exactly():
    Q = jnp.array([[0.7, 0.3], [0.3, 0.5]])
    R = jnp.array([[1.0, 0.4], [0.4, 0.9]])
    shared = recurrent.gru_map(1.3, 0.2, 0.05, 1.0, -0.5, Q, R)
    for sw in ((1.3, 1.3, 1.3), {"u": 1.3, "r": 1.3, "h": 1.3}):
        np.testing.assert_array_equal(recurrent.gru_map(sw, 0.2, 0.05, 1.0, -0.5, Q, R), shared)
    per = recurrent.gru_map(1.3, (0.2,) * 3, (0.05,) * 3, 1.0, -0.5, Q, R)
    np.testing.assert_array_equal(per, shared)
    C1, Q1 = recurrent.lstm_map(1.3, 0.2, 0.05, 1.0, 0.2, -0.3, 1.2 * Q, Q, R)
    C2, Q2 = recurrent.lstm_map((1.3,) * 4, 0.2, (0.05,) * 4, 1.0, 0.2, -0.3, 1.2 * Q, Q, R)
    np.testing.assert_array_equal(C1, C2)
    np.testing.assert_array_equal(Q1, Q2)
    # and a gate's own variance enters its own pre-activation only
    assert not np.allclose(recurrent.gru_map((1.3, 1.3, 2.0), 0.2, 0.05, 1.0, -0.5, Q, R), shared)


@pytest.mark.slow
def test_per_gate_equal_fixed_points_are_the_shared_ones_exactly():
    a = recurrent.gru_fixed_point(1.3, 0.2, 0.05, 1.0, -0.5, 0.8)
    b = recurrent.gru_fixed_point({"u": 1.3, "r": 1.3, "h": 1.3}, (0.2,) * 3, 0.05, 1.0, -0.5, 0.8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    a = recurrent.lstm_fixed_point(1.3, 0.2, 0.05, 1.0, 0.2, -0.3, 0.8)
    b = recurrent.lstm_fixed_point((1.3,) * 4, 0.2, (0.05,) * 4, 1.0, 0.2, -0.3, 0.8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


GRU_PER_GATE = ((8.0, 8.0, 1.0), 1.0, 0.0)  # sigma_w2 (u, r, h), sigma_u2, sigma_b2
LSTM_PER_GATE = ((0.2, 0.2, 0.2, 8.0), 1.0, 0.0)  # sigma_w2 (f, i, o, g), sigma_u2, sigma_b2


@pytest.mark.slow
def test_per_gate_chi_is_the_linearisation_of_the_maps():
    """Unequal per-gate variances: the closed-form chi_c (Price's theorem) against forward-mode
    autodiff of the maps' off-diagonals through the 2-D quadrature."""
    p = (*GRU_PER_GATE, 1.0, -0.5)
    fp = recurrent.gru_fixed_point(*p, r=1.0)
    Q, ones = float(fp["q_star"]), jnp.ones((2, 2))
    args = [jnp.asarray(x, jnp.float64) for x in p]
    F = lambda S: recurrent._gru_map(*args, S, ones)  # noqa: E731
    np.testing.assert_allclose(F(Q * ones), Q * ones, rtol=1e-11)
    J = jax.jit(lambda x: dynamics.linearise(F, x, symmetric=True))(Q * ones)
    lam = np.sort(np.linalg.eigvals(J).real)
    ref = np.sort([float(fp["chi_c"]), float(fp["chi_q"]), float(fp["chi_q"])])
    np.testing.assert_allclose(lam, ref, rtol=1e-9)

    p = (*LSTM_PER_GATE, 2.0, 0.5, -0.5)
    fp = recurrent.lstm_fixed_point(*p, r=1.0)
    C, Q = float(fp["c_star"]), float(fp["q_star"])
    args = [jnp.asarray(x, jnp.float64) for x in p]

    def off(v):
        Cn, Qn = recurrent._lstm_map(
            *args, jnp.array([[C, v[0]], [v[0], C]]), jnp.array([[Q, v[1]], [v[1], Q]]), ones
        )
        return jnp.array([Cn[0, 1], Qn[0, 1]])

    np.testing.assert_allclose(off(jnp.array([C, Q])), [C, Q], rtol=1e-11)
    J = jax.jit(lambda x: dynamics.linearise(off, x))(jnp.array([C, Q]))
    np.testing.assert_allclose(np.max(np.linalg.eigvals(J).real), fp["chi_c"], rtol=1e-9)


@pytest.mark.slow
def test_per_gate_theory_matches_annealed_networks():
    """Unequal per-gate variances, width 128, 6 seeds, fresh recurrent weights every step. The
    fitted xi scatters by ~5% between seeds, so the seed mean lies within 10% of the mean field;
    the per-gate theory differs from the shared-variance theory at each of the gate values used
    by more than 30%, so ignoring a gate's own variance would fail the test."""
    L, t = 30, np.arange(1, 31)
    cases = [("gru", GRU_PER_GATE, {"mu_u": 1.0}), ("lstm", LSTM_PER_GATE, {"mu_f": 1.0})]
    for cell, (sw, su, sb), mus in cases:
        if cell == "gru":
            fp = recurrent.gru_fixed_point(sw, su, sb, mus["mu_u"], 0.0)
            alt = [recurrent.gru_fixed_point(v, su, sb, mus["mu_u"], 0.0) for v in set(sw)]
            q0 = {"q0": float(fp["q_star"])}
        else:
            fp = recurrent.lstm_fixed_point(sw, su, sb, mus["mu_f"])
            alt = [recurrent.lstm_fixed_point(v, su, sb, mus["mu_f"]) for v in set(sw)]
            q0 = {"q0": float(fp["q_star"]), "c0": float(fp["c_star"])}
        xi = float(fp["xi_c"])
        assert all(abs(float(a["xi_c"]) / xi - 1) > 0.3 for a in alt)
        Q = rnn.perturbation_covariances(
            KEY, cell, 128, L, 6, sigma_w2=sw, sigma_u2=su, sigma_b2=sb, annealed=True,
            **q0, **mus,
        )  # fmt: skip
        y = 1 - np.asarray(jax.vmap(recurrent.correlation)(Q))
        xs = fitting.exponential_scale(y, t, window=(t[4], None), floor=1e-11).value
        assert np.mean(xs) == pytest.approx(xi, rel=0.1), cell
        assert float(Q[:, -1, 0, 0].mean()) == pytest.approx(float(fp["q_star"]), rel=0.15)
