"""mft.analyse, mft.kernels and mft.simulate against the public contract, the architecture
modules, and finite networks drawn from the same specs.

Simulation tolerances follow tests/test_simulation.py: Z standard errors of the seed mean plus a
finite-width bias allowance BIAS * scale / width (the empirical moments of a width-N layer are
biased at order 1/N; their per-network spread, 1/sqrt(N), is what the seed spread measures).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import mftlib as mft
from mftlib import dropout
from mftlib import layers as L
from mftlib.activations import alpha_relu

Z, BIAS = 5.0, 3.0


def dense_block(phi, sw, sb):
    return L.serial(L.Phi(phi), L.Dense(sigma_w2=sw, sigma_b2=sb))


@pytest.mark.slow
def test_the_issue_snippet_runs_as_written():
    x1 = np.random.default_rng(0).normal(size=(3, 10))
    x2 = np.random.default_rng(1).normal(size=(2, 10))
    key = jax.random.PRNGKey(0)
    x = x1
    block = L.serial(L.Phi("tanh"), L.Dense(sigma_w2=1.5, sigma_b2=0.05))
    mf = mft.analyse(block)
    net = L.serial(L.Dense(1.5, 0.05), L.repeat(block, 20))
    K, Theta = mft.kernels(net, x1, x2)
    sim = mft.simulate(block, key, x, width=1000, depth=20, n_seeds=4)
    assert (mf.q_star, mf.c_star, mf.chi1, mf.xi_q, mf.xi_c) is not None
    assert K.shape == Theta.shape == (3, 2)
    assert sim.kernel.shape == (4, 21, 3, 3) and sim.grad.shape == (4, 21, 3)


# tanh goes through 2-D quadrature (seconds of compilation each): in the slow suite.
CASES = [
    pytest.param("tanh", 1.5, 0.05, marks=pytest.mark.slow),  # ordered
    pytest.param("tanh", 2.5, 0.1, marks=pytest.mark.slow),  # chaotic
    pytest.param("tanh", 0.8, 0.0, marks=pytest.mark.slow),  # q* = 0
    ("erf", 3.0, 0.2),
    ("erf", 0.9, 0.3),
    ("relu", 1.8, 0.1),
    ("relu", 2.0, 0.0),  # every q is a fixed point
    ("relu", 2.5, 0.1),  # no fixed point
]


@pytest.mark.parametrize(("phi", "sw", "sb"), CASES)
def test_analyse_of_the_dense_block_is_the_public_contract(phi, sw, sb):
    mf = mft.analyse(dense_block(phi, sw, sb))
    xi_q, xi_c = mft.depth_scales(phi, sw, sb)
    for got, want in [
        (mf.q_star, mft.q_star(phi, sw, sb)),
        (mf.c_star, mft.c_star(phi, sw, sb)),
        (mf.chi1, mft.chi1(phi, sw, sb)),
        (mf.xi_q, xi_q),
        (mf.xi_c, xi_c),
    ]:
        np.testing.assert_allclose(float(got), float(want), rtol=1e-10, atol=1e-12)
    assert bool(mf.has_fixed_point) == np.isfinite(float(mft.q_star(phi, sw, sb)))


def test_analyse_grid_is_the_phase_diagram():
    sw = np.array([0.8, 1.5, 2.5, 4.0])
    sb = np.array([0.0, 0.05, 0.3])
    grid = mft.analyse_grid(lambda a, b: dense_block("erf", a, b), sw, sb)
    ref = mft.phase_diagram("erf", sw, sb)
    for k in ("q_star", "c_star", "chi1", "xi_q", "xi_c"):
        np.testing.assert_allclose(grid[k], ref[k], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_post_activation_block_has_the_same_multipliers():
    """serial(Dense, Phi) is conjugate to serial(Phi, Dense): same chi's, and its q* is the
    post-activation length E[phi(sqrt(q*_pre) z)^2]."""
    pre = mft.analyse(dense_block("tanh", 2.5, 0.1))
    post = mft.analyse(L.serial(L.Dense(2.5, 0.1), L.Phi("tanh")))
    q_post = float(mft.activation("tanh").mean_square(pre.q_star))
    np.testing.assert_allclose(float(post.q_star), q_post, rtol=1e-10)
    for k in ("chi1", "chi_q", "chi_c"):
        np.testing.assert_allclose(float(getattr(post, k)), float(getattr(pre, k)), rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize(("sw", "rho"), [(1.5, 0.9), (3.0, 0.7)])
def test_analyse_of_a_dropout_block_is_the_dropout_theory(sw, rho):
    mf = mft.analyse(L.serial(L.Phi("tanh"), L.Dropout(rho), L.Dense(sw, 0.05)))
    ref = dropout.quantities("tanh", sw, 0.05, rho)
    for k in ("q_star", "c_star", "chi1", "chi_c", "xi_q", "xi_c"):
        np.testing.assert_allclose(float(getattr(mf, k)), float(ref[k]), rtol=1e-9)
    assert float(mf.c_star) < 1.0  # dropout destroys the c = 1 fixed point


@pytest.mark.parametrize(
    ("phi", "gamma"), [("tanh", 1.0), (alpha_relu(0.7), 1 / (1 - 0.7)), ("relu", np.inf)]
)
def test_residual_blocks_have_no_fixed_point_and_report_growth(phi, gamma):
    mf = mft.analyse(L.Residual(L.serial(L.Phi(phi), L.Dense(1.0, 0.0))))
    assert not bool(mf.has_fixed_point) and np.isinf(float(mf.q_star))
    assert np.isnan(float(mf.c_star))
    if np.isinf(gamma):
        assert np.isinf(float(mf.growth_exponent))
    else:  # the asymptotic laws of Yang & Schoenholz (2017), reached by l ~ 10^4 to 2 %
        assert float(mf.growth_exponent) == pytest.approx(gamma, rel=0.02)


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="layer spec"):
        mft.analyse("tanh")
    with pytest.raises(ValueError, match="x1"):
        mft.kernels(dense_block("tanh", 1.0, 0.0), np.ones(3))
    with pytest.raises(ValueError, match="same shape"):
        mft.kernels(dense_block("tanh", 1.0, 0.0), np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(TypeError, match="key"):
        mft.simulate(dense_block("tanh", 1.0, 0.0), 3, np.ones((2, 3)), 10, 2)
    with pytest.raises(ValueError, match="width"):
        mft.simulate(dense_block("tanh", 1.0, 0.0), jax.random.PRNGKey(0), np.ones((2, 3)), 0, 2)
    with pytest.raises(ValueError, match="stem"):
        mft.simulate(L.Phi("tanh"), jax.random.PRNGKey(0), np.ones((2, 3)), 10, 2)


# --- kernels ------------------------------------------------------------------------------------


@pytest.mark.parametrize("phi", ["relu", "erf", pytest.param("tanh", marks=pytest.mark.slow)])
def test_kernels_of_the_composed_dense_net_are_nngp_and_ntk(phi):
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=(5, 8)), rng.normal(size=(3, 8))
    depth = 6
    net = L.serial(L.Dense(1.8, 0.1), L.repeat(dense_block(phi, 1.8, 0.1), depth))
    for a, b in [(x1, None), (x1, x2)]:
        K, T = mft.kernels(net, a, b)
        scale = float(np.max(np.abs(K)))
        np.testing.assert_allclose(
            K, mft.nngp_kernel(a, b, phi, 1.8, 0.1, depth), rtol=1e-10, atol=1e-10 * scale
        )
        np.testing.assert_allclose(
            T, mft.ntk_kernel(a, b, phi, 1.8, 0.1, depth), rtol=1e-10, atol=1e-10 * scale
        )


def test_conv_kernels_and_pooling():
    """A CNN's kernel over positions is the CNN covariance map iterated; pooling averages it."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 3))
    block = L.serial(L.Phi("erf"), L.Conv(1.6, 0.1, filter_size=3))
    net = L.serial(L.Conv(1.6, 0.1, filter_size=3), L.repeat(block, 4))
    K, T = mft.kernels(net, x)
    assert K.shape == (2, 6, 2, 6)
    S0 = np.einsum("apc,bqc->apbq", x, x).reshape(12, 12) / 3
    ref = L.Conv(1.6, 0.1, filter_size=3).kernel(S0, None, (6,))[0]
    for _ in range(4):
        ref = block.kernel(ref, None, (6,))[0]
    np.testing.assert_allclose(np.asarray(K).reshape(12, 12), ref, rtol=1e-12)
    Kp, Tp = mft.kernels(L.serial(net, L.GlobalAvgPool()), x)
    np.testing.assert_allclose(Kp, np.asarray(K).mean(axis=(1, 3)), rtol=1e-12)
    np.testing.assert_allclose(Tp, np.asarray(T).mean(axis=(1, 3)), rtol=1e-12)


