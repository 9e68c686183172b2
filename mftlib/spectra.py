r"""Singular-value spectra of deep-network Jacobians from free probability.

The input-output Jacobian of a depth-:math:`L` network, :math:`J = \prod_{l=1}^{L} D_l W_l` with
:math:`D_l = \mathrm{diag}\,\phi'(h^l)`, has squared singular values = eigenvalues of
:math:`JJ^\top`. For wide networks the factors are asymptotically free, so the S-transforms
multiply (Pennington, Schoenholz & Ganguli 2017; 2018):

.. math::

   S_{JJ^\top}(z) = \prod_{l=1}^{L} S_{W_l^\top W_l}(z)\, S_{D_l^2}(z),
   \qquad S_{W^\top W}(z) = \frac{1}{\sigma_w^2 (1+z)^{g}},

with :math:`g = 1` for Gaussian weights (variance :math:`\sigma_w^2/N`) and :math:`g = 0` for
scaled orthogonal weights :math:`\sigma_w O`. The S-transform of a measure with moments
:math:`m_k` is :math:`S(z) = \frac{1+z}{z}\chi(z)`, where :math:`\chi` is the compositional inverse
of the moment generating function :math:`\psi(x) = \sum_{k\ge 1} m_k x^k`.

Public API (stable; other chapters build on it):

* :func:`derivative_moments` -- :math:`\mu_k = \mathbb{E}[\phi'(\sqrt{q}z)^{2k}]`, the moments of
  one layer's :math:`D^2` (evaluate at :math:`q = q^*`).
* :func:`derivative_atoms` -- a quadrature representation (atoms, weights) of the law of
  :math:`\phi'(\sqrt{q}z)^2`, for densities.
* :func:`s_transform_series` / :func:`moments_from_s_series` -- power-series S-transforms.
* :func:`jacobian_moments` -- moments :math:`m_1, \dots, m_K` of the spectrum of :math:`JJ^\top`,
  exact to rounding (power-series algebra, no truncation error in the first K moments).
* :func:`spectrum_summary` -- mean :math:`m_1` and variance :math:`m_2 - m_1^2`.
* :func:`jacobian_density` -- the density of the eigenvalues of :math:`JJ^\top`, by solving the
  S-transform equation at :math:`\lambda + i\epsilon` with Newton's method and continuation.
* :func:`squared_singular_values`, :func:`empirical_moments` -- the same spectra measured in
  explicit matrices: the random networks of :mod:`mftlib.networks.spectra`
  (:func:`mftlib.networks.spectra.sample_jacobian_spectrum`,
  :func:`mftlib.networks.spectra.sample_jacobian_spectra_by_depth`) or any other Jacobian.

All series are in float64 numpy (they are tiny); the densities use numpy complex128.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import gaussian
from mftlib.activations import Activation, activation

Array = jax.Array
WEIGHTS = ("gaussian", "orthogonal")


def weights_exponent(weights: str) -> int:
    r"""The exponent :math:`g` of :math:`S_{W^\top W}(z) = 1/(\sigma_w^2(1+z)^g)`: 1 for
    ``"gaussian"`` weights, 0 for ``"orthogonal"`` ones (``WEIGHTS``); ``ValueError`` else."""
    if not isinstance(weights, str) or weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    return 1 if weights == "gaussian" else 0


def _act(phi) -> Activation:
    if isinstance(phi, Activation):
        return phi
    if not isinstance(phi, str):
        raise TypeError(f"phi must be an activation name or Activation, got {type(phi).__name__}")
    return activation(phi)


# --- one layer --------------------------------------------------------------------------------


def derivative_moments(phi, q, n_moments: int = 4) -> np.ndarray:
    r"""Moments of one layer's squared derivative,
    :math:`\mu_k = \int\mathcal{D}z\,\phi'(\sqrt{q}\,z)^{2k}`, :math:`k = 1..K`.

    Evaluated at the fixed point :math:`q = q^*` these are the moments of :math:`D_l^2` in
    Pennington et al. (2017). ``mu[0]`` is :math:`\mu_1`, and
    :math:`\chi_1 = \sigma_w^2\mu_1`.
    """
    act = _act(phi)
    V.variance("q", q)
    K = V.positive_int("n_moments", n_moments)
    q = jnp.float64(q)
    d = act.derivative
    return np.array(
        [float(gaussian.expect1(lambda u, k=k: d(u) ** (2 * k), q)) for k in range(1, K + 1)]
    )


def derivative_atoms(phi, q, n_atoms: int = 200) -> tuple[np.ndarray, np.ndarray]:
    r"""The law of :math:`\phi'(\sqrt{q}z)^2`, :math:`z \sim \mathcal{N}(0,1)`, as weighted atoms.

    Gauss-Hermite nodes :math:`z_j` (probabilists', an even number so that :math:`z = 0`, the
    kink of relu, is never a node) give atoms :math:`\phi'(\sqrt{q}z_j)^2` with weights summing
    to 1. Used by :func:`jacobian_density`.
    """
    act = _act(phi)
    V.variance("q", q)
    n = V.positive_int("n_atoms", n_atoms)
    n += n % 2
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    atoms = np.asarray(act.derivative(jnp.sqrt(jnp.float64(q)) * jnp.asarray(z))) ** 2
    return atoms, w


# --- power series -------------------------------------------------------------------------------


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.convolve(a, b)[: len(a)]


def _compose(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """f(g(x)) truncated; g[0] must be 0."""
    out = np.zeros_like(g)
    out[0] = f[0]
    power = np.zeros_like(g)
    power[0] = 1.0
    for k in range(1, len(f)):
        power = _mul(power, g)
        out = out + f[k] * power
    return out


def _reverse(f: np.ndarray) -> np.ndarray:
    """Compositional inverse g of f (f[0] = 0, f[1] != 0): f(g(x)) = x to the series' order."""
    K = len(f) - 1
    g = np.zeros_like(f)
    g[1] = 1.0 / f[1]
    for n in range(2, K + 1):
        c = _compose(f, g)[n]
        g[n] -= c / f[1]
    return g


