r"""Propagation of a one-dimensional manifold (a great circle) through a deep random network.

Following Poole et al. (2016, Sec. 5), the input manifold is the circle of pre-activations

.. math::

   h^0(\theta) = \sqrt{N q}\,\big[u^0 \cos\theta + u^1 \sin\theta\big], \qquad \theta \in [0, 2\pi),

with :math:`u^0, u^1 \in \mathbb{R}^N` orthonormal and dense (every unit sees a Gaussian-like
:math:`h_i \sim \mathcal{N}(0, q)`), and :math:`h^l(\theta) = W^l\phi(h^{l-1}(\theta)) + b^l`.
With :math:`v = \partial_\theta h` and :math:`a = \partial_\theta^2 h`, the curve has

* Euclidean metric :math:`g^E(\theta) = v\cdot v` and length
  :math:`\mathcal{L}^E = \oint \sqrt{g^E}\,d\theta`;
* extrinsic curvature
  :math:`\kappa = \sqrt{(v\cdot v)(a\cdot a) - (v\cdot a)^2}\,/\,(v\cdot v)^{3/2}`;
* Grassmannian (tangent-direction) length :math:`\mathcal{L}^G = \oint \kappa\sqrt{g^E}\,d\theta`.

Mean-field theory (derived in chapter 3 of the book) tracks the normalised quantities
:math:`\bar g^E = g^E/N` and :math:`\bar\kappa^2 = N\kappa^2` layer by layer,

.. math::

   \bar g^{E,l} = \chi(q^{l-1})\,\bar g^{E,l-1}, \qquad
   (\bar\kappa^l)^2 = \frac{3\chi_2(q^{l-1})}{\chi(q^{l-1})^2}
       + \frac{(\bar\kappa^{l-1})^2}{\chi(q^{l-1})},

with :math:`\chi(q) = \sigma_w^2\int\mathcal{D}z\,\phi'(\sqrt q z)^2`,
:math:`\chi_2(q) = \sigma_w^2\int\mathcal{D}z\,\phi''(\sqrt q z)^2`, :math:`q^l` the length-map
trajectory, and :math:`\bar g^{E,0} = q^0`, :math:`(\bar\kappa^0)^2 = 1/q^0`. At
:math:`q^l = q^*` these are the recursions of Poole et al. (2016), eq. 10 of arXiv:1606.05340
(:math:`\chi = \chi_1`); here they also hold in the transient while :math:`q^l` approaches
:math:`q^*`. They need a twice differentiable :math:`\phi` (tanh, erf, gelu, ...; not relu). Then
:math:`\mathcal{L}^E = 2\pi\sqrt{N\bar g^E}` and
:math:`\mathcal{L}^G = 2\pi\bar\kappa\sqrt{\bar g^E}`.

The circle through sampled finite networks is simulated in :mod:`mftlib.networks.expressivity`
(:func:`mftlib.networks.expressivity.propagate_circle`,
:func:`mftlib.networks.expressivity.manifold_geometry`); :func:`curve_geometry` and
:func:`chord_length` here measure any sampled curve.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dynamics, gaussian
from mftlib.activations import Activation, activation
from mftlib.dense import correlation_map_traced, covariance_trajectory, q_star_traced

Array = jax.Array

__all__ = [
    "chord_length",
    "correlation_trajectory",
    "curve_geometry",
    "manifold_theory",
    "polygon_length_theory",
    "theta_grid",
]


# --- validation ---------------------------------------------------------------------------------


def check_parameters(phi, sigma_w2, sigma_b2) -> Activation:
    """The activation, after checking that both variances are scalars >= 0 (shared with the
    finite networks of :mod:`mftlib.networks.expressivity`)."""
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2)
    V.variance("sigma_b2", sigma_b2)
    for name, value in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        if np.ndim(value) != 0:
            raise TypeError(f"{name} must be a scalar variance, got shape {np.shape(value)}")
    return act


def check_length(name: str, q) -> float:
    """A scalar input length ``q > 0``, as a float; TypeError or ValueError naming ``name``."""
    if np.ndim(q) != 0:
        raise TypeError(f"{name} must be a scalar variance, got shape {np.shape(q)}")
    return float(V.variance(name, q, positive=True))


def _n_points(n_points) -> int:
    n = V.positive_int("n_points", n_points)
    if n < 3:
        raise ValueError(f"n_points must be >= 3 to resolve a closed curve, got {n}")
    return n


# --- the circle ---------------------------------------------------------------------------------


def theta_grid(n_points: int) -> Array:
    r"""The periodic grid :math:`\theta_k = 2\pi k / n`, :math:`k = 0, \dots, n-1` (float64)."""
    n = _n_points(n_points)
    return jnp.arange(n, dtype=jnp.float64) * (2.0 * math.pi / n)


# --- geometry of a sampled curve ------------------------------------------------------------------


def curve_geometry(h: Array, v: Array, a: Array) -> dict[str, Array]:
    r"""Length, curvature and Grassmannian length of a closed curve sampled on :func:`theta_grid`.

    ``h, v, a``: arrays ``(n, N)`` of :math:`h(\theta_k)`, :math:`\partial_\theta h`,
    :math:`\partial^2_\theta h` on the uniform periodic grid. Integrals over :math:`\theta` use the
    periodic rectangle rule :math:`\oint f\,d\theta \approx (2\pi/n)\sum_k f(\theta_k)`.

    Returns a dict of float64 scalars: ``euclidean_length`` :math:`\oint\sqrt{g^E}d\theta`,
    ``chord_length`` (:func:`chord_length`), ``grassmannian_length``
    :math:`\oint\kappa\sqrt{g^E}d\theta`, ``curvature`` (mean of :math:`\kappa(\theta)`),
    ``g_E_bar`` (mean of :math:`v\cdot v/N`), ``kappa_bar`` (mean of :math:`\sqrt N\kappa`),
    ``q`` (mean of :math:`h\cdot h/N`). Pure jnp: jit- and vmap-friendly.
    """
    n, width = h.shape
    g = jnp.sum(v * v, axis=-1)
    va = jnp.sum(v * a, axis=-1)
    aa = jnp.sum(a * a, axis=-1)
    kappa = jnp.sqrt(jnp.maximum(g * aa - va * va, 0.0)) / g**1.5
    speed = jnp.sqrt(g)
    dtheta = 2.0 * math.pi / n
    return {
        "euclidean_length": dtheta * jnp.sum(speed),
        "chord_length": chord_length(h),
        "grassmannian_length": dtheta * jnp.sum(kappa * speed),
        "curvature": jnp.mean(kappa),
        "g_E_bar": jnp.mean(g) / width,
        "kappa_bar": jnp.sqrt(width) * jnp.mean(kappa),
        "q": jnp.mean(jnp.sum(h * h, axis=-1)) / width,
    }


def chord_length(h: Array) -> Array:
    r"""Length of the closed polygon through the rows of ``h``:
    :math:`\sum_k \|h(\theta_{k+1}) - h(\theta_k)\|` with :math:`\theta_n \equiv \theta_0`.

    A lower bound on the curve's length that converges to it as the grid is refined.
    """
    return jnp.sum(jnp.linalg.norm(jnp.roll(h, -1, axis=0) - h, axis=-1))


# --- mean-field theory ----------------------------------------------------------------------------


def manifold_theory(
    phi, sigma_w2, sigma_b2, q0: float, depth: int, width: int | None = None
) -> dict[str, Array]:
    r"""Mean-field prediction for the circle of squared radius :math:`Nq_0`, layer by layer.

    Iterates, for :math:`l = 1, \dots,` ``depth``,

    .. math::

       q^l = \sigma_w^2\!\int\!\mathcal{D}z\,\phi(\sqrt{q^{l-1}}z)^2 + \sigma_b^2, \quad
       \bar g^{E,l} = \chi(q^{l-1})\,\bar g^{E,l-1}, \quad
       (\bar\kappa^l)^2 = \frac{3\chi_2(q^{l-1})}{\chi(q^{l-1})^2}
       + \frac{(\bar\kappa^{l-1})^2}{\chi(q^{l-1})},

    from :math:`q^0 = \bar g^{E,0} = q_0`, :math:`(\bar\kappa^0)^2 = 1/q_0`: Poole et al. (2016),
    eq. 10 of arXiv:1606.05340, evaluated along the length-map trajectory (their eq. 3) instead of
    at :math:`q^*`. The curvature recursion needs :math:`\phi''` (smooth activations).

    Returns:
        dict of float64 arrays of length ``depth + 1``: ``q``, ``chi`` (:math:`\chi(q^{l-1})`,
        NaN at l = 0), ``chi2`` (:math:`\chi_2(q^{l-1})`, NaN at l = 0), ``g_E_bar``,
        ``kappa_bar``, ``grassmannian_length`` (:math:`2\pi\bar\kappa\sqrt{\bar g^E}`); with
        ``width`` also ``euclidean_length`` (:math:`2\pi\sqrt{N\bar g^E}`) and ``curvature``
        (:math:`\bar\kappa/\sqrt N`).
    """
    act = check_parameters(phi, sigma_w2, sigma_b2)
    q0 = check_length("q0", q0)
    depth = V.nonneg_int("depth", depth)
    if width is not None:
        width = V.positive_int("width", width)
    out = _theory(act, jnp.float64(sigma_w2), jnp.float64(sigma_b2), jnp.float64(q0), depth)
    if width is not None:
        out["euclidean_length"] = 2.0 * math.pi * jnp.sqrt(width * out["g_E_bar"])
        out["curvature"] = out["kappa_bar"] / math.sqrt(width)
    return out


@partial(jax.jit, static_argnums=(0, 4))
def _theory(act: Activation, sw, sb, q0, depth: int) -> dict[str, Array]:
    def step(carry, _):
        q, g, k2 = carry
        chi = sw * act.mean_square_derivative(q)
        chi2 = sw * gaussian.expect1(lambda u: act.second_derivative(u) ** 2, q)
        new = (sw * act.mean_square(q) + sb, chi * g, 3.0 * chi2 / chi**2 + k2 / chi)
        return new, new + (chi, chi2)

    start = (q0, q0, 1.0 / q0)
    _, (q, g, k2, chi, chi2) = jax.lax.scan(step, start, None, length=depth)

    def with_start(first, rest):
        return jnp.concatenate([jnp.reshape(first, (1,)), rest])

    g, kappa_bar = with_start(q0, g), jnp.sqrt(with_start(1.0 / q0, k2))
    return {
        "q": with_start(q0, q),
        "chi": with_start(jnp.nan, chi),
        "chi2": with_start(jnp.nan, chi2),
        "g_E_bar": g,
        "kappa_bar": kappa_bar,
        "grassmannian_length": 2.0 * math.pi * kappa_bar * jnp.sqrt(g),
    }


def polygon_length_theory(
    phi, sigma_w2, sigma_b2, q0: float, depth: int, width: int, n_points: int
) -> Array:
    r"""Mean-field length of the polygon through ``n_points`` equally spaced points of the circle.

    Neighbouring points :math:`\Delta = 2\pi/n` apart start with covariance
    :math:`q_0\begin{pmatrix}1 & \cos\Delta\\ \cos\Delta & 1\end{pmatrix}`; the dense covariance map
    (:func:`mftlib.covariance_trajectory`; Poole et al. 2016, eq. 3-5) carries it to
    :math:`(q^l, q^l_{12})`, and
    :math:`\|h^l(\theta+\Delta) - h^l(\theta)\|^2 \to 2N(q^l - q^l_{12})`.
    The prediction for :func:`chord_length` is therefore

    .. math:: \mathcal{L}^{l}_n = n\sqrt{2N\,(q^l - q^l_{12})}
       \;\xrightarrow{\;n\to\infty\;}\; 2\pi\sqrt{N\bar g^{E,l}},

    the limit being :func:`manifold_theory`'s ``euclidean_length``, because near :math:`c = 1` the
    correlation map has slope :math:`\chi(q)`, so :math:`q^l - q^l_{12}` is multiplied by
    :math:`\chi(q^{l-1})` per layer. For a coarse grid in the chaotic phase, where neighbouring
    points decorrelate, it is shorter than the smooth length.

    Returns:
        Array of length ``depth + 1``.
    """
    act = check_parameters(phi, sigma_w2, sigma_b2)
    q0 = check_length("q0", q0)
    width = V.positive_int("width", width)
    n = _n_points(n_points)
    c = math.cos(2.0 * math.pi / n)
    S = covariance_trajectory(act, sigma_w2, sigma_b2, q0 * np.array([[1.0, c], [c, 1.0]]), depth)
    gap = jnp.maximum(S[:, 0, 0] + S[:, 1, 1] - 2.0 * S[:, 0, 1], 0.0)
    return n * jnp.sqrt(width * gap)


def correlation_trajectory(phi, sigma_w2, sigma_b2, c0, depth: int) -> Array:
    r"""Correlation map iterated at the fixed length: :math:`c^0 = c_0`,
    :math:`c^{l+1} = [\sigma_w^2\,\mathbb{E}\phi(u_1)\phi(u_2) + \sigma_b^2]/q^*` (Poole et al.
    2016, eq. 5), for two inputs that start with length :math:`q^*`.

    Broadcasts over ``sigma_w2``, ``sigma_b2`` and ``c0`` (one compiled, vmapped program for a whole
    sweep: a cut through the phase diagram, or the correlation of every pair of points on the
    circle). NaN where the length map has no finite, non-zero fixed point.

    Returns:
        Array ``(depth + 1, *broadcast_shape)``.
    """
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2)
    V.variance("sigma_b2", sigma_b2)
    V.correlation("c0", c0)
    depth = V.nonneg_int("depth", depth)
    sw, sb, c = jnp.broadcast_arrays(
        *(jnp.asarray(x, jnp.float64) for x in (sigma_w2, sigma_b2, c0))
    )
    out = _corr_traj(act, sw.ravel(), sb.ravel(), c.ravel(), depth)
    return out.reshape((depth + 1,) + sw.shape)


@partial(jax.jit, static_argnums=(0, 4))
def _corr_traj(act: Activation, sw, sb, c0, depth: int) -> Array:
    def one(s_w, s_b, c):
        q = q_star_traced(act, s_w, s_b, 1.0)
        ok = jnp.isfinite(q) & (q > 0)
        qs = jnp.where(ok, q, 1.0)

        def step(ci):
            return jnp.clip(correlation_map_traced(act, s_w, s_b, qs, ci), -1.0, 1.0)

        return jnp.where(ok, dynamics.iterate(step, c, depth), jnp.nan)

    return jax.vmap(one, out_axes=1)(sw, sb, c0)
