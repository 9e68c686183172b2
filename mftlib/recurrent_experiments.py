r"""Experiment drivers of the recurrent-network chapter: memory times measured in random networks,
their width dependence, the state-candidate cross term that weight tying adds, and the
trainable delay of the recall task.

Built on :mod:`mftlib.recurrent` (the mean field) and :mod:`mftlib.networks.recurrent` (finite
cells). Every function takes an explicit PRNG key and works in float64.

* :func:`one_minus_c`: :math:`1 - c_t` of two sequences that differ at :math:`t = 1` only, in
  ``seeds`` random networks (:func:`mftlib.networks.recurrent.perturbation_covariances`).
* :func:`memory_time_fit`: the memory time :math:`\xi` fitted per seed to
  :math:`\log(1 - c_t) = a - t/\xi`; :func:`pooled_memory_time`: one fit to the seed average of
  :math:`\log(1 - c_t)`, with a jackknife standard error over seeds (robust to the rare seed whose
  own fit runs away).
* :func:`vanilla_width_dependence`: the vanilla RNN's fitted :math:`\xi` at several widths,
  against the same fit applied to the mean-field curve.
* :func:`state_candidate_correlation`: the correlation of the state :math:`h_{t-1}` (the LSTM's
  cell :math:`c_{t-1}`) with the new content written into it at step :math:`t` (the GRU's and
  LSTM's candidate :math:`g_t`, the minimalRNN's input :math:`z_t`), and of their differences
  between two sequences. The gated mean-field maps drop this cross term.
* :func:`trainable_delays`: train classifiers on the delayed-recall task over delays and seeds
  and return the longest delay each initialisation learns.
* :func:`gate_variance_sweep`: the GRU's or the LSTM's memory time (mean field and annealed
  networks) and Jacobian spectrum (tied networks) as the gates' recurrent weight variance is set
  apart from the candidate's (per-gate variances).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import fitting, recurrent
from mftlib.networks import recurrent as rnn

__all__ = [
    "gate_variance_sweep",
    "memory_time_fit",
    "one_minus_c",
    "pooled_memory_time",
    "state_candidate_correlation",
    "trainable_delays",
    "vanilla_width_dependence",
]


def _cell(cell: str) -> str:
    if cell not in rnn.CELLS:
        raise ValueError(f"cell must be one of {rnn.CELLS}, got {cell!r}")
    return cell


#: Rounding floor of :math:`1 - c_t` in float64: smaller values are left out of the fits.
FLOOR = 1e-11


def one_minus_c(key, cell: str, n: int, length: int, seeds: int, **kw) -> np.ndarray:
    r""":math:`1 - c_t`, :math:`t = 1..` ``length``, of two sequences differing at :math:`t = 1`.

    :math:`c_t = Q^{ab}_t/\sqrt{Q^{aa}_t Q^{bb}_t}` from
    :func:`mftlib.networks.recurrent.perturbation_covariances` (keywords passed on: the cell's
    hyperparameters, ``q0``, ``c0``, ``r``, ``annealed``).

    Returns:
        array ``(seeds, length)``.
    """
    Q = rnn.perturbation_covariances(key, cell, n, length, seeds, **kw)
    return 1.0 - np.asarray(jax.vmap(recurrent.correlation)(Q))


def _check_curves(y) -> np.ndarray:
    y = np.asarray(y, np.float64)
    if y.ndim != 2 or y.shape[1] < 3:
        raise ValueError(f"one_minus_c must have shape (seeds, length >= 3), got {y.shape}")
    return y


def _check_start(start, length: int) -> int:
    start = V.positive_int("start", start)
    if start > length - 2:
        raise ValueError(f"start must leave at least two steps of {length}, got {start}")
    return start


def memory_time_fit(one_minus_c, start: int = 5) -> np.ndarray:
    r"""The memory time fitted per seed: :math:`\log(1 - c_t) = a - t/\xi` by least squares over
    :math:`t \ge` ``start`` (:func:`mftlib.fitting.exponential_scale`), leaving out values at the
    rounding floor :math:`10^{-11}`; ``inf`` where a curve does not decay.

    Args:
        one_minus_c: ``(seeds, length)``, time :math:`t = 1..` ``length`` on the last axis.
        start: first step of the fit window.

    Returns:
        array ``(seeds,)``.
    """
    y = _check_curves(one_minus_c)
    start = _check_start(start, y.shape[1])
    t = np.arange(1, y.shape[1] + 1)
    return np.asarray(fitting.exponential_scale(y, t, window=(start, None), floor=FLOOR).value)


def _pooled_fit(logs: np.ndarray, t: np.ndarray) -> float:
    slope = np.polyfit(t, logs, 1)[0]
    return np.inf if slope >= 0 else -1.0 / slope


def pooled_memory_time(one_minus_c, start: int = 5) -> tuple[float, float]:
    r"""One memory time from all seeds: a line through the seed average of
    :math:`\log(1 - c_t)` over :math:`t \ge` ``start`` (steps where any seed has reached the
    rounding floor are left out), :math:`\xi = -1/\text{slope}`.

    The standard error is the jackknife one over seeds,
    :math:`\sqrt{(S-1)/S\,\sum_s(\xi_{(s)} - \bar\xi_{(\cdot)})^2}` with :math:`\xi_{(s)}` the fit
    without seed :math:`s`. Averaging logarithms first keeps one seed whose own fit runs away
    (a nearly flat curve) from dominating, as it does the mean of per-seed fits.

    Returns:
        ``(xi, stderr)``.
    """
    y = _check_curves(one_minus_c)
    if y.shape[0] < 2:
        raise ValueError("pooled_memory_time needs at least two seeds")
    start = _check_start(start, y.shape[1])
    t = np.arange(1, y.shape[1] + 1)
    keep = (t >= start) & np.all(np.isfinite(y) & (y > FLOOR), axis=0)
    if keep.sum() < 2:
        raise ValueError("fewer than two steps above the rounding floor in the window")
    logs = np.log(y[:, keep])
    xi = _pooled_fit(logs.mean(0), t[keep])
    S = y.shape[0]
    jack = np.array([_pooled_fit(np.delete(logs, s, 0).mean(0), t[keep]) for s in range(S)])
    se = np.sqrt((S - 1) / S * np.sum((jack - jack.mean()) ** 2))
    return float(xi), float(se)


def vanilla_width_dependence(
    key,
    widths,
    *,
    sigma_w2: float,
    sigma_u2: float,
    sigma_b2: float,
    r: float = 1.0,
    length: int = 48,
    seeds: int = 16,
    start: int = 5,
    phi="tanh",
) -> dict:
    r"""The vanilla RNN's memory time measured at several widths, against the mean field.

    At each width, ``seeds`` networks run the perturbation experiment from the fixed point
    :math:`q^*` (:func:`one_minus_c`); the memory time is fitted per seed
    (:func:`memory_time_fit`) and pooled (:func:`pooled_memory_time`). The mean-field curve of
    :math:`1 - c_t` (:func:`mftlib.recurrent.vanilla_trajectory`) gets the same fit over the same
    window (``xi_curve``): near the critical line the window is not yet asymptotic, so this, not
    the asymptotic :math:`\xi = -1/\log\chi_c` (``xi_theory``), is what a finite window measures.

    Returns:
        dict with ``widths``, ``xi_theory``, ``xi_curve`` (floats), and per width (arrays):
        ``xi_seeds`` ``(len(widths), seeds)``, ``xi_mean``, ``xi_se``, ``xi_median`` (mean,
        standard error and median of the per-seed fits), ``xi_pooled``, ``xi_pooled_se``.
    """
    widths = [V.positive_int("widths", w) for w in np.atleast_1d(widths)]
    length = V.positive_int("length", length)
    seeds = V.positive_int("seeds", seeds)
    if seeds < 2:
        raise ValueError("seeds must be at least 2 (a standard error is reported)")
    fp = recurrent.vanilla_fixed_point(phi, sigma_w2, sigma_u2, sigma_b2, r)
    q = float(fp["q_star"])
    S = recurrent.vanilla_trajectory(
        phi,
        sigma_w2,
        sigma_u2,
        sigma_b2,
        q * jnp.ones((2, 2)),
        recurrent.perturbation_inputs(r, length, 0),
    )
    curve = 1.0 - np.asarray(recurrent.correlation(S[1:]))
    xi_curve = float(memory_time_fit(curve[None], start)[0])
    per_seed, pooled = [], []
    for i, n in enumerate(widths):
        y = one_minus_c(
            jax.random.fold_in(key, i),
            "vanilla",
            n,
            length,
            seeds,
            q0=q,
            r=r,
            sigma_w2=sigma_w2,
            sigma_u2=sigma_u2,
            sigma_b2=sigma_b2,
            phi=phi,
        )
        per_seed.append(memory_time_fit(y, start))
        pooled.append(pooled_memory_time(y, start))
    xs = np.array(per_seed)
    pooled = np.array(pooled)
    with np.errstate(invalid="ignore"):  # inf - inf where a seed did not decay: nan
        mean, se = xs.mean(1), xs.std(1, ddof=1) / np.sqrt(seeds)
    return {
        "widths": np.array(widths),
        "xi_theory": float(fp["xi_c"]),
        "xi_curve": xi_curve,
        "xi_seeds": xs,
        "xi_mean": mean,
        "xi_se": se,
        "xi_median": np.median(xs, axis=1),
        "xi_pooled": pooled[:, 0],
        "xi_pooled_se": pooled[:, 1],
    }


# --- the cross term the gated maps drop ---------------------------------------------------------


def _content(cell, p, h, x):
    """The new content written into the state at this step, and the state it is mixed with:
    ``(old, new, next_state)`` (GRU: ``h``, candidate; LSTM: cell ``c``, candidate ``g``;
    minimalRNN: ``h``, input ``z``)."""
    if cell == "gru":
        r = jax.nn.sigmoid(h @ p["Wr"].T + x @ p["Ur"].T + p["br"])
        g = jnp.tanh((r * h) @ p["Wh"].T + x @ p["Uh"].T + p["bh"])
        return h, g, rnn.step(cell, p, h, x)
    if cell == "lstm":
        c, hh = jnp.split(h, 2, axis=-1)
        g = jnp.tanh(hh @ p["Wg"].T + x @ p["Ug"].T + p["bg"])
        return c, g, rnn.step(cell, p, h, x)
    z = x @ p["P"].T if "P" in p else x
    return h, z, rnn.step(cell, p, h, x)


def _corr(a, b):
    """Correlation over units of the last axis, :math:`a\\cdot b/\\sqrt{(a\\cdot a)(b\\cdot b)}`."""
    return jnp.sum(a * b, -1) / jnp.sqrt(jnp.sum(a * a, -1) * jnp.sum(b * b, -1))


@partial(jax.jit, static_argnums=(0, 2, 3, 4))
def _cross_one(cell, key, n, length, annealed, hyper, q0, c0, r):
    kp, kh, kx, ky = jax.random.split(key, 4)
    sw, su, sb, mus = hyper
    h0 = jnp.sqrt(q0) * jax.random.normal(kh, (n,), jnp.float64)
    if cell == "lstm":
        c = jnp.sqrt(c0) * jax.random.normal(jax.random.fold_in(kh, 1), (n,), jnp.float64)
        h0 = jnp.concatenate([c, h0])
    xs = jnp.sqrt(r) * jax.random.normal(kx, (length, n), jnp.float64)
    xb = xs.at[0].set(jnp.sqrt(r) * jax.random.normal(ky, (n,), jnp.float64))
    base = rnn.init(kp, cell, n, n, sw, su, sb, **mus)
    names = [k for k in base if k.startswith("W")]

    def body(h, inp):
        k, x = inp
        p = base
        if annealed:
            p = {**base, **rnn.fresh_recurrent_weights(k, names, n, sw)}
        old, new, h_next = _content(cell, p, h, x)  # each (2, n): the two sequences
        return h_next, (
            _corr(old[0], new[0]),
            _corr(old[0] - old[1], new[0] - new[1]),
        )

    inputs = (jax.random.split(kp, length), jnp.stack([xs, xb], axis=1))
    return jax.lax.scan(body, jnp.stack([h0, h0]), inputs)[1]


def state_candidate_correlation(
    key,
    cell: str,
    n: int,
    length: int,
    seeds: int,
    *,
    annealed: bool = False,
    sigma_w2,
    sigma_u2,
    sigma_b2,
    mu_b=0.0,
    mu_u=0.0,
    mu_r=0.0,
    mu_f=0.0,
    mu_i=0.0,
    mu_o=0.0,
    q0=1.0,
    c0=1.0,
    r=1.0,
) -> dict:
    r"""How strongly the state and the new content written into it are correlated.

    A gated cell writes :math:`s_t = a_t\odot s_{t-1} + b_t\odot g_t` (GRU: :math:`s = h`,
    :math:`a = u`, :math:`b = 1 - u`, :math:`g` the candidate; LSTM: :math:`s = c`, :math:`a = f`,
    :math:`b = i`; minimalRNN: :math:`g = z_t`, the input). The mean-field maps of
    :mod:`mftlib.recurrent` drop the cross term :math:`\mathbb E[a b\, s_{t-1} g_t]`, which vanishes
    when the recurrent weights are drawn afresh at every step. This runs the perturbation
    experiment of :func:`one_minus_c` (input width ``d = n``; two sequences differing at
    :math:`t = 1`) and records, at every step, the correlation over units of :math:`s_{t-1}` with
    :math:`g_t` in sequence :math:`a` (``state``) and of the differences
    :math:`s^a_{t-1} - s^b_{t-1}` with :math:`g^a_t - g^b_t` (``difference``); ``annealed=True``
    draws fresh recurrent weights every step.

    Returns:
        dict of arrays ``(seeds, length)``: ``state``, ``difference`` (step :math:`t = 1..`).
    """
    if cell not in ("minimal", "gru", "lstm"):
        raise ValueError(f"cell must be 'minimal', 'gru' or 'lstm', got {cell!r}")
    n, length = V.positive_int("n", n), V.positive_int("length", length)
    seeds = V.positive_int("seeds", seeds)
    for name, v in (("q0", q0), ("c0", c0), ("r", r)):
        V.variance(name, v)
    mus = {
        "mu_b": mu_b,
        "mu_u": mu_u,
        "mu_r": mu_r,
        "mu_f": mu_f,
        "mu_i": mu_i,
        "mu_o": mu_o,
    }
    for name, v in mus.items():
        V.real(name, v)
    mus = {k: jnp.float64(v) for k, v in mus.items()}
    gates = rnn.gate_hyper(cell, sigma_w2, sigma_u2, sigma_b2)
    hyper = (*jax.tree_util.tree_map(jnp.float64, gates), mus)
    out = jax.vmap(
        lambda k: _cross_one(
            cell,
            k,
            n,
            length,
            bool(annealed),
            hyper,
            jnp.float64(q0),
            jnp.float64(c0),
            jnp.float64(r),
        )
    )(jax.random.split(key, seeds))
    return {"state": np.asarray(out[0]), "difference": np.asarray(out[1])}


# --- trainability ---------------------------------------------------------------------------------


def trainable_delays(
    key,
    cell: str,
    hypers: list[dict],
    delays,
    *,
    seeds: int,
    n: int,
    d: int = 4,
    steps: int = 150,
    learning_rate: float = 1e-2,
    batch_size: int = 32,
    threshold: float = 0.75,
) -> dict:
    r"""Train ``cell`` classifiers on :func:`mftlib.networks.recurrent.memory_task` at every
    initialisation in ``hypers`` (keyword dicts of
    :func:`mftlib.networks.recurrent.init_classifier`), every delay and ``seeds`` seeds, all in
    one vmapped run (:func:`mftlib.networks.recurrent.train_memory`, Adam, sequences of
    ``max(delays) + 9`` steps).

    The longest trainable delay of an initialisation is the largest delay whose seed-mean test
    accuracy exceeds ``threshold`` (0 when none does).

    Returns:
        dict with ``accuracy`` ``(len(hypers), len(delays), seeds)``, ``mean`` and ``se``
        ``(len(hypers), len(delays))`` and ``longest`` ``(len(hypers),)``.
    """
    if not hypers:
        raise ValueError("hypers must name at least one initialisation")
    delays = np.asarray(delays)
    if delays.ndim != 1 or delays.size == 0 or np.any(delays < 1):
        raise ValueError(f"delays must be a non-empty 1-D array of positive integers: {delays}")
    seeds = V.positive_int("seeds", seeds)
    if seeds < 2:
        raise ValueError("seeds must be at least 2 (a standard error is reported)")
    n, d = V.positive_int("n", n), V.positive_int("d", d)
    k_init, k_train = jax.random.split(V.key(key))
    keys = jax.random.split(k_init, delays.size * seeds)
    params = [
        jax.vmap(lambda k, h=h: rnn.init_classifier(k, cell, n, d, **h))(keys) for h in hypers
    ]
    params = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *params)
    out = rnn.train_memory(
        k_train,
        cell,
        params,
        np.tile(np.repeat(delays, seeds), len(hypers)),
        length=int(delays.max()) + 9,
        d=d,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
    )
    acc = out["test_accuracy"].reshape(len(hypers), delays.size, seeds)
    mean = acc.mean(-1)
    ok = mean > threshold
    longest = np.array([delays[row].max() if row.any() else 0 for row in ok])
    return {
        "accuracy": acc,
        "mean": mean,
        "se": acc.std(-1, ddof=1) / np.sqrt(seeds),
        "longest": longest,
    }


# --- mean-field curves and their comparison with simulations --------------------------------------

_SWEPT = {
    "vanilla": "sigma_w2",
    "minimal": "mu_b",
    "gru": "mu_u",
    "lstm": "mu_f",
}


def mean_field_one_minus_c(cell: str, length: int, *, r: float = 1.0, phi="tanh", **hyper):
    r"""The mean-field :math:`1 - c_t`, :math:`t = 1..` ``length``, of the perturbation experiment
    of :func:`one_minus_c`, and the cell's fixed point.

    Iterates :func:`mftlib.recurrent.vanilla_trajectory` (or the minimalRNN's, GRU's, LSTM's) from
    the fixed point with :func:`mftlib.recurrent.perturbation_inputs` ``(r, length, 0)``.
    ``hyper``: ``sigma_w2, sigma_u2, sigma_b2`` and the cell's bias means (``mu_b``; ``mu_u``,
    ``mu_r``; ``mu_f``, ``mu_i``, ``mu_o``), defaults 0.

    Returns:
        ``(curve, fixed_point)``: array ``(length,)`` and the fixed-point dict of
        :func:`mftlib.recurrent.vanilla_fixed_point` (or the gated analogue).
    """
    _cell(cell)
    length = V.positive_int("length", length)
    sw, su, sb = (hyper.pop(k) for k in ("sigma_w2", "sigma_u2", "sigma_b2"))
    Rs = recurrent.perturbation_inputs(r, length, 0)
    g = lambda k: float(hyper.get(k, 0.0))  # noqa: E731
    if cell == "vanilla":
        fp = recurrent.vanilla_fixed_point(phi, sw, su, sb, r)
        S = recurrent.vanilla_trajectory(
            phi, sw, su, sb, float(fp["q_star"]) * jnp.ones((2, 2)), Rs
        )
    elif cell == "minimal":
        fp = recurrent.minimal_fixed_point(sw, su, sb, g("mu_b"), r)
        S = recurrent.minimal_trajectory(
            sw, su, sb, g("mu_b"), float(fp["q_star"]) * jnp.ones((2, 2)), Rs
        )
    elif cell == "gru":
        fp = recurrent.gru_fixed_point(sw, su, sb, g("mu_u"), g("mu_r"), r)
        S = recurrent.gru_trajectory(
            sw,
            su,
            sb,
            g("mu_u"),
            g("mu_r"),
            float(fp["q_star"]) * jnp.ones((2, 2)),
            Rs,
        )
    else:
        mus = (g("mu_f"), g("mu_i"), g("mu_o"))
        fp = recurrent.lstm_fixed_point(sw, su, sb, *mus, r=r)
        ones = jnp.ones((2, 2))
        _, S = recurrent.lstm_trajectory(
            sw,
            su,
            sb,
            *mus,
            float(fp["c_star"]) * ones,
            float(fp["q_star"]) * ones,
            Rs,
        )
    return 1.0 - np.asarray(recurrent.correlation(S[1:])), fp


def decay_comparison(
    key,
    cell: str,
    values,
    *,
    n: int,
    length: int,
    seeds: int,
    start: int = 5,
    r: float = 1.0,
    annealed: bool = False,
    **hyper,
) -> dict:
    r"""Mean field against simulation of the perturbation experiment, at several values of the
    cell's swept hyperparameter (``sigma_w2`` for the vanilla RNN, ``mu_b``, ``mu_u``, ``mu_f``
    for the minimalRNN, GRU and LSTM); ``hyper`` holds the others.

    For every value: the mean-field curve and fixed point (:func:`mean_field_one_minus_c`),
    ``seeds`` simulated networks of width ``n`` started at the fixed point (:func:`one_minus_c`;
    ``annealed`` draws fresh recurrent weights every step), and three memory times: the
    asymptotic :math:`\xi = -1/\log\chi_c` (``xi_theory``), the fit over :math:`t \ge` ``start``
    to the mean-field curve (``xi_curve``) and to each simulated seed (``xi_seeds``).

    Returns:
        dict with ``values``, ``curve`` ``(len(values), length)``, ``sims``
        ``(len(values), seeds, length)``, ``xi_theory``, ``xi_curve``, ``chi_c``
        ``(len(values),)``, ``xi_seeds`` ``(len(values), seeds)``, ``xi_mean``, ``xi_se``.
    """
    cell = _cell(cell)
    values = np.atleast_1d(np.asarray(values, np.float64))
    seeds = V.positive_int("seeds", seeds)
    if seeds < 2:
        raise ValueError("seeds must be at least 2 (a standard error is reported)")
    out = {
        k: []
        for k in (
            "curve",
            "sims",
            "xi_theory",
            "xi_curve",
            "chi_c",
            "xi_seeds",
        )
    }
    for i, v in enumerate(values):
        h = {**hyper, _SWEPT[cell]: float(v)}
        curve, fp = mean_field_one_minus_c(cell, length, r=r, **dict(h))
        q0 = {"q0": float(fp["q_star"])}
        if cell == "lstm":
            q0["c0"] = float(fp["c_star"])
        y = one_minus_c(
            jax.random.fold_in(key, i),
            cell,
            n,
            length,
            seeds,
            r=r,
            annealed=annealed,
            **q0,
            **h,
        )
        out["curve"].append(curve)
        out["sims"].append(y)
        out["xi_theory"].append(float(fp["xi_c"]))
        out["chi_c"].append(float(fp["chi_c"]))
        out["xi_curve"].append(float(memory_time_fit(curve[None], start)[0]))
        out["xi_seeds"].append(memory_time_fit(y, start))
    res = {k: np.array(v) for k, v in out.items()}
    res["values"] = values
    with np.errstate(invalid="ignore"):  # inf - inf where a seed did not decay: nan
        res["xi_mean"] = res["xi_seeds"].mean(1)
        res["xi_se"] = res["xi_seeds"].std(1, ddof=1) / np.sqrt(seeds)
    return res


# --- state-to-state Jacobians ---------------------------------------------------------------------


@partial(jax.jit, static_argnums=0)
@partial(jax.vmap, in_axes=(None, 0, 0, 0))
def _squared_singular_values(cell, p, h0, xs):
    J = rnn.state_jacobian(cell, p, h0, xs, all_steps=True)
    return jnp.linalg.eigvalsh(jnp.einsum("tij,tkj->tik", J, J))


def jacobian_spectra(
    key,
    cell: str,
    n: int,
    steps: int,
    seeds: int,
    *,
    q0,
    c0=None,
    r: float = 1.0,
    orthogonal: bool = False,
    **hyper,
) -> np.ndarray:
    r"""Squared singular values of the state-to-state Jacobians :math:`\partial h_t/\partial h_0`,
    :math:`t = 1..` ``steps``, of ``seeds`` random cells of width ``n`` (inputs of width ``n``).

    Each seed draws a cell (:func:`mftlib.networks.recurrent.init`, ``hyper`` and
    ``orthogonal`` passed on), a state :math:`h_0\sim\mathcal N(0, q_0)` (the LSTM's cell half
    :math:`\mathcal N(0, c_0)`) and inputs :math:`x_t\sim\mathcal N(0, r)`, and differentiates
    :func:`mftlib.networks.recurrent.run` forward
    (:func:`mftlib.networks.recurrent.state_jacobian`).
    Mean-field prediction for the mean over units: :math:`\chi_c^t` (the slope of the off-diagonal
    of the covariance map is the mean squared singular value of one step's Jacobian).

    Returns:
        array ``(seeds, steps, m)``, ``m`` the state size (``2n`` for the LSTM).
    """
    _cell(cell)
    n, steps = V.positive_int("n", n), V.positive_int("steps", steps)
    seeds = V.positive_int("seeds", seeds)
    V.variance("q0", q0)
    V.variance("r", r)
    if cell == "lstm":
        if c0 is None:
            raise ValueError("the LSTM needs c0, the variance of its initial cell state")
        V.variance("c0", c0)
    keys = jax.random.split(V.key(key), 3 * seeds).reshape(seeds, 3, 2)
    params = [rnn.init(k[0], cell, n, n, orthogonal=orthogonal, **hyper) for k in keys]
    params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params)
    h0 = np.sqrt(q0) * jax.vmap(lambda k: jax.random.normal(k[1], (n,), jnp.float64))(keys)
    if cell == "lstm":
        c = np.sqrt(c0) * jax.vmap(
            lambda k: jax.random.normal(jax.random.fold_in(k[1], 1), (n,), jnp.float64)
        )(keys)
        h0 = jnp.concatenate([c, h0], axis=-1)
    xs = np.sqrt(r) * jax.vmap(lambda k: jax.random.normal(k[2], (steps, n), jnp.float64))(keys)
    return np.asarray(_squared_singular_values(cell, params, h0, xs))


# --- per-gate variances -------------------------------------------------------------------------


def gate_variance_sweep(
    key,
    cell: str,
    gate_sigma_w2,
    *,
    candidate_sigma_w2: float,
    n: int,
    length: int,
    seeds: int,
    jac_steps: int,
    sigma_u2=1.0,
    sigma_b2=0.0,
    r: float = 1.0,
    start: int = 5,
    **means,
) -> dict:
    r"""Memory time and Jacobian conditioning of the GRU or the LSTM as the gates' recurrent weight
    variance is varied with the candidate's held fixed (per-gate variances, Gilboa et al. 2019).

    For every value :math:`v` of ``gate_sigma_w2`` the recurrent weight variances are
    :math:`\sigma_{w,k}^2 = v` for the gates (GRU: :math:`u, r`; LSTM: :math:`f, i, o`) and
    ``candidate_sigma_w2`` for the candidate; ``sigma_u2``, ``sigma_b2`` (shared or per gate) and
    the bias means ``means`` (``mu_u``, ``mu_r`` or ``mu_f``, ``mu_i``, ``mu_o``) are fixed.
    Computed per value:

    * the mean field: :math:`\chi_c`, :math:`\xi = -1/\log\chi_c` (``xi_theory``) and the fit
      over :math:`t\ge` ``start`` to the mean-field :math:`1 - c_t` (``xi_curve``,
      ``mean_field_one_minus_c``);
    * the memory time fitted per seed (:func:`memory_time_fit`) in ``seeds`` *annealed* networks
      of width ``n`` (fresh recurrent weights every step, the network the mean field describes;
      :func:`one_minus_c`), ``xi_seeds``;
    * the squared singular values of the ``jac_steps``-step state-to-state Jacobian of ``seeds``
      networks with weights tied over time (``jacobian_spectra``): their mean and variance
      over units per seed (``jac_mean``, ``jac_var``), against :math:`\chi_c^T` (``jac_theory``).

    Returns:
        dict with ``values``, ``chi_c``, ``xi_theory``, ``xi_curve``, ``jac_theory``
        ``(V,)``; ``xi_seeds``, ``jac_mean``, ``jac_var`` ``(V, seeds)``.
    """
    if cell not in ("gru", "lstm"):
        raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
    values = np.atleast_1d(np.asarray(V.variance("gate_sigma_w2", gate_sigma_w2), np.float64))
    if values.ndim != 1 or values.size == 0:
        raise ValueError("gate_sigma_w2 must be a non-empty 1-D array of variances")
    V.variance("candidate_sigma_w2", candidate_sigma_w2)
    seeds = V.positive_int("seeds", seeds)
    if seeds < 2:
        raise ValueError("seeds must be at least 2 (a standard error is reported)")
    jac_steps = V.positive_int("jac_steps", jac_steps)
    n_gates = len(recurrent.GRU_GATES if cell == "gru" else recurrent.LSTM_GATES) - 1
    out = {k: [] for k in ("chi_c", "xi_theory", "xi_curve", "xi_seeds", "jac_mean", "jac_var")}
    k_sim, k_jac = jax.random.split(V.key(key))
    for i, v in enumerate(values):
        h = dict(
            sigma_w2=(float(v),) * n_gates + (float(candidate_sigma_w2),),
            sigma_u2=sigma_u2,
            sigma_b2=sigma_b2,
            **means,
        )
        curve, fp = mean_field_one_minus_c(cell, length, r=r, **dict(h))
        q0 = {"q0": float(fp["q_star"])}
        if cell == "lstm":
            q0["c0"] = float(fp["c_star"])
        y = one_minus_c(
            jax.random.fold_in(k_sim, i), cell, n, length, seeds, r=r, annealed=True, **q0, **h
        )
        ev = jacobian_spectra(
            jax.random.fold_in(k_jac, i), cell, n, jac_steps, seeds, r=r, **q0, **h
        )[:, -1]
        out["chi_c"].append(float(fp["chi_c"]))
        out["xi_theory"].append(float(fp["xi_c"]))
        out["xi_curve"].append(float(memory_time_fit(curve[None], start)[0]))
        out["xi_seeds"].append(memory_time_fit(y, start))
        out["jac_mean"].append(ev.mean(-1))
        out["jac_var"].append(ev.var(-1))
    res = {k: np.array(v) for k, v in out.items()}
    res["values"] = values
    res["jac_theory"] = res["chi_c"] ** jac_steps
    return res
