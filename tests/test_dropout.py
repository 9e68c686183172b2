"""Tests for mftlib.dropout: the dropout maps, their fixed points and depth scales, against the
dense theory at rho = 1 and against simulated finite networks (with and without dropout).

Simulation checks use fixed keys (deterministic) with tolerances from the spread over seeds (5
standard errors) plus a stated finite-width allowance.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import mftlib as mft
from mftlib import dropout as dr
from mftlib import fitting
from mftlib import networks as nw
from mftlib.networks import dropout as dropout_nets

KEY = jax.random.PRNGKey(7)
SB = 0.05


def _f(x) -> float:
    return float(np.asarray(x))


@pytest.mark.parametrize("sw", [1.0, 1.5, 2.5, 4.0])
def test_rho_one_is_dense(sw):
    out = dr.quantities("tanh", sw, SB, 1.0)
    assert _f(out["q_star"]) == pytest.approx(_f(mft.q_star("tanh", sw, SB)), rel=1e-12)
    assert _f(out["c_star"]) == pytest.approx(_f(mft.c_star("tanh", sw, SB)), rel=1e-10)
    assert _f(out["chi1"]) == pytest.approx(_f(mft.chi1("tanh", sw, SB)), rel=1e-12)
    xi_q, xi_c = mft.depth_scales("tanh", sw, SB)
    assert _f(out["xi_q"]) == pytest.approx(_f(xi_q), rel=1e-10)
    assert _f(out["xi_c"]) == pytest.approx(_f(xi_c), rel=1e-8)


def test_length_map_is_dense_at_scaled_weight_variance():
    q = np.array([0.1, 1.0, 5.0])
    np.testing.assert_allclose(
        dr.length_map("tanh", 2.0, SB, 0.8, q), mft.length_map("tanh", 2.5, SB, q), rtol=1e-13
    )
    assert _f(dr.q_star("erf", 2.0, SB, 0.8)) == pytest.approx(
        _f(mft.q_star("erf", 2.5, SB)), rel=1e-12
    )


@pytest.mark.parametrize("rho", [0.9, 0.99])
@pytest.mark.parametrize("sw", [0.8, 1.76, 3.0])
def test_c_star_below_one_and_fixed(rho, sw):
    out = dr.quantities("tanh", sw, SB, rho)
    c = _f(out["c_star"])
    assert 0.0 <= c < 1.0
    assert _f(dr.correlation_map("tanh", sw, SB, rho, c)) == pytest.approx(c, abs=1e-12)
    # c = 1 is not a fixed point: its image is below 1.
    assert _f(dr.correlation_map("tanh", sw, SB, rho, 1.0)) < 1.0
    assert 0.0 < _f(out["chi_c"]) < 1.0


def test_relu_closed_form_c_star_below_one():
    assert _f(dr.c_star("relu", 1.5, 0.1, 0.9)) < 1.0
    assert math.isfinite(_f(dr.depth_scales("relu", 1.5, 0.1, 0.9)[1]))


@pytest.mark.slow
def test_xi_c_finite_and_capped():
    grid = np.linspace(1.0, 4.0, 31)
    crit = _f(mft.critical_sigma_w2("tanh", SB))
    grid = np.sort(np.append(grid, crit))  # the dense network's divergence
    for rho, cap in [(0.95, 10.0), (0.99, 25.0)]:
        xi_c = np.asarray(dr.sweep("tanh", grid, SB, rho)["xi_c"])
        assert np.all(np.isfinite(xi_c))
        assert xi_c.max() < cap
    assert not np.isfinite(_f(mft.depth_scales("tanh", crit, SB)[1])) or (
        _f(mft.depth_scales("tanh", crit, SB)[1]) > 1e3
    )
    # Less dropout, longer depth scale at criticality.
    assert _f(dr.depth_scales("tanh", crit, SB, 0.99)[1]) > _f(
        dr.depth_scales("tanh", crit, SB, 0.9)[1]
    )


def test_sweep_matches_scalar():
    grid = np.array([1.2, 2.2])
    out = dr.sweep("tanh", grid, SB, 0.9)
    for i, sw in enumerate(grid):
        assert _f(out["xi_c"][i]) == pytest.approx(_f(dr.depth_scales("tanh", sw, SB, 0.9)[1]))


@pytest.mark.slow
def test_dropout_simulation_matches_theory():
    """q^l and c^l of width-1000 dropout networks, started at q*, against (q*, c*)."""
    sw, rho, width, seeds = 2.0, 0.9, 1000, 4
    th = dr.quantities("tanh", sw, SB, rho)
    qs, cs = _f(th["q_star"]), _f(th["c_star"])
    x = nw.make_inputs(KEY, 2, 32, (qs - SB) / sw, 0.3)
    sim = dropout_nets.preactivation_moments(KEY, x, "tanh", sw, SB, rho, width, 24, seeds)
    q_late = np.asarray(sim["q"])[:, 14:, :].mean(axis=(1, 2))
    c_late = np.asarray(sim["c"])[:, 14:, 0, 1].mean(axis=1)
    for values, target in ((q_late, qs), (c_late, cs)):
        se = values.std(ddof=1) / math.sqrt(seeds)
        # 5 SE plus a 1% finite-width allowance (O(1/N) corrections).
        assert abs(values.mean() - target) < 5 * se + 0.01 * abs(target) + 0.005


@pytest.mark.slow
def test_rho_one_simulation_is_dense_network():
    x = nw.make_inputs(KEY, 2, 16, 1.0)
    a = dropout_nets.preactivation_moments(KEY, x, "tanh", 1.5, SB, 1.0, 64, 3, 2)["kernel"]
    b = nw.preactivation_moments(KEY, x, "tanh", 1.5, SB, 64, 3, 2)["kernel"]
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sw", "rho", "rel"),
    [(1.0, 1.0, 0.08), (1.3, 0.95, 0.15)],
)
def test_xi_c_from_correlation_decay(sw, rho, rel):
    """|c^l - c*| in width-1000 networks decays as exp(-l / xi_c): fitted rate near 1/xi_c."""
    out = dropout_nets.correlation_decay(
        KEY, "tanh", sw, SB, rho, c0=0.0, width=1000, depth=30, n_seeds=4
    )
    xi = out["xi_fit"]
    se = xi.std(ddof=1) / math.sqrt(len(xi))
    assert abs(xi.mean() - out["xi_c"]) < 4 * se + rel * out["xi_c"]


@pytest.mark.slow
def test_gradient_norms_grow_as_chi1():
    """||delta^l||^2 of random dense networks changes by chi_1 per layer (Schoenholz et al.)."""
    depth, width, seeds = 20, 500, 4
    for sw in (1.2, 3.0):
        qs, chi = _f(mft.q_star("tanh", sw, SB)), _f(mft.chi1("tanh", sw, SB))
        x = nw.make_inputs(KEY, 2, 32, (qs - SB) / sw)
        norms = np.asarray(nw.gradient_norms(KEY, x, "tanh", sw, SB, width, depth, seeds))
        # ||delta^l||^2 = chi_1^(L - l) ||delta^L||^2: slope -log(chi_1) in l (mean over seeds).
        slope, se = fitting.exponential_rate(norms.mean(axis=2), seeds=True)[:2]
        assert abs(slope + math.log(chi)) < 5 * se + 0.02


@pytest.mark.parametrize("rho", [0.0, -0.1, 1.5, float("nan")])
def test_bad_rho(rho):
    with pytest.raises(ValueError, match="rho"):
        dr.quantities("tanh", 1.5, SB, rho)


def test_bad_inputs():
    with pytest.raises(ValueError, match="sigma_w2"):
        dr.c_star("tanh", -1.0, SB, 0.9)
    with pytest.raises(ValueError, match="c"):
        dr.correlation_map("tanh", 1.5, SB, 0.9, 1.2)
    with pytest.raises(ValueError, match="tanhh|known|activation"):
        dr.q_star("tanhh", 1.5, SB, 0.9)
    with pytest.raises(ValueError, match="sweep"):
        dr.quantities("tanh", [1.0, 2.0], SB, 0.9)
    with pytest.raises(ValueError, match="n_inputs"):
        dropout_nets.correlation_decay(KEY, "tanh", 1.5, SB, 0.9, n_inputs=1)
    x = nw.make_inputs(KEY, 2, 8, 1.0)
    with pytest.raises(ValueError, match="rho"):
        dropout_nets.preactivation_moments(KEY, x, "tanh", 1.5, SB, 0.0, 16, 2)


# --- depth scales measured in simulated networks: length_decay, depth_scale_sweep ---------------


@pytest.mark.slow
def test_length_decay_measures_xi_q():
    """q^l - q* of width-1000 networks started at 2 q* decays as the mean-field trajectory: the
    fit to the seed mean agrees with the same fit applied to the mean-field trajectory within 4
    jackknife errors plus 5% (O(1/N) corrections and the short fitted window)."""
    out = dropout_nets.length_decay(
        KEY, "tanh", 2.0, SB, 1.0, q0_ratio=2.0, width=1000, depth=8, n_seeds=12
    )
    assert out["fit"].sum() >= 3 and out["deviation"].shape == (12, 9)
    assert out["xi_theory_fit"] == pytest.approx(out["xi_q"], rel=0.2)  # the estimator's bias
    se = out["xi_mean_stderr"]
    assert 0 < se < 0.15 * out["xi_theory_fit"]
    assert abs(out["xi_mean"] - out["xi_theory_fit"]) < 4 * se + 0.05 * out["xi_theory_fit"]
    # With dropout the length map is the dense one at sigma_w2 / rho: a faster decay at rho < 1.
    assert _f(dr.depth_scales("tanh", 2.0, SB, 0.9)[0]) < out["xi_q"]


@pytest.mark.slow
def test_sweep_with_floor_measures_chaotic_xi_c():
    """Chaotic phase (c* < 1): the fit stops where the mean-field deviation meets the floor;
    width-800 networks reproduce the mean-field decay within 4 jackknife errors plus 5%."""
    out = dropout_nets.depth_scale_sweep(
        KEY,
        "tanh",
        [3.0, 4.0],
        SB,
        kind="c",
        c0=-0.5,
        width=800,
        depth=[28, 21],
        n_seeds=6,
        n_inputs=3,
        floor=0.02,
    )
    assert out["xi_fit"].shape == (6, 2) and len(out["runs"]) == 2
    assert [r["layers"].size for r in out["runs"]] == [29, 22]
    for i, r in enumerate(out["runs"]):
        assert np.all(np.abs(r["theory"][r["fit"]]) >= 0.02)
        se = out["xi_mean_stderr"][i]
        assert abs(out["xi_mean"][i] - out["theory_fit"][i]) < 4 * se + 0.05 * out["theory"][i]
    np.testing.assert_allclose(
        out["theory"], [_f(mft.depth_scales("tanh", s, SB)[1]) for s in (3.0, 4.0)]
    )


def test_input_cosine_sets_the_first_layer_correlation():
    qs = _f(dr.q_star("tanh", 2.0, SB, 0.9))
    c0 = dropout_nets.input_cosine("tanh", 2.0, SB, [0.2, 0.5], 0.9)
    # First-layer correlation of inputs at the fixed length: (sigma_w2 q_in c0 + sigma_b2) / q*.
    np.testing.assert_allclose((c0 * (qs - SB) + SB) / qs, [0.2, 0.5], rtol=1e-12)
    with pytest.raises(ValueError, match="c_first"):
        dropout_nets.input_cosine("tanh", 2.0, SB, -1.0, 0.9)


def test_decay_and_sweep_validation():
    with pytest.raises(ValueError, match="q0_ratio"):
        dropout_nets.length_decay(KEY, "tanh", 1.5, SB, q0_ratio=1.0)
    with pytest.raises(ValueError, match="q0_ratio"):
        dropout_nets.length_decay(KEY, "tanh", 1.0, SB, q0_ratio=0.1)  # below sigma_b2
    with pytest.raises(ValueError, match="floor"):
        dropout_nets.length_decay(KEY, "tanh", 1.5, SB, floor=-1.0)
    with pytest.raises(ValueError, match="floor"):
        dropout_nets.correlation_decay(KEY, "tanh", 3.0, SB, floor=float("nan"))
    with pytest.raises(ValueError, match="kind"):
        dropout_nets.depth_scale_sweep(KEY, "tanh", [1.5], SB, kind="x")
    with pytest.raises(ValueError, match="depth"):
        dropout_nets.depth_scale_sweep(KEY, "tanh", [1.5, 2.0], SB, depth=[10, 20, 30])
    with pytest.raises(ValueError, match="sigma_w2"):
        dropout_nets.depth_scale_sweep(KEY, "tanh", [-1.5], SB)
