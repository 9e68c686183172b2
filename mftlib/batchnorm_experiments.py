r"""Experiment drivers of the batch-normalisation chapter: theory against finite networks.

Each driver runs the simulated networks of ``mftlib.networks.batchnorm`` (or trains the
classifiers) and returns the measured numbers together with the mean-field predictions of
:mod:`mftlib.batchnorm`, as plain dicts of numpy arrays and floats.
"""

from __future__ import annotations

import jax
import numpy as np

from mftlib import _validate as V
from mftlib import batchnorm as bn
from mftlib import fitting, training
from mftlib.networks import batchnorm as bnn


def _window(depth: int, skip: int) -> tuple[int, int]:
    if depth - 2 * skip < 2:
        raise ValueError(f"depth {depth} is too small to leave out {skip} layers at each end")
    return skip, depth - skip


def gradient_rates(
    key,
    x,
    phi,
    sigma_w2: float,
    depth: int,
    width: int,
    n_seeds: int,
    *,
    skip: int = 5,
    **kw,
) -> dict:
    r"""Measured per-layer growth of the squared gradient in ``n_seeds`` simulated networks.

    The rate of each seed is :func:`mftlib.fitting.rate` of the squared gradient norms read from
    the output towards the input, over the layers ``skip..depth - skip`` (transients near the
    input and the readout left out). Extra keywords (``gamma``, ``eps``, ``weights``) go to
    :func:`mftlib.networks.simulate_batchnorm`.

    Returns:
        dict with ``rates`` ``(n_seeds,)``, their ``mean`` and standard error ``se``, and the
        simulation's ``grad_norms`` and ``batch_cov``.
    """
    depth = V.positive_int("depth", depth)
    window = _window(depth, int(skip))
    sim = bnn.simulate(key, x, phi, sigma_w2, depth, width, n_seeds=n_seeds, **kw)
    rates = np.asarray(fitting.rate(sim["grad_norms"][:, ::-1], window=window).value)
    rates = np.atleast_1d(rates)
    se = rates.std(ddof=1) / np.sqrt(rates.size) if rates.size > 1 else np.nan
    return {
        "rates": rates,
        "mean": float(rates.mean()),
        "se": float(se),
        **sim,
    }


def fixed_point_correlation(batch_cov, last: int = 5) -> np.ndarray:
    """Mean off-diagonal correlation of simulated batch covariances over the ``last`` layers.

    Args:
        batch_cov: ``(n_seeds, depth, B, B)`` from :func:`mftlib.networks.simulate_batchnorm`.

    Returns:
        ``(n_seeds,)``: per seed, the correlation matrix of the covariance averaged over the last
        layers, averaged over its :math:`B(B-1)` off-diagonal entries.
    """
    cov = np.asarray(batch_cov)
    if cov.ndim != 4 or cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"batch_cov must be (n_seeds, depth, B, B), got shape {cov.shape}")
    c = cov[:, -int(last) :].mean(axis=1)
    d = np.sqrt(np.einsum("saa->sa", c))
    corr = c / (d[:, :, None] * d[:, None, :])
    b = c.shape[-1]
    return corr[:, ~np.eye(b, dtype=bool)].mean(axis=1)


