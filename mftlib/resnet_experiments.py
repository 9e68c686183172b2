r"""Experiment drivers of the residual-network chapter: theory of :mod:`mftlib.resnet` against
finite residual networks of ``mftlib.networks.resnet``.

* :func:`gradient_spread`: the seed-to-seed spread of the simulated gradient amplification
  :math:`\chi^0/\chi^L` around the mean field;
* :func:`amplification_collapse`: the amplification at several :math:`\sigma_v^2` against
  :math:`\sigma_v^2 L`;
* :func:`correlation_experiment`: the correlation :math:`e^l` of two inputs and their squared
  distance :math:`s^l` (metric expressivity), map against networks;
* :func:`training_grid`: residual classifiers trained over depth and :math:`\sigma_v^2`;
* :func:`predictor_grid` and :func:`compare_predictors`: the mean-field predictors of their
  accuracy (gradient amplification, metric expressivity of :func:`mean_pair_covariance`) and
  how well each ranks it.
"""

from __future__ import annotations

import jax
import numpy as np

from mftlib import _validate as V
from mftlib import fitting, resnet, training
from mftlib.networks import resnet as rn


def _pair(width: int, corr: float, seed: int = 0) -> np.ndarray:
    """Two inputs of ``width`` units, unit length, with correlation exactly ``corr``."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(2, width))
    q, _ = np.linalg.qr(u.T)  # orthonormal columns
    a, b = q[:, 0], q[:, 1]
    x = np.stack([a, corr * a + np.sqrt(1.0 - corr**2) * b]) * np.sqrt(width)
    return x


def input_pair(width: int, corr: float, seed: int = 0) -> np.ndarray:
    r"""Two inputs ``(2, width)`` with :math:`\|x_a\|^2/N = 1` and correlation ``corr`` exactly.

    Raises ``ValueError`` unless ``width >= 2`` and :math:`-1 < ` ``corr`` :math:`< 1`."""
    width = V.positive_int("width", width)
    if width < 2:
        raise ValueError(f"width must be at least 2, got {width}")
    c = float(V.real("corr", corr))
    if not -1.0 < c < 1.0:
        raise ValueError(f"corr must lie in (-1, 1), got {corr!r}")
    return _pair(width, c, seed)


def _summary(r: np.ndarray) -> dict:
    n = r.size
    return {
        "mean": float(r.mean()),
        "se": float(r.std(ddof=1) / np.sqrt(n)),
        "median": float(np.median(r)),
        "min": float(r.min()),
        "max": float(r.max()),
    }


def gradient_spread(key, x, phi, sigma_v2, depth: int, *, sigma_w2=None, n_seeds: int = 32):
    r"""Simulated gradient amplification of ``n_seeds`` networks against the mean field.

    The amplification over the first :math:`k` blocks of each network is the squared gradient
    at :math:`x^0` over that at :math:`x^k` (:func:`mftlib.networks.simulate_resnet_stream`);
    its mean-field value is :func:`mftlib.resnet.gradient_amplification`.

    Returns:
        dict with ``theory`` ``(depth+1,)``, ``sim`` ``(n_seeds, depth+1)``, ``ratio``
        ``(n_seeds,)`` (simulated over theory at :math:`L` = ``depth``), ``stats`` (mean, se,
        median, min, max of the ratio) and ``log_stats`` (the same for its natural log).
    """
    n_seeds = V.positive_int("n_seeds", n_seeds)
    if n_seeds < 2:
        raise ValueError("n_seeds must be at least 2 to measure a spread")
    x = np.asarray(V.matrix("x", x), np.float64)
    p0 = float(np.mean(x * x))
    sim = rn.simulate_stream(key, x, phi, sigma_v2, 0.0, depth, sigma_w2=sigma_w2, n_seeds=n_seeds)
    g = sim["grad_norms"]
    amp = g[:, :1] / g
    theory = resnet.gradient_amplification(phi, sigma_v2, 0.0, p0, depth, sigma_w2=sigma_w2)
    ratio = amp[:, -1] / theory[-1]
    return {
        "theory": theory,
        "sim": amp,
        "ratio": ratio,
        "stats": _summary(ratio),
        "log_stats": _summary(np.log(ratio)),
        "cov": sim["cov"],
    }


def amplification_collapse(
    key,
    x,
    phi,
    sigma_v2s,
    depth_sim: int,
    *,
    sigma_w2=None,
    n_seeds: int = 8,
    depth_theory=None,
) -> dict:
    r"""Gradient amplification at several :math:`\sigma_v^2`, to be plotted against
    :math:`\sigma_v^2 L`.

    For each :math:`\sigma_v^2` the mean field :math:`\chi^0/\chi^L` for
    :math:`L = 0..` ``depth_theory`` (default ``depth_sim``), the law of
    :func:`mftlib.resnet.amplification_law`, and ``n_seeds`` simulated networks of depth
    ``depth_sim`` (amplification over the first :math:`k` blocks, every :math:`k`).

    Returns:
        dict ``sigma_v2 -> {"theory", "law", "l0", "sim"}`` (arrays over :math:`L`).
    """
    x = np.asarray(V.matrix("x", x), np.float64)
    p0 = float(np.mean(x * x))
    grid = np.asarray(V.grid("sigma_v2s", sigma_v2s), np.float64)
    depth_sim = V.positive_int("depth_sim", depth_sim)
    dt = depth_sim if depth_theory is None else V.positive_int("depth_theory", depth_theory)
    out = {}
    for i, sv in enumerate(grid):
        sim = rn.simulate_stream(
            jax.random.fold_in(key, i),
            x,
            phi,
            sv,
            0.0,
            depth_sim,
            sigma_w2=sigma_w2,
            n_seeds=n_seeds,
        )
        g = sim["grad_norms"]
        law = resnet.amplification_law(phi, sv, p0, dt, sigma_w2=sigma_w2)
        out[float(sv)] = {
            "theory": resnet.gradient_amplification(phi, sv, 0.0, p0, dt, sigma_w2=sigma_w2),
            "law": law["amplification"],
            "l0": law["l0"],
            "sim": g[:, :1] / g,
        }
    return out


def correlation_experiment(
    key,
    phi,
    corr0,
    depth: int,
    *,
    sigma_v2=1.0,
    sigma_a2=0.0,
    sigma_w2=None,
    width=256,
    n_seeds=8,
    window=None,
) -> dict:
    r"""Correlation :math:`e^l` and squared distance :math:`s^l = p^l_a + p^l_b - 2\Sigma^l_{ab}`
    (metric expressivity) of two unit-length inputs of correlation ``corr0``: the map
    (:func:`mftlib.resnet.covariance_trajectory`) against simulated networks.

    The approach to the fixed point is fitted as :math:`|e^* - e^l| \propto (p^l)^{-\nu}` over
    the blocks ``window`` (default: the second half), for the map and for each seed, and
    compared with :math:`\nu` of :func:`mftlib.resnet.correlation_fixed_point`.

    Returns:
        dict with ``layers``, ``theory`` and ``sim`` (each a dict of ``p``, ``e``, ``s``; the
        simulated arrays have a leading seed axis), ``fixed_point`` (the dict of
        :func:`~mftlib.resnet.correlation_fixed_point`), ``nu_map`` and ``nu_sim`` (a
        :class:`~mftlib.fitting.Fit` over seeds).
    """
    depth = V.positive_int("depth", depth)
    x = input_pair(width, corr0)
    S0 = x @ x.T / x.shape[1]
    T = np.asarray(
        resnet.covariance_trajectory(phi, sigma_v2, sigma_a2, S0, depth, sigma_w2=sigma_w2)
    )
    sim = rn.simulate_stream(
        key,
        x,
        phi,
        sigma_v2,
        sigma_a2,
        depth,
        sigma_w2=sigma_w2,
        n_seeds=n_seeds,
    )["cov"]

    def parts(S):
        p = 0.5 * (S[..., 0, 0] + S[..., 1, 1])
        e = S[..., 0, 1] / np.sqrt(S[..., 0, 0] * S[..., 1, 1])
        return {
            "p": p,
            "e": e,
            "s": S[..., 0, 0] + S[..., 1, 1] - 2 * S[..., 0, 1],
        }

    th, si = parts(T), parts(sim)
    fp = resnet.correlation_fixed_point(phi, sigma_v2, sigma_a2)
    w = (depth // 2, None) if window is None else window
    lo = w[0]
    d_th = np.abs(fp["e_star"] - th["e"])
    nu_map = -fitting.power_law(d_th[lo:], th["p"][lo:]).value
    d_sim = np.abs(fp["e_star"] - si["e"][:, lo:])
    # One fit per seed against its own lengths; mean and standard error over seeds.
    fits = np.array(
        [-fitting.power_law(d, p).value for d, p in zip(d_sim, si["p"][:, lo:], strict=True)]
    )
    return {
        "layers": np.arange(depth + 1),
        "theory": th,
        "sim": si,
        "fixed_point": fp,
        "nu_map": float(nu_map),
        "nu_sim": (
            float(fits.mean()),
            float(fits.std(ddof=1) / np.sqrt(fits.size)),
        ),
    }


def training_grid(
    key,
    data,
    phi,
    depths,
    sigma_v2s,
    *,
    width=32,
    steps=300,
    n_seeds=2,
    learning_rate=0.05,
    batch_size=32,
    dtype=np.float32,
) -> dict:
    r"""Test accuracy of full residual classifiers (:func:`mftlib.networks.init_resnet_classifier`,
    :math:`\sigma_w^2 = 1`) trained with SGD, for every depth and :math:`\sigma_v^2`, with the
    predicted amplification :math:`\log_{10}(\chi^0/\chi^L)` of each.

    Returns:
        dict with ``accuracy`` ``(len(depths), len(sigma_v2s), n_seeds)``, ``decades`` (same
        shape without seeds), ``p0`` (the length of :math:`x^0`), ``depths``, ``sigma_v2``.
    """
    depths = [V.positive_int("depth", d) for d in depths]
    sv = np.asarray(V.grid("sigma_v2s", sigma_v2s), np.float64)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    acc = np.zeros((len(depths), sv.size, n_seeds))
    for i, L in enumerate(depths):
        params = rn.init_classifier(
            jax.random.fold_in(key, L),
            data.x_train.shape[1],
            width,
            L,
            data.n_classes,
            np.repeat(sv, n_seeds),
            1.0,
            n_models=n_seeds * sv.size,
        )
        out = training.train_models(
            jax.random.fold_in(key, 10_000 + L),
            rn.classifier(phi),
            params,
            data,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            optimizer="sgd",
            dtype=dtype,
        )
        acc[i] = out["test_accuracy"].reshape(sv.size, n_seeds)
    p0 = float(np.mean(data.x_train**2))
    decades = np.array(
        [
            [
                np.log10(resnet.gradient_amplification(phi, s, 0.0, p0, L, sigma_w2=1.0)[L])
                for s in sv
            ]
            for L in depths
        ]
    )
    return {
        "accuracy": acc,
        "decades": decades,
        "p0": p0,
        "depths": np.array(depths),
        "sigma_v2": sv,
    }


def trainable_edge(accuracy, sigma_v2s, fraction=0.9) -> np.ndarray:
    r"""For each depth (row of ``accuracy``, mean over seeds if 3-D), the largest
    :math:`\sigma_v^2` whose accuracy is at least ``fraction`` of the row's best (NaN if the
    largest grid value still is: the edge lies beyond the grid)."""
    a = np.asarray(accuracy, np.float64)
    if a.ndim == 3:
        a = a.mean(-1)
    sv = np.asarray(V.grid("sigma_v2s", sigma_v2s), np.float64)
    if a.ndim != 2 or a.shape[1] != sv.size:
        raise ValueError(f"accuracy must be (depths, {sv.size}[, seeds]), got {a.shape}")
    edge = np.full(a.shape[0], np.nan)
    for i, row in enumerate(a):
        ok = np.nonzero(row >= fraction * row.max())[0]
        if ok.max() < sv.size - 1:
            edge[i] = sv[ok.max()]
    return edge


def mean_pair_covariance(x) -> np.ndarray:
    r"""The ``(2, 2)`` covariance at :math:`x^0 = W_{\text{in}} x` (:math:`W_{\text{in}} \sim
    \mathcal{N}(0, 1/d)`) of a *mean pair* of the inputs ``x`` ``(n, d)``: both lengths equal
    to the mean length :math:`p^0 = \overline{\|x_a\|^2}/d` and squared distance equal to the
    mean over all pairs :math:`a \ne b`, :math:`s^0 = \overline{\|x_a - x_b\|^2}/d`, so
    :math:`\Sigma^0 = [[p^0, p^0 - s^0/2], [p^0 - s^0/2, p^0]]`.

    Raises ``ValueError`` for fewer than two inputs or identical inputs (:math:`s^0 = 0`)."""
    x = np.asarray(V.matrix("x", x), np.float64)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"x needs at least two inputs, got {n}")
    sq = np.sum(x * x, axis=1)
    p0 = float(sq.mean() / d)
    # mean over a != b of |x_a - x_b|^2 = (2 n sum|x_a|^2 - 2 |sum x_a|^2) / (n (n - 1))
    tot = x.sum(axis=0)
    s0 = float((2 * n * sq.sum() - 2 * tot @ tot) / (n * (n - 1)) / d)
    if not s0 > 0:
        raise ValueError("the inputs are identical: their mean squared distance is 0")
    c = p0 - 0.5 * s0
    return np.array([[p0, c], [c, p0]])


def predictor_grid(phi, x, depths, sigma_v2s, *, sigma_w2=1.0) -> dict:
    r"""Mean-field predictors of trainability over a :math:`(L, \sigma_v^2)` grid, for the
    classifiers of :func:`training_grid` on inputs ``x``: the gradient amplification
    :math:`\log_{10}(\chi^0/\chi^L)` at the mean length :math:`p^0` (as in
    :func:`training_grid`), and the metric expressivity :math:`\log_{10}(s^L/s^0)`, the growth
    of the squared distance of the mean pair of :func:`mean_pair_covariance`
    (:func:`mftlib.resnet.squared_distance`).

    Returns:
        dict with ``decades`` and ``log_s``, each ``(len(depths), len(sigma_v2s))``, ``p0``,
        ``s0``, ``depths`` and ``sigma_v2``.
    """
    depths = np.array([V.positive_int("depth", d) for d in depths])
    sv = np.asarray(V.grid("sigma_v2s", sigma_v2s), np.float64)
    S0 = mean_pair_covariance(x)
    top = int(depths.max())
    s = resnet.squared_distance(phi, sv, S0, top, sigma_w2=sigma_w2)[:, 0]  # (K, top+1)
    amp = np.stack(
        [resnet.gradient_amplification(phi, v, 0.0, S0[0, 0], top, sigma_w2=sigma_w2) for v in sv]
    )
    return {
        "decades": np.log10(amp[:, depths]).T,
        "log_s": np.log10(s[:, depths] / s[:, :1]).T,
        "p0": float(S0[0, 0]),
        "s0": float(S0[0, 0] + S0[1, 1] - 2 * S0[0, 1]),
        "depths": depths,
        "sigma_v2": sv,
    }


def _ranks(a: np.ndarray) -> np.ndarray:
    from scipy import stats

    return stats.rankdata(a, axis=-1)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis (broadcasting)."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def _eta2(acc: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Correlation ratio of ``acc`` (..., C) over the bin labels ``bins`` (C,)."""
    dev = acc - acc.mean(-1, keepdims=True)
    within = np.zeros(acc.shape[:-1])
    for b in range(n_bins):
        a = acc[..., bins == b]
        within += ((a - a.mean(-1, keepdims=True)) ** 2).sum(-1)
    return 1.0 - within / (dev * dev).sum(-1)


