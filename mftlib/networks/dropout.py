r"""Finite random fully connected networks with dropout, simulated.

The dense network of :func:`mftlib.networks.init_dense` (the same weights for the same key) with
dropout of keep probability :math:`\rho \in (0, 1]` on the post-activations,

.. math::

   h^l_i = \sum_j W^l_{ij}\, \frac{p^l_j}{\rho}\, \phi(h^{l-1}_j) + b^l_i, \qquad
   p^l_j \sim \mathrm{Bernoulli}(\rho),

with masks drawn afresh for every unit, layer and input. :func:`preactivation_moments` gives its
empirical moments; :func:`correlation_decay` and :func:`length_decay` measure the depth scales
:math:`\xi_c` and :math:`\xi_q` in it, :func:`depth_scale_sweep` does so along a list of
weight variances, and :func:`input_cosine` sets the inputs' first-layer correlation. They check
the mean-field theory of :mod:`mftlib.dropout` (Schoenholz et al. 2017); at :math:`\rho = 1`
the network is the dense one of :func:`mftlib.networks.preactivation_moments`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dropout, dynamics, fitting
from mftlib.activations import Activation
from mftlib.dense import correlation_map_traced
from mftlib.networks.dense import (
    check_simulation_args,
    kernel_correlation,
    make_inputs,
    sample_layer,
)

Array = jax.Array


def _f64(x) -> Array:
    return jnp.asarray(x, dtype=jnp.float64)


# --- finite networks with dropout ---------------------------------------------------------------


@partial(jax.jit, static_argnames=("act", "fan_out"))
def _dropout_step(seed_keys, h, layer, sw2, sb2, rho, *, act: Activation | None, fan_out: int):
    """h^l = W^l (mask / rho * phi(h^{l-1})) + b^l for every seed; layer 0 (act=None): W^0 x + b^0.

    W^l and b^l are the draws of :func:`mftlib.networks.init_dense` from the same seed key; the
    masks come from a separate stream, fold_in(fold_in(key, layer), 1), one per input and unit.
    """

    def one(key, h_prev):
        layer_key = jax.random.fold_in(key, layer)
        W, b = sample_layer(layer_key, h_prev.shape[-1], fan_out, sw2, sb2)
        if act is None:
            y = h_prev
        else:
            keep = jax.random.bernoulli(jax.random.fold_in(layer_key, 1), rho, h_prev.shape)
            y = jnp.where(keep, act.fn(h_prev) / rho, 0.0)
        h_new = y @ W.T + b
        return h_new, h_new @ h_new.T / fan_out

    return jax.vmap(one)(seed_keys, h)


def preactivation_moments(
    key, x, phi, sigma_w2, sigma_b2, rho, width: int, depth: int, n_seeds: int = 1
) -> dict[str, Array]:
    r"""Empirical moments :math:`q^l_{ab} = N^{-1}\sum_i h^l_i(x_a)h^l_i(x_b)`, with dropout.

    The network of :func:`mftlib.networks.preactivation_moments` (same weights for the same key),
    with dropout of keep probability ``rho`` on the post-activations feeding layers
    :math:`1, \dots, \text{depth}`; the masks are independent across units, layers and inputs (one
    forward pass per input, as in training). Seeds are ``jax.random.split(key, n_seeds)``.

    Returns:
        dict with ``kernel`` ``(n_seeds, depth+1, n, n)``, ``q`` ``(n_seeds, depth+1, n)`` and
        ``c`` ``(n_seeds, depth+1, n, n)``.
    """
    key, x, act, sw2, sb2, widths, depth, n_seeds = check_simulation_args(
        key, x, phi, sigma_w2, sigma_b2, width, depth, n_seeds
    )
    rho = float(dropout.check_keep("rho", rho))
    seed_keys = jax.random.split(key, n_seeds)
    h = jnp.broadcast_to(x, (n_seeds,) + x.shape)
    kernels = []
    for i, n_out in enumerate(widths):
        h, kernel = _dropout_step(
            seed_keys, h, i, sw2[i], sb2[i], rho, act=None if i == 0 else act, fan_out=n_out
        )
        kernels.append(kernel)
    kernel = jnp.stack(kernels, axis=1)
    return {
        "q": jnp.diagonal(kernel, axis1=-2, axis2=-1),
        "c": kernel_correlation(kernel),
        "kernel": kernel,
    }


# --- measuring a depth scale --------------------------------------------------------------------


def _mean_fit(deviation: np.ndarray, layers: np.ndarray, fit: np.ndarray, **method):
    """The depth scale fitted to the seed-mean deviation, and its jackknife standard error over
    the seeds (``nan`` with one seed); ``(nan, nan)`` with fewer than 3 fitted layers."""
    if fit.sum() < 3:
        return float("nan"), float("nan")

    def xi(rows):
        return float(fitting.exponential_scale(rows.mean(0)[fit], layers[fit], **method).value)

    n = deviation.shape[0]
    value = xi(deviation)
    if n < 2:
        return value, float("nan")
    loo = np.array([xi(np.delete(deviation, s, axis=0)) for s in range(n)])
    with np.errstate(invalid="ignore"):
        se = float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))
    return value, se


def correlation_decay(
    key,
    phi,
    sigma_w2: float,
    sigma_b2: float,
    rho: float = 1.0,
    c0: float = 0.0,
    width: int = 1000,
    depth: int = 40,
    n_seeds: int = 4,
    n_inputs: int = 4,
    d: int = 64,
    rate_tol: float = 0.2,
    floor: float | None = None,
) -> dict:
    r"""Measure :math:`\xi_c` in simulated networks from the decay of :math:`|c^l - c^*|`.

    ``n_inputs`` inputs with pairwise cosine ``c0`` and squared norm per feature chosen so that the
    first layer starts at the fixed length, :math:`q^0 = q^*` (then only the correlation moves).
    For each of ``n_seeds`` networks (with dropout of keep probability ``rho``; ``rho = 1`` is the
    dense network of :func:`mftlib.networks.preactivation_moments`) the correlation :math:`c^l`
    is averaged over the input pairs, and :math:`\xi_c` is fitted by
    :func:`mftlib.fitting.exponential_scale` to
    the signed deviation :math:`c^l - c^*` from the first layer on which the mean-field trajectory
    decays at its asymptotic rate (its layer-to-layer log-ratio within ``rate_tol`` of
    :math:`\log\chi_c`) to the last layer: a line through :math:`\log(1 - c^l)` where
    :math:`c^* = 1`, otherwise :math:`A e^{-l/\xi} + B` with a free offset :math:`B` for the
    finite-width shift of :math:`c^*` (nonlinear least squares, ``log=False, offset=True``).
    With ``floor`` (where :math:`c^* < 1`) the fit stops instead at the last layer on which the
    mean-field :math:`|c^l - c^*|` is at least ``floor``, and has no offset (``log=False``): the
    layers below the finite-width noise carry no information on the decay, and the
    :math:`O(1/N)` shift of :math:`c^*` is negligible above it.

    Returns:
        dict with ``layers`` ``(depth+1,)``, ``deviation`` ``(n_seeds, depth+1)`` (simulated
        :math:`c^l - c^*`), ``theory`` ``(depth+1,)`` (mean-field :math:`c^l - c^*`), ``fit``
        (boolean mask of the fitted layers), ``xi_fit`` ``(n_seeds,)`` (one fit per network),
        ``xi_mean`` and ``xi_mean_stderr`` (the same fit to the seed-mean deviation, which is what
        mean-field theory predicts, with its jackknife standard error over the seeds),
        ``xi_theory_fit`` (the same fit to the mean-field trajectory over the same layers: the
        estimator's own bias, which is not zero where the trajectory has not reached its
        asymptotic rate) and the theory's ``xi_c``, ``c_star``.
    """
    act = dropout.check_parameters(phi, sigma_w2, sigma_b2, rho)
    V.correlation("c0", c0)
    if floor is not None:
        V.real("floor", floor, lo=0.0)
    width = V.positive_int("width", width)
    depth = V.positive_int("depth", depth)
    n_inputs = V.positive_int("n_inputs", n_inputs)
    if n_inputs < 2:
        raise ValueError(f"n_inputs must be >= 2 (correlations need pairs), got {n_inputs}")
    th = dropout.quantities(act, sigma_w2, sigma_b2, rho)
    qs, cs, chic = float(th["q_star"]), float(th["c_star"]), float(th["chi_c"])
    dropout.check_q_star(qs, act, sigma_w2, sigma_b2, rho)
    if sigma_w2 == 0 or qs <= sigma_b2:
        raise ValueError("correlation_decay needs sigma_w2 > 0 and q* > sigma_b2")
    q_in = (qs - sigma_b2) / sigma_w2
    x = make_inputs(jax.random.fold_in(key, 0), n_inputs, d, q_in, c0)
    sim = preactivation_moments(
        jax.random.fold_in(key, 1), x, act, sigma_w2, sigma_b2, rho, width, depth, n_seeds
    )
    iu = np.triu_indices(n_inputs, 1)
    c_sim = np.asarray(sim["c"])[:, :, iu[0], iu[1]].mean(-1)
    # Mean-field trajectory of the correlation at q*, from the first layer's c^0.
    sw, sb = _f64(sigma_w2), _f64(sigma_b2)
    c_first = (sigma_w2 * q_in * c0 + sigma_b2) / qs
    traj = _correlation_trajectory(act, sw, sb, _f64(qs), _f64(c_first), depth)
    theory = np.asarray(traj) - cs
    deviation = c_sim - cs
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(np.abs(theory[1:] / theory[:-1]))
    ok = np.abs(ratio - np.log(chic)) <= rate_tol * abs(np.log(chic))
    start = int(np.argmax(ok)) if ok.any() else depth + 1
    layers = np.arange(depth + 1)
    fit = layers >= start
    ordered = cs >= 1.0
    if floor is not None and not ordered:
        fit &= np.abs(theory) >= float(floor)
    method = dict(log=ordered, offset=not ordered and floor is None)
    if fit.sum() >= 3:
        xi = fitting.exponential_scale(deviation[:, fit], layers[fit], **method).value
    else:
        xi = np.full(deviation.shape[0], np.nan)
    xi_mean, xi_mean_se = _mean_fit(deviation, layers, fit, **method)
    xi_theory_fit, _ = _mean_fit(theory[None], layers, fit, **method)
    return {
        "layers": layers,
        "deviation": deviation,
        "theory": theory,
        "fit": fit,
        "xi_fit": np.asarray(xi),
        "xi_mean": xi_mean,
        "xi_mean_stderr": xi_mean_se,
        "xi_theory_fit": xi_theory_fit,
        "xi_c": float(th["xi_c"]),
        "c_star": cs,
    }


@partial(jax.jit, static_argnums=(0, 5))
def _correlation_trajectory(act: Activation, sw, sb, q, c0, depth: int):
    return dynamics.iterate(lambda c: correlation_map_traced(act, sw, sb, q, c), c0, depth)


def _fit_start(theory: np.ndarray, chi: float, rate_tol: float) -> int:
    """First layer from which the mean-field deviation ``theory`` (from its fixed point) decays at
    its asymptotic rate: the layer-to-layer log-ratio within ``rate_tol`` of ``log(chi)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(np.abs(theory[1:] / theory[:-1]))
    ok = np.abs(ratio - np.log(chi)) <= rate_tol * abs(np.log(chi))
    return int(np.argmax(ok)) if ok.any() else theory.size


