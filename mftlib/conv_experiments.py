r"""Experiment drivers of the convolutional-networks chapter: theory against simulated CNNs.

* :func:`mode_response` -- the linear response of the spatial Fourier modes of the covariance
  about the fixed point :math:`\Sigma^*`, in the CNN covariance map and in simulated networks
  (common random numbers), with fitted depth scales against :math:`\xi_f = -1/\log|\chi_c\hat
  v(f)|` (:func:`mftlib.conv.mode_depth_scales`).
* :func:`cnn_jacobian_moments` -- mean and variance of the squared singular values of many random
  1-D CNN Jacobians against the free-probability moments of the dense network with the matching
  weight ensemble (:func:`mftlib.spectra.jacobian_moments`).
* :func:`train_deep_cnns` -- deep vanilla tanh CNNs on the digits from several initialisations
  and seeds (:func:`mftlib.training.train_models`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import conv, dense, fitting, training
from mftlib import spectra as sp
from mftlib.activations import activation
from mftlib.networks import conv as cn


def _input_correlation(n: int, seed: int) -> np.ndarray:
    r""":math:`R = 0.9\,ss^\top + 0.1 I` with signs :math:`s_a = \pm 1`: a correlation matrix.

    Of 200 sign patterns drawn from ``seed``, the one whose products :math:`s_a s_{a+1}` have the
    flattest spatial spectrum (largest smallest Fourier mode), so that every mode starts well
    above the noise.
    """
    rng = np.random.default_rng(seed)
    cands = rng.choice([-1.0, 1.0], (200, n))
    power = np.abs(np.fft.fft(cands * np.roll(cands, -1, axis=1), axis=1))[:, : n // 2 + 1]
    s = cands[np.argmax(power.min(1))]
    return 0.9 * np.outer(s, s) + 0.1 * np.eye(n)


@partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _differenced(keys, chol0, chol_star, vscale, C, L, k, act, sw, sb):
    """Empirical covariances from chol0 minus those from chol_star, same networks and noise
    (the draws of :func:`mftlib.networks.simulate_spatial_covariances`)."""
    P = chol0.shape[0]

    def one(key):
        lkeys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(1, L + 1))
        Ws, bs = cn.layers_from_keys(lkeys, C, k, 1, "gaussian", sw, sb)
        Ws = Ws * vscale[None]
        z = jax.random.normal(jax.random.fold_in(key, 10**6), (P, C))

        def covs(chol):
            return cn.covariances_through_layers((chol @ z)[None], (Ws, bs), act)

        return covs(chol0) - covs(chol_star)

    return jax.lax.map(one, keys)


def _distance_modes(Sigma, P: int, d: int, nf: int) -> np.ndarray:
    r"""Fourier modes of :math:`D_\alpha = \Sigma_{\alpha\alpha} + \Sigma_{\alpha+d,\alpha+d}
    - 2\Sigma_{\alpha,\alpha+d}` (the squared distance between positions at offset ``d``)."""
    m = np.asarray(conv.diagonal_modes(Sigma, P))[..., :nf]
    phase = np.exp(2j * np.pi * np.arange(nf) * d / P)
    return m[..., 0, :] * (1 + phase) - 2 * m[..., d, :]


def _fit_xi(amp: np.ndarray, layers: np.ndarray) -> float:
    if len(layers) < 2:
        return np.nan
    return float(fitting.exponential_scale(amp, layers).value)


def mode_response(
    phi,
    sigma_w2,
    sigma_b2,
    footprint,
    positions: int,
    channels: int,
    depth: int,
    seeds: int,
    *,
    eps: float = 0.005,
    offset: int = 1,
    input_seed: int = 1,
    snr: float = 4.0,
) -> dict:
    r"""Decay of the spatial Fourier modes of a small perturbation of :math:`\Sigma^*`.

    The input covariance is :math:`\Sigma^0 = (1-\epsilon)\Sigma^* + \epsilon q^* R`, with
    :math:`\Sigma^* = q^*[(1-c^*)I + c^*\mathbf 1\mathbf 1^\top]` and ``R`` a random correlation
    matrix (every position keeps variance :math:`q^*`). The perturbation
    :math:`\delta\Sigma^l = \Sigma^l - \Sigma^*` is followed through the CNN covariance map
    (:func:`mftlib.conv.conv_covariance_trajectory`) and through ``seeds`` random 1-D CNNs
    (:func:`mftlib.networks.simulate_spatial_covariances`), where each network is run from
    :math:`\Sigma^0` and from :math:`\Sigma^*` with the same weights and input noise and the two
    empirical covariances are subtracted (common random numbers: the finite-width fluctuations of
    :math:`\Sigma^*` itself cancel). Its modes at offset ``d = offset``,
    :math:`\delta\hat\Sigma^l_d(f)` (:func:`mftlib.conv.diagonal_modes`), decay as
    :math:`|\chi_c\hat v(f)|^l` to first order in :math:`\epsilon`.

    Depth scales are fitted (:func:`mftlib.fitting.exponential_scale`, a line through
    :math:`\log|\cdot|`) over the layers ``1..l_f`` before the first layer where the predicted
    amplitude falls below ``snr`` standard errors of the simulated seed mean; the simulated one
    has a jackknife standard error over seeds.

    Returns:
        dict with ``freqs`` (``0..positions//2``), ``layers``, ``theory`` and ``sim`` (moduli of
        the modes, ``(depth + 1, n_f)``; ``sim`` of the complex seed mean), ``sim_se``,
        ``xi_linear`` (:math:`-1/\log|\chi_c\hat v(f)|`), ``xi_real_part`` (the same with
        :math:`\mathrm{Re}\,\hat v` in place of :math:`|\hat v|`), ``xi_map``, ``xi_sim``,
        ``xi_sim_se``, ``n_layers`` (layers fitted), ``chi_c``, ``q_star``, ``c_star``.
    """
    V.real("eps", eps, lo=0.0, lo_open=True, hi=1.0)
    P = V.positive_int("positions", positions)
    L = V.positive_int("depth", depth)
    S = V.positive_int("seeds", seeds)
    if S < 3:
        raise ValueError(f"seeds must be >= 3 for a jackknife error, got {S}")
    d = V.nonneg_int("offset", offset)
    if d >= P:
        raise ValueError(f"offset must be < positions = {P}, got {d}")
    v = np.asarray(footprint, dtype=np.float64)
    if v.ndim != 1 or v.size % 2 == 0:
        raise ValueError("footprint must be a 1-D array with an odd number of taps")
    qs, cs = (
        float(dense.q_star(phi, sigma_w2, sigma_b2)),
        float(dense.c_star(phi, sigma_w2, sigma_b2)),
    )
    if not np.isfinite(qs):
        raise ValueError("the length map diverges at these (sigma_w2, sigma_b2)")
    S_star = qs * ((1 - cs) * np.eye(P) + cs)
    S0 = (1 - eps) * S_star + eps * qs * _input_correlation(P, input_seed)
    nf = P // 2 + 1
    traj = np.asarray(conv.conv_covariance_trajectory(phi, sigma_w2, sigma_b2, S0, v, P, L))
    th = np.abs(_distance_modes(traj - S_star, P, d, nf))
    k = v.size
    act = activation(phi)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(S))
    chols = [jnp.asarray(np.linalg.cholesky(M + 1e-12 * np.eye(P))) for M in (S0, S_star)]
    vscale = jnp.asarray(np.sqrt(v * k))[:, None, None]
    sw, sb = float(sigma_w2) ** 0.5, float(sigma_b2) ** 0.5
    diff = np.asarray(_differenced(keys, *chols, vscale, channels, L, k, act, sw, sb))
    m = _distance_modes(diff, P, d, nf)  # (S, L+1, f), complex
    mean = m.mean(0)
    se = np.sqrt(m.real.var(0, ddof=1) + m.imag.var(0, ddof=1)) / np.sqrt(S)
    scales = conv.mode_depth_scales(phi, sigma_w2, sigma_b2, v, P)
    layers = np.arange(L + 1)
    xi_map, xi_sim, xi_se, n_used = (np.full(nf, np.nan) for _ in range(4))
    for f in range(nf):
        low = np.nonzero(th[1:, f] <= snr * se[1:, f])[0]
        last = L if low.size == 0 else int(low[0])  # layers 1..last are resolved
        use = layers[1 : last + 1]
        n_used[f] = use.size
        if use.size < 2:
            continue
        xi_map[f] = _fit_xi(th[use, f], use)
        xi_sim[f] = _fit_xi(np.abs(mean[use, f]), use)
        jack = np.array(
            [_fit_xi(np.abs(np.delete(m, s, axis=0).mean(0)[use, f]), use) for s in range(S)]
        )
        if np.all(np.isfinite(jack)):
            xi_se[f] = np.sqrt((S - 1) / S * np.sum((jack - jack.mean()) ** 2))
    vhat = conv.fourier_multipliers(v, P)[:nf]
    chi_c = float(scales["chi_c"])
    re = np.abs(chi_c * np.real(vhat))
    xi_re = np.full(nf, np.inf)
    xi_re[re < 1] = -1 / np.log(np.maximum(re[re < 1], 1e-300))
    return dict(
        freqs=np.arange(nf),
        layers=layers,
        theory=th,
        sim=np.abs(mean),
        sim_se=se,
        xi_linear=np.asarray(scales["xi_c"])[:nf],
        xi_real_part=xi_re,
        xi_map=xi_map,
        xi_sim=xi_sim,
        xi_sim_se=xi_se,
        n_layers=n_used.astype(int),
        chi_c=chi_c,
        q_star=qs,
        c_star=cs,
    )


def cnn_jacobian_moments(
    key,
    init: str,
    n_networks: int,
    positions: int,
    channels: int,
    depth: int,
    filter_size: int,
    sigma_w2,
    sigma_b2,
    phi="tanh",
) -> dict:
    r"""Moments of the squared singular values of ``n_networks`` random 1-D CNN Jacobians
    (:func:`mftlib.networks.jacobian_spectra`, input at the fixed point :math:`q^*`) against
    the dense free-probability moments (:func:`mftlib.spectra.jacobian_moments`) with Gaussian
    weights for ``init="gaussian"`` and orthogonal weights for the two orthogonal kernels.

    Returns dict with ``eigenvalues`` ``(n_networks, positions * channels)``, per-network ``m1``
    and ``var`` (:math:`m_2 - m_1^2`), their seed means and standard errors ``m1_mean``,
    ``m1_se``, ``var_mean``, ``var_se``, ``var_median``, the theory ``m1_theory``,
    ``var_theory``, and ``weights``.
    """
    qs = float(dense.q_star(phi, sigma_w2, sigma_b2))
    if not np.isfinite(qs):
        raise ValueError("the length map diverges at these (sigma_w2, sigma_b2)")
    ev = np.asarray(
        cn.jacobian_spectra(
            key,
            n_networks,
            positions,
            channels,
            depth,
            filter_size,
            sigma_w2,
            sigma_b2,
            qs,
            init=init,
            phi=phi,
        )
    )
    n = ev.shape[0]
    if n < 2:
        raise ValueError("n_networks must be >= 2 for a standard error")
    weights = "gaussian" if init == "gaussian" else "orthogonal"
    th = sp.jacobian_moments(sp.derivative_moments(phi, qs, 2), sigma_w2, depth, weights)
    m1, var = ev.mean(-1), ev.var(-1)
    return dict(
        eigenvalues=ev,
        m1=m1,
        var=var,
        m1_mean=float(m1.mean()),
        m1_se=float(m1.std(ddof=1) / np.sqrt(n)),
        var_mean=float(var.mean()),
        var_se=float(var.std(ddof=1) / np.sqrt(n)),
        var_median=float(np.median(var)),
        m1_theory=float(th[0]),
        var_theory=float(th[1] - th[0] ** 2),
        weights=weights,
    )


def train_deep_cnns(
    key,
    data,
    inits,
    seeds: int,
    channels: int,
    depth: int,
    sigma_w2,
    sigma_b2,
    *,
    steps: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    n_record: int = 10,
) -> dict:
    r"""Train vanilla 2-D tanh CNNs (no batch norm, no skips) on ``data`` (8x8 digits).

    Network: a Gaussian 3x3 layer to ``channels``, ``depth`` circular 3x3 convolutions with
    initialisation ``init`` at :math:`(\sigma_w^2, \sigma_b^2)`
    (:func:`mftlib.networks.init_conv_stacked`, float32), tanh, global average pooling and a
    dense readout; Adam for ``steps`` steps on minibatches of ``batch_size``. All
    ``len(inits) * seeds`` networks train at once (:func:`mftlib.training.train_models`), network
    ``(i, s)`` drawn from ``fold_in(key, 1000 i + s)``.

    Returns dict with ``loss_history`` ``(len(inits), seeds, n_record)``, ``train_accuracy`` and
    ``test_accuracy`` ``(len(inits), seeds)``, and per init the seed mean and standard error of
    the final loss and test accuracy: ``loss_mean``, ``loss_se``, ``test_mean``, ``test_se``
    (arrays over ``inits``).
    """
    key = V.key(key)
    inits = tuple(inits)
    S = V.positive_int("seeds", seeds)
    C, L = V.positive_int("channels", channels), V.positive_int("depth", depth)

    def make(k, init):
        first, stacked = cn.init_conv_stacked(
            k,
            1,
            C,
            L,
            3,
            sigma_w2,
            sigma_b2,
            dims=2,
            init=init,
            dtype=jnp.float32,
        )
        w_out = jax.random.normal(jax.random.fold_in(k, 2**30), (C, 10)) / np.sqrt(C)
        return dict(
            first=first,
            stacked=stacked,
            out=(w_out.astype(jnp.float32), jnp.zeros(10)),
        )

    def logits(p, x):
        h = cn.conv_forward_scan(p["first"], p["stacked"], x, "tanh")
        return jnp.tanh(h).mean(axis=(1, 2)) @ p["out"][0] + p["out"][1]

    models = [
        make(jax.random.fold_in(key, 1000 * i + s), init)
        for i, init in enumerate(inits)
        for s in range(S)
    ]
    params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *models)
    res = training.train_models(
        jax.random.fold_in(key, 2**20),
        logits,
        params,
        data,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer="adam",
        dtype=jnp.float32,
        x_shape=(8, 8, 1),
        n_record=n_record,
    )
    n_i = len(inits)
    hist = np.asarray(res["loss_history"]).reshape(n_i, S, -1)
    train = np.asarray(res["train_accuracy"]).reshape(n_i, S)
    test = np.asarray(res["test_accuracy"]).reshape(n_i, S)
    se = (lambda a: a.std(1, ddof=1) / np.sqrt(S)) if S > 1 else (lambda a: np.full(n_i, np.nan))
    return dict(
        loss_history=hist,
        train_accuracy=train,
        test_accuracy=test,
        loss_mean=hist[:, :, -1].mean(1),
        loss_se=se(hist[:, :, -1]),
        test_mean=test.mean(1),
        test_se=se(test),
    )


def xi_agreement(result: dict, min_layers: int = 3, against: str = "xi_linear"):
    r"""Inverse-variance weighted mean of :math:`\xi_f^{\rm sim}/\xi_f` over the modes of a
    :func:`mode_response` result fitted on at least ``min_layers`` layers with a finite
    :math:`\xi_f` (``against``: ``"xi_linear"`` or ``"xi_map"``).

    Returns ``(fitting.WeightedMean, freqs used)``; the error of each ratio is the jackknife
    error of :math:`\xi^{\rm sim}_f` divided by :math:`\xi_f`.
    """
    if against not in ("xi_linear", "xi_map"):
        raise ValueError(f"against must be 'xi_linear' or 'xi_map', got {against!r}")
    ref = np.asarray(result[against], dtype=np.float64)
    ok = (
        (result["n_layers"] >= min_layers)
        & np.isfinite(ref)
        & np.isfinite(result["xi_sim"])
        & np.isfinite(result["xi_sim_se"])
        & (result["xi_sim_se"] > 0)
    )
    if not ok.any():
        raise ValueError("no mode was fitted on enough layers")
    wm = fitting.weighted_mean(result["xi_sim"][ok] / ref[ok], result["xi_sim_se"][ok] / ref[ok])
    return wm, result["freqs"][ok]