def _inverse(a: np.ndarray) -> np.ndarray:
    """1/a as a series (a[0] != 0)."""
    b = np.zeros_like(a)
    b[0] = 1.0 / a[0]
    for n in range(1, len(a)):
        b[n] = -np.dot(a[1 : n + 1], b[n - 1 :: -1][:n]) / a[0]
    return b


def _moments(name: str, moments) -> np.ndarray:
    m = np.asarray(V.grid(name, moments), dtype=np.float64)
    if m[0] <= 0:
        raise ValueError(f"{name}[0] (the first moment) must be > 0, got {m[0]}")
    if np.any(m < 0):
        raise ValueError(f"{name} must be moments of a non-negative measure (all >= 0)")
    return m


def s_transform_series(moments) -> np.ndarray:
    r"""Coefficients :math:`s_0..s_{K-1}` of :math:`S(z) = \sum_n s_n z^n` from moments
    :math:`m_1..m_K` of a measure on :math:`[0, \infty)` with :math:`m_1 > 0`.

    :math:`S(z) = \frac{1+z}{z}\psi^{-1}(z)`; e.g. :math:`s_0 = 1/m_1`,
    :math:`s_1 = (m_1^2 - m_2)/m_1^3` (Pennington et al. 2018).
    """
    m = _moments("moments", moments)
    K = len(m)
    psi = np.concatenate([[0.0], m])
    chi = _reverse(psi)  # chi[1..K]
    chi_over_z = chi[1:]  # length K
    return _mul(np.concatenate([[1.0, 1.0], np.zeros(K - 2)])[:K], chi_over_z)


