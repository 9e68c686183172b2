r"""Gaussian expectations in one and two dimensions.

Every mean-field map in the book is built from two kinds of integral:

.. math::

   E_1[f](q) = \int \mathcal{D}z\, f(\sqrt{q}\, z), \qquad
   E_2[f, g](q_{11}, q_{22}, q_{12}) = \mathbb{E}_{(u_1, u_2) \sim \mathcal{N}(0, \Sigma)}
   [f(u_1)\, g(u_2)],

with :math:`\mathcal{D}z` the standard normal measure and
:math:`\Sigma = \begin{pmatrix} q_{11} & q_{12} \\ q_{12} & q_{22}\end{pmatrix}`.

Why not a Gauss-Hermite rule? The activations of the book (tanh, erf, sigmoid, relu, ...) have their
only sharp feature at :math:`u = 0`: a kink (relu) or a transition of width :math:`1/\sqrt{q}` in
:math:`z` (tanh at large :math:`q`). A fixed Gauss-Hermite rule spreads its nodes evenly in the bulk
and resolves neither. Here the standard-normal variable :math:`z` is integrated over
:math:`[-L, L]` with composite Gauss-Legendre panels: a uniform set covering the Gaussian bulk,
merged with panels graded geometrically towards the point :math:`z^*` where the argument of the
activation vanishes. Graded panels resolve features of every width down to :math:`L r^{P_g}` and
put a panel boundary exactly on a kink, so the rule reaches 1e-10 relative accuracy or better for
variances from 1e-4 to 100 (``tests/test_gaussian.py`` checks it against ``scipy.integrate.quad``).

In two dimensions the pair is written :math:`u_1 = \sqrt{q_{11}}\, z_1`,
:math:`u_2 = \sqrt{q_{22}}\,(c z_1 + \sqrt{1-c^2}\, z_2)`; the outer rule in :math:`z_1` is graded
at :math:`0` and the inner rule in :math:`z_2` at :math:`z_2^* = -c z_1 / \sqrt{1-c^2}` (where
:math:`u_2 = 0`), so both features are resolved for every correlation, including exactly
:math:`c = \pm 1`.

Derivatives. :func:`expect2` carries a custom JVP built from the Gaussian identities (Price's
theorem and the heat equation)

.. math::

   \partial_{q_{12}} E_2[f,g] = E_2[f', g'], \quad
   \partial_{q_{11}} E_2[f,g] = \tfrac12 E_2[f'', g], \quad
   \partial_{q_{22}} E_2[f,g] = \tfrac12 E_2[f, g''],

which stay finite at :math:`c = \pm 1`, where differentiating through :math:`\sqrt{1-c^2}` would
not. They assume :math:`f, g` twice differentiable almost everywhere *without* delta functions in
:math:`f''`; activations with kinks (relu) should use their closed forms, which the
:mod:`mftlib.activations` registry does automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ScalarFn = Callable[[Array], Array]


@dataclass(frozen=True)
class QuadratureRule:
    """Parameters of the composite Gauss-Legendre rule for the standard normal measure.

    Attributes:
        half_width: the rule integrates over ``[-half_width, half_width]``; the Gaussian mass
            outside is ``erfc(half_width / sqrt(2))`` (2e-15 for the default 8).
        uniform_panels: equal panels covering the bulk.
        graded_panels: panels on each side of the feature point, with widths
            ``half_width * ratio**k``, ``k = 1..graded_panels``.
        ratio: grading ratio of those panels.
        nodes: Gauss-Legendre nodes per panel.
    """

    half_width: float = 8.0
    uniform_panels: int = 8
    graded_panels: int = 8
    ratio: float = 0.35
    nodes: int = 10

    @property
    def size(self) -> int:
        """Number of nodes of the 1-D rule."""
        return (self.uniform_panels + 2 * self.graded_panels + 1) * self.nodes


DEFAULT_RULE = QuadratureRule()
# The inner rule of 2-D integrals: fewer nodes, the same grading. Tested to ~1e-10 relative.
DEFAULT_RULE_2D = QuadratureRule(uniform_panels=6, graded_panels=7, ratio=0.3, nodes=10)


@cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1.0) / 2.0, w / 2.0  # on [0, 1]


def _breakpoints(zstar: Array, rule: QuadratureRule) -> Array:
    """Sorted panel boundaries on [-L, L]: a uniform grid merged with a grading towards zstar."""
    L = rule.half_width
    uniform = jnp.linspace(-L, L, rule.uniform_panels + 1)
    offsets = L * rule.ratio ** jnp.arange(1, rule.graded_panels + 1)
    graded = jnp.concatenate([zstar - offsets, jnp.atleast_1d(zstar), zstar + offsets])
    return jnp.sort(jnp.concatenate([uniform, jnp.clip(graded, -L, L)]))


def nodes_and_weights(zstar: Array, rule: QuadratureRule = DEFAULT_RULE) -> tuple[Array, Array]:
    r"""Nodes and weights of the rule for :math:`\int \mathcal{D}z\, h(z)`, graded at ``zstar``.

    Weights include the standard normal density and sum to one, so ``sum(w * h(z))`` is the
    expectation.
    Empty panels (two coinciding breakpoints) get zero weight, so the shapes are static.
    """
    x, w = _legendre(rule.nodes)
    b = _breakpoints(jnp.asarray(zstar, dtype=jnp.float64), rule)
    lo, width = b[:-1, None], (b[1:] - b[:-1])[:, None]
    z = (lo + width * x[None, :]).ravel()
    wz = (width * w[None, :]).ravel() * jnp.exp(-0.5 * z * z)
    # Normalised so that E[1] = 1 exactly (the mass beyond +-L, 1e-15, is dropped consistently):
    # marginal quantities such as chi_1 = 1 at sigma_w2 = 1 then come out exactly.
    return z, wz / jnp.sum(wz)


@cache
def _centred_rule(rule: QuadratureRule) -> tuple[np.ndarray, np.ndarray]:
    # Cached as numpy constants; computed eagerly even when first requested under a trace.
    with jax.ensure_compile_time_eval():
        z, w = nodes_and_weights(jnp.float64(0.0), rule)
        return np.asarray(z), np.asarray(w)


def expect1(f: ScalarFn, q: Array, rule: QuadratureRule = DEFAULT_RULE) -> Array:
    r"""One-dimensional Gaussian expectation :math:`\int \mathcal{D}z\, f(\sqrt{q}\, z)`.

    Args:
        f: an elementwise function (JAX-traceable).
        q: variance (or array of variances, broadcast), ``q >= 0``. Not validated here: this is
            the inner kernel of traced code; public entry points validate.
        rule: quadrature parameters.

    Returns:
        The expectation, with the shape of ``q``.
    """
    z, w = _centred_rule(rule)
    q = jnp.asarray(q, dtype=jnp.float64)
    u = jnp.sqrt(q)[..., None] * z
    # A dot product, not sum(w * f): XLA on CPU runs it several times faster inside loops.
    return f(u) @ w


def _expect2_raw(
    f: ScalarFn, g: ScalarFn, q11: Array, q22: Array, q12: Array, rule: QuadratureRule
) -> Array:
    s11, s22 = jnp.sqrt(q11), jnp.sqrt(q22)
    denom = s11 * s22
    c = jnp.clip(jnp.where(denom > 0, q12 / jnp.where(denom > 0, denom, 1.0), 0.0), -1.0, 1.0)
    s = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
    z1, w1 = _centred_rule(DEFAULT_RULE)
    # Where u2 = 0 for each outer node; pushed outside [-L, L] when s -> 0 (c = +-1).
    far = 4.0 * rule.half_width
    zstar = jnp.where(s > 0, -c * z1 / jnp.where(s > 0, s, 1.0), -jnp.sign(c * z1) * far)
    zstar = jnp.clip(zstar, -far, far)
    z2, w2 = jax.vmap(lambda zs: nodes_and_weights(zs, rule))(zstar)
    inner = jnp.einsum("ij,ij->i", w2, g(s22 * (c * z1[:, None] + s * z2)))
    return (f(s11 * z1) * inner) @ w1


def _elementwise_grad(f: ScalarFn) -> ScalarFn:
    return lambda x: jax.jvp(f, (x,), (jnp.ones_like(x),))[1]


@partial(jax.custom_jvp, nondiff_argnums=(0, 1, 5))
def _expect2(f, g, q11, q22, q12, rule):
    return _expect2_raw(f, g, q11, q22, q12, rule)


@_expect2.defjvp
def _expect2_jvp(f, g, rule, primals, tangents):
    q11, q22, q12 = primals
    t11, t22, t12 = tangents
    fp, gp = _elementwise_grad(f), _elementwise_grad(g)
    fpp, gpp = _elementwise_grad(fp), _elementwise_grad(gp)
    out = _expect2(f, g, q11, q22, q12, rule)
    d12 = _expect2(fp, gp, q11, q22, q12, rule)
    d11 = 0.5 * _expect2(fpp, g, q11, q22, q12, rule)
    d22 = 0.5 * _expect2(f, gpp, q11, q22, q12, rule)
    return out, d11 * t11 + d22 * t22 + d12 * t12


def expect2(
    f: ScalarFn,
    g: ScalarFn,
    q11: Array,
    q22: Array,
    q12: Array,
    rule: QuadratureRule = DEFAULT_RULE_2D,
) -> Array:
    r"""Two-dimensional Gaussian expectation :math:`\mathbb{E}[f(u_1) g(u_2)]`.

    :math:`(u_1, u_2)` is centred Gaussian with variances ``q11``, ``q22`` and covariance ``q12``
    (any :math:`|q_{12}| \le \sqrt{q_{11} q_{22}}`, the bound included). Scalars in, scalar out:
    use ``jax.vmap`` for arrays. Differentiable (custom JVP, see the module docstring).
    """
    f64 = partial(jnp.asarray, dtype=jnp.float64)
    return _expect2(f, g, f64(q11), f64(q22), f64(q12), rule)
