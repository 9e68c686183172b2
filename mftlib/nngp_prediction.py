r"""Prediction experiments of the NNGP chapter: exact GP classification with the NNGP kernel,
networks trained to convergence, the GP's uncertainty, and accuracy over the phase diagram.

Each function runs one experiment of chapter 2 end to end and returns plain numpy arrays:

* :func:`nngp_classifier`: exact GP classification with the NNGP kernel (Lee et al. 2018), with
  :func:`targets`, the kernels of :func:`nngp_kernels_at_depths`;
* :func:`train_mlp`: fully connected classifiers trained with Adam on the one-hot regression
  objective, over a grid of learning rates, vmapped in one compiled program;
* :func:`accuracy_vs_width` and :func:`accuracy_vs_train_size`: the NNGP against networks trained
  to convergence, as the width or the number of training points grows;
* :func:`uncertainty_vs_error`: the GP's posterior variance against its realised error, with rank
  statistics;
* :func:`nngp_accuracy_grid` and :func:`accuracy_vs_depth`: NNGP accuracy over the
  :math:`(\sigma_w^2, \sigma_b^2)` plane and through depth, with the size of the kernel's
  input-dependent part.

The kernel experiments of the chapter are in :mod:`mftlib.nngp_experiments`. Randomness comes
only from the keys passed in; kernels and GP algebra are float64 (the trained networks may run
in float32, see :func:`train_mlp`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import linalg, stats

from mftlib import _validate as V
from mftlib import dense, gp
from mftlib.activations import activation
from mftlib.networks import dense as dense_nets
from mftlib.training import optimize

__all__ = [
    "accuracy_vs_depth",
    "accuracy_vs_train_size",
    "accuracy_vs_width",
    "nngp_accuracy_grid",
    "nngp_classifier",
    "nngp_kernels_at_depths",
    "targets",
    "train_mlp",
    "uncertainty_vs_error",
]


def _labels(name: str, labels, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be integer labels of shape ({n},), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must lie in 0..{n_classes - 1}")
    return y


def targets(labels, n_classes: int = 10) -> np.ndarray:
    r"""One-hot regression targets shifted to zero mean over classes: :math:`1 - 1/C` for the
    true class, :math:`-1/C` for the others (Lee et al. 2018 use 0.9 and -0.1 for ten classes)."""
    n_classes = V.positive_int("n_classes", n_classes)
    y = np.asarray(labels)
    return np.eye(n_classes)[y] - 1.0 / n_classes


def nngp_classifier(
    x_train,
    labels_train,
    x_test,
    labels_test,
    phi,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    noise: float = 1e-2,
    n_classes: int = 10,
) -> dict:
    r"""Exact GP classification with the NNGP kernel (Lee et al. 2018).

    Regression on :func:`targets` with the kernel :func:`mftlib.nngp_kernel` and observation
    noise :math:`\sigma_\epsilon^2` = ``noise`` times the mean prior variance of the training
    inputs; the predicted class is the largest component of the posterior mean
    (:func:`mftlib.gp.posterior`).

    Returns:
        dict with ``mean`` ``(m, n_classes)``, ``variance`` ``(m,)``, ``correct`` ``(m,)`` bool,
        ``accuracy``, ``noise`` (the absolute :math:`\sigma_\epsilon^2`), ``jitter``, and
        ``scale``: the maximum-likelihood amplitude :math:`s` of the kernel for these targets,
        :math:`s = \mathrm{tr}\,Y^\top (K + \sigma_\epsilon^2 I)^{-1} Y / (nC)`. The
        posterior mean does not depend on :math:`s`; the predicted variances of the rescaled
        GP are :math:`s\,\sigma^2(x_*)` and :math:`s\,\sigma_\epsilon^2`.
    """
    x_train = np.asarray(V.matrix("x_train", x_train), np.float64)
    x_test = np.asarray(V.matrix("x_test", x_test), np.float64)
    y_tr = _labels("labels_train", labels_train, x_train.shape[0], n_classes)
    y_te = _labels("labels_test", labels_test, x_test.shape[0], n_classes)
    V.variance("noise", noise)
    k = np.asarray(
        dense.nngp_kernel(np.vstack([x_train, x_test]), None, phi, sigma_w2, sigma_b2, depth)
    )
    return _classify(k, y_tr, y_te, noise, n_classes)


def _classify(k: np.ndarray, y_tr, y_te, noise: float, n_classes: int) -> dict:
    """GP classification from the kernel of the training inputs followed by the test inputs."""
    n = y_tr.shape[0]
    sigma2 = float(noise) * float(np.mean(np.diag(k)[:n]))
    post = gp.posterior(
        k[:n, :n], k[n:, :n], np.diag(k)[n:], targets(y_tr, n_classes), noise=sigma2
    )
    correct = np.argmax(post["mean"], axis=1) == y_te
    # Maximum-likelihood amplitude of the kernel (the ten outputs as independent GPs):
    # s = tr(Y^T (K + sigma^2 I)^{-1} Y) / (n C), which rescales the predicted variances.
    chol, _ = gp.cholesky(k[:n, :n], sigma2)
    y = targets(y_tr, n_classes)
    white = linalg.solve_triangular(np.asarray(chol), y, lower=True)
    scale = float(np.sum(white**2) / y.size)
    return dict(post, correct=correct, accuracy=float(correct.mean()), noise=sigma2, scale=scale)


def _mlp_logits(params, x, fn):
    (w0, b0), *rest = params
    h = x @ w0.T + b0
    for w, b in rest:
        h = fn(h) @ w.T + b
    return h


def train_mlp(
    key,
    x_train,
    labels_train,
    x_test,
    labels_test,
    phi,
    sigma_w2: float,
    sigma_b2: float,
    width: int,
    depth: int,
    learning_rates,
    n_seeds: int = 4,
    steps: int = 2000,
    batch_size: int = 128,
    train_indices=None,
    n_classes: int = 10,
    n_record: int = 10,
    dtype=jnp.float64,
) -> dict:
    r"""Train fully connected classifiers with Adam for every learning rate on a grid, together.

    The networks are those of :func:`mftlib.networks.init_dense`: ``depth`` hidden layers of
    ``width`` units and a readout of ``n_classes`` units, weights
    :math:`\mathcal{N}(0, \sigma_w^2/\text{fan\_in})`, biases :math:`\mathcal{N}(0, \sigma_b^2)`
    (seed ``s`` is ``init_dense(split(key, n_seeds)[s], ...)``, the same at every learning rate).
    They minimise the one-hot regression loss of Lee et al. (2018),
    :math:`\tfrac1B\sum_{a\in\text{batch}}\lVert f(x_a) - e_{y_a}\rVert^2`, by ``steps`` steps of
    Adam (:func:`mftlib.training.optimize`) on minibatches of ``batch_size`` drawn with
    replacement from ``fold_in(key, 1)`` (full batch when ``batch_size`` is at least the number
    of training points). All ``len(learning_rates) * n_seeds`` networks run in one compiled,
    vmapped program.

    The learning rate is chosen without the test set: ``best`` is the one with the lowest final
    training loss (mean over seeds), i.e. the one that converges furthest in ``steps`` steps.

    Args:
        train_indices: optional ``(n_seeds, n)`` integer array: seed ``s`` trains on
            ``x_train[train_indices[s]]`` (training subsets); default, all of ``x_train``.
        dtype: float64 (default) or float32 for the networks and data.

    Returns:
        dict of numpy arrays with leading shape ``(n_lr, n_seeds)``: ``train_accuracy`` (on the
        seed's own training points), ``test_accuracy``, ``train_loss`` (the loss on all the seed's
        training points after the last step), ``loss_history`` ``(..., n_record)`` (minibatch
        losses averaged over blocks of steps); and ``learning_rates``, ``best`` (index) and
        ``best_lr``.
    """
    x_train = np.asarray(V.matrix("x_train", x_train), np.float64)
    x_test = np.asarray(V.matrix("x_test", x_test), np.float64)
    n_classes = V.positive_int("n_classes", n_classes)
    y_tr = _labels("labels_train", labels_train, x_train.shape[0], n_classes)
    y_te = _labels("labels_test", labels_test, x_test.shape[0], n_classes)
    if x_test.shape[1] != x_train.shape[1]:
        raise ValueError(f"x_test has {x_test.shape[1]} features, x_train {x_train.shape[1]}")
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("sigma_b2", sigma_b2)
    width = V.positive_int("width", width)
    depth = V.positive_int("depth", depth)
    lrs = np.atleast_1d(np.asarray(V.real("learning_rates", learning_rates, lo=0.0, lo_open=True)))
    if lrs.ndim != 1:
        raise ValueError(f"learning_rates must be a number or a 1-D grid, got shape {lrs.shape}")
    n_seeds = V.positive_int("n_seeds", n_seeds)
    steps = V.positive_int("steps", steps)
    batch_size = V.positive_int("batch_size", batch_size)
    n_record = V.positive_int("n_record", n_record)
    if steps % n_record:
        raise ValueError(f"steps ({steps}) must be a multiple of n_record ({n_record})")
    if jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if train_indices is None:
        idx = np.tile(np.arange(x_train.shape[0]), (n_seeds, 1))
    else:
        idx = np.asarray(train_indices)
        if (
            idx.ndim != 2
            or idx.shape[0] != n_seeds
            or not np.issubdtype(idx.dtype, np.integer)
            or idx.min() < 0
            or idx.max() >= x_train.shape[0]
        ):
            raise ValueError(
                f"train_indices must be integers in 0..{x_train.shape[0] - 1} of shape "
                f"(n_seeds={n_seeds}, n), got {idx.shape}"
            )
    key = V.key(key)
    n = idx.shape[1]
    full_batch = batch_size >= n
    seed_keys = jax.random.split(key, n_seeds)
    sizes = [width] * depth + [n_classes]
    params = [
        dense_nets.init_dense(k, x_train.shape[1], sizes, depth, sigma_w2, sigma_b2)
        for k in seed_keys
    ]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a).astype(dtype), *params)
    batches = (
        None
        if full_batch
        else jax.random.randint(jax.random.fold_in(key, 1), (steps, batch_size), 0, n)
    )
    out = _train_mlp_grid(
        stacked,
        jnp.asarray(lrs, dtype),
        jnp.asarray(x_train, dtype),
        jnp.asarray(y_tr),
        jnp.asarray(idx),
        jnp.asarray(x_test, dtype),
        jnp.asarray(y_te),
        batches,
        act,
        n_classes,
        steps,
        n_record,
    )
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    best = int(np.argmin(out["train_loss"].mean(axis=1)))
    out.update(learning_rates=lrs.astype(np.float64), best=best, best_lr=float(lrs[best]))
    return out


def _train_mlp_grid_impl(
    params, lrs, x, y, idx, x_test, y_test, batches, act, n_classes, steps, n_record
):
    fn = act.fn

    def one(p, lr, sub):
        xs, ys = x[sub], y[sub]
        onehot = jax.nn.one_hot(ys, n_classes, dtype=x.dtype)

        def loss(p, b=None):
            xb, tb = (xs, onehot) if b is None else (xs[b], onehot[b])
            return jnp.mean(jnp.sum((_mlp_logits(p, xb, fn) - tb) ** 2, axis=-1))

        opt = optax.adam(lr)
        if batches is None:
            p, values = optimize(loss, p, steps=steps, optimizer=opt)
        else:
            p, values = optimize(loss, p, (batches,), optimizer=opt)

        def accuracy(xa, ya):
            z = _mlp_logits(p, xa, fn)
            ok = (jnp.argmax(z, -1) == ya) & jnp.all(jnp.isfinite(z), -1)
            return jnp.mean(ok.astype(jnp.float64))

        return {
            "train_accuracy": accuracy(xs, ys),
            "test_accuracy": accuracy(x_test, y_test),
            "train_loss": loss(p),
            "loss_history": values.reshape(n_record, -1).mean(-1),
        }

    over_seeds = jax.vmap(one, in_axes=(0, None, 0))
    return jax.vmap(over_seeds, in_axes=(None, 0, None))(params, lrs, idx)


_train_mlp_grid = jax.jit(_train_mlp_grid_impl, static_argnums=(8, 9, 10, 11))


def accuracy_vs_width(
    key,
    data,
    phi,
    sigma_w2,
    sigma_b2,
    depth: int,
    widths,
    learning_rates,
    steps=2000,
    **train_kwargs,
) -> dict:
    r"""The NNGP against networks of growing width trained to convergence (Lee et al. 2018).

    The NNGP classifier (:func:`nngp_classifier`) and, for every width, :func:`train_mlp` with
    the same architecture and variances, its learning rate chosen on the training loss.
    ``steps`` is one number or one per width (narrow networks need more steps to converge);
    ``train_kwargs`` go to :func:`train_mlp` (``n_seeds``, ``batch_size``, ``dtype``, ...).

    Returns:
        dict with ``widths``, ``steps``, ``nngp_accuracy``, ``train_accuracy`` and ``test_accuracy``
        ``(n_widths, n_seeds)`` at each width's chosen learning rate, ``train_loss`` likewise,
        and ``best_lr`` ``(n_widths,)``.
    """
    widths = [V.positive_int("widths", int(w)) for w in np.atleast_1d(widths)]
    steps_per = [int(n) for n in np.broadcast_to(np.asarray(steps), (len(widths),))]
    nngp = nngp_classifier(
        data.x_train, data.y_train, data.x_test, data.y_test, phi, sigma_w2, sigma_b2, depth
    )
    rows = []
    for j, (width, n_steps) in enumerate(zip(widths, steps_per, strict=True)):
        run = train_mlp(
            jax.random.fold_in(V.key(key), j),
            data.x_train,
            data.y_train,
            data.x_test,
            data.y_test,
            phi,
            sigma_w2,
            sigma_b2,
            width,
            depth,
            learning_rates,
            steps=n_steps,
            **train_kwargs,
        )
        rows.append(
            {k: run[k][run["best"]] for k in ("train_accuracy", "test_accuracy", "train_loss")}
            | {"best_lr": run["best_lr"]}
        )
    return {
        "widths": np.asarray(widths),
        "steps": np.asarray(steps_per),
        "nngp_accuracy": nngp["accuracy"],
        **{k: np.stack([r[k] for r in rows]) for k in rows[0]},
    }


def accuracy_vs_train_size(
    key,
    data,
    phi,
    sigma_w2,
    sigma_b2,
    depth: int,
    sizes,
    n_subsets: int,
    width: int,
    learning_rates,
    **train_kwargs,
) -> dict:
    r"""NNGP and trained-network test accuracy against the number of training points.

    For every size :math:`n` and subset :math:`s`, the training points are the first :math:`n`
    of a random permutation of the training set (``jax.random.permutation(fold_in(key, s))``,
    so the subsets of one ``s`` are nested). The NNGP classifier and a network of width
    ``width`` trained by :func:`train_mlp` (one network per subset, learning rate chosen on the
    training loss) see the same subset; all are scored on the whole test set.

    Returns:
        dict with ``sizes``; ``nngp`` ``(n_subsets, n_sizes)``; ``trained_test`` and
        ``trained_train`` (train and test accuracy of the trained networks) of the same shape;
        ``difference`` (NNGP minus trained, per subset) and ``best_lr`` ``(n_sizes,)``.
    """
    sizes = [V.positive_int("sizes", int(n)) for n in np.atleast_1d(sizes)]
    n_subsets = V.positive_int("n_subsets", n_subsets)
    n_total = np.shape(data.x_train)[0]
    if max(sizes) > n_total:
        raise ValueError(f"sizes must be at most the {n_total} training points, got {max(sizes)}")
    key = V.key(key)
    perms = np.stack(
        [
            np.asarray(jax.random.permutation(jax.random.fold_in(key, s), n_total))
            for s in range(n_subsets)
        ]
    )
    x_tr, y_tr = np.asarray(data.x_train), np.asarray(data.y_train)
    nngp = np.zeros((n_subsets, len(sizes)))
    test, train = np.zeros_like(nngp), np.zeros_like(nngp)
    best_lr = np.zeros(len(sizes))
    for j, n in enumerate(sizes):
        for s in range(n_subsets):
            sub = perms[s, :n]
            nngp[s, j] = nngp_classifier(
                x_tr[sub], y_tr[sub], data.x_test, data.y_test, phi, sigma_w2, sigma_b2, depth
            )["accuracy"]
        run = train_mlp(
            jax.random.fold_in(key, 1000 + j),
            x_tr,
            y_tr,
            data.x_test,
            data.y_test,
            phi,
            sigma_w2,
            sigma_b2,
            width,
            depth,
            learning_rates,
            n_seeds=n_subsets,
            train_indices=perms[:, :n],
            **train_kwargs,
        )
        test[:, j] = run["test_accuracy"][run["best"]]
        train[:, j] = run["train_accuracy"][run["best"]]
        best_lr[j] = run["best_lr"]
    return {
        "sizes": np.asarray(sizes),
        "nngp": nngp,
        "trained_test": test,
        "trained_train": train,
        "difference": nngp - test,
        "best_lr": best_lr,
    }


def uncertainty_vs_error(mean, variance, labels, noise: float = 0.0, n_bins: int = 6) -> dict:
    r"""Does the GP's posterior variance predict its error? Binned and rank statistics.

    For each test point, the realised squared error :math:`e = C^{-1}\lVert\mu(x_*) - t\rVert^2`
    (mean over the :math:`C` outputs, targets :func:`targets`) and whether it is misclassified.
    A calibrated GP predicts :math:`\mathbb{E}[e] = \sigma^2(x_*) + \sigma_\epsilon^2` (the
    posterior variance of each output plus the noise).

    Returns:
        dict with, per bin of equal counts by posterior variance: ``bin_variance`` (median),
        ``bin_predicted`` (mean of :math:`\sigma^2 + \sigma_\epsilon^2`), ``bin_mse`` and
        ``bin_mse_se`` (mean realised error and its standard error), ``bin_error_rate`` and
        ``bin_error_se`` (binomial); and the tests over all points: ``spearman`` and
        ``spearman_p`` (rank correlation of :math:`\sigma^2` with :math:`e`), ``auc`` (the
        probability that a misclassified point has a larger variance than a correct one,
        Mann-Whitney) and ``auc_p`` (one-sided p-value), ``n_errors``, ``n``.
    """
    mean = np.asarray(V.matrix("mean", mean), np.float64)
    var = np.asarray(V.matrix("variance", variance, ndim=1), np.float64)
    n, n_classes = mean.shape
    if var.shape != (n,):
        raise ValueError(f"variance must have shape ({n},), got {var.shape}")
    y = _labels("labels", labels, n, n_classes)
    V.variance("noise", noise)
    n_bins = V.positive_int("n_bins", n_bins)
    if n_bins > n:
        raise ValueError(f"n_bins ({n_bins}) must be at most the number of points ({n})")
    sq = np.mean((mean - targets(y, n_classes)) ** 2, axis=1)
    wrong = np.argmax(mean, axis=1) != y
    bins = np.array_split(np.argsort(var, kind="stable"), n_bins)
    out = {
        "bin_variance": np.array([np.median(var[b]) for b in bins]),
        "bin_predicted": np.array([np.mean(var[b]) + noise for b in bins]),
        "bin_mse": np.array([np.mean(sq[b]) for b in bins]),
        "bin_mse_se": np.array([np.std(sq[b], ddof=1) / np.sqrt(len(b)) for b in bins]),
        "bin_error_rate": np.array([np.mean(wrong[b]) for b in bins]),
    }
    p = out["bin_error_rate"]
    sizes = np.array([len(b) for b in bins])
    # Binomial standard error, with the rate kept 1/(2 n) away from 0 and 1 so that a bin
    # without errors (or without correct points) still shows its resolution.
    clipped = np.clip(p, 0.5 / sizes, 1 - 0.5 / sizes)
    out["bin_error_se"] = np.sqrt(clipped * (1 - clipped) / sizes)
    rho, rho_p = stats.spearmanr(var, sq)
    n_err = int(wrong.sum())
    if 0 < n_err < n:
        u = stats.mannwhitneyu(var[wrong], var[~wrong], alternative="greater")
        auc, auc_p = float(u.statistic) / (n_err * (n - n_err)), float(u.pvalue)
    else:
        auc = auc_p = float("nan")
    out.update(
        spearman=float(rho), spearman_p=float(rho_p), auc=auc, auc_p=auc_p, n_errors=n_err, n=n
    )
    return out


def nngp_accuracy_grid(
    x_train,
    labels_train,
    x_test,
    labels_test,
    phi,
    sigma_w2_grid,
    sigma_b2_grid,
    depths,
    noise: float = 1e-2,
    n_classes: int = 10,
) -> dict:
    r"""NNGP test accuracy over the :math:`(\sigma_w^2, \sigma_b^2)` plane at several depths.

    Every cell runs :func:`nngp_classifier`. With it, the spread of the kernel's
    input-dependent part: the standard deviation over training pairs :math:`a < b` of the
    correlations :math:`K^L_{ab}/\sqrt{K^L_{aa}K^L_{bb}}`, which shrinks as :math:`e^{-L/\xi_c}`
    as the correlations approach their fixed point :math:`c^*`; and the mean-field quantities
    of each cell (:func:`mftlib.phase_diagram`).

    Returns:
        dict with ``accuracy`` and ``spread`` ``(n_depths, n_w, n_b)``, ``depths``, and
        ``q_star``, ``c_star``, ``chi1``, ``xi_c`` ``(n_w, n_b)``.
    """
    sw_grid = np.asarray(V.grid("sigma_w2_grid", sigma_w2_grid), np.float64)
    sb_grid = np.asarray(V.grid("sigma_b2_grid", sigma_b2_grid), np.float64)
    depths = [V.nonneg_int("depths", int(L)) for L in np.atleast_1d(depths)]
    x_train = np.asarray(V.matrix("x_train", x_train), np.float64)
    x_test = np.asarray(V.matrix("x_test", x_test), np.float64)
    n = x_train.shape[0]
    n_classes = V.positive_int("n_classes", n_classes)
    y_tr = _labels("labels_train", labels_train, n, n_classes)
    y_te = _labels("labels_test", labels_test, x_test.shape[0], n_classes)
    V.variance("noise", noise)
    x_all = np.vstack([x_train, x_test])
    acc = np.zeros((len(depths), sw_grid.size, sb_grid.size))
    spread = np.zeros_like(acc)
    upper = np.triu_indices(n, 1)
    for i, sw in enumerate(sw_grid):
        for j, sb in enumerate(sb_grid):
            kernels = nngp_kernels_at_depths(x_all, phi, sw, sb, depths)
            for d, k in enumerate(kernels):
                acc[d, i, j] = _classify(k, y_tr, y_te, noise, n_classes)["accuracy"]
                diag = np.sqrt(np.diag(k)[:n])
                spread[d, i, j] = np.std((k[:n, :n] / np.outer(diag, diag))[upper])
    pd = dense.phase_diagram(phi, sw_grid, sb_grid)
    return {
        "accuracy": acc,
        "spread": spread,
        "depths": np.asarray(depths),
        **{k: np.asarray(pd[k]) for k in ("q_star", "c_star", "chi1", "xi_c")},
    }


def nngp_kernels_at_depths(x, phi, sigma_w2, sigma_b2, depths) -> list[np.ndarray]:
    r"""The NNGP kernels of the inputs ``x`` at several depths, in one pass through the layers.

    Each layer applies the covariance map :math:`K \mapsto \sigma_w^2\,\mathbb{E}_{u \sim
    \mathcal{N}(0, K)}[\phi(u)\phi(u)^\top] + \sigma_b^2` to the whole matrix
    (``mftlib.activations.Activation.moment_matrix``, whose diagonal follows the stable
    one-input rule), starting from :math:`K^0 = \sigma_b^2 + \sigma_w^2 x\cdot x'/d`; the
    kernel is kept at each requested depth. Activations without a closed-form pair moment fall
    back to :func:`mftlib.nngp_kernel` at each depth.

    Returns:
        a list of ``(n, n)`` float64 kernels, in the order of ``depths``.
    """
    x = np.asarray(V.matrix("x", x), np.float64)
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("sigma_b2", sigma_b2)
    depths = [V.nonneg_int("depths", int(L)) for L in np.atleast_1d(depths)]
    if not act.has_closed_form:
        return [np.asarray(dense.nngp_kernel(x, None, act, sigma_w2, sigma_b2, L)) for L in depths]
    k = jnp.asarray(dense.nngp_kernel(x, None, act, sigma_w2, sigma_b2, 0))
    sw, sb = jnp.float64(sigma_w2), jnp.float64(sigma_b2)
    kept = {}
    for layer in range(max(depths) + 1):
        if layer > 0:
            k = _covariance_layer(act, k, sw, sb)
        if layer in depths:
            kept[layer] = np.asarray(k)
    return [kept[L] for L in depths]


@partial(jax.jit, static_argnums=0)
def _covariance_layer(act, k, sw, sb):
    return sw * act.moment_matrix(k) + sb


def accuracy_vs_depth(
    x_train,
    labels_train,
    x_test,
    labels_test,
    phi,
    sigma_w2,
    sigma_b2,
    depths,
    noise: float = 1e-2,
    n_classes: int = 10,
) -> dict:
    r"""NNGP test accuracy and the spread of the kernel's correlations against depth.

    For every depth :math:`L`, :func:`nngp_classifier` (with :func:`mftlib.nngp_kernel`) and
    the standard deviation over training pairs of :math:`K^L_{ab}/\sqrt{K^L_{aa}K^L_{bb}}`,
    the size of the kernel's input-dependent part, which the mean-field theory predicts to
    shrink as :math:`e^{-L/\xi_c}` once the correlations are near :math:`c^*`.

    Returns:
        dict with ``depths``, ``accuracy``, ``spread`` ``(n_depths,)``, ``predicted_classes``
        (how many test points fall in the most predicted class, per depth), ``top_class``
        (that class) and ``xi_c``,
        ``c_star`` of :func:`mftlib.depth_scales` and :func:`mftlib.c_star`.
    """
    x_train = np.asarray(V.matrix("x_train", x_train), np.float64)
    x_test = np.asarray(V.matrix("x_test", x_test), np.float64)
    n = x_train.shape[0]
    n_classes = V.positive_int("n_classes", n_classes)
    y_tr = _labels("labels_train", labels_train, n, n_classes)
    y_te = _labels("labels_test", labels_test, x_test.shape[0], n_classes)
    depths = [V.nonneg_int("depths", int(L)) for L in np.atleast_1d(depths)]
    x_all = np.vstack([x_train, x_test])
    upper = np.triu_indices(n, 1)
    acc, spread, top, top_class = [], [], [], []
    kernels = nngp_kernels_at_depths(x_all, phi, sigma_w2, sigma_b2, depths)
    for k in kernels:
        out = _classify(k, y_tr, y_te, noise, n_classes)
        acc.append(out["accuracy"])
        votes = np.bincount(np.argmax(out["mean"], 1), minlength=n_classes)
        top.append(int(votes.max()))
        top_class.append(int(votes.argmax()))
        diag = np.sqrt(np.diag(k)[:n])
        spread.append(float(np.std((k[:n, :n] / np.outer(diag, diag))[upper])))
    q = float(dense.q_star(phi, sigma_w2, sigma_b2))
    if np.isfinite(q) and q > 0:
        xi_c = float(dense.depth_scales(phi, sigma_w2, sigma_b2)[1])
        c_star = float(dense.c_star(phi, sigma_w2, sigma_b2))
    else:
        xi_c = c_star = float("nan")
    return {
        "depths": np.asarray(depths),
        "accuracy": np.asarray(acc),
        "spread": np.asarray(spread),
        "predicted_classes": np.asarray(top),
        "top_class": np.asarray(top_class),
        "xi_c": xi_c,
        "c_star": c_star,
    }