# --- simulation ---------------------------------------------------------------------------------


def _agree(samples, theory, width, scale):
    samples = np.asarray(samples)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    return np.abs(samples.mean(0) - theory) <= Z * se + BIAS * scale / width


def _check_simulation(block, x, width, depth, n_seeds, stem=None, key=0):
    sim = mft.simulate(block, jax.random.PRNGKey(key), x, width, depth, n_seeds, stem=stem)
    # The middle and the last layer: few enough comparisons that Z = 5 seed errors (a t
    # statistic with n_seeds - 1 degrees of freedom) fails a correct theory rarely.
    layers = [depth // 2, depth]
    K, Kth = np.asarray(sim.kernel)[:, layers], np.asarray(sim.theory_kernel)[layers]
    n = Kth.shape[-1]
    diag = np.arange(n)
    scale = float(np.max(np.abs(Kth)))
    assert np.all(_agree(K[:, :, diag, diag], Kth[:, diag, diag], width, scale))
    off = np.triu_indices(n, 1)
    assert np.all(_agree(K[:, :, off[0], off[1]], Kth[:, off[0], off[1]], width, scale))
    # Per-seed gradient growth over the whole depth against the product of the block factors.
    g = np.asarray(sim.grad)
    rate = np.log(g[:, 0] / g[:, -1]) / depth
    rate_th = np.log(np.asarray(sim.theory_grad)[0]) / depth
    assert np.all(_agree(rate, rate_th, width, 1.0))
    return sim


@pytest.mark.slow
def test_simulated_dense_networks_follow_the_map():
    x = np.asarray(mft.networks.make_inputs(jax.random.PRNGKey(1), 2, 50, q0=1.0, c0=0.6))
    _check_simulation(dense_block("tanh", 2.5, 0.1), x, width=400, depth=6, n_seeds=8)


SPECS = {
    "relu": (dense_block("relu", 1.8, 0.1), None),
    "post-activation erf": (L.serial(L.Dense(3.0, 0.2), L.Phi("erf")), None),
    "dropout": (L.serial(L.Phi("tanh"), L.Dropout(0.8), L.Dense(1.5, 0.05)), None),
    "reduced resnet": (L.Residual(L.serial(L.Phi("tanh"), L.Dense(0.5, 0.05))), None),
    "full resnet": (
        L.Residual(L.serial(L.Dense(1.2, 0.1), L.Phi("relu"), L.Dense(0.4, 0.0))),
        None,
    ),
    "dropout in a residual branch": (
        L.Residual(L.serial(L.Phi("tanh"), L.Dropout(0.7), L.Dense(0.6, 0.05))),
        None,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPECS))
def test_theory_against_simulation_matrix(name):
    block, stem = SPECS[name]
    x = np.asarray(mft.networks.make_inputs(jax.random.PRNGKey(2), 3, 60, q0=1.0))
    _check_simulation(block, x, width=600, depth=10, n_seeds=8, stem=stem)


@pytest.mark.slow
def test_theory_against_simulation_conv_then_residual():
    x = np.random.default_rng(5).normal(size=(2, 8, 3))
    stem = L.Conv(1.5, 0.1, filter_size=3)
    block = L.Residual(L.serial(L.Phi("tanh"), L.Conv(0.5, 0.0, filter_size=3)))
    sim = mft.simulate(block, jax.random.PRNGKey(3), x, 200, 6, 8, stem=stem)
    assert sim.kernel.shape == (8, 7, 16, 16)
    K, Kth = np.asarray(sim.kernel)[:, [3, 6]], np.asarray(sim.theory_kernel)[[3, 6]]
    d = np.arange(16)
    assert np.all(_agree(K[:, :, d, d], Kth[:, d, d], 200, float(Kth.max())))
    g = np.asarray(sim.grad)
    rate = np.log(g[:, 0] / g[:, -1]) / 6
    assert np.all(_agree(rate, np.log(np.asarray(sim.theory_grad)[0]) / 6, 200, 1.0))


@pytest.mark.slow
def test_empirical_ntk_of_wide_networks_approaches_theta():
    """The parameter-gradient kernel of finite networks from the spec converges to Theta."""
    block = dense_block("erf", 2.0, 0.1)
    net = L.serial(L.Dense(2.0, 0.1), L.repeat(block, 3))
    x = np.random.default_rng(6).normal(size=(3, 5))
    _, Theta = mft.kernels(net, x)
    errs = []
    for width in (64, 1024):
        vals = []
        for s in range(4):
            _, params = net.init(jax.random.PRNGKey(s), (5,), width)

            def f(p):
                return net.apply(p, x)[:, 0]  # one output unit: its NTK is Theta

            J = jax.jacobian(f)(params)
            leaves = jax.tree_util.tree_leaves(J)
            flat = np.concatenate([np.asarray(j).reshape(3, -1) for j in leaves], axis=1)
            vals.append(flat @ flat.T)
        errs.append(np.mean([np.abs(v - Theta).max() / np.abs(Theta).max() for v in vals]))
    assert errs[1] < errs[0] / 2.5  # 1/sqrt(N): a factor 4 from 64 to 1024
