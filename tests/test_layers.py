"""Layer specs: construction checks, pytree behaviour, the maps against the architecture modules,
finite networks against their conventions, and kernel invariants (hypothesis)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mftlib as mft
from mftlib import conv, dropout, resnet
from mftlib import layers as L
from mftlib.networks import conv as conv_nets


def _cov(n, seed=0, scale=1.0):
    a = np.random.default_rng(seed).normal(size=(n, n + 2))
    return scale * a @ a.T / (n + 2)


# --- construction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "exc", "word"),
    [
        (lambda: L.Dense(-1.0), ValueError, "sigma_w2"),
        (lambda: L.Dense(1.0, float("nan")), ValueError, "sigma_b2"),
        (lambda: L.Dense("a"), TypeError, "sigma_w2"),
        (lambda: L.Phi("nope"), ValueError, "tanh"),
        (lambda: L.Dropout(0.0), ValueError, "rho"),
        (lambda: L.Dropout(1.5), ValueError, "rho"),
        (lambda: L.Conv(1.0, 0.0, filter_size=2), ValueError, "odd"),
        (lambda: L.Conv(1.0, 0.0, dims=3), ValueError, "dims"),
        (lambda: L.Conv(1.0, 0.0, v=[0.5, 0.6, 0.1]), ValueError, "sum to 1"),
        (lambda: L.serial(), ValueError, "at least one"),
        (lambda: L.serial(L.Phi("tanh"), 3), TypeError, "argument 1"),
        (lambda: L.repeat(L.Phi("tanh"), -1), ValueError, "depth"),
        (lambda: L.repeat(L.Phi("tanh"), 2.0), TypeError, "depth"),
        (lambda: L.Residual(3), TypeError, "branch"),
    ],
)
def test_bad_specs_raise_naming_the_parameter(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


def test_shape_changing_blocks_are_refused_at_init():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="Residual"):
        L.Residual(L.Dense(1.0)).init(key, (5,), 8)
    with pytest.raises(ValueError, match="repeat"):
        L.repeat(L.Dense(1.0), 3).init(key, (5,), 8)
    with pytest.raises(ValueError, match="key="):
        L.Dropout(0.5).apply((), jnp.ones((2, 3)))


# --- pytrees: jit and vmap over hyperparameters --------------------------------------------------


def test_specs_are_pytrees_with_variances_as_leaves():
    # relu's closed form: the test is about the pytree, not about quadrature.
    block = L.serial(L.Phi("relu"), L.Dropout(0.9), L.Residual(L.Dense(1.5, 0.05)))
    leaves, tree = jax.tree_util.tree_flatten(block)
    assert [float(x) for x in leaves] == [0.9, 1.5, 0.05]
    again = jax.tree_util.tree_unflatten(tree, leaves)
    S = _cov(3)
    np.testing.assert_array_equal(again.kernel(S, None, ())[0], block.kernel(S, None, ())[0])


def test_vmap_over_a_variance_equals_a_loop():
    S = jnp.asarray(_cov(3))
    grid = jnp.array([0.5, 1.5, 3.0])

    def k(sw):
        return L.serial(L.Phi("erf"), L.Dense(sw, 0.1)).kernel(S, None, ())[0]

    batched = jax.vmap(k)(grid)
    for i, sw in enumerate(grid):
        np.testing.assert_allclose(batched[i], k(float(sw)), rtol=1e-14)


# --- maps against the architecture modules -----------------------------------------------------


@pytest.mark.parametrize("phi", ["tanh", "relu", "erf"])
def test_dense_block_map_is_the_dense_covariance_map(phi):
    S = _cov(4)
    K, _, _ = L.serial(L.Phi(phi), L.Dense(1.7, 0.2)).kernel(jnp.asarray(S), None, ())
    np.testing.assert_allclose(K, mft.covariance_map(phi, 1.7, 0.2, S), rtol=1e-13, atol=1e-15)


def test_dropout_block_length_map_is_the_dropout_one():
    block = L.serial(L.Phi("tanh"), L.Dropout(0.8), L.Dense(1.5, 0.05))
    for q in (0.1, 1.0, 4.0):
        K = block.kernel(jnp.array([[q]]), None, ())[0][0, 0]
        assert K == pytest.approx(float(dropout.length_map("tanh", 1.5, 0.05, 0.8, q)), rel=1e-13)


@pytest.mark.parametrize("reduced", [True, False])
def test_residual_block_map_is_the_resnet_one(reduced):
    S = _cov(3, scale=2.0)
    if reduced:
        block = L.Residual(L.serial(L.Phi("tanh"), L.Dense(0.7, 0.1)))
        ref = resnet.covariance_map("tanh", 0.7, 0.1, S)
    else:
        block = L.Residual(L.serial(L.Dense(1.3, 0.2), L.Phi("tanh"), L.Dense(0.7, 0.1)))
        ref = resnet.covariance_map("tanh", 0.7, 0.1, S, sigma_w2=1.3, sigma_b2=0.2)
    np.testing.assert_allclose(block.kernel(jnp.asarray(S), None, ())[0], ref, rtol=1e-13)


@pytest.mark.parametrize("dims", [1, 2])
def test_conv_map_is_the_cnn_covariance_map(dims):
    shape = (7,) if dims == 1 else (4, 5)
    P = int(np.prod(shape))
    S = _cov(P, seed=3)
    layer = L.serial(L.Phi("erf"), L.Conv(1.6, 0.1, filter_size=3, dims=dims))
    K = layer.kernel(jnp.asarray(S), None, shape)[0]
    # conv's own map: the dense covariance map, then the average along shifted diagonals.
    v = conv.uniform_filter(3, dims)
    dense_part = np.asarray(mft.covariance_map("erf", 1.6, 0.1, S))
    np.testing.assert_allclose(
        K, conv.diagonal_convolution(dense_part, v, shape), rtol=1e-13, atol=1e-15
    )


def test_conv_on_a_fully_connected_state_is_dense():
    S = jnp.asarray(_cov(3))
    a = L.Conv(1.6, 0.1, filter_size=5).kernel(S, S, ())
    b = L.Dense(1.6, 0.1).kernel(S, S, ())
    np.testing.assert_allclose(a[0], b[0], rtol=1e-15)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-15)


# --- finite networks ----------------------------------------------------------------------------


def test_dense_apply_is_the_scaled_product():
    key = jax.random.PRNGKey(3)
    layer = L.Dense(2.0, 0.5)
    shape, (w, b) = layer.init(key, (6,), 11)
    assert shape == (11,) and w.shape == (6, 11) and b.shape == (11,)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 6)))
    np.testing.assert_allclose(
        layer.apply((w, b), x), math.sqrt(2.0) * x @ w / math.sqrt(6) + math.sqrt(0.5) * b
    )


def test_conv_apply_is_the_finite_cnn_convolution():
    """The spec's convolution equals mftlib.networks.conv.circular_conv with the weights scaled
    by sigma_w sqrt(v_beta / C_in): the two conventions are the same network."""
    key = jax.random.PRNGKey(4)
    layer = L.Conv(1.7, 0.0, filter_size=3, dims=2)
    shape, (w, b) = layer.init(key, (5, 6, 4), 8)
    assert shape == (5, 6, 8)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 6, 4)))
    W = (math.sqrt(1.7 / 9 / 4) * w).reshape(3, 3, 4, 8)
    np.testing.assert_allclose(layer.apply((w, b), x), conv_nets.circular_conv(x, W), atol=1e-12)


def test_dropout_masks_keep_the_expected_fraction():
    x = jnp.ones((50, 400))
    y = L.Dropout(0.7).apply((), x, jax.random.PRNGKey(0))
    kept = np.mean(np.asarray(y) > 0)
    assert abs(kept - 0.7) < 5 * math.sqrt(0.7 * 0.3 / x.size)
    assert np.allclose(np.asarray(y)[np.asarray(y) > 0], 1 / 0.7)


def test_repeat_draws_independent_layers_and_scans():
    block = L.serial(L.Phi("tanh"), L.Dense(1.5, 0.05))
    net = L.serial(L.Dense(1.5, 0.05), L.repeat(block, 3))
    shape, params = net.init(jax.random.PRNGKey(0), (5,), 16)
    assert shape == (16,)
    w = params[1][1][0]
    assert w.shape == (3, 16, 16) and not np.allclose(w[0], w[1])
    x = jnp.ones((2, 5))
    h = net.layers[0].apply(params[0], x)
    for i in range(3):
        h = block.apply(jax.tree_util.tree_map(lambda a, i=i: a[i], params[1]), h)
    np.testing.assert_allclose(net.apply(params, x), h, rtol=1e-13)


# --- invariants (hypothesis) ---------------------------------------------------------------------

_ELEMENTS = st.sampled_from(["tanh", "relu", "erf", "dropout", "residual"])


def _build(kinds, sws):
    layers = [L.Dense(sws[0], 0.1)]
    for kind, sw in zip(kinds, sws[1:], strict=False):
        if kind == "dropout":
            layers.append(L.Dropout(0.8))
        elif kind == "residual":
            layers.append(L.Residual(L.serial(L.Phi("tanh"), L.Dense(sw, 0.05))))
        else:
            layers += [L.Phi(kind), L.Dense(sw, 0.1)]
    return L.serial(*layers)


@pytest.mark.slow  # compiles the kernel maps of 15 random architectures (about 8 s)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(_ELEMENTS, min_size=1, max_size=3),
    sws=st.lists(st.floats(0.3, 3.0), min_size=4, max_size=4),
    seed=st.integers(0, 1000),
)
def test_kernels_are_symmetric_psd_and_theta_dominates_k(kinds, sws, seed):
    net = _build(kinds, sws)
    x = np.random.default_rng(seed).normal(size=(4, 3))
    K, T = mft.kernels(net, x)
    for M in (K, T):
        M = np.asarray(M)
        assert np.allclose(M, M.T, rtol=0, atol=1e-12 * np.abs(M).max())
        assert np.linalg.eigvalsh(M).min() >= -1e-10 * np.abs(M).max()
    # The network ends on a Dense layer, so Theta - K = sigma_w^2 Theta_before >= 0.
    assert np.linalg.eigvalsh(np.asarray(T - K)).min() >= -1e-10 * np.abs(np.asarray(T)).max()