def length_decay(
    key,
    phi,
    sigma_w2: float,
    sigma_b2: float,
    rho: float = 1.0,
    q0_ratio: float = 2.0,
    width: int = 1000,
    depth: int = 10,
    n_seeds: int = 4,
    n_inputs: int = 8,
    d: int = 64,
    rate_tol: float = 0.2,
    floor: float = 0.02,
) -> dict:
    r"""Measure :math:`\xi_q` in simulated networks from the decay of :math:`q^l - q^*`.

    ``n_inputs`` inputs of random direction whose first-layer length is
    :math:`q^0 = \text{q0\_ratio}\cdot q^*` (squared norm per feature
    :math:`(q^0 - \sigma_b^2)/\sigma_w^2`) go through ``n_seeds`` networks with dropout of keep
    probability ``rho`` (``rho = 1``: the dense network of
    :func:`mftlib.networks.preactivation_moments`). For each network the length :math:`q^l` is
    averaged over the inputs, and :math:`\xi_q` is fitted to :math:`q^l - q^* = A e^{-l/\xi}`
    by nonlinear least squares on the signed deviations
    (:func:`mftlib.fitting.exponential_scale`, ``log=False``) over the layers from the first one
    on which the mean-field trajectory :math:`q^{l+1} = \mathcal{V}(q^l)` decays at its
    asymptotic rate :math:`\chi_q = \mathcal{V}'(q^*) = e^{-1/\xi_q}` (its layer-to-layer
    log-ratio within ``rate_tol`` of :math:`\log\chi_q`) to the last one on which the mean-field
    :math:`|q^l - q^*|` is at least ``floor`` :math:`\times\,q^*` (below, the finite-width
    fluctuations of :math:`q^l`, of relative size :math:`\sim\sqrt{2/N}`, carry no information
    on the decay). The theory is Schoenholz et al. (2017): :math:`|q^l - q^*| \sim
    e^{-l/\xi_q}`.

    Args:
        key: JAX PRNG key (inputs from ``fold_in(key, 0)``, networks from ``fold_in(key, 1)``).
        phi, sigma_w2, sigma_b2, rho: the network (``sigma_w2 > 0``).
        q0_ratio: the first layer's length in units of :math:`q^*` (> 0, not 1).
        width, depth, n_seeds, n_inputs, d: sizes.
        rate_tol: tolerance on the asymptotic rate that selects the first fitted layer.
        floor: the smallest mean-field :math:`|q^l - q^*|/q^*` fitted (>= 0).

    Returns:
        dict with ``layers`` ``(depth+1,)``, ``deviation`` ``(n_seeds, depth+1)`` (simulated
        :math:`q^l - q^*`), ``theory`` ``(depth+1,)`` (mean-field :math:`q^l - q^*`), ``fit``
        (boolean mask of the fitted layers), ``xi_fit`` ``(n_seeds,)`` (NaN where fewer than 3
        layers are fitted), ``xi_mean`` and ``xi_mean_stderr`` (the fit to the seed-mean
        deviation, with its jackknife standard error over the seeds), ``xi_theory_fit`` (the
        same fit to the mean-field trajectory over the same layers), the theory's ``xi_q`` and
        ``q_star``.

    Raises:
        ValueError: naming the parameter, for a bad variance, keep probability, size, ``floor``
            or ``q0_ratio``, or where :math:`q^*` is 0 or infinite.
    """
    act = dropout.check_parameters(phi, sigma_w2, sigma_b2, rho)
    V.real("q0_ratio", q0_ratio, lo=0.0, lo_open=True)
    if float(q0_ratio) == 1.0:
        raise ValueError("q0_ratio must differ from 1 (the inputs would start at q*)")
    floor = float(V.real("floor", floor, lo=0.0))
    width = V.positive_int("width", width)
    depth = V.positive_int("depth", depth)
    n_inputs = V.positive_int("n_inputs", n_inputs)
    V.positive_int("d", d)
    th = dropout.quantities(act, sigma_w2, sigma_b2, rho)
    qs = float(th["q_star"])
    dropout.check_q_star(qs, act, sigma_w2, sigma_b2, rho)
    if float(sigma_w2) == 0.0:
        raise ValueError("length_decay needs sigma_w2 > 0")
    q_first = float(q0_ratio) * qs
    if q_first <= sigma_b2:
        raise ValueError(
            f"q0_ratio * q* = {q_first:.4g} must exceed sigma_b2 = {sigma_b2} (the inputs' "
            "squared norm would be negative)"
        )
    q_in = (q_first - sigma_b2) / sigma_w2
    x = make_inputs(jax.random.fold_in(key, 0), n_inputs, d, q_in)
    sim = preactivation_moments(
        jax.random.fold_in(key, 1), x, act, sigma_w2, sigma_b2, rho, width, depth, n_seeds
    )
    deviation = np.asarray(sim["q"]).mean(-1) - qs
    traj = [q_first]
    for _ in range(depth):
        traj.append(float(dropout.length_map(act, sigma_w2, sigma_b2, rho, traj[-1])))
    theory = np.asarray(traj) - qs
    chi_q = float(np.exp(-1.0 / float(th["xi_q"])))
    layers = np.arange(depth + 1)
    fit = (layers >= _fit_start(theory, chi_q, rate_tol)) & (np.abs(theory) >= floor * qs)
    if fit.sum() >= 3:
        xi = fitting.exponential_scale(deviation[:, fit], layers[fit], log=False).value
    else:
        xi = np.full(deviation.shape[0], np.nan)
    xi_mean, xi_mean_se = _mean_fit(deviation, layers, fit, log=False)
    xi_theory_fit, _ = _mean_fit(theory[None], layers, fit, log=False)
    return {
        "layers": layers,
        "deviation": deviation,
        "theory": theory,
        "fit": fit,
        "xi_fit": np.atleast_1d(np.asarray(xi, np.float64)),
        "xi_mean": xi_mean,
        "xi_mean_stderr": xi_mean_se,
        "xi_theory_fit": xi_theory_fit,
        "xi_q": float(th["xi_q"]),
        "q_star": qs,
    }