def moments_from_s_series(s) -> np.ndarray:
    r"""Inverse of :func:`s_transform_series`: moments :math:`m_1..m_K` from :math:`s_0..s_{K-1}`.

    :math:`\chi(z) = z S(z)/(1+z)` and :math:`\psi = \chi^{-1}`.
    """
    s = np.asarray(V.grid("s", s), dtype=np.float64)
    if s[0] <= 0:
        raise ValueError(f"s[0] must be > 0, got {s[0]}")
    K = len(s)
    inv1pz = (-1.0) ** np.arange(K)
    chi = np.concatenate([[0.0], _mul(s, inv1pz)])
    return _reverse(chi)[1:]


def layer_s_series(d2_moments, sigma_w2, weights: str = "gaussian") -> np.ndarray:
    r"""S-transform series of one layer :math:`W^\top D^2 W`:
    :math:`S_{D^2}(z)/(\sigma_w^2(1+z)^g)`."""
    g = weights_exponent(weights)
    V.variance("sigma_w2", sigma_w2, positive=True)
    sD = s_transform_series(d2_moments)
    K = len(sD)
    sW = ((-1.0) ** np.arange(K) if g else np.eye(1, K)[0]) / float(sigma_w2)
    return _mul(sD, sW)


def jacobian_moments(d2_moments, sigma_w2, depth: int, weights: str = "gaussian") -> np.ndarray:
    r"""Moments :math:`m_k = \frac1N\mathrm{tr}(JJ^\top)^k`, :math:`k = 1..K`, of a depth-L
    Jacobian.

    :math:`S_{JJ^\top} = (S_{W^\top W}\,S_{D^2})^L` (Pennington et al. 2017) converted
    back to moments. ``d2_moments`` are :math:`\mu_1..\mu_K` of one layer's :math:`D^2` (from
    :func:`derivative_moments`; all layers identical, as at the fixed point :math:`q^*`), K >= 1.
    For a linear network (``d2_moments = [1, 1, ...]``) and Gaussian weights at
    :math:`\sigma_w^2 = 1`, :math:`m_1 = 1` and :math:`m_2 - m_1^2 = L` (Pennington et al. 2017);
    with orthogonal weights :math:`m_2 - m_1^2 = 0`. ``depth = 0`` gives the identity.
    """
    L = V.nonneg_int("depth", depth)
    sl = layer_s_series(d2_moments, sigma_w2, weights)
    if L == 0:
        return np.ones_like(sl)
    # power L of a series: through exp/log would need s0 > 0 (true), but repeated products are exact
    total = np.eye(1, len(sl))[0]
    base, n = sl, L
    while n:
        if n & 1:
            total = _mul(total, base)
        base = _mul(base, base)
        n >>= 1
    return moments_from_s_series(total)


def spectrum_summary(phi, sigma_w2, sigma_b2, depth: int, weights: str = "gaussian") -> dict:
    r"""Mean and variance of the squared singular values at the fixed point :math:`q^*`.

    Returns ``dict(q_star, chi1, mean, variance, moments)``; ``mean`` = :math:`\chi_1^L`.
    Exactly (second order of the S-transform series; Pennington et al. 2018):
    :math:`(m_2 - m_1^2)/m_1^2 = L(\mu_2/\mu_1^2 - 1 + g)`.
    """
    from mftlib import dense

    qs = float(dense.q_star(phi, sigma_w2, sigma_b2))
    if not np.isfinite(qs):
        raise ValueError("the length map diverges at these (sigma_w2, sigma_b2): q* = inf")
    mu = derivative_moments(phi, qs, 2)
    m = jacobian_moments(mu, sigma_w2, depth, weights)
    return dict(
        q_star=qs, chi1=float(sigma_w2) * mu[0], mean=m[0], variance=m[1] - m[0] ** 2, moments=m
    )


# --- density ------------------------------------------------------------------------------------