def compare_predictors(accuracy, predictors: dict, *, n_bins=4, n_boot=1000, seed=0) -> dict:
    r"""How well each predictor ranks and explains the seed-mean accuracy of the grid cells.

    For accuracies ``(..., n_seeds)`` over grid cells and each predictor (an array of the
    cells' shape), over the :math:`C` cells:

    * ``rho``: Spearman's rank correlation of the predictor with the seed-mean accuracy;
    * ``eta2``: the correlation ratio :math:`\eta^2 = 1 - \sum_b\sum_{c\in b}(a_c -
      \bar a_b)^2 / \sum_c (a_c - \bar a)^2` with the cells split into ``n_bins`` bins of
      (nearly) equal count by the predictor's rank: the fraction of the accuracy's variance
      across cells that the predictor's bin explains (monotone or not).

    Errors: a bootstrap over seeds (the seeds of every cell resampled with replacement,
    ``n_boot`` times, the same resamples for every predictor), giving the standard errors
    ``rho_se``, ``eta2_se`` and, for the first two predictors ``a, b``, ``diff`` =
    :math:`\rho_a - \rho_b` and ``diff_se`` (paired; resamples in which every cell has the
    same accuracy have no ranking and are left out); ``between`` is the Spearman correlation
    of those two predictors with each other.

    Raises ``ValueError`` for fewer than 2 seeds or 4 cells, predictors of another shape or
    non-finite values, or accuracies equal in every cell (no ranking to explain).
    """
    acc = np.asarray(accuracy, np.float64)
    if acc.ndim < 2 or acc.shape[-1] < 2:
        raise ValueError(f"accuracy must be (..., n_seeds >= 2), got shape {acc.shape}")
    if not np.all(np.isfinite(acc)):
        raise ValueError("accuracy must be finite")
    cells, n_seeds = acc.shape[:-1], acc.shape[-1]
    acc = acc.reshape(-1, n_seeds)
    c = acc.shape[0]
    n_bins = V.positive_int("n_bins", n_bins)
    n_boot = V.positive_int("n_boot", n_boot)
    if c < 4 or not 2 <= n_bins <= c // 2:
        raise ValueError(f"need at least 4 cells and 2 <= n_bins <= cells/2 ({c} cells)")
    mean = acc.mean(-1)
    if np.ptp(mean) == 0:
        raise ValueError("the accuracy is the same in every cell: nothing to rank")
    names = list(predictors)
    if not names:
        raise ValueError("give at least one predictor")
    preds = {}
    for k in names:
        p = np.asarray(predictors[k], np.float64)
        if p.shape != cells or not np.all(np.isfinite(p)):
            raise ValueError(f"predictor {k!r} must be finite with shape {cells}, got {p.shape}")
        preds[k] = p.ravel()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_seeds, size=(n_boot, c, n_seeds))
    boot = np.take_along_axis(acc[None], idx, axis=-1).mean(-1)  # (n_boot, C)
    boot_ranks = _ranks(boot)
    out = {k: {} for k in ("rho", "rho_se", "eta2", "eta2_se")}
    rho_boot = {}
    for k, p in preds.items():
        rp = _ranks(p)
        bins = np.minimum((rp - 1) * n_bins // c, n_bins - 1).astype(int)
        out["rho"][k] = float(_pearson(_ranks(mean), rp))
        rho_boot[k] = _pearson(boot_ranks, rp)
        out["rho_se"][k] = float(np.nanstd(rho_boot[k], ddof=1))
        out["eta2"][k] = float(_eta2(mean, bins, n_bins))
        out["eta2_se"][k] = float(np.nanstd(_eta2(boot, bins, n_bins), ddof=1))
    if len(names) >= 2:
        a, b = names[:2]
        out["diff"] = out["rho"][a] - out["rho"][b]
        out["diff_se"] = float(np.nanstd(rho_boot[a] - rho_boot[b], ddof=1))
        out["between"] = float(_pearson(_ranks(preds[a]), _ranks(preds[b])))
    return out
