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

Finite networks that check it are simulated in :mod:`mftlib.networks.dmft`; the autocorrelation
and correlation time of their trajectories are estimated here
(:func:`autocorrelation_from_trajectories`, :func:`correlation_time_from_autocorrelation`).
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.interpolate import CubicHermiteSpline, CubicSpline
from scipy.linalg import eigh_tridiagonal

from mftlib import _validate as V
from mftlib import gaussian
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
       = \partial_\Delta^2 V, \quad \lambda = -1 + \sqrt{1 - \epsilon_0},

    with :math:`\epsilon_0` the ground-state energy. (:math:`\dot\Delta` is an eigenfunction with
    :math:`\epsilon = 0` and one node, so :math:`\epsilon_0 < 0` and :math:`\lambda > 0`.) Solved by
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


def correlation_time_from_autocorrelation(ac, dt) -> float:
    """The first lag where ``ac / ac[0]`` falls below 1/e (linear interpolation), times ``dt``."""
    r = np.asarray(ac, dtype=np.float64) / ac[0]
    k = int(np.argmax(r < np.exp(-1.0)))
    if k == 0:
        raise ValueError("ac must fall below ac[0] / e within its lags; use a larger max_lag")
    return float(dt * (k - 1 + (r[k - 1] - np.exp(-1.0)) / (r[k - 1] - r[k])))