def depth_scale_sweep(
    key, phi, sigma_w2_values, sigma_b2: float, rho: float = 1.0, *, kind: str = "c", **kwargs
) -> dict:
    r"""Measure a depth scale in simulated networks at several :math:`\sigma_w^2`.

    Runs :func:`correlation_decay` (``kind='c'``, :math:`\xi_c`) or :func:`length_decay`
    (``kind='q'``, :math:`\xi_q`) at each :math:`\sigma_w^2` with the key
    ``fold_in(key, i)`` for the ``i``-th value; ``kwargs`` go to that function (``width``,
    ``depth``, ``n_seeds``, ``c0``, ``q0_ratio``, ``floor``, ...). ``depth``, ``c0`` and
    ``q0_ratio`` may also be sequences with one value per :math:`\sigma_w^2` (deeper networks
    where the depth scale is longer, a start near the fixed point where the map is curved).

    Returns:
        dict with ``sigma_w2`` ``(n,)``, ``theory`` ``(n,)`` (the mean-field :math:`\xi_c` or
        :math:`\xi_q`), ``xi_fit`` ``(n_seeds, n)`` (the per-network fits), ``mean`` and
        ``stderr`` ``(n,)`` (their mean over seeds and its standard error,
        :math:`\mathrm{std}/\sqrt{n_\text{seeds}}`), ``xi_mean`` and ``xi_mean_stderr``
        ``(n,)`` (the fit to the seed-mean deviation, with its jackknife standard error: robust
        where single networks are too noisy to resolve the decay), ``theory_fit`` ``(n,)`` (the
        same fit to the mean-field trajectory, see :func:`correlation_decay`), and ``runs`` (the
        list of the per-point result dicts).
    """
    if kind not in ("c", "q"):
        raise ValueError(f"kind must be 'c' (xi_c) or 'q' (xi_q), got {kind!r}")
    sw = np.atleast_1d(np.asarray(V.variance("sigma_w2_values", sigma_w2_values), np.float64))
    if sw.ndim != 1 or sw.size == 0:
        raise ValueError("sigma_w2_values must be a non-empty 1-D sequence")
    per_point = {}
    for name in ("depth", "c0", "q0_ratio"):
        value = kwargs.pop(name, None)
        if value is None:
            continue
        if np.ndim(value) == 0:
            per_point[name] = [value] * sw.size
        elif np.ndim(value) == 1 and len(value) == sw.size:
            per_point[name] = [v.item() if hasattr(v, "item") else v for v in value]
        else:
            raise ValueError(
                f"{name} must be a number or one value per sigma_w2 ({sw.size}), got {value!r}"
            )
    run = correlation_decay if kind == "c" else length_decay
    runs = []
    for i, s in enumerate(sw):
        extra = {name: values[i] for name, values in per_point.items()}
        runs.append(
            run(jax.random.fold_in(key, i), phi, float(s), sigma_b2, rho, **kwargs, **extra)
        )
    fits = np.stack([r["xi_fit"] for r in runs], axis=1)
    n = fits.shape[0]
    with np.errstate(invalid="ignore"):
        se = fits.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(sw.size, np.nan)
    return {
        "sigma_w2": sw,
        "theory": np.array([r["xi_c" if kind == "c" else "xi_q"] for r in runs]),
        "xi_fit": fits,
        "mean": fits.mean(axis=0),
        "stderr": se,
        "xi_mean": np.array([r["xi_mean"] for r in runs]),
        "xi_mean_stderr": np.array([r["xi_mean_stderr"] for r in runs]),
        "theory_fit": np.array([r["xi_theory_fit"] for r in runs]),
        "runs": runs,
    }


