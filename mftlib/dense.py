r"""Mean-field theory of deep fully connected networks.

A network with weights :math:`W^l_{ij} \sim \mathcal{N}(0, \sigma_w^2/N_{l-1})` and biases
:math:`b^l_i \sim \mathcal{N}(0, \sigma_b^2)` maps the covariance of its pre-activations over a set
of inputs by (Poole et al. 2016; Lee et al. 2018)

.. math::

   \Sigma^{l+1}_{ab} = \sigma_w^2\, \mathbb{E}_{u \sim \mathcal{N}(0, \Sigma^l)}
   [\phi(u_a)\phi(u_b)] + \sigma_b^2 .

Its :math:`1\times 1` case is the *length map*
:math:`q^{l+1} = \sigma_w^2 \int\mathcal{D}z\,\phi(\sqrt{q^l}z)^2 + \sigma_b^2` with fixed point
:math:`q^*`; at :math:`q^*` the off-diagonal gives the *correlation map*
:math:`c^{l+1} = [\sigma_w^2 \mathbb{E}\phi(u_1)\phi(u_2) + \sigma_b^2]/q^*`, which always has the
fixed point :math:`c = 1` with slope

.. math::

   \chi_1 = \sigma_w^2 \int \mathcal{D}z\, \phi'(\sqrt{q^*} z)^2 .

:math:`\chi_1 < 1` is the ordered phase (:math:`c^* = 1`), :math:`\chi_1 > 1` the chaotic phase
(a stable :math:`c^* < 1`). Linearising at the fixed point gives the depth scales of Schoenholz et
al. (2017): :math:`\xi_q^{-1} = -\log \chi_q` with
:math:`\chi_q = \partial q^{l+1}/\partial q^l = \chi_1 + \sigma_w^2 \int\mathcal{D}z\,\phi\phi''`,
and :math:`\xi_c^{-1} = -\log \chi_c` with
:math:`\chi_c = \sigma_w^2\,\mathbb{E}[\phi'(u_1)\phi'(u_2)]` at :math:`(q^*, c^*)`. Backpropagated
squared gradient norms change by the factor :math:`\chi_1` per layer (Schoenholz et al. 2017,
the backward mean field), with depth scale :math:`\xi_\nabla^{-1} = -\log\chi_1`.

Conventions: variances, not standard deviations; ``phi`` is a name or an
:class:`~mftlib.activations.Activation`. Where the length map diverges (unbounded activations with
large :math:`\sigma_w^2`) ``q_star`` is ``inf`` and the quantities that need :math:`q^*` are NaN;
:func:`~mftlib.phase_diagram` reports those points in its ``diverged`` mask.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dynamics, hermite
from mftlib.activations import Activation, activation

Array = jax.Array
_TINY_Q = 1e-14  # where q = 0 is an unstable fixed point, the search for q* starts above it
_MAX_DOUBLINGS = 200


def _params(phi, sigma_w2, sigma_b2) -> Activation:
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2)
    V.variance("sigma_b2", sigma_b2)
    return act


def _f64(x) -> Array:
    return jnp.asarray(x, dtype=jnp.float64)


# --- maps ---------------------------------------------------------------------------------------


def length_map(phi, sigma_w2, sigma_b2, q) -> Array:
    r"""The length map
    :math:`q \mapsto \sigma_w^2 \int\mathcal{D}z\,\phi(\sqrt{q}z)^2 + \sigma_b^2`.

    Poole et al. (2016). Broadcasts over ``q``.
    """
    act = _params(phi, sigma_w2, sigma_b2)
    V.variance("q", q)
    return length_map_traced(act, _f64(sigma_w2), _f64(sigma_b2), _f64(q))


def length_map_traced(act: Activation, sw, sb, q):
    """:func:`mftlib.length_map` for an :class:`~mftlib.activations.Activation` and float64 arrays
    (unchecked, traceable): ``sw * E[phi(sqrt(q) z)^2] + sb``, elementwise."""
    return sw * act.mean_square(q) + sb


def correlation_map(phi, sigma_w2, sigma_b2, c, q=None) -> Array:
    r"""The correlation map at equal lengths :math:`q` (default :math:`q^*`), Poole et al. (2016).

    .. math:: c \mapsto \frac{\sigma_w^2\,\mathbb{E}[\phi(u_1)\phi(u_2)] + \sigma_b^2}{q}, \quad
       u_1, u_2 \sim \mathcal{N}\!\left(0, q\begin{pmatrix}1 & c\\ c & 1\end{pmatrix}\right).

    With ``q = None`` the input length is :math:`q^*`, so the output is again a correlation in
    :math:`[-1, 1]` and :math:`c = 1` is a fixed point. Broadcasts over ``c``.
    """
    act = _params(phi, sigma_w2, sigma_b2)
    V.correlation("c", c)
    sw, sb = _f64(sigma_w2), _f64(sigma_b2)
    if q is None:
        q = q_star_traced(act, sw, sb, 1.0)
        _require_finite_q(q, act, sigma_w2, sigma_b2)
        if float(q) == 0.0:
            raise ValueError(
                f"q* = 0 for {act.name} at sigma_w2={sigma_w2}, sigma_b2={sigma_b2}: the signal "
                "shrinks to zero and correlations are undefined there; pass q explicitly"
            )
    else:
        V.variance("q", q, positive=True)
    q = _f64(q)
    cmap = jnp.vectorize(lambda ci: correlation_map_traced(act, sw, sb, q, ci))
    return cmap(_f64(c))


def correlation_map_traced(act: Activation, sw, sb, q, c):
    """:func:`mftlib.correlation_map` at length ``q`` (unchecked, traceable; scalar ``c``):
    ``(sw * E[phi(u_1) phi(u_2)] + sb) / q`` with ``u`` of variances ``q`` and correlation ``c``."""
    return (sw * act.pair_moment(q, q, c * q) + sb) / q


def covariance_map(phi, sigma_w2, sigma_b2, Sigma) -> Array:
    r"""The dense layer's covariance map
    :math:`\Sigma \mapsto \sigma_w^2\,\mathbb{E}[\phi(u)\phi(u)^T]
    + \sigma_b^2` for an :math:`n \times n` covariance ``Sigma`` (Lee et al. 2018)."""
    act = _params(phi, sigma_w2, sigma_b2)
    V.covariance("Sigma", Sigma)
    return _covariance_map(act, _f64(sigma_w2), _f64(sigma_b2), _f64(Sigma))


def _covariance_map(act: Activation, sw, sb, S):
    return sw * act.moment_matrix(S) + sb


# --- fixed points -------------------------------------------------------------------------------


@partial(jax.jit, static_argnums=0)
def q_star_traced(act: Activation, sw, sb, q0):
    """:func:`mftlib.q_star` for an :class:`~mftlib.activations.Activation` and float64 arrays
    (unchecked, traceable, jitted): the stable fixed point of the length map, elementwise over
    ``sw, sb``; ``inf`` where the length map diverges."""
    if act.homogeneous:
        a = sw * act.mean_square(1.0)
        identity = (a == 1.0) & (sb == 0.0)
        finite = jnp.where(a < 1.0, sb / jnp.where(a < 1.0, 1.0 - a, 1.0), jnp.inf)
        return jnp.where(identity, q0, finite)

    def r(q):
        return length_map_traced(act, sw, sb, q) - q

    slope0 = sw * act.mean_square_slope(0.0) - 1.0
    return dynamics.stable_fixed_point_1d(
        r, tiny=_TINY_Q, max_doublings=_MAX_DOUBLINGS, slope_at_zero=slope0
    )


def _require_finite_q(q, act, sigma_w2, sigma_b2):
    if not np.isfinite(float(q)):
        raise ValueError(
            f"the length map of {act.name} at sigma_w2={sigma_w2}, sigma_b2={sigma_b2} has no "
            "finite fixed point (q grows without bound); lower sigma_w2"
        )


def q_star(phi, sigma_w2, sigma_b2, q0: float = 1.0) -> Array:
    r"""Stable fixed point :math:`q^*` of the length map (Poole et al. 2016).

    Found by a bracketed root search (:func:`mftlib.dynamics.find_root`) on
    :math:`q \mapsto \mathcal{L}(q) - q`, to ~1e-15 relative; for relu and linear networks, whose
    length map is linear, in closed form
    :math:`q^* = \sigma_b^2/(1 - \sigma_w^2 \mathbb{E}\phi(z)^2)`.

    Args:
        phi: activation name or :class:`~mftlib.activations.Activation`.
        sigma_w2, sigma_b2: weight and bias variances (>= 0).
        q0: the input length; used only where every q is a fixed point (relu at
            sigma_w2 = 2, sigma_b2 = 0, where q^l = q0 for all l).

    Returns:
        :math:`q^*` as a float64 scalar; ``inf`` if the length map diverges.
    """
    act = _params(phi, sigma_w2, sigma_b2)
    V.variance("q0", q0)
    return q_star_traced(act, _f64(sigma_w2), _f64(sigma_b2), _f64(q0))


@partial(jax.jit, static_argnums=0)
def chi1_traced(act: Activation, sw, q):
    r""":math:`\chi_1 = \sigma_w^2\,\mathbb{E}[\phi'(\sqrt{q}z)^2]` at a given length ``q``
    (unchecked, traceable, jitted); :func:`mftlib.chi1` evaluates it at :math:`q^*`."""
    return sw * act.mean_square_derivative(q)


@partial(jax.jit, static_argnums=0)
def _c_star(act: Activation, sw, sb, q, chi):
    """Stable fixed point of the correlation map at length q (traced; see :func:`c_star`)."""
    k1 = act.pair_moment(q, q, q)

    def g(c):
        # (C(c) - c) / (1 - c), written so that C(1) = 1 holds to rounding: the root c* < 1
        # without the trivial root at c = 1. g(0) = C(0) >= 0 and g(1-) = 1 - chi_1.
        one_minus = jnp.where(c < 1.0, 1.0 - c, 1.0)
        return 1.0 - sw * (k1 - act.pair_moment(q, q, c * q)) / (q * one_minus)

    g0 = g(0.0)
    root = dynamics.find_root(g, 0.0, 1.0, g_lo=g0, g_hi=1.0 - chi).value
    return jnp.where(chi <= 1.0, 1.0, jnp.where(g0 <= 0.0, 0.0, root))


def chi1(phi, sigma_w2, sigma_b2) -> Array:
    r""":math:`\chi_1 = \sigma_w^2 \int\mathcal{D}z\,\phi'(\sqrt{q^*}z)^2`
    (Poole et al. 2016).

    The slope of the correlation map at :math:`c = 1`, and the per-layer factor of backpropagated
    squared gradient norms. NaN where :math:`q^* = \infty`.
    """
    act = _params(phi, sigma_w2, sigma_b2)
    sw, sb = _f64(sigma_w2), _f64(sigma_b2)
    return quantities_traced(act, sw, sb)["chi1"]


def c_star(phi, sigma_w2, sigma_b2) -> Array:
    r"""Stable fixed point :math:`c^*` of the correlation map (Poole et al. 2016, Fig. 2).

    1.0 in the ordered phase (:math:`\chi_1 \le 1`); in the chaotic phase the root in
    :math:`[0, 1)` of :math:`(C(c) - c)/(1 - c)`, a bracketed search that stays away from the
    unstable fixed point :math:`c = 1`.
    """
    act = _params(phi, sigma_w2, sigma_b2)
    return quantities_traced(act, _f64(sigma_w2), _f64(sigma_b2))["c_star"]


def depth_scales(phi, sigma_w2, sigma_b2) -> tuple[Array, Array]:
    r"""Depth scales :math:`(\xi_q, \xi_c)` of Schoenholz et al. (2017).

    :math:`\xi_q = -1/\log\chi_q`, :math:`\chi_q = \partial\mathcal{L}/\partial q` at :math:`q^*`;
    :math:`\xi_c = -1/\log\chi_c`, :math:`\chi_c = \sigma_w^2\,\mathbb{E}[\phi'(u_1)\phi'(u_2)]` at
    :math:`(q^*, c^*)`; equal to :math:`-1/\log\chi_1` in the ordered phase. ``inf`` where the
    multiplier is >= 1 (at criticality, or where q = 0 is marginal).
    """
    act = _params(phi, sigma_w2, sigma_b2)
    out = quantities_traced(act, _f64(sigma_w2), _f64(sigma_b2))
    return out["xi_q"], out["xi_c"]


def gradient_depth_scale(phi, sigma_w2, sigma_b2) -> Array:
    r""":math:`\xi_\nabla = -1/\log\chi_1` for vanishing gradients; for exploding gradients
    (:math:`\chi_1 > 1`) the growth scale :math:`1/\log\chi_1` (Schoenholz et al. 2017)."""
    chi = chi1(phi, sigma_w2, sigma_b2)
    return jnp.where(chi == 1.0, jnp.inf, 1.0 / jnp.abs(jnp.log(chi)))


@partial(jax.jit, static_argnums=0)
def _one_dimensional(act: Activation, sw, sb) -> dict:
    """The quantities that need only 1-D integrals: q*, chi_1, xi_q (c* and xi_c as if ordered)."""
    q = q_star_traced(act, sw, sb, 1.0)
    finite = jnp.isfinite(q)
    qs = jnp.where(finite, q, 1.0)
    chi = chi1_traced(act, sw, qs)
    nan = jnp.nan
    return {
        "q_star": q,
        "c_star": jnp.where(finite, 1.0, nan),
        "chi1": jnp.where(finite, chi, nan),
        "chi_c": jnp.where(finite, chi, nan),
        "xi_q": jnp.where(finite, dynamics.depth_scale(sw * act.mean_square_slope(qs)), nan),
        "xi_c": jnp.where(finite, dynamics.depth_scale(chi), nan),
        "diverged": ~finite,
    }


@partial(jax.jit, static_argnums=0)
def quantities_traced(act: Activation, sw, sb) -> dict:
    r"""All mean-field quantities at one :math:`(\sigma_w^2, \sigma_b^2)` (unchecked, traceable,
    jitted; vmappable): the dict of :func:`mftlib.phase_diagram` (``q_star, c_star, chi1, chi_c,
    xi_q,
    xi_c, diverged``) as scalars. The 1-D ones first, then c*, chi_c, xi_c by 2-D quadrature."""
    out = _one_dimensional(act, sw, sb)
    finite = ~out["diverged"]
    qs = jnp.where(finite, out["q_star"], 1.0)
    chi = jnp.where(finite, out["chi1"], 0.5)
    c = _c_star(act, sw, sb, qs, chi)
    chi_c = jnp.where(c < 1.0, sw * act.deriv_pair_moment(qs, qs, c * qs), chi)
    nan = jnp.nan
    out["c_star"] = jnp.where(finite, c, nan)
    out["chi_c"] = jnp.where(finite, chi_c, nan)
    out["xi_c"] = jnp.where(finite, dynamics.depth_scale(chi_c), nan)
    return out


def phase_diagram(phi, sigma_w2_grid, sigma_b2_grid, series_tol: float = 1e-10) -> dict:
    r"""Mean-field quantities over a grid of :math:`(\sigma_w^2, \sigma_b^2)`.

    Returns a dict of float64 arrays of shape ``(len(sigma_w2_grid), len(sigma_b2_grid))``:
    ``q_star``, ``c_star``, ``chi1``, ``chi_c``, ``xi_q``, ``xi_c``, and the boolean ``diverged``
    (length map without a finite fixed point). Axis 0 runs over :math:`\sigma_w^2`.

    The same quantities as the scalar functions, computed for the whole grid at once
    (:func:`mftlib.dynamics.grid_map`). For activations without a closed form, the correlation
    map is evaluated by its Hermite series (:mod:`mftlib.hermite`), with the series length chosen
    from the largest :math:`q^*` on the grid; points whose truncation bound on :math:`c^*` or
    :math:`\chi_c` exceeds ``series_tol`` are recomputed by direct 2-D quadrature.
    """
    act = activation(phi)
    V.grid("sigma_w2_grid", sigma_w2_grid)
    V.grid("sigma_b2_grid", sigma_b2_grid)
    V.variance("sigma_w2_grid", sigma_w2_grid)
    V.variance("sigma_b2_grid", sigma_b2_grid)
    if act.has_closed_form:
        return dynamics.grid_map(partial(quantities_traced, act), sigma_w2_grid, sigma_b2_grid)
    sw, sb = (g.ravel() for g in np.meshgrid(sigma_w2_grid, sigma_b2_grid, indexing="ij"))
    shape = (len(sigma_w2_grid), len(sigma_b2_grid))
    first = _one_dimensional(act, _f64(sw), _f64(sb))  # batched natively, no vmap needed
    out = {k: np.array(v) for k, v in first.items()}
    # Only chaotic points need the correlation map; the ordered ones are done (c* = 1).
    chaotic = np.flatnonzero(np.isfinite(out["q_star"]) & (out["chi1"] > 1.0))
    if chaotic.size:
        q_max = float(np.max(out["q_star"][chaotic]))
        n_terms = hermite.terms_needed(act, q_max, 1e-13)
        redo = chaotic
        if n_terms <= hermite.MAX_TERMS:
            sub = _series_quantities(
                act,
                n_terms,
                _f64(out["q_star"][chaotic]),
                _f64(out["chi1"][chaotic]),
                _f64(sw[chaotic]),
            )
            for k in ("c_star", "chi_c", "xi_c"):
                out[k][chaotic] = np.asarray(sub[k])
            redo = chaotic[np.asarray(sub["series_error"]) > series_tol]
        if redo.size:
            direct = _quantities_batch(act, _f64(sw[redo]), _f64(sb[redo]))
            for k in out:
                out[k][redo] = np.asarray(direct[k])
    return {k: jnp.asarray(v.reshape(shape)) for k, v in out.items()}


# Direct 2-D quadrature for a list of points (compiled once per activation and list length).
_quantities_batch = jax.jit(jax.vmap(quantities_traced, in_axes=(None, 0, 0)), static_argnums=0)


@partial(jax.jit, static_argnums=(0, 1))
def _series_quantities(act: Activation, n_terms: int, qs, chi, sw) -> dict:
    """c*, chi_c and xi_c at chaotic points (chi_1 > 1, finite q*) from the Hermite series."""
    a = hermite.coefficients(act, qs, n_terms)  # one GEMM for all the points
    b = a * a
    k1 = act.mean_square(qs)
    t = jnp.maximum(k1 - jnp.sum(b, axis=0), 0.0)

    def g(c):  # batched over the grid: c has one entry per point
        one_minus = jnp.where(c < 1.0, 1.0 - c, 1.0)
        return 1.0 - sw * (k1 - hermite.series(b, c)) / (qs * one_minus)

    g0 = g(jnp.zeros_like(qs))
    root = dynamics.find_root(g, jnp.zeros_like(qs), 1.0, g_lo=g0, g_hi=1.0 - chi).value
    c = jnp.where(g0 <= 0.0, 0.0, root)
    chi_c = sw * hermite.deriv_series(b, c) / qs
    # Truncation bounds: |error in g| <= sw c^K t / (q (1 - c)), so |error in c*| <= that / |g'|
    # with g' >= (chi - 1) / 2 near the root; the derivative series errs by <= sw K c^(K-1) t / q.
    cK = c**n_terms
    err_c = sw * cK * t / (qs * jnp.maximum(1.0 - c, 1e-300)) / jnp.maximum((chi - 1.0) / 2, 1e-300)
    err_chi = sw * n_terms * cK / jnp.maximum(c, 1e-300) * t / qs / (1.0 - c)
    return {
        "c_star": c,
        "chi_c": chi_c,
        "xi_c": dynamics.depth_scale(chi_c),
        "series_error": jnp.maximum(err_c, err_chi),
    }


def critical_sigma_w2(phi, sigma_b2) -> Array:
    r"""The order-chaos boundary: the :math:`\sigma_w^2` where :math:`\chi_1 = 1` at a given
    :math:`\sigma_b^2`.

    Closed form :math:`1/\mathbb{E}[\phi'(z)^2]` for relu and linear (2 and 1); otherwise a
    bracketed root search on :math:`\sigma_w^2 \mapsto \chi_1 - 1` (each evaluation solves for
    :math:`q^*`). For tanh at :math:`\sigma_b^2 = 0.05` this is 1.76096, Schoenholz et al.'s ~1.76.

    Raises:
        ValueError: if no :math:`\sigma_w^2` up to 2**60 reaches :math:`\chi_1 = 1`.
    """
    act = activation(phi)
    V.variance("sigma_b2", sigma_b2)
    out = _critical(act, _f64(sigma_b2))
    if not np.isfinite(float(out)):
        raise ValueError(f"no sigma_w2 makes chi_1 = 1 for {act.name} at sigma_b2={sigma_b2}")
    return out


@partial(jax.jit, static_argnums=0)
def _critical(act: Activation, sb):
    if act.homogeneous:
        return 1.0 / act.mean_square_derivative(1.0)

    def h(sw):
        q = q_star_traced(act, sw, sb, 1.0)
        return (
            jnp.where(
                jnp.isfinite(q), chi1_traced(act, sw, jnp.where(jnp.isfinite(q), q, 1.0)), 2.0
            )
            - 1.0
        )

    def cond(s):
        hi, hhi, k = s
        return (hhi <= 0.0) & (k < 60)

    def body(s):
        hi, _, k = s
        return 2.0 * hi, h(2.0 * hi), k + 1

    hi, hhi, _ = jax.lax.while_loop(cond, body, (1.0, h(1.0), 0))
    lo = hi / 2.0
    root = dynamics.find_root(h, jnp.where(hi > 1.0, lo, 1e-6), hi, g_hi=hhi).value
    return jnp.where(hhi > 0.0, root, jnp.inf)


# --- trajectories and kernels -------------------------------------------------------------------


def covariance_trajectory(phi, sigma_w2, sigma_b2, Sigma0, depth: int) -> Array:
    """Iterate :func:`covariance_map` ``depth`` times from ``Sigma0``: shape ``(depth+1, n, n)``.

    For two inputs this is the joint evolution of :math:`q^l_{11}, q^l_{22}` and :math:`c^l` that
    a finite network tracks layer by layer, before the lengths reach :math:`q^*`.
    """
    act = _params(phi, sigma_w2, sigma_b2)
    V.covariance("Sigma0", Sigma0)
    depth = V.nonneg_int("depth", depth)
    sw, sb = _f64(sigma_w2), _f64(sigma_b2)
    return dynamics.iterate(lambda S: _covariance_map(act, sw, sb, S), _f64(Sigma0), depth)


def nngp_kernel(x1, x2, phi, sigma_w2, sigma_b2, depth: int) -> Array:
    r"""The NNGP kernel after ``depth`` hidden layers (Lee et al. 2018).

    Layer 0: :math:`K^0(x, x') = \sigma_b^2 + \sigma_w^2\, x\cdot x'/d`; each hidden layer applies
    :math:`K^{l+1} = \sigma_w^2\,\mathbb{E}_{u\sim\mathcal{N}(0,K^l)}[\phi(u)\phi(u')]
    + \sigma_b^2`.
    Equivalent to neural-tangents' ``stax.serial(*[Dense, phi] * depth, Dense)`` kernel.

    Args:
        x1: inputs, shape ``(n1, d)``; x2: inputs, shape ``(n2, d)`` (or ``None`` for ``x1``).
        phi, sigma_w2, sigma_b2: activation and variances.
        depth: number of hidden layers (>= 0).

    Returns:
        The ``(n1, n2)`` covariance of the readout pre-activations.
    """
    act = _params(phi, sigma_w2, sigma_b2)
    V.matrix("x1", x1)
    x2 = x1 if x2 is None else x2
    V.matrix("x2", x2)
    if np.shape(x1)[1] != np.shape(x2)[1]:
        raise ValueError(
            "x1 and x2 must have the same number of features, "
            f"got {np.shape(x1)} and {np.shape(x2)}"
        )
    depth = V.nonneg_int("depth", depth)
    sw, sb = _f64(sigma_w2), _f64(sigma_b2)
    d1, d2, k12 = nngp_input_layer(_f64(x1), _f64(x2), sw, sb)
    # Identical inputs stay identical: their entries follow the length map. Through the pair
    # moment at c = 1, an unstable fixed point in the chaotic phase, round-off would grow layer by
    # layer (erf at sigma_w2 = 4: K(x, x) = 0.16 instead of q* = 2.51 after 100 layers).
    same = _identical_inputs(d1, d2, k12)
    if act.has_closed_form:
        return _nngp_closed(act, d1, d2, k12, sw, sb, depth, same)
    # Hermite series, layer by layer: the series length follows the largest variance present;
    # entries whose truncation bound exceeds the tolerance are redone by 2-D quadrature.
    for _ in range(depth):
        q_max = float(jnp.maximum(jnp.max(d1), jnp.max(d2)))
        n_terms = min(hermite.terms_needed(act, q_max, _NNGP_SERIES_RTOL), hermite.MAX_TERMS)
        e1, e2, k_next, bound = _nngp_series_layer(act, n_terms, d1, d2, k12, sw, sb)
        bad = np.argwhere(np.asarray(bound) > _NNGP_SERIES_RTOL)
        if bad.size:
            k_next = k_next.at[bad[:, 0], bad[:, 1]].set(
                _pair_moments_direct(act, d1, d2, k12, bad, sw, sb)
            )
        d1, d2, k12 = e1, e2, jnp.where(same, e1[:, None], k_next)
    return k12


def _identical_inputs(d1, d2, k12, rtol: float = 1e-12) -> Array:
    """Mask of the pairs whose layer-0 covariance says the two inputs are the same point.

    Equal lengths and correlation 1 to ``rtol``: the input layer's dot products are computed in
    a different order for the diagonal and the cross terms, so equality is not bit for bit.
    """
    a, b = d1[:, None], d2[None, :]
    scale = jnp.sqrt(a * b)
    return (jnp.abs(a - b) <= rtol * scale) & (jnp.abs(k12 - scale) <= rtol * scale)


# Series tail relative to E[phi^2]: the target relative accuracy of every kernel entry.
_NNGP_SERIES_RTOL = 1e-11


def _pair_moments_direct(act: Activation, d1, d2, k12, idx: np.ndarray, sw, sb):
    """sw * E[phi phi] + sb at the listed entries by 2-D quadrature (padded to a power of two)."""
    n = idx.shape[0]
    size = 1 << int(np.ceil(np.log2(max(n, 1))))
    pad = np.concatenate([idx, np.repeat(idx[:1], size - n, axis=0)])
    i, j = jnp.asarray(pad[:, 0]), jnp.asarray(pad[:, 1])
    return (sw * _pair_batch(act, d1[i], d2[j], k12[i, j]) + sb)[:n]


@partial(jax.jit, static_argnums=0)
def _pair_batch(act: Activation, a, b, k):
    return jax.vmap(act.pair_moment)(a, b, k)


@jax.jit
def nngp_input_layer(x1, x2, sw, sb):
    r"""The layer-0 kernel :math:`K^0(x, x') = \sigma_b^2 + \sigma_w^2\, x\cdot x'/d` of
    :func:`mftlib.nngp_kernel` (unchecked, jitted): returns the variances of ``x1`` ``(n1,)``, of
    ``x2``
    ``(n2,)`` and the cross-covariance ``(n1, n2)``."""
    d = x1.shape[1]
    return (
        sb + sw * jnp.sum(x1 * x1, axis=1) / d,
        sb + sw * jnp.sum(x2 * x2, axis=1) / d,
        sb + sw * (x1 @ x2.T) / d,
    )


@partial(jax.jit, static_argnums=(0, 6))
def _nngp_closed(act: Activation, d1, d2, k12, sw, sb, depth: int, same):
    def layer(carry, _):
        a, b, k = carry
        k = act.pair_moment(a[:, None], b[None, :], k)
        a, b = sw * act.mean_square(a) + sb, sw * act.mean_square(b) + sb
        return (a, b, jnp.where(same, a[:, None], sw * k + sb)), None

    (_, _, k12), _ = jax.lax.scan(layer, (d1, d2, k12), None, length=depth)
    return k12


@partial(jax.jit, static_argnums=(0, 1))
def _nngp_series_layer(act: Activation, n_terms: int, d1, d2, k12, sw, sb):
    """One layer by the Hermite series, with the per-entry truncation bound |c|^K sqrt(t1 t2)."""
    a1 = hermite.coefficients(act, d1, n_terms)
    a2 = hermite.coefficients(act, d2, n_terms)
    m1, m2 = act.mean_square(d1), act.mean_square(d2)
    # A zero-variance input has a_k = 0 for k >= 1, so any finite c gives the right value.
    rho = jnp.sqrt(d1)[:, None] * jnp.sqrt(d2)[None, :]
    c = jnp.clip(jnp.where(rho > 0, k12 / jnp.where(rho > 0, rho, 1.0), 0.0), -1.0, 1.0)

    def body(i, acc):
        k = n_terms - 1 - i
        return acc * c + a1[k][:, None] * a2[k][None, :]

    k = jax.lax.fori_loop(0, n_terms, body, jnp.zeros_like(c), unroll=8)
    # Identical inputs (c = 1, equal variances): the exact 1-D value, no truncation.
    same = (c >= 1.0) & (d1[:, None] == d2[None, :])
    k = jnp.where(same, m1[:, None], k)
    t1 = jnp.maximum(m1 - jnp.sum(a1 * a1, axis=0), 0.0)
    t2 = jnp.maximum(m2 - jnp.sum(a2 * a2, axis=0), 0.0)
    scale = jnp.sqrt(m1[:, None] * m2[None, :])
    bound = jnp.abs(c) ** n_terms * jnp.sqrt(t1[:, None] * t2[None, :]) / jnp.maximum(scale, 1e-300)
    bound = jnp.where(same, 0.0, bound)
    return sw * m1 + sb, sw * m2 + sb, sw * k + sb, bound
