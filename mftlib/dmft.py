r"""Dynamical mean-field theory (DMFT) of the continuous-time random recurrent network.

The network of Sompolinsky, Crisanti and Sommers (SCS, PRL 61, 259, 1988) is

.. math:: \dot x_i = -x_i + \sum_{j=1}^N J_{ij}\,\phi(x_j), \qquad
   J_{ij} \sim \mathcal{N}(0, g^2/N).

For :math:`N \to \infty` each unit sees a self-consistent Gaussian field (Sompolinsky,
Crisanti & Sommers 1988; Crisanti & Sompolinsky 2018, arXiv:1809.06042), and the autocorrelation
:math:`\Delta(\tau) = \langle x(t)x(t+\tau)\rangle` moves like a particle in a potential
(:func:`scs_potential`); :math:`\Delta_0 = \Delta(0)` follows from energy conservation
(:func:`~mftlib.scs_delta0`). Only for :math:`g\phi'(0) > 1` is there such a chaotic solution;
below,
the quiescent fixed point :math:`x = 0` is stable (its linearisation :math:`-1 + J\phi'(0)` has
eigenvalues in a disc of radius :math:`g\phi'(0)` about :math:`-1`, the circular law).
The theory accepts ``phi`` in {"tanh", "erf"}, odd activations with a closed-form antiderivative;
pair moments come from :meth:`mftlib.Activation.pair_moment`.

The leading-order laws near the onset are :func:`scs_onset_laws` (:func:`scs_onset_ratio` sets
them against the exact solutions). Amari's discrete-time net :math:`x^{t+1} = J^t\phi(x^t)` has
the largest Lyapunov exponent :math:`\frac12\ln\chi_1` per step (:func:`discrete_lyapunov`),
with :math:`\chi_1` the slope of the correlation map of deep networks (:func:`mftlib.chi1`).

Finite networks that check it are simulated in :mod:`mftlib.networks.dmft`; the autocorrelation
and correlation time of their trajectories are estimated here
(:func:`autocorrelation_from_trajectories`, :func:`correlation_time_from_autocorrelation`) and
compared with the theory by :func:`autocorrelation_deviation`.
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.interpolate import CubicHermiteSpline, CubicSpline
from scipy.linalg import eigh_tridiagonal

from mftlib import _validate as V
from mftlib import dense, gaussian
from mftlib.activations import Activation, activation
from mftlib.dynamics import find_root

Array = jax.Array


def _log_cosh(u):
    a = jnp.abs(u)
    return a + jnp.log1p(jnp.exp(-2.0 * a)) - jnp.log(2.0)


def _erf_antiderivative(u):
    return u * jax.scipy.special.erf(u) + (jnp.exp(-u * u) - 1.0) / jnp.sqrt(jnp.pi)


_ANTIDERIVATIVES = {"tanh": _log_cosh, "erf": _erf_antiderivative}
# The grid in s, Delta = Delta0 exp(-s^2), ends at Delta = 1e-6 Delta0; an exponential after.
_S_GRID = np.linspace(0.0, np.sqrt(np.log(1e6)), 201)


def _check(g, phi) -> Activation:
    V.real("g", g, lo=0.0, lo_open=True)
    if np.ndim(g) != 0:
        raise ValueError(f"g must be a scalar, got shape {np.shape(g)}")
    act = activation(phi)
    if act.name not in _ANTIDERIVATIVES:
        raise ValueError(
            f"phi: the DMFT solver needs an odd activation with a known antiderivative, one of "
            f"{', '.join(_ANTIDERIVATIVES)}; got {act.name!r}"
        )
    return act


def _slope0(act: Activation) -> float:
    return float(act.derivative(jnp.float64(0.0)))


def critical_g(phi="tanh") -> float:
    r"""The onset of chaos, :math:`g_c = 1/\phi'(0)` (1 for tanh, :math:`\sqrt\pi/2` for erf)."""
    return 1.0 / _slope0(_check(1.0, phi))


@partial(jax.jit, static_argnums=0)
def _delta0_jit(name: str, g, excess):
    Phi = _ANTIDERIVATIVES[name]

    def energy(d):  # (V(Delta0) - V(0)) / Delta0^2, positive below the root, negative above
        m1 = gaussian.expect1(Phi, d)
        m2 = gaussian.expect1(lambda u: Phi(u) ** 2, d)
        return g * g * (m2 - m1 * m1) / (d * d) - 0.5

    lo = 1e-3 * jnp.minimum(excess, 1.0)  # excess = g phi'(0) - 1; the root is ~ excess
    hi = 2.0 * g * g + 1.0  # |Phi(u)| <= |u| makes the bracket negative here
    return find_root(energy, lo, hi, xtol=1e-14).value


def scs_delta0(g, phi="tanh") -> float:
    r"""The DMFT variance :math:`\Delta_0 = \Delta(0)` of the random recurrent network.

    Solves the energy-conservation condition :math:`\Delta_0^2/2 = g^2\operatorname{Var}[\Phi(
    \sqrt{\Delta_0} z)]` (SCS 1988) by a bracketed root search. Returns 0 (the quiescent
    state) for :math:`g\phi'(0) \le 1`. Near the onset, for tanh,
    :math:`\Delta_0 = (g-1) + O((g-1)^2)` (expand :math:`V` to fourth order in :math:`\Delta`).

    Raises:
        ValueError: ``g`` not a finite positive scalar, or ``phi`` not tanh or erf.
    """
    act = _check(g, phi)
    if g * _slope0(act) <= 1.0:
        return 0.0
    return float(_delta0_jit(act.name, jnp.float64(g), jnp.float64(g * _slope0(act) - 1.0)))


def scs_potential(delta, delta0, g, phi="tanh") -> Array:
    r"""The potential :math:`V(\Delta) = -\Delta^2/2 + g^2 \mathbb{E}[\Phi(u_1)\Phi(u_2)]`.

    :math:`(u_1, u_2)` have variances ``delta0`` and covariance ``delta`` (SCS 1988);
    ``delta`` may be an array with :math:`|\Delta| \le \Delta_0`.
    """
    act = _check(g, phi)
    V.variance("delta0", delta0)
    V.real("delta", delta, lo=-float(delta0), hi=float(delta0))
    Phi = _ANTIDERIVATIVES[act.name]
    d = jnp.asarray(delta, dtype=jnp.float64)
    pair = jax.vmap(lambda c: gaussian.expect2(Phi, Phi, delta0, delta0, c))(d.ravel())
    return (-0.5 * d * d + g * g * pair.reshape(d.shape)).astype(jnp.float64)


@partial(jax.jit, static_argnums=0)
def _moments_on_grid(act: Activation, delta0, xs):
    C = jax.vmap(lambda x: act.pair_moment(delta0, delta0, x))(xs)
    Cp = jax.vmap(lambda x: act.deriv_pair_moment(delta0, delta0, x))(xs)
    return C, Cp


@lru_cache(maxsize=64)
def _solution(g: float, name: str) -> dict:
    """Delta(tau) by the first integral, on the grid Delta = Delta0 exp(-s^2)."""
    act = activation(name)
    d0 = scs_delta0(g, name)
    s = _S_GRID
    x = d0 * np.exp(-(s**2))
    C, Cp = (np.asarray(a) for a in _moments_on_grid(act, jnp.float64(d0), jnp.asarray(x)))
    force = -x + g * g * C  # V'(Delta) > 0: the particle rolls towards 0
    kappa2 = 1.0 - g * g * float(Cp[-1])  # -V''(0): Delta ~ exp(-kappa tau) at large tau
    # F(s) = V(Delta0) - V(Delta(s)), dF/ds = 2 s Delta V'(Delta). Integrated from the top for
    # Delta > Delta0/2 and from the bottom (where F ~ kappa^2 Delta^2 / 2) below, so that neither
    # end loses relative precision to cancellation.
    dF = CubicSpline(s, 2.0 * s * x * force).antiderivative()
    top = dF(s)
    bottom = 0.5 * kappa2 * x[-1] ** 2 + (top - top[-1])
    F = np.where(x > 0.5 * d0, top, bottom)
    # tau(s) = int 2 s Delta / sqrt(2F) ds; finite at s = 0 where F ~ Delta0 V'(Delta0) s^2.
    with np.errstate(divide="ignore", invalid="ignore"):
        h = 2.0 * s * x / np.sqrt(2.0 * F)
    h[0] = np.sqrt(2.0 * d0 / force[0])
    tau = CubicSpline(s, h).antiderivative()(s)
    s_of_tau, Cp = CubicHermiteSpline(tau, s, 1.0 / h), CubicSpline(s, Cp)
    # (top[-1] - bottom[-1]) / d0^2, the consistency of the two integrations, is below 1e-9.
    return dict(delta0=d0, kappa=float(np.sqrt(kappa2)), tau=tau, s_of_tau=s_of_tau, Cp=Cp)


def scs_autocorrelation(g, tau, phi="tanh") -> np.ndarray:
    r"""The DMFT autocorrelation :math:`\Delta(\tau)` for ``tau >= 0`` (an array).

    Integrates the first integral :math:`\dot\Delta^2/2 + V(\Delta) = V(\Delta_0)`,
    :math:`\tau(\Delta) = \int_\Delta^{\Delta_0} d\Delta' / \sqrt{2(V(\Delta_0) - V(\Delta'))}`,
    in the variable :math:`s` with :math:`\Delta = \Delta_0 e^{-s^2}` (smooth at both ends:
    the square-root turning point at :math:`\Delta_0` and the logarithmic approach to the
    saddle at 0), then inverts it; beyond :math:`\Delta = 10^{-6}\Delta_0` it continues with the
    exact asymptote :math:`e^{-\kappa\tau}`. Relative accuracy about 1e-5. Zero for
    :math:`g\phi'(0) \le 1`.
    """
    act = _check(g, phi)
    V.real("tau", tau, lo=0.0)
    t = np.asarray(tau, dtype=np.float64)
    if g * _slope0(act) <= 1.0:
        return np.zeros_like(t)
    sol = _solution(float(g), act.name)
    t_end = sol["tau"][-1]
    inside = np.minimum(t, t_end)
    out = sol["delta0"] * np.exp(-(sol["s_of_tau"](inside) ** 2))
    tail = 1e-6 * sol["delta0"] * np.exp(-sol["kappa"] * np.maximum(t - t_end, 0.0))
    return np.where(t <= t_end, out, tail)


def scs_correlation_time(g, phi="tanh", kind="1/e") -> float:
    r"""A correlation time of the chaotic state, which diverges as :math:`g \to g_c^+`.

    ``kind="1/e"`` (default): the lag at which :math:`\Delta(\tau)/\Delta_0 = 1/e`, easy to read
    off simulations. ``kind="tail"``: :math:`1/\kappa`, the rate of the exponential tail
    :math:`\Delta \propto e^{-\kappa\tau}`, with
    :math:`\kappa^2 = -V''(0) = 1 - g^2\,\mathbb{E}[\phi'(\sqrt{\Delta_0}z)]^2`. Near the onset
    (tanh) :math:`\Delta \approx \Delta_0/\cosh(\Delta_0\tau/\sqrt3)`, so :math:`1/\kappa
    \approx \sqrt3/(g-1)` and the 1/e time is :math:`\operatorname{arccosh}(e)\sqrt3/(g-1)`.

    Raises:
        ValueError: ``g`` at or below the onset (no fluctuations to correlate), bad ``kind``.
    """
    act = _check(g, phi)
    if kind not in ("1/e", "tail"):
        raise ValueError(f"kind must be '1/e' or 'tail', got {kind!r}")
    gc = 1.0 / _slope0(act)
    if g <= gc:
        raise ValueError(f"g must be > {gc:g} (the onset of chaos) for a correlation time, got {g}")
    sol = _solution(float(g), act.name)
    if kind == "tail":
        return 1.0 / sol["kappa"]
    return float(CubicSpline(_S_GRID, sol["tau"])(1.0))  # Delta/Delta0 = exp(-s^2) = 1/e


def scs_lyapunov(g, phi="tanh") -> float:
    r"""The largest Lyapunov exponent predicted by DMFT (SCS 1988).

    A perturbation :math:`\delta x` obeys :math:`(\partial_t + 1)\delta x_i = \sum_j J_{ij}
    \phi'(x_j)\delta x_j`; its two-time correlation, :math:`e^{2\lambda T}\psi(\tau)`, satisfies
    the Schrodinger problem

    .. math:: \big[-\partial_\tau^2 + W(\tau)\big]\psi = \epsilon\,\psi, \quad
       W(\tau) = 1 - g^2\,\mathbb{E}[\phi'(u_1)\phi'(u_2)]\big|_{\mathrm{Cov} = \Delta(\tau)}
       = -\partial_\Delta^2 V, \quad \lambda = -1 + \sqrt{1 - \epsilon_0},

    with :math:`\epsilon_0` the ground-state energy. (Differentiating
    :math:`\ddot\Delta = -V'(\Delta)` gives :math:`[-\partial_\tau^2 - V''(\Delta)]\dot\Delta = 0`:
    :math:`\dot\Delta` is an eigenfunction with :math:`\epsilon = 0` and one node, so
    :math:`\epsilon_0 < 0` and :math:`\lambda > 0`.) Solved by
    second-order finite differences on :math:`[-40/\kappa, 40/\kappa]` (8001 points; relative
    error about 1e-5). For :math:`g\phi'(0) \le 1` returns :math:`g\phi'(0) - 1`, the growth rate
    of the quiescent state's linearisation. Near the onset :math:`\lambda \propto (g - 1)^2`.
    """
    act = _check(g, phi)
    a = _slope0(act)
    if g * a <= 1.0:
        return float(g * a - 1.0)
    sol = _solution(float(g), act.name)
    tau, step = np.linspace(-40.0 / sol["kappa"], 40.0 / sol["kappa"], 8001, retstep=True)
    W = 1.0 - g * g * sol["Cp"](sol["s_of_tau"](np.minimum(np.abs(tau), sol["tau"][-1])))
    off = np.full(len(tau) - 1, -1.0 / step**2)
    eps0 = eigh_tridiagonal(2.0 / step**2 + W, off, select="i", select_range=(0, 0))[0][0]
    return float(-1.0 + np.sqrt(1.0 - eps0))


# --- estimates from simulated trajectories --------------------------------------------------------


def autocorrelation_from_trajectories(x, max_lag: int) -> np.ndarray:
    r"""Estimate :math:`\Delta(k\,\delta t) = \langle x_i(t) x_i(t + k\,\delta t)\rangle_{i,t}`.

    ``x`` is ``(T, N)`` (saved every :math:`\delta t`); averages over units and over all pairs of
    times at each lag ``k = 0..max_lag`` (FFT, no mean subtracted: the theory's :math:`\Delta` is
    the second moment, and :math:`\langle x\rangle = 0`).
    """
    V.matrix("x", x)
    max_lag = V.nonneg_int("max_lag", max_lag)
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[0]
    if max_lag >= T:
        raise ValueError(f"max_lag must be < the number of saved times {T}, got {max_lag}")
    nfft = int(2 ** np.ceil(np.log2(2 * T)))
    f = np.fft.rfft(x, n=nfft, axis=0)
    ac = np.fft.irfft(np.abs(f) ** 2, n=nfft, axis=0)[: max_lag + 1].mean(axis=1)
    return ac / (T - np.arange(max_lag + 1))


def correlation_time_from_autocorrelation(ac, dt, default=None) -> float:
    """The first lag where ``ac / ac[0]`` falls below 1/e (linear interpolation), times ``dt``.

    If it never does within the lags given, returns ``default`` when one is given (for example
    ``np.nan``, for networks that have left the chaotic state) and raises ValueError otherwise.
    """
    r = np.asarray(ac, dtype=np.float64) / ac[0]
    k = int(np.argmax(r < np.exp(-1.0)))
    if k == 0:
        if default is not None:
            return default
        raise ValueError("ac must fall below ac[0] / e within its lags; use a larger max_lag")
    return float(dt * (k - 1 + (r[k - 1] - np.exp(-1.0)) / (r[k - 1] - r[k])))


# --- near the onset -------------------------------------------------------------------------------

#: :math:`\sqrt3\,\operatorname{arccosh}(e) \approx 2.871`: the 1/e time of
#: :math:`\Delta_0/\cosh(\Delta_0\tau/\sqrt3)` is this over :math:`\Delta_0 \approx g - 1`.
TAU_ONSET = float(np.sqrt(3.0) * np.arccosh(np.e))


def scs_onset_laws(g) -> dict[str, float]:
    r"""The leading-order laws of the tanh network just above the onset, :math:`g \to 1^+`.

    Expanding the potential to fourth order, :math:`V(\Delta) - V(0) \approx
    \frac{\Delta^2}{2}(g^2 - 1 - 2\Delta_0) + \frac{\Delta^4}{6}`, gives

    * ``"delta0"``: :math:`\Delta_0 \approx g - 1`;
    * ``"tau_c"``: the 1/e time of :math:`\Delta_0/\cosh(\Delta_0\tau/\sqrt3)`,
      :math:`\sqrt3\operatorname{arccosh}(e)/(g-1) \approx 2.87/(g-1)` (:data:`TAU_ONSET`);
    * ``"tau_tail"``: the tail time :math:`1/\kappa \approx \sqrt3/(g-1)`;
    * ``"lyapunov"``: the Poschl-Teller ground state, :math:`\lambda_{\max} \approx (g-1)^2/2`;
    * ``"discrete_lyapunov"``: the discrete-time net (:func:`discrete_lyapunov`),
      :math:`\lambda \approx \frac23 (g-1)^2`. With :math:`\mathbb{E}\tanh^2(\sqrt q z) = q - 2q^2
      + \frac{17}{3}q^3 + O(q^4)` and :math:`\mathbb{E}\operatorname{sech}^4(\sqrt q z) = 1 - 2q +
      7q^2 + O(q^3)`, the fixed point :math:`q^* \approx (g-1)` gives :math:`\chi_1 - 1 \approx
      (7 - \frac{17}{3})\,q^{*2} = \frac43 (g-1)^2`.

    Each is the first term of a series in :math:`g - 1`; how far from the onset it holds is
    measured against the exact solutions (``tests/test_dmft.py``, chapter 1).

    Raises:
        ValueError: ``g`` not a finite scalar above 1.
    """
    V.real("g", g, lo=1.0, lo_open=True)
    if np.ndim(g) != 0:
        raise ValueError(f"g must be a scalar, got shape {np.shape(g)}")
    e = float(g) - 1.0
    return {
        "delta0": e,
        "tau_c": TAU_ONSET / e,
        "tau_tail": np.sqrt(3.0) / e,
        "lyapunov": 0.5 * e * e,
        "discrete_lyapunov": 2.0 * e * e / 3.0,
    }


# --- the discrete-time net ------------------------------------------------------------------------


def discrete_lyapunov(g, phi="tanh", sigma_b2=0.0) -> float:
    r"""Largest Lyapunov exponent per step of the discrete-time random net, from mean-field theory.

    For :math:`x^{t+1} = J^t\phi(x^t) + \sigma_b b^t` with :math:`J^t_{ij} \sim
    \mathcal{N}(0, g^2/N)` (fresh at every step: the annealed net, a deep feed-forward network
    with :math:`\sigma_w^2 = g^2`), a perturbation obeys :math:`u^{t+1} = J^t\operatorname{diag}
    (\phi'(x^t))\,u^t`, and for :math:`N \to \infty`, at the fixed point :math:`q^*` of the length
    map :math:`q \mapsto g^2\mathbb{E}[\phi(\sqrt q z)^2] + \sigma_b^2`,

    .. math:: \lambda = \tfrac12 \ln \chi_1, \qquad
       \chi_1 = g^2\,\mathbb{E}\big[\phi'(\sqrt{q^*}z)^2\big],

    the slope of the correlation map at :math:`c = 1` (:func:`mftlib.chi1` with
    :math:`\sigma_w^2 = g^2`): squared distances between nearby states grow by :math:`\chi_1`
    per step. The component of :math:`u` along :math:`x` (a change of length) grows only by the
    slope of the length map at :math:`q^*`, which is smaller for tanh
    (:math:`g^2\mathbb{E}[\phi\phi''] < 0`), so the angular part dominates. For tanh without
    bias and :math:`g \le 1`, :math:`q^* = 0` and :math:`\lambda = \ln g`. The quenched net (one
    :math:`J` for all steps) is tested against the same formula in simulation
    (:func:`mftlib.networks.dmft.discrete_lyapunov_gains`).

    Raises:
        ValueError: ``g`` not a finite positive scalar, a negative ``sigma_b2``, an unknown
            activation, or a length map without a finite fixed point (relu at :math:`g^2 > 2`).
    """
    V.real("g", g, lo=0.0, lo_open=True)
    if np.ndim(g) != 0:
        raise ValueError(f"g must be a scalar, got shape {np.shape(g)}")
    V.variance("sigma_b2", sigma_b2)
    act = activation(phi)
    chi = float(dense.chi1(act, float(g) ** 2, float(sigma_b2)))
    if not np.isfinite(chi) or chi <= 0.0:
        raise ValueError(
            f"the length map of {act.name!r} at g^2 = {float(g) ** 2:g}, sigma_b2 = "
            f"{float(sigma_b2):g} has no finite fixed point, so no exponent"
        )
    return 0.5 * float(np.log(chi))


# --- comparing simulated autocorrelations with the theory -----------------------------------------


def mean_and_stderr(
    samples, axis: int = 0, skip_nan: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Mean over independent repetitions (seeds) along ``axis`` and its standard error,
    ``std(ddof=1) / sqrt(n)``; with ``skip_nan``, over the finite repetitions only (``n`` counts
    them).

    Raises:
        ValueError: fewer than two (finite) repetitions, or non-finite samples without
            ``skip_nan``.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("samples need at least two repetitions along axis 0")
    if skip_nan:
        n = np.sum(np.isfinite(x), axis=axis)
        if np.any(n < 2) or np.any(np.isinf(x)):
            raise ValueError(f"samples need at least two finite repetitions along axis {axis}")
        return np.nanmean(x, axis=axis), np.nanstd(x, axis=axis, ddof=1) / np.sqrt(n)
    if x.shape[axis] < 2:
        raise ValueError(f"samples need at least two repetitions along axis {axis}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite")
    n = x.shape[axis]
    return x.mean(axis=axis), x.std(axis=axis, ddof=1) / np.sqrt(n)


def autocorrelation_deviation(
    ac, g, dt, phi="tanh", late_lag: float = 20.0
) -> dict[str, np.ndarray]:
    r"""How simulated autocorrelations deviate from the DMFT :math:`\Delta(\tau)`, per seed.

    ``ac`` is ``(n_seeds, n_lags)``: estimates of :math:`\Delta(k\,\delta t)`,
    ``k = 0..n_lags-1``, with :math:`\delta t` = ``dt``
    (:func:`autocorrelation_from_trajectories`). With :math:`e_s(\tau) = (\Delta_s(\tau) -
    \Delta(\tau))/\Delta_0` for seed :math:`s`, returns arrays over seeds:

    * ``"absolute"``: :math:`\operatorname{mean}_\tau |e_s(\tau)|`, the deviation a single
      network shows (statistical scatter and bias together);
    * ``"signed"``: :math:`\operatorname{mean}_\tau e_s(\tau)`, whose mean over seeds estimates
      the bias (what more seeds or longer runs would not remove) and whose spread is the noise;
    * ``"delta0"``: :math:`e_s(0)`, the relative error of the variance;
    * ``"late"``: :math:`\operatorname{mean}_{\tau \ge \tau_{\rm late}} |e_s(\tau)|`, lags at or
      beyond ``late_lag`` (time units), where the theory has nearly decayed and what is left in
      a finite network is its slow or static part.

    Raises:
        ValueError: ``ac`` not a finite 2-D array, ``dt`` not positive, no lag at or beyond
            ``late_lag``, ``g`` at or below the onset (:math:`\Delta_0 = 0`: nothing to
            normalise by).
    """
    V.matrix("ac", ac)
    V.real("dt", dt, lo=0.0, lo_open=True)
    act = _check(g, phi)
    if g * _slope0(act) <= 1.0:
        raise ValueError(f"g must be above the onset {1 / _slope0(act):g}, got {g}")
    a = np.asarray(ac, dtype=np.float64)
    lags = dt * np.arange(a.shape[1])
    late = lags >= late_lag - 1e-9 * dt
    if not late.any():
        raise ValueError(f"late_lag = {late_lag} is beyond the last lag {lags[-1]:g}")
    theory = scs_autocorrelation(g, lags, phi)
    e = (a - theory) / theory[0]
    return {
        "absolute": np.abs(e).mean(axis=1),
        "signed": e.mean(axis=1),
        "delta0": e[:, 0],
        "late": np.abs(e[:, late]).mean(axis=1),
    }


def _exact_for_law(name: str):
    return {
        "delta0": scs_delta0,
        "tau_c": scs_correlation_time,
        "tau_tail": lambda g: scs_correlation_time(g, kind="tail"),
        "lyapunov": scs_lyapunov,
        "discrete_lyapunov": discrete_lyapunov,
    }[name]


#: The names of :func:`scs_onset_laws`, in the order the book prints them.
ONSET_LAWS = ("delta0", "tau_c", "tau_tail", "lyapunov", "discrete_lyapunov")


def scs_onset_ratio(name: str, g) -> float:
    """The onset law ``name`` of :func:`scs_onset_laws` divided by the exact value at ``g``
    (``scs_delta0``, :func:`scs_correlation_time`, ``scs_lyapunov``,
    :func:`discrete_lyapunov`; tanh).

    Raises:
        ValueError: ``name`` not in :data:`ONSET_LAWS`, ``g`` not a finite scalar above 1.
    """
    if name not in ONSET_LAWS:
        raise ValueError(f"name must be one of {ONSET_LAWS}, got {name!r}")
    return float(scs_onset_laws(g)[name] / _exact_for_law(name)(float(g)))