def input_cosine(phi, sigma_w2: float, sigma_b2: float, c_first, rho: float = 1.0):
    r"""The input cosine :math:`c_0` for which inputs at the fixed length (first-layer
    :math:`q^0 = q^*`, as in :func:`correlation_decay`) have first-layer correlation
    ``c_first``: :math:`c^0 = (\sigma_w^2 q_\text{in} c_0 + \sigma_b^2)/q^*` with
    :math:`\sigma_w^2 q_\text{in} = q^* - \sigma_b^2`, so
    :math:`c_0 = (c_\text{first}\,q^* - \sigma_b^2)/(q^* - \sigma_b^2)`. Broadcasts over
    ``c_first``.

    Raises:
        ValueError: naming the parameter, if a resulting cosine lies outside [-1, 1], or for bad
            variances, keep probability or a :math:`q^*` not above :math:`\sigma_b^2`.
    """
    act = dropout.check_parameters(phi, sigma_w2, sigma_b2, rho)
    qs = float(dropout.q_star(act, sigma_w2, sigma_b2, rho))
    dropout.check_q_star(qs, act, sigma_w2, sigma_b2, rho)
    if qs <= sigma_b2:
        raise ValueError(f"q* = {qs:.4g} must exceed sigma_b2 = {sigma_b2} to set a cosine")
    c0 = (np.asarray(c_first, np.float64) * qs - sigma_b2) / (qs - sigma_b2)
    if np.any(np.abs(c0) > 1.0) or not np.all(np.isfinite(c0)):
        raise ValueError(f"c_first = {c_first!r} needs input cosines {c0!r} outside [-1, 1]")
    return c0
