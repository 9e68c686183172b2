r"""Fitting the laws the theory predicts to measured sequences, every estimate with an error bar.

The book measures four kinds of law in simulated networks and iterated maps:

* an exponential :math:`y = A e^{k x}` (:func:`exponential_rate`, the rate :math:`k`) and its
  decay length :math:`\xi = -1/k` (:func:`exponential_scale`, also by nonlinear least squares
  with a free offset, :math:`y = A e^{-x/\xi} + B`);
* a power law :math:`y = A x^a` (:func:`power_law`, the exponent :math:`a`);
* a geometric sequence :math:`y^l = A r^l` grown by independent per-layer factors
  (:func:`rate`, the factor :math:`r`);
* the trainable region :math:`L < k\,\xi` of a grid of trained networks
  (:func:`depth_multiple`).

**Conventions.** ``y`` holds the measured values along its *last* axis; any leading axes are
fitted independently (the results then have shape ``y.shape[:-1]``; scalars come back as Python
floats). ``x`` is the abscissa of the last axis (default ``0, 1, ..., n-1``: layer or time
indices). ``window=(lo, hi)`` keeps only the points with ``lo <= x <= hi`` (either end may be
``None``: open).

**Standard errors.** Without seeds, the standard error is the textbook one of the estimator
(the ordinary-least-squares (OLS) standard error of a fitted slope,
:math:`\sqrt{\mathrm{SSR}/(n-2)/\sum_i (x_i-\bar x)^2}`; for :func:`rate` the standard error of
a mean of per-layer log-ratios), carried to the reported quantity by the delta method. It assumes
independent noise on the points and is ``nan`` when no degree of freedom is left to estimate the
noise from (two points for a line). With ``seeds=True`` the *first* axis of ``y`` holds
independent repetitions (seeds): each is fitted on its own, ``value`` is the mean of the per-seed
estimates and ``stderr`` is their seed-to-seed standard error,
:math:`\mathrm{std}(\text{ddof}=1)/\sqrt{n_\text{seeds}}`. That is the honest error bar for
simulated networks, whose layers share weights and so are not independent points.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "XI_GRID",
    "DepthMultiple",
    "Fit",
    "depth_multiple",
    "exponential_rate",
    "exponential_scale",
    "power_law",
    "rate",
    "WeightedMean",
    "weighted_mean",
]

#: The grid of depth scales on which :func:`exponential_scale` (``log=False``) starts its search.
XI_GRID = np.geomspace(0.1, 1e4, 2880)


class Fit(NamedTuple):
    """The result of a fit (arrays of shape ``y.shape[:-1]``, or floats).

    Attributes:
        value: the estimate asked for (a depth scale, a rate, an exponent).
        stderr: its standard error (see the module docstring for which one).
        amplitude: the prefactor :math:`A` of the fitted law (of :math:`|y|` for the
            logarithmic fits), at :math:`x = 0`.
        offset: the constant :math:`B` of :func:`exponential_scale` with ``offset=True``;
            ``0.0`` otherwise.
    """

    value: float | np.ndarray
    stderr: float | np.ndarray
    amplitude: float | np.ndarray
    offset: float | np.ndarray = 0.0


class DepthMultiple(NamedTuple):
    """The result of :func:`depth_multiple`.

    Attributes:
        value: the fitted multiple :math:`k` (the middle of the best range).
        low, high: the smallest and largest grid values with the fewest disagreements.
        errors: the number of disagreeing cells for every grid value.
    """

    value: float
    low: float
    high: float
    errors: np.ndarray


# --- input checks -------------------------------------------------------------------------------


def _values(y, *, seeds: bool) -> np.ndarray:
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"y must be a real array, got {type(y).__name__}") from err
    if arr.ndim == 0:
        raise ValueError("y must have at least one axis (the fitted one, last)")
    if seeds:
        if arr.ndim < 2:
            raise ValueError(
                f"y needs a seeds axis first and the fitted axis last, got {arr.shape}"
            )
        if arr.shape[0] < 2:
            raise ValueError(f"y needs at least 2 seeds along its first axis, got {arr.shape[0]}")
    return arr


def _abscissa(x, n: int) -> np.ndarray:
    if x is None:
        return np.arange(n, dtype=np.float64)
    try:
        xa = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"x must be a real array, got {type(x).__name__}") from err
    if xa.shape != (n,):
        raise ValueError(f"x must have shape ({n},) (the last axis of y), got {xa.shape}")
    if not np.all(np.isfinite(xa)):
        raise ValueError("x must be finite")
    return xa


def _window(window, x: np.ndarray) -> np.ndarray:
    """Boolean mask of the points of ``x`` inside ``window``."""
    if window is None:
        return np.ones(x.shape, bool)
    try:
        lo, hi = window
    except (TypeError, ValueError) as err:
        raise ValueError(f"window must be a pair (lo, hi), got {window!r}") from err
    for name, b in (("lo", lo), ("hi", hi)):
        if b is not None and not (np.ndim(b) == 0 and np.isfinite(float(b))):
            raise ValueError(f"window {name} must be a finite number or None, got {b!r}")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"window must have lo <= hi, got {window!r}")
    keep = np.ones(x.shape, bool)
    if lo is not None:
        keep &= x >= lo
    if hi is not None:
        keep &= x <= hi
    return keep


def _out(*arrays):
    """Scalars as Python floats, arrays as float64 arrays."""
    return tuple(float(a) if np.ndim(a) == 0 else np.asarray(a, np.float64) for a in arrays)


def _over_seeds(fit_one, y: np.ndarray, seeds: bool) -> Fit:
    """Fit every seed (axis 0) separately: the mean and seed-to-seed standard error."""
    if not seeds:
        return Fit(*_out(*fit_one(y)))
    value, _, amplitude, offset = fit_one(y)
    n = value.shape[0]
    with np.errstate(invalid="ignore"):
        se = np.std(value, axis=0, ddof=1) / np.sqrt(n)
    return Fit(*_out(value.mean(0), se, amplitude.mean(0), np.mean(offset, axis=0)))


# --- straight lines -----------------------------------------------------------------------------


def _line(x: np.ndarray, y: np.ndarray, use: np.ndarray):
    """OLS line ``y = a + b x`` along the last axis over the points where ``use`` is true.

    Returns ``(slope, slope stderr, intercept)``; the stderr is ``nan`` with two points.
    """
    w = use.astype(np.float64)
    y = np.where(use, y, 0.0)
    m = w.sum(-1)
    xm = (w * x).sum(-1) / m
    dx = w * (x - xm[..., None])
    sxx = (dx**2).sum(-1)
    if np.any(sxx <= 0):
        raise ValueError("x needs at least two distinct values among the fitted points")
    ym = (w * y).sum(-1) / m
    slope = (dx * (y - ym[..., None])).sum(-1) / sxx
    icpt = ym - slope * xm
    ssr = (w * (y - icpt[..., None] - slope[..., None] * x) ** 2).sum(-1)
    dof = m - 2
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(dof > 0, np.sqrt(ssr / np.where(dof > 0, dof, 1.0) / sxx), np.nan)
    return slope, se, icpt


def _log_line(y: np.ndarray, x: np.ndarray, keep: np.ndarray, floor: float):
    """OLS line through ``log|y|`` over the points in ``keep`` with finite ``|y| > floor``."""
    use = keep & np.isfinite(y) & (np.abs(y) > floor)
    if np.any(use.sum(-1) < 2):
        raise ValueError(
            f"y has fewer than 2 points with |y| > floor = {floor} in the window (a sequence "
            "that reached the floor, or a window too narrow)"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        logy = np.log(np.abs(y))
    return _line(x, logy, use)


def _check_floor(floor) -> float:
    if np.ndim(floor) != 0 or not np.isfinite(floor) or floor < 0:
        raise ValueError(f"floor must be a finite number >= 0, got {floor!r}")
    return float(floor)


def exponential_rate(y, x=None, *, window=None, floor: float = 0.0, seeds: bool = False) -> Fit:
    r"""Rate :math:`k` of an exponential :math:`|y| = A e^{k x}` (negative for a decay).

    Model and window: a straight line :math:`\log|y| = \log A + k x`, fitted by ordinary least
    squares to the points in ``window`` whose :math:`|y|` is finite and above ``floor`` (the
    others are left out: a sequence that reached its limit to rounding, or a noise floor).
    Use it where the noise is multiplicative (relative), as for :math:`1 - c^l` in the ordered
    phase; for additive noise that makes :math:`y` cross zero use :func:`exponential_scale` with
    ``log=False``.

    Args:
        y: values ``(..., n)``; x: their abscissa ``(n,)`` (default ``0..n-1``).
        window: ``(lo, hi)`` on ``x``; floor: smallest :math:`|y|` kept (>= 0).
        seeds: axis 0 of ``y`` holds independent seeds (see below).

    Returns:
        :class:`Fit` with ``value`` :math:`k`, ``amplitude`` :math:`A`; ``stderr`` is the OLS
        standard error of the slope (``nan`` with two points), or with ``seeds=True`` the
        seed-to-seed standard error of the mean of the per-seed rates.

    Raises:
        ValueError: naming ``y`` if a sequence has fewer than two usable points, ``x`` or
            ``window`` or ``floor`` if those are malformed.
    """
    y = _values(y, seeds=seeds)
    x = _abscissa(x, y.shape[-1])
    keep = _window(window, x)
    floor = _check_floor(floor)

    def one(v):
        k, se, icpt = _log_line(v, x, keep, floor)
        return k, se, np.exp(icpt), np.zeros_like(k)

    return _over_seeds(one, y, seeds)


def power_law(y, x, *, window=None, seeds: bool = False) -> Fit:
    r"""Exponent :math:`a` of a power law :math:`y = A x^a`.

    Model and window: a straight line :math:`\log y = \log A + a \log x`, fitted by ordinary least
    squares to the points with ``lo <= x <= hi`` (``window``); those must have positive ``x``
    and ``y``.

    Args:
        y: values ``(..., n)``; x: their abscissa ``(n,)`` (e.g. depths or widths).
        window: ``(lo, hi)`` on ``x``; seeds: axis 0 of ``y`` holds independent seeds.

    Returns:
        :class:`Fit` with ``value`` :math:`a`, ``amplitude`` :math:`A`; ``stderr`` is the OLS
        standard error of the log-log slope (``nan`` with two points), or with ``seeds=True``
        the seed-to-seed standard error of the mean of the per-seed exponents.

    Raises:
        ValueError: naming ``y`` or ``x`` if a fitted point is not positive and finite, or if
            fewer than two points are in the window.
    """
    y = _values(y, seeds=seeds)
    if x is None:
        raise ValueError("x must be given for a power law (the depths, widths, ...)")
    x = _abscissa(x, y.shape[-1])
    keep = _window(window, x)
    if keep.sum() < 2:
        raise ValueError(f"window {window!r} keeps fewer than 2 points of x")
    if np.any(x[keep] <= 0):
        raise ValueError("x must be positive at the fitted points of a power law")
    yk = y[..., keep]
    if not np.all(np.isfinite(yk)) or np.any(yk <= 0):
        raise ValueError("y must be positive and finite at the fitted points of a power law")

    def one(v):
        logy = np.log(v[..., keep])
        a, se, icpt = _line(np.log(x[keep]), logy, np.ones(logy.shape, bool))
        return a, se, np.exp(icpt), np.zeros_like(a)

    return _over_seeds(one, y, seeds)


def rate(y, *, window=None, seeds: bool = False) -> Fit:
    r"""Per-step factor :math:`r` of a geometric sequence :math:`y^l = A r^l` with random factors.

    Model: :math:`y^{l+1} = r_l\, y^l` with independent per-layer factors whose logarithms have
    mean :math:`\log r` (a random multiplicative process, as for gradient norms through layers of
    a finite random network: :math:`\log y^l` is a random walk with drift). The estimate is
    :math:`r = \exp(\overline{\log(y^{l+1}/y^l)})`, the mean log-ratio of consecutive layers
    ``lo..hi`` (``window``, on the index ``0..n-1``; :math:`hi - lo` ratios). For a random walk
    this mean is the maximum-likelihood drift (an OLS slope through :math:`\log y^l` would
    understate its error, the points being correlated).

    Args:
        y: positive values ``(..., n)``, consecutive layers along the last axis.
        window: ``(lo, hi)`` on the layer index; seeds: axis 0 of ``y`` holds independent seeds.

    Returns:
        :class:`Fit` with ``value`` :math:`r` and ``amplitude`` :math:`A = y^{lo}/r^{lo}`;
        ``stderr``: without seeds, :math:`r\,\mathrm{std}(\log\text{ratios})/\sqrt{hi-lo}` (the
        standard error of a mean of independent log-ratios, by the delta method; ``nan`` with one
        ratio); with ``seeds=True`` the seed-to-seed standard error of the mean of the per-seed
        factors.

    Raises:
        ValueError: naming ``y`` if a fitted value is not positive and finite, ``window`` if it
            keeps fewer than two layers.
    """
    y = _values(y, seeds=seeds)
    layers = np.arange(y.shape[-1], dtype=np.float64)
    keep = np.flatnonzero(_window(window, layers))
    if keep.size < 2:
        raise ValueError(
            f"window {window!r} keeps fewer than 2 of the {layers.size} layers of y: no ratio"
        )
    lo, hi = int(keep[0]), int(keep[-1])
    yk = y[..., lo : hi + 1]
    if not np.all(np.isfinite(yk)) or np.any(yk <= 0):
        raise ValueError("y must be positive and finite in the window of a rate")

    def one(v):
        logs = np.log(v[..., lo : hi + 1])
        steps = np.diff(logs, axis=-1)
        m = steps.mean(-1)
        n = steps.shape[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            se = np.std(steps, axis=-1, ddof=1) / np.sqrt(n) if n > 1 else np.full_like(m, np.nan)
        r = np.exp(m)
        return r, r * se, np.exp(logs[..., 0] - lo * m), np.zeros_like(r)

    return _over_seeds(one, y, seeds)


# --- depth scales -------------------------------------------------------------------------------


def _nls_exponential(y: np.ndarray, x: np.ndarray, offset: bool):
    """Least squares of ``A exp(-k (x - x0)) + B`` for one sequence: grid, then Gauss-Newton.

    Returns ``(xi, stderr, A at x = 0, B)``.
    """
    n = y.size
    x0 = x[0]
    dx = x - x0
    n_par = 3 if offset else 2
    if n <= n_par - 1:
        raise ValueError(f"y needs at least {n_par} points in the window, got {n}")
    # Grid: for each xi the best linear (A, B) by projection (the profile residual).
    basis = np.exp(-dx[None, :] / XI_GRID[:, None])
    d = y
    if offset:
        basis = basis - basis.mean(-1, keepdims=True)
        d = y - y.mean()
    score = (basis @ d) ** 2 / np.maximum((basis**2).sum(-1), 1e-300)
    i = int(np.argmax(score))
    if i == XI_GRID.size - 1:  # no decay resolved
        return np.inf, np.inf, np.nan, np.nan

    def design(k):
        e = np.exp(-k * dx)
        return np.stack([e, np.ones(n)], -1) if offset else e[:, None]

    def linear(k):
        coef, *_ = np.linalg.lstsq(design(k), y, rcond=None)
        return coef

    def sse(theta):
        k, coef = theta[-1], theta[:-1]
        r = y - design(k) @ coef
        return float(r @ r)

    k = 1.0 / XI_GRID[i]
    theta = np.append(linear(k), k)
    best = sse(theta)
    for _ in range(100):  # Gauss-Newton with step halving
        k, a = theta[-1], theta[0]
        e = np.exp(-k * dx)
        jac = np.column_stack([design(k), -a * dx * e])
        r = y - design(k) @ theta[:-1]
        step, *_ = np.linalg.lstsq(jac, r, rcond=None)
        t = 1.0
        while t > 1e-6:
            trial = theta + t * step
            s = sse(trial)
            if s <= best:
                break
            t /= 2
        else:
            break
        done = abs(t * step[-1]) <= 1e-15 * abs(theta[-1]) or s == best
        theta, best = trial, s
        if done:
            break
    k, a = theta[-1], theta[0]
    jac = np.column_stack([design(k), -a * dx * np.exp(-k * dx)])
    dof = n - n_par
    if dof > 0 and k > 0:
        cov = best / dof * np.linalg.pinv(jac.T @ jac)
        se = np.sqrt(max(cov[-1, -1], 0.0)) / k**2
    else:
        se = np.nan
    xi = 1.0 / k if k > 0 else np.inf
    return xi, se, a * np.exp(k * x0), (theta[1] if offset else 0.0)


def exponential_scale(
    y,
    x=None,
    *,
    window=None,
    log: bool = True,
    offset: bool = False,
    floor: float = 0.0,
    seeds: bool = False,
) -> Fit:
    r"""Decay length :math:`\xi` of :math:`y = A e^{-x/\xi}` (a depth scale or a time scale).

    Two estimators, over the points in ``window``:

    * ``log=True`` (default): a straight line :math:`\log|y| = \log A - x/\xi` by ordinary
      least squares (:func:`exponential_rate`, :math:`\xi = -1/k`), leaving out points with
      :math:`|y| \le` ``floor`` or not finite. Right where the noise is multiplicative, as for
      :math:`1 - c^l` with :math:`c^* = 1`. ``inf`` when the sequence does not decay
      (:math:`k \ge 0`).
    * ``log=False``: nonlinear least squares on the *signed* values,
      :math:`\min \sum (y - A e^{-x/\xi} [+ B])^2`: a search over :data:`XI_GRID`
      (0.1 to :math:`10^4`, ratio 1.004; :math:`A`, :math:`B` by linear least squares at each
      :math:`\xi`) refined by Gauss-Newton. Not thrown off where additive noise makes
      :math:`y` cross zero, as a line through :math:`\log|y|` is. ``offset=True`` adds the
      constant :math:`B` (a limit shifted by finite-width corrections). ``inf`` when the best
      :math:`\xi` on the grid is its end (no decay resolved).

    Args:
        y: values ``(..., n)``; x: abscissa ``(n,)`` (default ``0..n-1``).
        window: ``(lo, hi)`` on ``x``; log, offset: the estimator (``offset`` needs
            ``log=False``); floor: smallest :math:`|y|` kept by the log fit.
        seeds: axis 0 of ``y`` holds independent seeds.

    Returns:
        :class:`Fit` with ``value`` :math:`\xi`, ``amplitude`` :math:`A` (at :math:`x = 0`) and
        ``offset`` :math:`B`. ``stderr``: with ``log=True`` the OLS standard error of the slope
        carried to :math:`\xi` by the delta method, :math:`\mathrm{se}(k)/k^2`; with ``log=False``
        the asymptotic nonlinear-least-squares one, :math:`\hat\sigma^2 (J^T J)^{-1}` with
        :math:`\hat\sigma^2` = residual sum of squares / (points - parameters), carried to
        :math:`\xi` likewise (``inf`` where :math:`\xi` is); with ``seeds=True`` the seed-to-seed
        standard error of the mean of the per-seed :math:`\xi`.
    """
    if offset and log:
        raise ValueError("offset needs log=False (a free offset cannot be fitted through log|y|)")
    y = _values(y, seeds=seeds)
    x = _abscissa(x, y.shape[-1])
    keep = _window(window, x)
    floor = _check_floor(floor)
    if log:

        def one(v):
            k, se, icpt = _log_line(v, x, keep, floor)
            decays = k < 0
            with np.errstate(divide="ignore", invalid="ignore"):
                xi = np.where(decays, -1.0 / np.where(decays, k, -1.0), np.inf)
                se_xi = np.where(decays, se / k**2, np.inf)
            return xi, se_xi, np.exp(icpt), np.zeros_like(xi)

        return _over_seeds(one, y, seeds)

    xs = x[keep]
    if not np.all(np.isfinite(y[..., keep])):
        raise ValueError("y must be finite in the window of a least-squares fit")
    if xs.size < 3:
        raise ValueError(f"y needs at least 3 points in the window, got {xs.size}")
    order = np.argsort(xs, kind="stable")

    def one(v):
        rows = v[..., keep][..., order].reshape(-1, xs.size)
        res = np.array([_nls_exponential(r, xs[order], offset) for r in rows], np.float64)
        return tuple(res[:, j].reshape(v.shape[:-1]) for j in range(4))

    return _over_seeds(one, y, seeds)


# --- the trainable region -----------------------------------------------------------------------


def depth_multiple(accuracy, depths, xi, threshold: float, k_grid=None) -> DepthMultiple:
    r"""Fit the trainable region by :math:`L < k\,\xi`: the :math:`k` that misclassifies least.

    A cell (depth :math:`L_j`, hyperparameter :math:`i`) counts as trainable when
    ``accuracy[j, i] > threshold``. For every :math:`k` on ``k_grid`` (default 0.5 to 20 in steps
    of 0.05) the prediction "trainable iff :math:`L_j < k\,\xi_i`" is compared with the
    observation; :math:`k` is the middle of the range of grid values with the fewest disagreements
    (Schoenholz et al. 2017 report :math:`k \approx 6` for :math:`\xi = \xi_c`).

    This is a classification boundary, not a regression: there is no likelihood to give a
    standard error, and the result reports instead the range ``[low, high]`` of equally good
    :math:`k` (its width is the resolution the grid of depths allows).

    Args:
        accuracy: array ``(len(depths), len(xi))``.
        depths: the depths :math:`L_j`; xi: the depth scale at each hyperparameter (``inf``
            allowed: always trainable by the prediction).
        threshold: accuracy above which a network counts as trained.
        k_grid: the candidate multiples.

    Returns:
        :class:`DepthMultiple` ``(value, low, high, errors)``.
    """
    depths = np.asarray(depths, np.float64)
    xi = np.asarray(xi, np.float64)
    try:
        acc = np.asarray(accuracy, np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"accuracy must be a real array, got {type(accuracy).__name__}") from err
    if depths.ndim != 1 or xi.ndim != 1:
        raise ValueError(f"depths and xi must be 1-D, got shapes {depths.shape}, {xi.shape}")
    if acc.shape != (depths.size, xi.size):
        raise ValueError(
            f"accuracy must have shape (len(depths), len(xi)) = {(depths.size, xi.size)}, "
            f"got {acc.shape}"
        )
    if not np.all(np.isfinite(acc)):
        raise ValueError("accuracy must be finite")
    if np.any(np.isnan(xi)) or np.any(xi <= 0):
        raise ValueError("xi must be positive (inf allowed), without NaN")
    if np.ndim(threshold) != 0 or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    k_grid = np.arange(0.5, 20.0001, 0.05) if k_grid is None else np.asarray(k_grid, np.float64)
    if k_grid.ndim != 1 or k_grid.size == 0 or not np.all(np.isfinite(k_grid)):
        raise ValueError("k_grid must be a non-empty 1-D array of finite numbers")
    trained = acc > threshold
    predicted = depths[None, :, None] < k_grid[:, None, None] * xi[None, None, :]
    errors = np.sum(predicted != trained[None], axis=(1, 2))
    best = np.flatnonzero(errors == errors.min())
    low, high = float(k_grid[best[0]]), float(k_grid[best[-1]])
    return DepthMultiple(0.5 * (low + high), low, high, errors)


# --- combining measurements ---------------------------------------------------------------------


class WeightedMean(NamedTuple):
    """The result of :func:`weighted_mean`.

    Attributes:
        value: the inverse-variance weighted mean.
        stderr: its standard error, :math:`(\\sum_i 1/s_i^2)^{-1/2}`.
        chi2: :math:`\\sum_i (y_i - \\bar y)^2 / s_i^2`, the consistency of the measurements.
        dof: its degrees of freedom, ``n - 1``.
        p_value: the probability of a :math:`\\chi^2` at least this large if the measurements
            agree within their errors (``nan`` for a single measurement).
    """

    value: float
    stderr: float
    chi2: float
    dof: int
    p_value: float


def weighted_mean(values, stderr) -> WeightedMean:
    r"""Inverse-variance weighted mean of independent measurements :math:`y_i \pm s_i`.

    :math:`\bar y = \sum_i w_i y_i / \sum_i w_i` with :math:`w_i = 1/s_i^2`, standard error
    :math:`(\sum_i w_i)^{-1/2}`, and :math:`\chi^2 = \sum_i w_i (y_i - \bar y)^2` with ``n - 1``
    degrees of freedom and its tail probability: a :math:`\chi^2` much above its degrees of
    freedom (a small ``p_value``) says the measurements disagree by more than their errors (e.g.
    ratios of measured to predicted depth scales that are not one constant).

    Args:
        values: the measurements ``(n,)``; stderr: their standard errors ``(n,)``, positive.

    Raises:
        ValueError: naming ``values`` or ``stderr`` if they are not finite 1-D arrays of one
            length, or an error is not positive.
    """
    y = np.asarray(values, np.float64)
    s = np.asarray(stderr, np.float64)
    if y.ndim != 1 or y.size == 0 or not np.all(np.isfinite(y)):
        raise ValueError(f"values must be a non-empty 1-D array of finite numbers, got {values!r}")
    if s.shape != y.shape or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"stderr must be positive and finite, one per value, got {stderr!r}")
    from scipy import stats

    w = 1.0 / s**2
    mean = float(np.sum(w * y) / np.sum(w))
    chi2, dof = float(np.sum(w * (y - mean) ** 2)), int(y.size - 1)
    p_value = float(stats.chi2.sf(chi2, dof)) if dof > 0 else float("nan")
    return WeightedMean(mean, float(np.sum(w) ** -0.5), chi2, dof, p_value)