def eps_sweep(
    key,
    x,
    phi,
    ratios,
    depth: int,
    width: int,
    n_seeds: int,
    *,
    eps: float = 1e-3,
    gamma=1.0,
) -> dict:
    r"""Gradient rate against :math:`\sigma_w^2/\epsilon`: theory and simulated networks.

    For each ratio :math:`r`, networks with :math:`\sigma_w^2 = r\epsilon` (batch norm with that
    :math:`\epsilon`) are simulated and their rates measured (:func:`gradient_rates`), against
    :func:`mftlib.batchnorm.bn_eps_fixed_point` at the batch size of ``x``.

    Returns:
        dict of arrays over ``ratios``: ``theory``, ``theory_se``, ``gain`` (effective gain),
        ``measured`` ``(n_seeds, n_ratios)``.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.ndim != 1 or np.any(ratios <= 0):
        raise ValueError("ratios must be a 1-D array of positive sigma_w2/eps values")
    b = np.shape(x)[0]
    theory, theory_se, gain, measured = [], [], [], []
    for i, r in enumerate(ratios):
        fp = bn.bn_eps_fixed_point(phi, b, r * eps, eps, gamma)
        theory.append(fp["rate"])
        theory_se.append(fp["rate_se"])
        gain.append(fp["gain"])
        sim = gradient_rates(
            jax.random.fold_in(key, i),
            x,
            phi,
            r * eps,
            depth,
            width,
            n_seeds,
            eps=eps,
            gamma=gamma,
        )
        measured.append(sim["rates"])
    return {
        "ratios": ratios,
        "theory": np.array(theory),
        "theory_se": np.array(theory_se),
        "gain": np.array(gain),
        "measured": np.array(measured).T,
    }


def forward_convergence(
    key,
    phi,
    batch_size: int,
    component: str,
    depth: int,
    width: int,
    n_seeds: int,
    *,
    strength: float = 0.5,
    in_dim: int = 256,
    fit_layers: int = 5,
) -> dict:
    r"""Decay of a deviation from the BSB1 fixed point, layer by layer, in simulated networks.

    The input batch has the Gram matrix :math:`X X^\top/d = I + t A` with :math:`A` the unit
    representative of the ``"standard"`` or ``"pair"`` component
    (:func:`mftlib.batchnorm.bn_forward_eigenvalues`) and :math:`t` = ``strength``. At layer
    :math:`l` the deviation is the projection :math:`p^l = \langle A, M^l\rangle/\kappa^l` of the
    post-activation batch covariance :math:`M^l` on :math:`A`, relative to its spread
    :math:`\kappa^l = \mathrm{tr}(GM^l)/(B-1)`; the theory predicts :math:`p^{l+1} \approx
    \lambda_A p^l` near the fixed point.

    The measured decay ``rate`` is :math:`(\bar p^{k+1}/\bar p^1)^{1/k}` of the seed-mean
    :math:`\bar p` over the first :math:`k` = ``fit_layers`` ratios, with a jackknife standard
    error over seeds (``rate_se``).

    Returns:
        dict with ``p`` ``(n_seeds, depth)`` (layers 1..depth), ``eigenvalue`` and its ``se``,
        ``rate``, ``rate_se``, ``fit_layers``, and the input batch ``x``.
    """
    b = V.positive_int("batch_size", batch_size)
    if component not in ("standard", "pair"):
        raise ValueError(f"component must be 'standard' or 'pair', got {component!r}")
    in_dim = V.positive_int("in_dim", in_dim)
    if in_dim < b:
        raise ValueError(f"in_dim must be at least batch_size {b}, got {in_dim}")
    ev = bn.bn_forward_eigenvalues(phi, b)
    a = bn.irrep_directions(b)[0 if component == "standard" else 1]
    gram = np.eye(b) + float(strength) * a
    if np.linalg.eigvalsh(gram).min() <= 0:
        raise ValueError(f"strength {strength} makes the input Gram matrix indefinite")
    rows = np.linalg.qr(np.random.default_rng(0).normal(size=(in_dim, b)))[0].T  # orthonormal
    x = np.linalg.cholesky(gram) @ rows * np.sqrt(in_dim)
    sim = bnn.simulate(key, x, phi, 1.0, depth, width, n_seeds=n_seeds)
    m = sim["batch_cov"]
    g = np.eye(b) - 1.0 / b
    kappa = np.einsum("ab,slba->sl", g, m) / (b - 1)
    p = np.einsum("ab,slab->sl", a, m) / kappa
    k = V.positive_int("fit_layers", fit_layers)
    if k >= depth:
        raise ValueError(f"fit_layers must be below depth {depth}, got {k}")
    rate, rate_se = _decay_rate(p, k)
    return {
        "p": p,
        "eigenvalue": ev[component],
        "se": ev[component + "_se"],
        "rate": rate,
        "rate_se": rate_se,
        "fit_layers": k,
        "x": x,
    }


def _decay_rate(p, k: int) -> tuple[float, float]:
    """(mean p[k] / mean p[0]) ** (1/k) over seeds, with its jackknife standard error."""

    def one(q):
        m = q.mean(axis=0)
        if m[0] <= 0 or m[k] <= 0:
            raise ValueError("the mean deviation must stay positive over the fitted layers")
        return (m[k] / m[0]) ** (1.0 / k)

    value = one(p)
    n = p.shape[0]
    if n < 2:
        return float(value), float("nan")
    jack = np.array([one(np.delete(p, i, axis=0)) for i in range(n)])
    se = np.sqrt((n - 1) / n * np.sum((jack - jack.mean()) ** 2))
    return float(value), float(se)


def trainability_map(
    key,
    data,
    phi,
    depths,
    batch_sizes,
    width: int,
    steps: int,
    learning_rate: float,
    n_seeds: int,
    *,
    gamma: float = 1.0,
) -> dict:
    r"""Test accuracy of trained batch-normalised classifiers over depth and batch size.

    For each batch size :math:`B` and depth :math:`L`, ``n_seeds`` classifiers
    (``mftlib.networks.batchnorm.init_classifier``) are trained with plain SGD for ``steps``
    steps on minibatches of :math:`B` (whose statistics batch norm uses) by
    :func:`mftlib.training.train_models`; the test accuracy is evaluated with the statistics of
    the whole test set (no running averages). Also returns the predicted rate :math:`\lambda_B`.

    Returns:
        dict with ``accuracy`` ``(n_batch, n_depth, n_seeds)``, ``rates`` ``(n_batch,)``,
        ``depths``, ``batch_sizes``.
    """
    depths = [V.positive_int("depth", d) for d in depths]
    batch_sizes = [V.positive_int("batch_size", b) for b in batch_sizes]
    if min(batch_sizes) < 4:
        raise ValueError("batch sizes must be at least 4 (the rate diverges for B <= 3)")
    acc = np.zeros((len(batch_sizes), len(depths), int(n_seeds)))
    for i, b in enumerate(batch_sizes):
        for j, depth in enumerate(depths):
            params = bnn.init_classifier(
                jax.random.fold_in(key, 1000 * i + j),
                data.x_train.shape[1],
                width,
                depth,
                data.n_classes,
                n_seeds,
            )
            out = training.train_models(
                jax.random.fold_in(key, 10**6 + i),
                bnn.classifier(phi, gamma),
                params,
                data,
                steps=steps,
                batch_size=b,
                learning_rate=learning_rate,
                optimizer="sgd",
                dtype=np.float32,
            )
            acc[i, j] = out["test_accuracy"]
    rates = np.array([bn.bn_gradient_rate(phi, b, gamma=gamma) for b in batch_sizes])
    return {
        "accuracy": acc,
        "rates": rates,
        "depths": np.array(depths),
        "batch_sizes": np.array(batch_sizes),
    }


def trainable_depth(accuracy, depths, threshold: float = 0.5) -> np.ndarray:
    """Deepest depth whose seed-mean accuracy reaches ``threshold``, for each row.

    Args:
        accuracy: ``(n_rows, n_depth, n_seeds)`` (as from :func:`trainability_map`).
        depths: the ``n_depth`` depths, increasing.
        threshold: accuracy that counts as trained.

    Returns:
        ``(n_rows,)`` float array: the deepest such depth, ``nan`` where none reaches it.
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    depths = np.asarray(depths, dtype=np.float64)
    if acc.ndim != 3 or acc.shape[1] != depths.size:
        raise ValueError(
            f"accuracy must be (n_rows, {depths.size}, n_seeds), got shape {acc.shape}"
        )
    if np.any(np.diff(depths) <= 0):
        raise ValueError("depths must increase")
    ok = acc.mean(axis=2) >= threshold
    out = np.full(acc.shape[0], np.nan)
    for i, row in enumerate(ok):
        if row.any():
            out[i] = depths[np.flatnonzero(row)[-1]]
    return out
