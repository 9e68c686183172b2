"""Tests for mftlib.conv (CNN covariance map, Fourier-mode depth scales) and mftlib.networks.conv
(finite circular-padding CNNs, delta-orthogonal initialisation)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mftlib import conv, dense, dynamics
from mftlib.networks import conv as cn

PHI, SW, SB = "tanh", 2.5, 0.05


def _corr(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    R = X @ X.T
    d = np.sqrt(np.diag(R))
    return R / np.outer(d, d)


@pytest.mark.slow
def test_diagonal_reduces_to_dense_length_map():
    n = 8
    q = np.linspace(0.5, 2.0, n)
    S = np.diag(q)
    out = conv.conv_covariance_map(PHI, SW, SB, S, conv.uniform_filter(3), n)
    L = np.array([float(dense.length_map(PHI, SW, SB, qq)) for qq in q])
    expected = (np.roll(L, -1) + L + np.roll(L, 1)) / 3  # filter averages neighbours' lengths
    np.testing.assert_allclose(np.diag(out), expected, rtol=1e-12)
    # equal lengths: exactly the dense map
    out = conv.conv_covariance_map(PHI, SW, SB, np.eye(n), conv.uniform_filter(3), n)
    np.testing.assert_allclose(np.diag(out), float(dense.length_map(PHI, SW, SB, 1.0)), rtol=1e-12)


@pytest.mark.slow
def test_fixed_point_is_dense_fixed_point():
    n = 6
    qs, cs = float(dense.q_star(PHI, SW, SB)), float(dense.c_star(PHI, SW, SB))
    S = qs * ((1 - cs) * np.eye(n) + cs)
    out = conv.conv_covariance_map(PHI, SW, SB, S, conv.uniform_filter(3), n)
    np.testing.assert_allclose(out, S, atol=1e-9)


# Each new (n, k) compiles afresh, so the examples are few and the sizes a handful.
@settings(max_examples=8, deadline=None)
@given(st.sampled_from([4, 7, 12]), st.sampled_from([1, 3, 5]), st.integers(0, 100))
def test_diagonal_convolution_preserves_offsets_and_trace(n, k, seed):
    k = min(k, n - (1 - n % 2))
    k = k if k % 2 else k - 1
    rng = np.random.default_rng(seed)
    K = rng.normal(size=(n, n))
    A = np.asarray(conv.diagonal_convolution(K, conv.uniform_filter(k), n))
    for d in range(n):  # sum along each (circular) diagonal is preserved
        idx = np.arange(n)
        assert A[idx, (idx + d) % n].sum() == pytest.approx(K[idx, (idx + d) % n].sum())


def test_diagonal_modes_are_eigenvectors():
    n = 12
    v = conv.uniform_filter(3)
    rng = np.random.default_rng(1)
    K = rng.normal(size=(n, n))
    before = np.asarray(conv.diagonal_modes(K, n))
    after = np.asarray(conv.diagonal_modes(conv.diagonal_convolution(K, v, n), n))
    vhat = conv.fourier_multipliers(v, n)
    np.testing.assert_allclose(after, before * vhat[None, :], atol=1e-12)
    np.testing.assert_allclose(np.imag(vhat), 0, atol=1e-14)
    # 2-D: the same on an 4x4 grid with a 3x3 filter
    K2 = rng.normal(size=(16, 16))
    v2 = conv.uniform_filter(3, 2)
    b2 = np.asarray(conv.diagonal_modes(K2, (4, 4)))
    a2 = np.asarray(conv.diagonal_modes(conv.diagonal_convolution(K2, v2, (4, 4)), (4, 4)))
    np.testing.assert_allclose(a2, b2 * conv.fourier_multipliers(v2, (4, 4)), atol=1e-12)
    # an asymmetric footprint: complex multipliers, same convention (no conjugate)
    va = np.array([0.1, 0.3, 0.6])
    after = np.asarray(conv.diagonal_modes(conv.diagonal_convolution(K, va, n), n))
    vhat = conv.fourier_multipliers(va, n)
    assert np.abs(np.imag(vhat)).max() > 0.1
    np.testing.assert_allclose(after, before * vhat[None, :], atol=1e-12)


def test_circular_conv_matches_lax():
    for dims in (1, 2):
        x = jax.random.normal(jax.random.PRNGKey(0), (2,) + (6,) * dims + (3,))
        W = jax.random.normal(jax.random.PRNGKey(1), (3,) * dims + (3, 4))
        pads = [(0, 0)] + [(1, 1)] * dims + [(0, 0)]
        spec = ("NWC", "WIO", "NWC") if dims == 1 else ("NHWC", "HWIO", "NHWC")
        ref = jax.lax.conv_general_dilated(
            jnp.pad(x, pads, mode="wrap"), W, (1,) * dims, "VALID", dimension_numbers=spec
        )
        np.testing.assert_allclose(cn.circular_conv(x, W), ref, atol=1e-12)


def test_delta_orthogonal_is_orthogonal_centre_tap():
    first, (Ws, _) = cn.init_conv_stacked(
        jax.random.PRNGKey(0), 1, 8, 3, 3, 1.5, 0.1, dims=2, init="delta_orthogonal"
    )
    c = Ws[:, 1, 1]
    np.testing.assert_allclose(
        jnp.einsum("lij,lik->ljk", c, c), 1.5 * np.eye(8)[None] + 0 * c, atol=1e-12
    )
    assert float(jnp.abs(Ws.at[:, 1, 1].set(0)).max()) == 0.0
    W1 = cn.init_conv_layer(jax.random.PRNGKey(2), 4, 4, 3, 1.0, 0.0, init="delta_orthogonal")[0]
    np.testing.assert_allclose(W1[1].T @ W1[1], np.eye(4), atol=1e-12)


@pytest.mark.slow
def test_mode_decay_against_simulated_cnn():
    """Each Fourier mode of offset d = 1 decays as (chi_c vhat(f))^l: fit vs simulation."""
    n, C, L, S = 12, 64, 6, 8
    v = conv.uniform_filter(3)
    qs = float(dense.q_star(PHI, SW, SB))
    Sig0 = qs * _corr(n)
    traj_long = conv.conv_covariance_trajectory(PHI, SW, SB, Sig0, v, n, 40)
    traj = traj_long[: L + 1]
    chol = np.linalg.cholesky(Sig0 + 1e-12 * np.eye(n))

    @jax.jit
    def one(key):
        first, stacked = cn.init_conv_stacked(key, C, C, L, 3, SW, SB)
        h = (chol @ jax.random.normal(jax.random.fold_in(key, 10**6), (n, C)))[None]

        def body(h, wb):
            h = cn.circular_conv(jnp.tanh(h), wb[0]) + wb[1]
            return h, h

        _, hs = jax.lax.scan(body, h, stacked)
        return cn.spatial_covariance(hs[:, 0], 1)

    covs = np.array([one(jax.random.PRNGKey(s)) for s in range(S)])
    ms = np.asarray(conv.diagonal_modes(covs, n))[:, :, 1, :4]  # (S, L, f)
    mt = np.asarray(conv.diagonal_modes(traj[1:], n))[:, 1, :4]
    mean = ms.mean(0)
    se = ms.std(0, ddof=1) / np.sqrt(S)
    # 5 standard errors + O(1/C) finite-width bias on amplitudes of order q*
    assert np.all(np.abs(mean - mt) < 5 * np.abs(se) + 2 * qs / C)
    # the linearised multipliers: late-layer ratio of the iterated map (near the fixed point)
    long = np.asarray(conv.diagonal_modes(traj_long, n))[:, 1, :]
    ratio = np.abs(long[40, 1] / long[39, 1])
    ds = conv.mode_depth_scales(PHI, SW, SB, v, n)
    assert ratio == pytest.approx(ds["multiplier_c"][1], rel=1e-3)


def test_bad_inputs():
    v = conv.uniform_filter(3)
    with pytest.raises(ValueError, match="filter_size"):
        conv.uniform_filter(2)
    with pytest.raises(ValueError, match="v must be"):
        conv.diagonal_convolution(np.eye(4), np.array([0.5, 0.6, 0.1]), 4)
    with pytest.raises(ValueError, match="Sigma"):
        conv.diagonal_convolution(np.eye(5), v, 4)
    with pytest.raises(ValueError, match="spatial_shape"):
        conv.fourier_multipliers(v, (2, 2, 2))
    with pytest.raises(ValueError, match="larger"):
        conv.fourier_multipliers(np.full(5, 0.2), 3)
    with pytest.raises(ValueError, match="depth"):
        conv.conv_covariance_trajectory(PHI, SW, SB, np.eye(4), v, 4, -1)
    with pytest.raises(ValueError, match="init"):
        cn.init_conv(jax.random.PRNGKey(0), 1, 4, 2, 3, 1.0, 0.1, init="he")
    with pytest.raises(ValueError, match="c_out >= c_in"):
        cn.init_conv_layer(jax.random.PRNGKey(0), 8, 4, 3, 1.0, 0.1, init="delta_orthogonal")
    with pytest.raises(ValueError, match="sigma_w2"):
        cn.init_conv(jax.random.PRNGKey(0), 1, 4, 2, 3, -1.0, 0.1)
    with pytest.raises(ValueError, match="dims"):
        cn.init_conv(jax.random.PRNGKey(0), 1, 4, 2, 3, 1.0, 0.1, dims=3)


@pytest.mark.slow
def test_delta_orthogonal_linear_cnn_is_isometric():
    """A linear delta-orthogonal CNN is orthogonal times sigma_w^L: all lambda = sigma_w2^L."""
    n, C, L, sw2 = 6, 8, 5, 1.3
    params = cn.init_conv(jax.random.PRNGKey(3), C, C, L, 3, sw2, 0.1, init="delta_orthogonal")

    def f(x):
        h = x.reshape(1, n, C)
        for W, b in params[1:]:
            h = cn.circular_conv(h, W) + b
        return h.ravel()

    J = jax.jacfwd(f)(jnp.zeros(n * C))
    lam = np.asarray(jnp.linalg.svd(J, compute_uv=False) ** 2)
    np.testing.assert_allclose(lam, sw2**L, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize(
    "phi, sw, sb, shape",
    [
        ("tanh", 2.5, 0.05, (5,)),
        ("erf", 3.0, 0.2, (5,)),
        ("tanh", 0.8, 0.1, (5,)),
        ("tanh", 2.5, 0.05, (3, 3)),
    ],
)
def test_mode_multipliers_are_eigenvalues_of_the_linearised_map(phi, sw, sb, shape):
    """The closed form chi * vhat(f) (fast path) against the generic computation: eigenvalues of
    dynamics.linearise of the whole CNN covariance map at its fixed point, chaotic (c* < 1) and
    ordered (c* = 1). Odd sides, so that the offsets d != 0 pair up with -d: the P diagonal modes
    chi_q vhat(f), and each chi_c vhat(f) once per pair (P - 1)/2."""
    taps = np.array([0.25, 0.5, 0.25])  # no multiplier vanishes on a side of 3 or 5
    n, v = (
        int(np.prod(shape)),
        taps if len(shape) == 1 else np.outer(taps, taps),
    )
    qs, cs = float(dense.q_star(phi, sw, sb)), float(dense.c_star(phi, sw, sb))
    S_star = qs * ((1 - cs) * np.eye(n) + cs)
    block = conv._block(phi, sw, sb, v)

    def F(S):
        return block.kernel(S, None, shape)[0]

    np.testing.assert_allclose(F(jnp.asarray(S_star)), S_star, rtol=1e-11)
    lam, xi = jax.jit(lambda S: dynamics.depth_scales_at(F, S, symmetric=True))(S_star)
    ds = conv.mode_depth_scales(phi, sw, sb, v, shape)
    pairs = (n - 1) // 2
    expected = np.concatenate([ds["multiplier_q"].ravel()] + [ds["multiplier_c"].ravel()] * pairs)
    np.testing.assert_allclose(np.sort(np.real(lam)), np.sort(expected), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.imag(lam), 0.0, atol=1e-12)
    np.testing.assert_allclose(
        np.sort(np.asarray(xi)),
        np.sort(np.concatenate([ds["xi_q"].ravel()] + [ds["xi_c"].ravel()] * pairs)),
        rtol=1e-8,
    )


def test_jacobian_of_a_delta_orthogonal_linear_cnn_is_an_isometry():
    """Linear layers with a Haar-orthogonal centre tap only: every singular value is 1."""
    s2 = cn.jacobian_singular_values(
        jax.random.PRNGKey(2), 5, 8, 3, 3, 1.0, 0.0, 1.0, init="delta_orthogonal", phi="linear"
    )
    assert s2.shape == (40,)
    np.testing.assert_allclose(s2, 1.0, rtol=1e-10)


@pytest.mark.slow
def test_simulated_spatial_covariances_follow_the_cnn_map():
    """Mean over seeds of the simulated covariances against the CNN covariance map, within five
    seed standard errors plus a 1/C finite-width allowance."""
    P, C, L, seeds = 6, 256, 5, 12
    theta = np.random.default_rng(0).uniform(0, 2 * np.pi, P)
    S0 = 0.5 * (0.9 * np.cos(theta[:, None] - theta[None, :]) + 0.1 * np.eye(P))
    sims = np.array(
        [
            cn.simulate_spatial_covariances(jax.random.PRNGKey(s), S0, C, L, 3, 1.8, 0.05)
            for s in range(seeds)
        ]
    )
    assert sims.shape == (seeds, L + 1, P, P)
    theory = np.asarray(
        conv.conv_covariance_trajectory("tanh", 1.8, 0.05, S0, conv.uniform_filter(3), P, L)
    )
    se = sims.std(axis=0, ddof=1) / np.sqrt(seeds)
    assert np.all(np.abs(sims.mean(0) - theory) <= 5 * se + 3.0 * np.abs(theory).max() / C)


@pytest.mark.slow
def test_asymmetric_footprint_multipliers_are_moduli_of_eigenvalues():
    """For an asymmetric footprint the linearised map has complex eigenvalue pairs
    chi vhat(f), conj: their moduli are |chi vhat(f)| (not |chi Re vhat(f)|)."""
    phi, sw, sb, n = "tanh", 2.5, 0.05, 5
    v = np.array([0.0, 0.5, 0.5])
    qs, cs = float(dense.q_star(phi, sw, sb)), float(dense.c_star(phi, sw, sb))
    S_star = qs * ((1 - cs) * np.eye(n) + cs)
    block = conv._block(phi, sw, sb, v)

    def F(S):
        return block.kernel(S, None, (n,))[0]

    lam = np.asarray(dynamics.linearise(F, jnp.asarray(S_star), symmetric=True))
    lam = np.linalg.eigvals(lam)
    ds = conv.mode_depth_scales(phi, sw, sb, v, n)
    expected = np.concatenate(
        [np.abs(ds["multiplier_q"])] + [np.abs(ds["multiplier_c"])] * ((n - 1) // 2)
    )
    np.testing.assert_allclose(np.sort(np.abs(lam)), np.sort(expected), rtol=1e-9, atol=1e-12)
    assert not np.allclose(
        np.abs(ds["multiplier_c"]),
        np.abs(ds["chi_c"] * np.real(conv.fourier_multipliers(v, n))),
    )


@pytest.mark.slow
def test_orthogonal_kernel_is_an_isometry_with_binomial_footprint():
    """Xiao et al.'s kernel: the circular convolution preserves norms on any n >= k; the
    squared taps sum to the identity's norm (Parseval) and spread over all k taps."""
    C, k = 6, 5
    W = cn.orthogonal_kernel(jax.random.PRNGKey(0), C, C, k)
    assert W.shape == (k, C, C)
    for n in (k, 8):
        x = jax.random.normal(jax.random.PRNGKey(n), (3, n, C))
        y = cn.circular_conv(x, W)
        np.testing.assert_allclose(
            jnp.sum(y**2, axis=(1, 2)), jnp.sum(x**2, axis=(1, 2)), rtol=1e-12
        )
    taps = np.sum(np.asarray(W) ** 2, axis=(1, 2)) / C
    assert taps.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.all(taps > 0)
    Wr = cn.orthogonal_kernel(jax.random.PRNGKey(1), 3, 6, 3)  # c_in < c_out: orthonormal rows
    x = jax.random.normal(jax.random.PRNGKey(2), (2, 7, 3))
    np.testing.assert_allclose(jnp.sum(cn.circular_conv(x, Wr) ** 2), jnp.sum(x**2), rtol=1e-12)
    with pytest.raises(ValueError, match="c_out >= c_in"):
        cn.orthogonal_kernel(jax.random.PRNGKey(0), 6, 3, 3)
    with pytest.raises(ValueError, match="dims"):
        cn.orthogonal_kernel(jax.random.PRNGKey(0), 3, 3, 3, dims=3)


