"""Width and variance variation: which gradients depend on the widths, the decay phases, and the
training driver."""

import jax
import numpy as np
import pytest
from scipy import integrate

from mftlib import datasets, resnet
from mftlib import width_variance as wv
from mftlib.networks import resnet as rn

RNG = np.random.default_rng(0)
N, DEPTH = 64, 12
X = RNG.normal(size=(2, N))
P0 = float(np.mean(X**2))
DECAY = np.round(N * (1 - np.arange(DEPTH) / (DEPTH - 1) * 3 / 4)).astype(int)


def _sech4(u):
    e = np.exp(-2 * np.abs(u))
    return (2 * np.sqrt(e) / (1 + e)) ** 4


@pytest.mark.slow
def test_block_gradients_width_dependence_is_exactly_the_stated_one():
    a = wv.block_gradients("tanh", 1.0, P0, DEPTH, sigma_w2=1.0, width=N)
    b = wv.block_gradients("tanh", 1.0, P0, DEPTH, sigma_w2=1.0, width=N, hidden_widths=DECAY)
    for key in ("p", "chi", "V_entry", "W_block"):  # width-independent
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12)
    np.testing.assert_allclose(b["W_entry"] / a["W_entry"], N / DECAY, rtol=1e-12)
    np.testing.assert_allclose(b["V_block"] / a["V_block"], DECAY / N, rtol=1e-12)
    # the block total of W is N^2 sigma_v^2 chi^l E phi'^2 p^(l-1)
    q = a["p"][:-1]
    sech4 = np.array(
        [
            integrate.quad(
                lambda z, q=q_: _sech4(np.sqrt(q) * z) * np.exp(-z * z / 2),
                -np.inf,
                np.inf,
            )[0]
            / np.sqrt(2 * np.pi)
            for q_ in q
        ]
    )
    np.testing.assert_allclose(a["W_block"], N**2 * a["chi"][1:] * sech4 * q, rtol=1e-6)


def test_block_gradients_rejects_bad_widths():
    with pytest.raises(ValueError, match="hidden_widths"):
        wv.block_gradients("tanh", 1.0, P0, DEPTH, sigma_w2=1.0, width=N, hidden_widths=[3, 4])
    with pytest.raises(ValueError, match="hidden_widths"):
        wv.block_gradients(
            "tanh",
            1.0,
            P0,
            DEPTH,
            sigma_w2=1.0,
            width=N,
            hidden_widths=np.full(DEPTH, 2.5),
        )


@pytest.mark.slow
def test_simulated_block_gradients_match_the_mean_field():
    # 32 seeds of width 64: the per-block statistics have seed-to-seed relative scatter of about
    # 30% here, so their means over seeds are good to about 6%; allow 20% (finite-width bias).
    theory = wv.block_gradients("tanh", 1.0, P0, DEPTH, sigma_w2=1.0, width=N, hidden_widths=DECAY)
    sim = wv.simulate_block_gradients(
        jax.random.PRNGKey(3),
        X,
        "tanh",
        1.0,
        DEPTH,
        sigma_w2=1.0,
        hidden_widths=DECAY,
        n_seeds=32,
    )
    for key in ("W_entry", "V_entry", "W_block", "V_block"):
        np.testing.assert_allclose(sim[key].mean(0), theory[key], rtol=0.2)
    # the length: within 4 standard errors over seeds, plus 1% for the finite width
    se = sim["p"].std(0, ddof=1) / np.sqrt(sim["p"].shape[0])
    assert np.all(np.abs(sim["p"].mean(0) - theory["p"]) <= 4 * se + 0.01 * theory["p"])
    # the width ratios, seed by seed with shared draws
    const = wv.simulate_block_gradients(
        jax.random.PRNGKey(3), X, "tanh", 1.0, DEPTH, sigma_w2=1.0, n_seeds=32
    )
    t_const = wv.block_gradients("tanh", 1.0, P0, DEPTH, sigma_w2=1.0, width=N)
    rows = wv.width_ratio_table({"d": theory, "c": t_const}, {"d": sim, "c": const}, "d", "c")
    assert rows["W_entry"][0] == pytest.approx(N / DECAY[-1])
    for th, me, se in rows.values():
        assert abs(me - th) < 4 * se + 0.1 * th


