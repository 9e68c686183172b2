r"""Geometry of deep random networks: a circle of inputs, a decision boundary, shallow networks.

Following Poole et al. (2016; their Figs. 3 and 4), the input manifold is the circle of
pre-activations

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
:math:`q^l = q^*` these are the recursions behind Poole et al.'s Fig. 4 (:math:`\chi = \chi_1`);
here they also hold in the transient while :math:`q^l` approaches :math:`q^*`. They need a
twice differentiable :math:`\phi` (tanh, erf, gelu, ...; not relu). Then
:math:`\mathcal{L}^E = 2\pi\sqrt{N\bar g^E}` and
:math:`\mathcal{L}^G = 2\pi\bar\kappa\sqrt{\bar g^E}`.

Three more predictions of the same mean-field theory:

* :func:`length_convergence_depth`: how many layers the length map needs to reach :math:`q^*`
  (Poole et al.'s Fig. 1), over a whole :math:`(\sigma_w^2, \sigma_b^2)` grid at once;
* :func:`boundary_curvature_theory`: the principal curvatures of the decision boundary
  :math:`v\cdot h^L = 0` of a random readout, pulled back to layer :math:`l` (their Fig. 4F-G);
* :func:`circle_length_theory` and :func:`shallow_length_bound`: the length of the curve traced
  by the post-activations of a deep network, against the most that one hidden layer of
  :math:`N_1` bounded units can reach (their deep-against-shallow comparison, Fig. 5).

The finite networks that check them are in :mod:`mftlib.networks.expressivity`
(:func:`mftlib.networks.expressivity.propagate_circle`,
:func:`mftlib.networks.expressivity.manifold_geometry`,
:func:`mftlib.networks.expressivity.circle_autocorrelation`,
:func:`mftlib.networks.expressivity.boundary_curvatures`,
:func:`mftlib.networks.expressivity.circle_lengths`); :func:`curve_geometry` and
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
from mftlib.dense import (
    correlation_map_traced,
    covariance_trajectory,
    length_map_traced,
    q_star_traced,
)

Array = jax.Array

__all__ = [
    "activation_range",
    "boundary_curvature_theory",
    "chord_length",
    "circle_length_theory",
    "circle_spectrum_sampled",
    "circle_spectrum_theory",
    "correlation_trajectory",
    "curve_geometry",
    "decorrelation_angle",
    "length_convergence_depth",
    "manifold_theory",
    "polygon_length_theory",
    "shallow_length_bound",
    "shallow_width_needed",
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

    from :math:`q^0 = \bar g^{E,0} = q_0`, :math:`(\bar\kappa^0)^2 = 1/q_0`: the recursions of
    Poole et al. (2016, Fig. 4), evaluated along the length-map trajectory instead of at
    :math:`q^*`. The curvature recursion needs :math:`\phi''` (smooth activations).

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
    (:func:`mftlib.covariance_trajectory`) carries it to
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
    :math:`c^{l+1} = [\sigma_w^2\,\mathbb{E}\phi(u_1)\phi(u_2) + \sigma_b^2]/q^*` (the
    correlation map of Poole et al. 2016, Fig. 2), for two inputs that start with length
    :math:`q^*`. With :math:`c_0 = \cos\Delta\theta` it is the correlation :math:`c^l(\Delta\theta)`
    of two points of the circle an angle :math:`\Delta\theta` apart (their Fig. 3).

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


# --- how fast the length converges ----------------------------------------------------------------


def length_convergence_depth(
    phi, sigma_w2, sigma_b2, q0, tol: float = 0.01, max_depth: int = 100
) -> Array:
    r"""Layers the length map needs to bring :math:`q^0` within a fraction ``tol`` of :math:`q^*`.

    The smallest :math:`l \ge 0` with :math:`|q^l - q^*| \le \mathrm{tol}\cdot q^*`, where
    :math:`q^{l+1} = \sigma_w^2\int\mathcal{D}z\,\phi(\sqrt{q^l}z)^2 + \sigma_b^2` from
    :math:`q^0` (the "iterations to convergence" of Poole et al. 2016, Fig. 1D, whose caption
    states a 1% criterion). For tanh the map is increasing and concave, so :math:`q^l` approaches
    :math:`q^*` monotonically and stays within the tolerance once there.

    ``sigma_w2`` and ``sigma_b2`` broadcast against each other (a whole phase diagram at once:
    one compiled, vmapped program); ``q0`` is a scalar or a 1-D array of starting lengths, all
    iterated together at each point. NaN where :math:`q^*` is 0 or infinite (a relative tolerance
    means nothing there) or where ``max_depth`` layers do not suffice.

    Returns:
        float64 array of shape ``broadcast(sigma_w2, sigma_b2).shape + q0.shape``.
    """
    act = activation(phi)
    for name, value in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2), ("q0", q0)):
        V.variance(name, value)
    if np.ndim(q0) > 1:
        raise ValueError(f"q0 must be a scalar or a 1-D array, got shape {np.shape(q0)}")
    V.real("tol", tol, lo=0.0, lo_open=True)
    max_depth = V.positive_int("max_depth", max_depth)
    sw, sb = jnp.broadcast_arrays(*(jnp.asarray(x, jnp.float64) for x in (sigma_w2, sigma_b2)))
    q = jnp.atleast_1d(jnp.asarray(q0, jnp.float64))
    out = _convergence_depth(act, sw.ravel(), sb.ravel(), q, float(tol), max_depth)
    return out.reshape(sw.shape + np.shape(q0))


@partial(jax.jit, static_argnums=(0, 4, 5))
def _convergence_depth(act: Activation, sw, sb, q0, tol: float, max_depth: int) -> Array:
    def one(s_w, s_b):
        qs = q_star_traced(act, s_w, s_b, 1.0)
        ok = jnp.isfinite(qs) & (qs > 0)
        qs_safe = jnp.where(ok, qs, 1.0)
        traj = dynamics.iterate(lambda x: length_map_traced(act, s_w, s_b, x), q0, max_depth)
        inside = jnp.abs(traj - qs_safe) <= tol * qs_safe  # (max_depth + 1, n_q0)
        depth = jnp.argmax(inside, axis=0).astype(jnp.float64)
        return jnp.where(ok & jnp.any(inside, axis=0), depth, jnp.nan)

    return jax.vmap(one)(sw, sb)


# --- the decision boundary of a random readout ----------------------------------------------------


def boundary_curvature_theory(phi, sigma_w2, sigma_b2, q0: float, depth: int) -> dict[str, Array]:
    r"""Mean-field sum of squared principal curvatures of a random network's decision boundary.

    The network :math:`h^l = W^l\phi(h^{l-1}) + b^l`, :math:`l = 1..L` (:math:`L` = ``depth``),
    with a random linear readout :math:`y = v\cdot h^L`, has the decision boundary
    :math:`y = 0`. Seen from layer :math:`l` it is the level set :math:`F_l(h^l) = 0` of
    :math:`F_l = y` as a function of :math:`h^l`, with gradient :math:`g^l` and Hessian
    :math:`H^l`; its principal curvatures :math:`\kappa_1..\kappa_{N-1}` are the eigenvalues of
    :math:`P H^l P / |g^l|` on the tangent space (:math:`P = I - \hat g\hat g^\top`). The chain
    rule gives, with :math:`D = \mathrm{diag}\,\phi'(h^l)` and :math:`W = W^{l+1}`,

    .. math::

       g^l = D W^\top g^{l+1}, \qquad
       H^l = D W^\top H^{l+1} W D + \mathrm{diag}\big(\phi''(h^l)\odot W^\top g^{l+1}\big),

    and averaging over :math:`W` in the mean-field limit (:math:`W` independent of
    :math:`g^{l+1}, H^{l+1}`) gives :math:`|g^l|^2 = \chi(q^l)|g^{l+1}|^2` and, for
    :math:`S^l = \sum_i \kappa_i^2 = \|P H^l P\|_F^2/|g^l|^2`,

    .. math::

       S^L = 0, \qquad S^{l} = \chi(q^l)\,S^{l+1} + \frac{\chi_2(q^l)}{\chi(q^l)},

    with :math:`\chi, \chi_2` as in :func:`manifold_theory` and :math:`q^l` the length-map
    trajectory from :math:`q^0` = ``q0``. In the chaotic phase :math:`S^l` grows by
    :math:`\chi_1` per layer towards the input, so the principal curvatures grow like
    :math:`\chi_1^{(L-l)/2}` (the exponential growth of Poole et al. 2016, Fig. 4G); in the
    ordered phase it saturates at :math:`\chi_2/(\chi_1(1 - \chi_1))`. The root mean square
    principal curvature is :math:`\sqrt{S^l/(N-1)}`; :math:`S^l` itself does not depend on
    :math:`N`. The readout's scale drops out.

    Returns:
        dict of float64 arrays of length ``depth + 1`` (index :math:`l = 0..L`): ``q``, ``chi``
        and ``chi2`` (at :math:`q^l`), ``grad_sq`` (:math:`|g^l|^2/|g^L|^2`), ``sum_sq``
        (:math:`S^l`).
    """
    act = check_parameters(phi, sigma_w2, sigma_b2)
    q0 = check_length("q0", q0)
    depth = V.nonneg_int("depth", depth)
    return _boundary(act, jnp.float64(sigma_w2), jnp.float64(sigma_b2), jnp.float64(q0), depth)


@partial(jax.jit, static_argnums=(0, 4))
def _boundary(act: Activation, sw, sb, q0, depth: int) -> dict[str, Array]:
    q = dynamics.iterate(lambda x: length_map_traced(act, sw, sb, x), q0, depth)
    chi = sw * act.mean_square_derivative(q)
    chi2 = sw * gaussian.expect1(lambda u: act.second_derivative(u) ** 2, q)

    def back(carry, cc):
        s, g = carry
        c, c2 = cc
        new = (c * s + c2 / c, c * g)
        return new, new

    start = (jnp.float64(0.0), jnp.float64(1.0))
    _, (s, g) = jax.lax.scan(back, start, (chi[:-1], chi2[:-1]), reverse=True)
    return {
        "q": q,
        "chi": chi,
        "chi2": chi2,
        "grad_sq": jnp.append(g, 1.0),
        "sum_sq": jnp.append(s, 0.0),
    }


# --- deep against shallow: the length of the post-activation curve ------------------------------


def circle_length_theory(phi, sigma_w2, sigma_b2, q_theta: float, depth: int) -> dict[str, Array]:
    r"""Mean-field length of the curve traced by each layer's post-activations, for a circle
    of inputs embedded by a random first layer.

    The input :math:`x(\theta)` is a circle and :math:`h^0 = W^0 x + b^0`, so each unit is
    :math:`h^0_i(\theta) = a_i\cos(\theta - \theta_i) + b_i`: over units, the part that moves
    with :math:`\theta` has variance ``q_theta`` and the bias adds :math:`\sigma_b^2`, so
    :math:`q^0 = q_\theta + \sigma_b^2` and :math:`\bar g^{E,0} = q_\theta`. Then
    :math:`q^{l+1}` follows the length map and :math:`\bar g^{E,l+1} = \chi(q^l)\,\bar
    g^{E,l}` (:func:`manifold_theory`). The post-activations :math:`z^l = \phi(h^l)` move with
    :math:`\partial_\theta z^l = \phi'(h^l)\odot v^l`, :math:`v^l` independent of :math:`h^l`,
    so their curve has the normalised length

    .. math::

       \Lambda^l = \frac{\mathcal{L}^E(z^l)}{\sqrt N}
       = 2\pi\sqrt{\mathbb{E}\big[\phi'(\sqrt{q^l}z)^2\big]\,\bar g^{E,l}} .

    Layer :math:`l` is the last hidden layer of a network with :math:`l + 1` hidden layers; the
    shallow network is :math:`l = 0`. Compare with :func:`shallow_length_bound`.

    Returns:
        dict of float64 arrays of length ``depth + 1``: ``q``, ``g_E_bar`` and ``post_length``
        (:math:`\Lambda^l`).
    """
    act = check_parameters(phi, sigma_w2, sigma_b2)
    q_theta = check_length("q_theta", q_theta)
    depth = V.nonneg_int("depth", depth)
    sw, sb = jnp.float64(sigma_w2), jnp.float64(sigma_b2)
    return _circle_lengths(act, sw, sb, jnp.float64(q_theta), depth)


@partial(jax.jit, static_argnums=(0, 4))
def _circle_lengths(act: Activation, sw, sb, q_theta, depth: int) -> dict[str, Array]:
    def step(carry, _):
        q, g = carry
        new = (length_map_traced(act, sw, sb, q), sw * act.mean_square_derivative(q) * g)
        return new, new

    start = (q_theta + sb, q_theta)
    _, (q, g) = jax.lax.scan(step, start, None, length=depth)
    q = jnp.concatenate([jnp.reshape(start[0], (1,)), q])
    g = jnp.concatenate([jnp.reshape(start[1], (1,)), g])
    post = 2.0 * math.pi * jnp.sqrt(act.mean_square_derivative(q) * g)
    return {"q": q, "g_E_bar": g, "post_length": post}


def activation_range(phi) -> float:
    r""":math:`R = \sup\phi - \inf\phi` for a bounded, non-decreasing activation (tanh: 2,
    erf: 2, sigmoid: 1); ValueError for any other (relu, linear, gelu, softplus).

    Checked numerically: :math:`\phi` non-decreasing on a grid of :math:`[-50, 50]` and flat
    (to 1e-12) between :math:`\pm 50` and :math:`\pm 10^4`.
    """
    act = activation(phi)
    z = np.linspace(-50.0, 50.0, 20001)
    vals = np.asarray(act.fn(jnp.asarray(z)))
    far = np.asarray(act.fn(jnp.asarray([-1e4, -50.0, 50.0, 1e4])))
    bounded = abs(far[1] - far[0]) < 1e-12 and abs(far[3] - far[2]) < 1e-12
    if not (bounded and np.all(np.diff(vals) >= -1e-15) and np.all(np.isfinite(far))):
        raise ValueError(
            f"phi: {act.name} is not bounded and non-decreasing; the shallow-network bound "
            "needs an activation like tanh, erf or sigmoid"
        )
    return float(far[3] - far[0])


def shallow_length_bound(phi, width: int) -> float:
    r"""The longest curve one hidden layer of ``width`` bounded units can trace on a circle.

    A hidden layer :math:`z_i(\theta) = \phi(w_i\cdot x(\theta) + b_i)`, :math:`i = 1..N_1`, fed
    any circle :math:`x(\theta)`, with any weights: each pre-activation is
    :math:`a_i\cos(\theta - \theta_i) + b_i`, which sweeps :math:`[b_i - a_i, b_i + a_i]` once up
    and once down per turn, so a non-decreasing :math:`\phi` of range :math:`R`
    (:func:`activation_range`) gives each unit a total variation
    :math:`\oint|\partial_\theta z_i|\,d\theta = 2|\phi(b_i + a_i) - \phi(b_i - a_i)| \le 2R`, and

    .. math::

       \mathcal{L}^E(z) = \oint\Big(\sum_i (\partial_\theta z_i)^2\Big)^{1/2} d\theta
       \le \sum_i \oint|\partial_\theta z_i|\,d\theta \le 2 R N_1 .

    Normalised like :func:`circle_length_theory`, :math:`\Lambda = \mathcal{L}^E/\sqrt{N_1} \le
    2R\sqrt{N_1}`: width buys at most a square root, where depth in the chaotic phase multiplies
    :math:`\Lambda` by :math:`\sqrt{\chi_1}` per layer. This is the book's version, for a closed
    circle, of the bound Poole et al. (2016) prove for shallow networks (a length at most
    proportional to :math:`N_1`).

    Returns:
        :math:`2RN_1`, the bound on :math:`\mathcal{L}^E` (float).
    """
    width = V.positive_int("width", width)
    return 2.0 * activation_range(phi) * width


def shallow_width_needed(phi, post_length) -> Array:
    r"""The fewest hidden units a single hidden layer needs to trace a curve of normalised
    length ``post_length`` (:math:`\Lambda`) on a circle: :math:`N_1 \ge (\Lambda/2R)^2`,
    from :func:`shallow_length_bound`. Broadcasts over ``post_length``."""
    V.variance("post_length", post_length)
    r = activation_range(phi)
    return (jnp.asarray(post_length, jnp.float64) / (2.0 * r)) ** 2


# --- principal components of the circle ---------------------------------------------------------


def circle_spectrum_theory(phi, sigma_w2, sigma_b2, n_points: int, depth: int) -> Array:
    r"""Mean-field variances of the principal components of the circle, layer by layer.

    On the grid :func:`theta_grid` of :math:`n` angles the Gram matrix
    :math:`K_{jk} = N^{-1}h^l(\theta_j)\cdot h^l(\theta_k) = q^*c^l(\theta_j - \theta_k)` is
    circulant, with :math:`c^l(\Delta\theta)` the correlation map iterated from
    :math:`c^0 = \cos\Delta\theta` (:func:`correlation_trajectory`). Its eigenvalues are the
    discrete Fourier coefficients of :math:`q^*c^l`; the zero frequency is the mean of the curve,
    which centring removes, and the other :math:`n - 1` are the variances of the centred curve's
    principal components.

    Returns:
        Array ``(depth + 1, n_points - 1)``: the variance fractions, sorted in decreasing order
        (each row sums to 1).
    """
    n = _n_points(n_points)
    depth = V.nonneg_int("depth", depth)
    theta = np.asarray(theta_grid(n))
    half = theta[: n // 2 + 1]  # c(dtheta) = c(2 pi - dtheta): half the work
    c_half = np.asarray(correlation_trajectory(phi, sigma_w2, sigma_b2, np.cos(half), depth))
    tail = c_half[:, 1 : n - n // 2][:, ::-1]
    c_full = np.concatenate([c_half, tail], axis=1)[:, :n]
    spec = np.sort(np.fft.fft(c_full, axis=1).real[:, 1:], axis=1)[:, ::-1]
    spec = np.maximum(spec, 0.0)
    return jnp.asarray(spec / spec.sum(axis=1, keepdims=True))


def circle_spectrum_sampled(
    key: Array, phi, sigma_w2, sigma_b2, n_points: int, depth: int, width: int, n_seeds: int = 1
) -> Array:
    r"""Principal-component variances of the circle as ``width`` units sample them.

    In the mean-field limit each unit of layer :math:`l` is an independent draw of a Gaussian
    process over the circle, with covariance :math:`q^*c^l(\theta_j - \theta_k)`
    (:func:`circle_spectrum_theory`). A layer of finite width :math:`N` holds :math:`N` such
    draws, and the principal components of the :math:`n \times N` curve are those of the sample
    covariance of :math:`N` draws, not of the kernel itself: for :math:`n/N` not small the
    leading sample eigenvalues exceed the kernel's (the Marchenko-Pastur spreading of a sample
    covariance). This function draws ``width`` independent units from the mean-field kernel, for
    each of ``n_seeds`` keys (``jax.random.split(key, n_seeds)``), and returns the variance
    fractions of the centred sample, the mean-field prediction for a curve of that width.

    Returns:
        Array ``(n_seeds, depth + 1, n_points - 1)``, sorted in decreasing order.
    """
    n = _n_points(n_points)
    depth = V.nonneg_int("depth", depth)
    width = V.positive_int("width", width)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    key = V.key(key)
    theta = np.asarray(theta_grid(n))
    half = theta[: n // 2 + 1]
    c = np.asarray(correlation_trajectory(phi, sigma_w2, sigma_b2, np.cos(half), depth))
    c_full = np.concatenate([c, c[:, 1 : n - n // 2][:, ::-1]], axis=1)[:, :n]
    lam_f = np.maximum(np.fft.fft(c_full, axis=1).real, 0.0)  # eigenvalue of frequency f
    # The circulant kernel's eigenvectors: the real Fourier modes cos(f theta), sin(f theta),
    # both with the eigenvalue of frequency f; draw each unit mode by mode.
    freqs = [0] + [f for f in range(1, (n + 1) // 2) for _ in (0, 1)] + ([n // 2] * (n % 2 == 0))
    cols = []
    for i, f in enumerate(freqs):
        use_sin = f > 0 and i % 2 == 0 and 2 * f != n
        vec = np.sin(f * theta) if use_sin else np.cos(f * theta)
        cols.append(vec / np.linalg.norm(vec))
    modes, lam = np.array(cols).T, lam_f[:, freqs]  # (n, n), (depth + 1, n)
    out = []
    for seed_key in jax.random.split(key, n_seeds):
        z = np.asarray(jax.random.normal(seed_key, (depth + 1, n, width), dtype=jnp.float64))
        rows = []
        for layer in range(depth + 1):
            h = modes @ (np.sqrt(lam[layer])[:, None] * z[layer])  # (n, width) units
            h = h - h.mean(axis=0)
            var = np.maximum(np.linalg.eigvalsh(h @ h.T)[::-1][: n - 1], 0.0)  # s_k^2
            rows.append(var / var.sum())
        out.append(rows)
    return jnp.asarray(np.array(out))


def decorrelation_angle(offsets, c, c_star) -> Array:
    r"""The angle at which a correlation function :math:`c(\Delta\theta)` has fallen halfway
    from 1 to ``c_star``: the first crossing of :math:`(1 + c^*)/2`, interpolated linearly in
    :math:`\log\Delta\theta` between the two grid angles around it.

    ``offsets``: increasing angles :math:`> 0`, shape ``(n,)``; ``c``: correlations on them,
    shape ``(..., n)`` (several curves at once, e.g. layers or seeds). In the chaotic phase
    :math:`c^l(\Delta\theta) = \mathcal{C}^l(\cos\Delta\theta)` falls from 1 to :math:`c^*`
    around an angle that shrinks like :math:`\chi_1^{-l/2}` (:func:`correlation_trajectory`).

    Returns:
        float64 array of shape ``c.shape[:-1]``; NaN where ``c`` never falls that far.
    """
    V.grid("offsets", offsets)
    off = np.asarray(offsets, dtype=np.float64)
    if np.any(off <= 0) or np.any(np.diff(off) <= 0):
        raise ValueError("offsets must be positive and increasing")
    c = np.asarray(c, dtype=np.float64)
    if c.shape[-1] != off.size:
        raise ValueError(f"c must have {off.size} values along its last axis, got {c.shape}")
    level = (1.0 + float(c_star)) / 2.0
    flat = c.reshape(-1, off.size)
    out = np.full(flat.shape[0], np.nan)
    for i, row in enumerate(flat):
        below = np.flatnonzero(row <= level)
        if below.size == 0:
            continue
        j = below[0]
        if j == 0:
            out[i] = off[0]
            continue
        t = (row[j - 1] - level) / (row[j - 1] - row[j])
        out[i] = np.exp(np.log(off[j - 1]) + t * (np.log(off[j]) - np.log(off[j - 1])))
    return jnp.asarray(out.reshape(c.shape[:-1]))