@pytest.mark.slow
def test_orthogonal_kernel_mean_footprint_is_binomial():
    """Averaged over draws the tap variances are binom(k-1, beta) / 2^(k-1)."""
    C, k, draws = 32, 3, 64
    keys = jax.random.split(jax.random.PRNGKey(0), draws)
    W = jnp.stack([cn.orthogonal_kernel(kk, C, C, k) for kk in keys])
    taps = np.asarray(jnp.sum(W**2, axis=(2, 3)) / C)  # (draws, k)
    se = taps.std(0, ddof=1) / np.sqrt(draws)
    np.testing.assert_allclose(taps.mean(0), [0.25, 0.5, 0.25], atol=5 * se.max() + 1e-3)


@pytest.mark.slow
def test_jacobian_spectra_match_single_network_sampler():
    """The vectorised sampler reproduces jacobian_singular_values network by network, and a
    linear CNN with orthogonal kernels is an exact isometry."""
    key = jax.random.PRNGKey(4)
    ev = cn.jacobian_spectra(key, 2, 5, 4, 3, 3, 1.7, 0.01, 0.3)
    one = cn.jacobian_singular_values(jax.random.fold_in(key, 1), 5, 4, 3, 3, 1.7, 0.01, 0.3)
    np.testing.assert_allclose(ev[1], one, rtol=1e-10, atol=1e-14)
    iso = cn.jacobian_spectra(key, 2, 5, 4, 3, 3, 1.0, 0.0, 1.0, init="orthogonal", phi="linear")
    np.testing.assert_allclose(iso, 1.0, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("c_in", [2, 4])
def test_orthogonal_kernel_2d_is_sigma_w_times_an_isometry(c_in):
    """2-D orthogonal layer (one projection factor per axis) on a non-square 3 x 5 grid: the
    operator M of x -> W * x satisfies M^T M = sigma_w^2 I exactly (to rounding), with the
    variance spread over several taps (not a delta kernel)."""
    C, sw2, grid = 4, 1.7, (3, 5)
    W, _ = cn.init_conv_layer(
        jax.random.PRNGKey(7), c_in, C, 3, sw2, 0.0, dims=2, init="orthogonal"
    )
    assert W.shape == (3, 3, c_in, C)
    n_in = grid[0] * grid[1] * c_in
    basis = jnp.eye(n_in).reshape((n_in, *grid, c_in))
    M = cn.circular_conv(basis, W).reshape(n_in, -1).T  # columns: images of the basis
    np.testing.assert_allclose(M.T @ M, sw2 * np.eye(n_in), atol=1e-12)
    taps = np.sum(np.asarray(W) ** 2, axis=(2, 3))
    assert np.sum(taps > 1e-3 * taps.sum()) > 1