def jacobian_density(
    lams,
    d2_atoms,
    d2_weights,
    sigma_w2,
    depth: int,
    weights: str = "gaussian",
    eps: float = 1e-3,
) -> np.ndarray:
    r"""Density :math:`\rho(\lambda)` of the eigenvalues of :math:`JJ^\top` (squared singular
    values).

    With :math:`x = 1/z`, :math:`z = \lambda + i\epsilon\lambda`, solve for
    :math:`y = \chi_{D^2}(p)` the equation

    .. math::

       \frac{p}{1+p}\Big[\frac{(1+p)\,y}{\sigma_w^2\,p\,(1+p)^{g}}\Big]^{L} = x,
       \qquad p = \psi_{D^2}(y) = \sum_j w_j \frac{d_j y}{1 - d_j y},

    then :math:`p = \psi_{JJ^\top}(x)`, :math:`G(z) = (1+p)/z` and
    :math:`\rho = -\mathrm{Im}\,G/\pi`. Newton's method, continued from above the spectrum's edge
    downwards along the sorted ``lams`` (> 0). ``eps`` is a relative broadening; points on an
    atom (the zero eigenvalues of relu nets) are not resolved. ``depth >= 1``.
    """
    lam = np.asarray(V.grid("lams", lams), dtype=np.float64)
    if np.any(lam <= 0):
        raise ValueError("lams must be > 0")
    L = V.positive_int("depth", depth)
    g = weights_exponent(weights)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.real("eps", eps, lo=0.0, lo_open=True)
    d = np.asarray(V.grid("d2_atoms", d2_atoms), dtype=np.float64)
    w = np.asarray(V.grid("d2_weights", d2_weights), dtype=np.float64)
    if d.shape != w.shape or np.any(w < 0) or np.any(d < 0):
        raise ValueError("d2_atoms and d2_weights must have equal shapes and be >= 0")
    w = w / w.sum()
    sw = float(sigma_w2)

    def psi_d(y):
        t = d * y
        return np.sum(w * t / (1 - t)), np.sum(w * d / (1 - t) ** 2)

    def residual(y, x):
        p, dp = psi_d(y)
        a = (1 + p) ** (1 - g) * y / (sw * p)
        r = p / (1 + p) * a**L / x - 1.0
        # derivative by the log: d log(r+1)/dy
        dlog = dp / p - dp / (1 + p) + L * ((1 - g) * dp / (1 + p) + 1 / y - dp / p)
        return r, (r + 1) * dlog

    moments = np.sum(w * d), np.sum(w * d**2)
    m = jacobian_moments(np.array(moments), sw, L, weights)
    top = max(lam.max(), (m[1] ** 0.5) * (2 + 4 * L))
    order = np.argsort(-lam)
    path = np.concatenate([np.geomspace(top * 4, lam[order[0]], 200), lam[order]])
    out = np.empty(len(path))
    x0 = 1.0 / (path[0] * (1 + 1j * eps))
    y = x0 * m[0] / moments[0]  # leading order: p ~ m1 x, y ~ p / mu1
    for i, lm in enumerate(path):
        z = lm * (1 + 1j * eps)
        x = 1.0 / z
        for _ in range(60):
            r, dr = residual(y, x)
            step = r / dr
            y_new = y - step
            # damp steps that would jump far (keeps the branch)
            if abs(step) > 0.5 * abs(y):
                y_new = y - 0.5 * abs(y) * step / abs(step)
            y = y_new
            if abs(r) < 1e-12:
                break
        p, _ = psi_d(y)
        out[i] = -np.imag((1 + p) / z) / np.pi
    res = np.empty(len(lam))
    res[order] = out[200:]
    return res


# --- spectra of given matrices --------------------------------------------------------------------


def squared_singular_values(J) -> Array:
    """Eigenvalues of :math:`JJ^\\top` (squared singular values of ``J``), ascending."""
    J = V.matrix("J", J)
    return jnp.sort(jnp.linalg.svd(jnp.asarray(J), compute_uv=False) ** 2)


def empirical_moments(evals, n_moments: int = 4) -> np.ndarray:
    r""":math:`\frac1N\sum_i \lambda_i^k`, :math:`k = 1..K`, over the last axis of ``evals``."""
    K = V.positive_int("n_moments", n_moments)
    e = np.asarray(evals, dtype=np.float64)
    return np.stack([np.mean(e**k, axis=-1) for k in range(1, K + 1)], axis=-1)