def test_relu_phases():
    ph = wv.predicted_phase("relu", 0.5, 0.0)
    assert ph["gradient"] == ("stretched", 0.5) and ph["length"] == ph["gradient"]
    assert wv.predicted_phase("relu", 0.5, 0.5, sigma_v2=2.0)["gradient"] == (
        "power",
        1.0,
    )
    assert wv.predicted_phase("relu", 1.0, 0.5)["gradient"][0] == "bounded"


@pytest.mark.slow
def test_relu_exact_identity_and_line_exponent():
    g = wv.decay_grid("relu", [0.0, 0.5, 1.2], [0.0, 0.5], [10, 100], p0=P0)
    # p^L/p^0 = chi^0/chi^L exactly for ReLU
    np.testing.assert_allclose(np.log(g["p"] / P0), g["log_amplification"], rtol=1e-10)
    # on the line the amplification is a power L^(sigma_v^2 sigma_w^2/2) asymptotically
    line = wv.decay_grid("relu", [0.5], [0.5], [10**3, 10**4])
    nu = wv.local_exponents(np.exp(line["log_amplification"]), line["depths"])
    assert nu[0, 0, 0] == pytest.approx(0.5, abs=1e-3)


def test_tanh_phases():
    assert wv.predicted_phase("tanh", 0.25, 0.0) == {
        "length": ("power", 0.75),
        "gradient": ("stretched", 0.375),
    }
    end = wv.predicted_phase("tanh", 1.0, 0.0, sigma_v2=2.0, sigma_w2=0.5)
    assert end["length"] == ("log", 2.0)
    assert end["gradient"] == ("sqrt_log", pytest.approx(wv.KAPPA))
    assert wv.predicted_phase("tanh", 0.3, 0.9)["length"][0] == "bounded"
    # without a positive fixed point of q on the line, tanh acts linearly
    assert wv.predicted_phase("tanh", 0.0, 1.0, sigma_v2=0.5)["gradient"] == (
        "power",
        0.5,
    )


@pytest.mark.slow
def test_tanh_line_exponent_against_the_iterated_map():
    # q^l -> q* on beta = 1: the local exponent of chi^0/chi^L approaches delta with
    # corrections of order l^-(1 - beta_v); at 1e4 and beta_v = 0.5 within 5%.
    delta = wv.predicted_phase("tanh", 0.5, 0.5)["gradient"][1]
    g = wv.decay_grid("tanh", [0.5], [0.5], [10**3, 10**4])
    nu = wv.local_exponents(np.exp(g["log_amplification"]), g["depths"])[0, 0, 0]
    assert nu == pytest.approx(delta, rel=0.05)
    # and the length exponent 1 - beta_v
    nu_p = wv.local_exponents(g["p"], g["depths"])[0, 0, 0]
    assert nu_p == pytest.approx(0.5, rel=0.06)


@pytest.mark.slow
def test_decay_grid_agrees_with_resnet_phase_diagram():
    b = [0.0, 0.7]
    ours = wv.decay_grid("tanh", b, b, [40], p0=P0)["log_amplification"][..., 0]
    theirs = resnet.decay_phase_diagram("tanh", b, b, 40, p0=P0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_local_exponents_and_validation():
    d = np.array([10, 100, 1000])
    np.testing.assert_allclose(wv.local_exponents(3 * d**0.7, d), [0.7, 0.7])
    with pytest.raises(ValueError):
        wv.local_exponents([1.0, -1.0, 2.0], d)
    with pytest.raises(ValueError):
        wv.decay_grid("tanh", [0.0], [0.0], [100, 10])
    with pytest.raises(ValueError):
        wv.predicted_phase("tanh", -0.1, 0.0)
    with pytest.raises(ValueError):
        wv.predicted_phase("erf", 0.1, 0.0)


@pytest.mark.slow
def test_amplification_share():
    shares = [
        wv.amplification_share("tanh", resnet.schedule(3.0, b, 32), 1.0, 32, 4) for b in (0, 1, 2)
    ]
    assert 0 < shares[0] < shares[1] < shares[2] < 1
    assert wv.amplification_share("tanh", 1.0, 1.0, 8, 8) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        wv.amplification_share("tanh", 1.0, 1.0, 8, 9)


def test_training_summary():
    grid = {
        "accuracy": np.array([[0.9, 0.5], [0.95, 0.3]]),
        "decades": np.array([[1, 5], [2, 6]]),
    }
    s = wv.training_summary(grid, 2.5, 3.5)
    assert (s["low_min"], s["low_max"], s["low_n"]) == (0.9, 0.95, 2)
    assert (s["high_min"], s["high_max"], s["high_n"]) == (0.3, 0.5, 2)
    with pytest.raises(ValueError):
        wv.training_summary(grid, 4.0, 3.0)


@pytest.mark.slow
def test_train_decay_grid_runs_and_predicts():
    data = datasets.digits()
    out = wv.train_decay_grid(
        jax.random.PRNGKey(0),
        data,
        [0.3, 30.0],
        [0.0, 1.5],
        depth=8,
        width=16,
        steps=60,
    )
    assert out["accuracy"].shape == (2, 2)
    assert np.all((out["accuracy"] >= 0) & (out["accuracy"] <= 1))
    assert out["decades"][0, 1] > out["decades"][1, 1] > out["decades"][1, 0]
    # a small variance trains above chance in 60 steps
    assert out["accuracy"][1, 0] > 0.5
    seeds = out["accuracy_seeds"]
    assert seeds.shape == (2, 2, 2)
    np.testing.assert_allclose(seeds.mean(-1), out["accuracy"], rtol=1e-12)


@pytest.mark.slow
def test_simulation_ratios_near_one():
    sims = {
        ("relu", 0.5, 0.5): rn.simulate(
            jax.random.PRNGKey(0),
            X,
            "relu",
            resnet.schedule(1.0, 0.5, DEPTH),
            0.0,
            DEPTH,
            sigma_w2=resnet.schedule(1.0, 0.5, DEPTH),
            n_seeds=16,
        )
    }
    (pr, pe, ar, ae) = wv.simulation_ratios(sims, P0)[("relu", 0.5, 0.5)]
    assert abs(pr - 1) < 4 * pe + 0.05 and abs(ar - 1) < 4 * ae + 0.05


def test_bias_decay_exponent_closed_forms():
    assert wv.bias_decay_exponent(0.5, 0.0, np.inf) == ("stretched", 0.25)
    assert wv.bias_decay_exponent(0.5, 0.0, 0.5) == ("stretched", 0.25)
    assert wv.bias_decay_exponent(0.5, 0.0, 0.25) == ("stretched", 0.125)
    kind, delta = wv.bias_decay_exponent(0.5, 0.0, 0.0)
    assert kind == "power" and delta == pytest.approx(wv.KAPPA / 2)
    assert wv.bias_decay_exponent(0.6, 0.0, 0.0)[0] == "bounded"
    with pytest.raises(ValueError):
        wv.bias_decay_exponent(0.5, 0.6, 0.5)  # q does not grow
    with pytest.raises(ValueError):
        wv.bias_decay_exponent(0.5, 0.0, -1.0)


@pytest.mark.slow
def test_bias_decay_against_the_iterated_map():
    # beta_a = 0: chi^0/chi^L ~ L^(kappa/2); local exponent between 1e3 and 1e4 within 3%
    d = np.array([10**3, 10**4])
    tr = wv.bias_decay_trajectories(0.5, 0.0, 0.0, d[-1], 1.0)
    nu = wv.local_exponents(np.exp(tr["log_amplification"][d]), d)[0]
    assert nu == pytest.approx(wv.KAPPA / 2, rel=0.03)
    # a slower-decaying bias lowers the amplification at every depth
    none = wv.bias_decay_trajectories(0.5, 0.0, np.inf, 100, 1.0)["log_amplification"]
    half = wv.bias_decay_trajectories(0.5, 0.0, 0.5, 100, 1.0)["log_amplification"]
    # (from L = 3: the first block sees the same input, and sigma_a,1 = 1 in both)
    assert np.all(tr["log_amplification"][3:101] < half[3:]) and np.all(half[3:] < none[3:])


@pytest.mark.slow
def test_init_width_classifier_masks_and_scales():
    m = np.array([8, 6, 4, 2])
    p = wv.init_width_classifier(jax.random.PRNGKey(0), 5, 8, m, 3, 2.0, n_models=2)
    assert p["W"].shape == (2, 4, 8, 8) and p["V"].shape == (2, 4, 8, 8)
    for layer, ml in enumerate(m):
        assert np.all(p["W"][:, layer, ml:] == 0) and np.all(p["V"][:, layer, :, ml:] == 0)
    with pytest.raises(ValueError):
        wv.init_width_classifier(jax.random.PRNGKey(0), 5, 8, [8, 0], 3, 1.0)


@pytest.mark.slow
def test_width_classifier_keeps_its_widths_under_training():
    # tanh(0) = 0: the masked entries get zero gradients
    data = datasets.digits()
    m = np.array([16, 8, 4, 2])
    p = wv.init_width_classifier(jax.random.PRNGKey(0), 64, 16, m, 10, 1.0, n_models=1)
    one = jax.tree_util.tree_map(lambda a: a[0], p)

    def loss(q):
        logits = rn.classifier("tanh")(q, data.x_train[:64])
        return -jax.nn.log_softmax(logits)[np.arange(64), data.y_train[:64]].mean()

    g = jax.grad(loss)(one)
    for layer, ml in enumerate(m):
        assert np.all(g["W"][layer, ml:] == 0) and np.all(g["V"][layer, :, ml:] == 0)
    out = wv.train_width_grid(
        jax.random.PRNGKey(1),
        data,
        [1.0],
        {"c": np.full(4, 16), "d": m},
        width=16,
        steps=50,
    )
    assert set(out) == {"c", "d"} and all(0 <= a[0] <= 1 for a, _ in out.values())


@pytest.mark.slow
def test_predicted_decades_matches_gradient_amplification():
    dec = wv.predicted_decades([0.5, 3.0], [0.0, 1.0], 16, 1.0)
    direct = np.log10(
        resnet.gradient_amplification(
            "tanh", resnet.schedule(3.0, 1.0, 16), 0.0, 1.0, 16, sigma_w2=1.0
        )[-1]
    )
    assert dec.shape == (2, 2) and dec[1, 1] == pytest.approx(direct, rel=1e-10)


def _same_phase(a, b):
    return all(
        a[k][0] == b[k][0] and (a[k][1] == b[k][1] or (np.isnan(a[k][1]) and np.isnan(b[k][1])))
        for k in ("length", "gradient")
    )


def test_hidden_bias_phase_closed_forms():
    # no hidden bias: the phases of predicted_phase
    for phi, b in (("tanh", (0.25, 0.0)), ("tanh", (0.5, 1.0)), ("relu", (0.25, 1.0))):
        assert _same_phase(wv.hidden_bias_phase(phi, *b, np.inf), wv.predicted_phase(phi, *b))
    # below the line and at the endpoint the hidden bias changes nothing
    for b in ((0.25, 0.0), (1.0, 0.0)):
        assert _same_phase(wv.hidden_bias_phase("tanh", *b, 0.0), wv.predicted_phase("tanh", *b))
    # above the line: length fed by the bias, p ~ l^(1 - beta_v - beta_b); gradient bounded
    ph = wv.hidden_bias_phase("tanh", 0.5, 1.0, 0.25)
    assert ph["length"] == ("power", 0.25) and ph["gradient"][0] == "bounded"
    assert wv.hidden_bias_phase("tanh", 0.5, 1.0, 0.0)["length"] == ("power", 0.5)
    assert wv.hidden_bias_phase("tanh", 0.5, 1.0, 0.75)["length"][0] == "bounded"
    kind, pref = wv.hidden_bias_phase("tanh", 0.5, 1.0, 0.5, sigma_v2=2.0, sigma_b2=3.0)["length"]
    assert kind == "log" and pref == pytest.approx(6.0)
    # relu: the gradient is exactly unchanged; the length power on the line is the larger one
    ph = wv.hidden_bias_phase("relu", 0.25, 0.75, 0.0)
    assert ph["gradient"] == ("power", 0.5) and ph["length"] == ("power", 0.75)
    assert wv.hidden_bias_phase("relu", 0.5, 1.0, 0.0)["length"] == ("power", 0.5)
    with pytest.raises(ValueError):
        wv.hidden_bias_phase("tanh", 0.5, 0.5, -1.0)
    with pytest.raises(ValueError):
        wv.hidden_bias_phase("tanh", 0.5, 0.5, 0.5, sigma_v2=0.5)  # q -> 0 on the line


@pytest.mark.slow
def test_hidden_bias_phase_on_the_line_solves_its_fixed_point():
    # a constant bias moves q* up and lowers delta; q* = A + 1, A = E tanh^2(A + 1) / (1 - 1/2)
    d0 = wv.predicted_phase("tanh", 0.5, 0.5)["gradient"][1]
    kind, d1 = wv.hidden_bias_phase("tanh", 0.5, 0.5, 0.0)["gradient"]
    assert kind == "power" and d1 < d0
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / np.sqrt(2 * np.pi)
    a = 1.0
    for _ in range(200):  # a contraction: d/dq E tanh^2 is small at q ~ 2
        a = 2 * np.sum(w * np.tanh(np.sqrt(a + 1.0) * z) ** 2)
    assert d1 == pytest.approx(np.sum(w * _sech4(np.sqrt(a + 1.0) * z)), rel=1e-6)
    # a decaying bias on the line leaves delta alone
    assert wv.hidden_bias_phase("tanh", 0.5, 0.5, 0.5)["gradient"][1] == pytest.approx(d0)


@pytest.mark.slow
def test_hidden_bias_phase_against_the_iterated_map():
    d = np.array([10**3, 10**4])
    # on the line with a constant hidden bias: chi^0/chi^L ~ L^delta, within 2% at 1e4
    tr = wv.decay_trajectories("tanh", 0.5, 0.5, d[-1], 1.0, beta_b=0.0)
    delta = wv.hidden_bias_phase("tanh", 0.5, 0.5, 0.0)["gradient"][1]
    app = wv.local_exponents(np.exp(tr["log_amplification"][d]), d)[0]
    assert app == pytest.approx(delta, rel=0.02)
    # above the line: the length exponent 1/2 within 0.03, the amplification nearly flat
    tr = wv.decay_trajectories("tanh", 0.5, 1.0, d[-1], 1.0, beta_b=0.0)
    assert wv.local_exponents(tr["p"][d], d)[0] == pytest.approx(0.5, abs=0.03)
    assert np.diff(tr["log_amplification"][d])[0] < 0.03
    # relu: the hidden bias leaves the amplification exactly unchanged
    a = wv.decay_trajectories("relu", 0.5, 1.0, 50, 1.0)["log_amplification"]
    b = wv.decay_trajectories("relu", 0.5, 1.0, 50, 1.0, beta_b=0.0)
    np.testing.assert_allclose(b["log_amplification"], a, rtol=1e-12)
    assert b["p"][-1] > 2 * wv.decay_trajectories("relu", 0.5, 1.0, 50, 1.0)["p"][-1]
    with pytest.raises(ValueError):
        wv.decay_trajectories("tanh", 0.5, 1.0, 10, 1.0, beta_b=-0.5)


@pytest.mark.slow
def test_stream_ratios_near_one():
    sims = {
        ("tanh", 0.5, 1.0, 0.0): rn.simulate_stream(
            jax.random.PRNGKey(0),
            X,
            "tanh",
            resnet.schedule(1.0, 0.5, DEPTH),
            0.0,
            DEPTH,
            sigma_w2=resnet.schedule(1.0, 1.0, DEPTH),
            sigma_b2=1.0,
            n_seeds=16,
        )
    }
    r = wv.stream_ratios(sims, P0)[("tanh", 0.5, 1.0, 0.0)]
    assert r["p"].shape == (DEPTH + 1,) and r["amp_ratio"][0] == pytest.approx(1.0)
    # 16 seeds of width 64: 4 standard errors plus a 5% finite-width allowance (O(1/N))
    for k, s in (("p_ratio", "p_se"), ("amp_ratio", "amp_se")):
        assert abs(r[k][-1] - 1) < 4 * r[s][-1] + 0.05


@pytest.mark.slow
def test_predicted_metric_expressivity_matches_the_covariance_map():
    s0 = np.array([[[1.0, 0.3], [0.3, 0.8]], [[1.2, -0.2], [-0.2, 0.9]]])
    out = wv.predicted_metric_expressivity([0.5, 4.0], [0.0, 1.0], 6, s0)
    assert out.shape == (2, 2)
    for i, bv in enumerate((0.0, 1.0)):
        for j, sv in enumerate((0.5, 4.0)):
            dist = []
            for S in s0:
                traj = resnet.covariance_trajectory(
                    "tanh", resnet.schedule(sv, bv, 6), 0.0, S, 6, sigma_w2=1.0
                )
                dist.append(traj[-1, 0, 0] + traj[-1, 1, 1] - 2 * traj[-1, 0, 1])
            s0_mean = np.mean([S[0, 0] + S[1, 1] - 2 * S[0, 1] for S in s0])
            assert out[i, j] == pytest.approx(np.log10(np.mean(dist) / s0_mean), abs=1e-9)
    assert out[0, 1] > out[0, 0] > out[1, 0]  # grows with sigma_v^2, falls with decay


def test_predicted_metric_expressivity_validation():
    s0 = np.array([[[1.0, 0.3], [0.3, 0.8]]])
    with pytest.raises(ValueError):
        wv.predicted_metric_expressivity([0.0], [0.0], 4, s0)
    with pytest.raises(ValueError):
        wv.predicted_metric_expressivity([1.0], [0.0], 4, np.eye(2))
    with pytest.raises(ValueError):
        wv.predicted_metric_expressivity([1.0], [0.0], 4, np.ones((1, 2, 2)))  # s^0 = 0
    with pytest.raises(ValueError):
        wv.predicted_metric_expressivity([1.0], [0.0], 4, np.array([[[1.0, 2.0], [2.0, 1.0]]]))


def test_rank_correlations():
    x = np.arange(6.0).reshape(2, 3)
    acc = np.repeat(-x[..., None], 4, axis=-1)  # identical seeds: no resampling noise
    r = wv.rank_correlations(acc, {"x": x, "y": -x}, n_boot=20)
    assert r["x"][0] == pytest.approx(-1.0) and r["y"][0] == pytest.approx(1.0)
    assert r["x"][1] == 0.0 and r["x"][2].shape == (20,)
    noisy = acc + np.random.default_rng(0).normal(scale=3.0, size=acc.shape)
    rn_ = wv.rank_correlations(noisy, {"x": x}, n_boot=50)["x"]
    assert rn_[1] > 0.05  # seed noise as large as the signal spreads the resampled rho
    # ties share their mean rank: ranks (1.5, 1.5, 3.5, 3.5) against (1, 2, 3, 4)
    tied = np.repeat(np.array([[1.0, 1.0], [2.0, 2.0]])[..., None], 2, axis=-1)
    r_tied = wv.rank_correlations(tied, {"x": np.arange(4.0).reshape(2, 2)}, n_boot=5)
    assert r_tied["x"][0] == pytest.approx(4 / np.sqrt(20))
    sub = wv.rank_correlations(acc, {"x": x}, mask=x > 1.5, n_boot=5)["x"]
    assert sub[0] == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        wv.rank_correlations(acc, {"x": x}, mask=x > 3.5)  # two cells
    with pytest.raises(ValueError):
        wv.rank_correlations(acc[..., :1], {"x": x})
    with pytest.raises(ValueError):
        wv.rank_correlations(acc, {"x": np.ones(5)})
