r"""Activation functions and their Gaussian moments.

An :class:`Activation` bundles an elementwise function :math:`\phi`, its derivatives (by JAX
autodiff) and, where one exists, the closed form of the pair moment

.. math::

   K_\phi(q_{11}, q_{22}, q_{12}) = \mathbb{E}[\phi(u_1)\phi(u_2)], \qquad
   (u_1, u_2) \sim \mathcal{N}\!\left(0, \begin{pmatrix} q_{11} & q_{12}\\ q_{12} & q_{22}
   \end{pmatrix}\right),

and of the derivative pair moment :math:`\mathbb{E}[\phi'(u_1)\phi'(u_2)]`. Every map of the
library calls :meth:`~mftlib.Activation.pair_moment` and friends, which use the closed form
when there is one and the quadrature of :mod:`mftlib.gaussian` otherwise.

Closed forms:

* linear, :math:`\phi(u) = u`: :math:`K = q_{12}`.
* relu, the arc-cosine kernel of degree one (Cho & Saul 2009):
  :math:`K = \frac{\sqrt{q_{11}q_{22}}}{2\pi}\,(\sin\theta + (\pi - \theta)\cos\theta)`,
  :math:`\cos\theta = c = q_{12}/\sqrt{q_{11}q_{22}}`; and
  :math:`\mathbb{E}[\phi'\phi'] = (\pi - \theta)/(2\pi)`.
* erf, :math:`\phi(u) = \operatorname{erf}(u)` (Williams 1997):
  :math:`K = \frac{2}{\pi}\arcsin\frac{2 q_{12}}{\sqrt{(1+2q_{11})(1+2q_{22})}}` and
  :math:`\mathbb{E}[\phi'\phi'] = \frac{4}{\pi}\,[(1+2q_{11})(1+2q_{22}) - 4q_{12}^2]^{-1/2}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from mftlib import gaussian

Array = jax.Array
PairMoment = Callable[[Array, Array, Array], Array]


def _elementwise_grad(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
    return lambda x: jax.jvp(f, (x,), (jnp.ones_like(x),))[1]


@dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise activation with Gaussian moments.

    Attributes:
        name: short name (the registry key for built-ins).
        fn: the elementwise function, JAX-traceable.
        closed_pair_moment: optional closed form of E[phi(u1) phi(u2)] as a function of
            (q11, q22, q12); used instead of quadrature when present.
        closed_deriv_pair_moment: optional closed form of E[phi'(u1) phi'(u2)].
        homogeneous: phi(a u) = a phi(u) for a > 0 (linear, relu). Then the length map is
            linear in q and the correlation map does not depend on q.

    Instances hash by identity, so they can be static arguments of ``jax.jit``.
    """

    name: str
    fn: Callable[[Array], Array]
    closed_pair_moment: PairMoment | None = None
    closed_deriv_pair_moment: PairMoment | None = None
    homogeneous: bool = False

    def __call__(self, x: Array) -> Array:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    @property
    def has_closed_form(self) -> bool:
        """Whether the pair moments are computed in closed form."""
        return self.closed_pair_moment is not None

    def derivative(self, x: Array) -> Array:
        """phi'(x), elementwise, by forward-mode autodiff."""
        return _elementwise_grad(self.fn)(x)

    def second_derivative(self, x: Array) -> Array:
        """phi''(x), elementwise, by forward-mode autodiff."""
        return _elementwise_grad(_elementwise_grad(self.fn))(x)

    def pair_moment(self, q11: Array, q22: Array, q12: Array) -> Array:
        """E[phi(u1) phi(u2)] for variances q11, q22 and covariance q12 (scalars)."""
        if self.closed_pair_moment is not None:
            return self.closed_pair_moment(q11, q22, q12)
        return gaussian.expect2(self.fn, self.fn, q11, q22, q12)

    def deriv_pair_moment(self, q11: Array, q22: Array, q12: Array) -> Array:
        """E[phi'(u1) phi'(u2)] (scalars); by Price's theorem, d pair_moment / d q12."""
        if self.closed_deriv_pair_moment is not None:
            return self.closed_deriv_pair_moment(q11, q22, q12)
        return gaussian.expect2(self.derivative, self.derivative, q11, q22, q12)

    def mean_square(self, q: Array) -> Array:
        """E[phi(sqrt(q) z)^2], z standard normal; broadcasts over q."""
        if self.closed_pair_moment is not None:
            return self.closed_pair_moment(q, q, q)
        return gaussian.expect1(lambda u: self.fn(u) ** 2, q)

    def mean_square_slope(self, q: Array) -> Array:
        """d/dq E[phi(sqrt(q) z)^2] = E[phi'^2 + phi phi''] (heat equation); finite at q = 0."""
        if self.closed_pair_moment is not None:
            g = jax.grad(lambda s: self.closed_pair_moment(s, s, s))
            return jnp.vectorize(g)(jnp.asarray(q, dtype=jnp.float64))
        d1, d2 = self.derivative, self.second_derivative
        return gaussian.expect1(lambda u: d1(u) ** 2 + self.fn(u) * d2(u), q)

    def mean_square_derivative(self, q: Array) -> Array:
        """E[phi'(sqrt(q) z)^2]; broadcasts over q."""
        if self.closed_deriv_pair_moment is not None:
            return self.closed_deriv_pair_moment(q, q, q)
        return gaussian.expect1(lambda u: self.derivative(u) ** 2, q)

    def moment_matrix(self, S: Array) -> Array:
        r""":math:`\mathbb{E}_{u\sim\mathcal{N}(0,S)}[\phi(u)\phi(u)^\top]` for an ``(n, n)``
        covariance ``S`` (unchecked, traceable).

        Off-diagonal entries by :meth:`pair_moment`, symmetrised; the diagonal by the 1-D rule
        :meth:`mean_square`, so that the ``1 x 1`` case is the length map exactly. This is the
        activation's part of every covariance map in the library (Lee et al. 2018).
        """
        d = jnp.diagonal(S)
        if S.shape[0] == 1:  # a length map: the 1-D rule alone
            return jnp.reshape(self.mean_square(d), (1, 1))
        pair = jax.vmap(jax.vmap(self.pair_moment, (None, 0, 0)), (0, None, 0))
        K = pair(d, d, S)
        # Quadrature is not exactly symmetric under swapping the two variances (~1e-13):
        # average the two estimates, so that the result is a covariance to rounding.
        K = 0.5 * (K + K.T)
        return K - jnp.diag(jnp.diagonal(K)) + jnp.diag(self.mean_square(d))

    def deriv_moment_matrix(self, S: Array) -> Array:
        r""":math:`\mathbb{E}_{u\sim\mathcal{N}(0,S)}[\phi'(u)\phi'(u)^\top]` (unchecked,
        traceable); the diagonal by :meth:`mean_square_derivative`.

        By Price's theorem this is :math:`\partial\,\mathbb{E}[\phi(u_a)\phi(u_b)]/\partial
        S_{ab}` off the diagonal: the slope of the covariance map along correlations, and the
        factor by which a layer multiplies the neural tangent kernel (Jacot et al. 2018).
        """
        d = jnp.diagonal(S)
        if S.shape[0] == 1:
            return jnp.reshape(self.mean_square_derivative(d), (1, 1))
        pair = jax.vmap(jax.vmap(self.deriv_pair_moment, (None, 0, 0)), (0, None, 0))
        K = pair(d, d, S)
        K = 0.5 * (K + K.T)
        return K - jnp.diag(jnp.diagonal(K)) + jnp.diag(self.mean_square_derivative(d))


# --- closed forms -------------------------------------------------------------------------------


def _correlation(q11: Array, q22: Array, q12: Array) -> tuple[Array, Array]:
    # sqrt of the product is exact for equal variances (c = 1 exactly, where arccos amplifies any
    # rounding to 1e-8); the product of square roots avoids under/overflow at extreme q.
    prod = q11 * q22
    in_range = (prod > 1e-300) & (prod < 1e300)
    rho = jnp.where(
        in_range, jnp.sqrt(jnp.where(in_range, prod, 1.0)), jnp.sqrt(q11) * jnp.sqrt(q22)
    )
    safe = jnp.where(rho > 0, rho, 1.0)
    # At zero variance the correlation is undefined; equal variances are read as the same input
    # (c = 1), the limit q -> 0 of the diagonal moments.
    degenerate = jnp.where(q11 == q22, 1.0, 0.0)
    return rho, jnp.clip(jnp.where(rho > 0, q12 / safe, degenerate), -1.0, 1.0)


@jax.custom_jvp
def _relu_pair(q11: Array, q22: Array, q12: Array) -> Array:
    rho, c = _correlation(q11, q22, q12)
    theta = jnp.arccos(c)
    return rho * (jnp.sqrt(1.0 - c * c) + (jnp.pi - theta) * c) / (2.0 * jnp.pi)


@_relu_pair.defjvp
def _relu_pair_jvp(primals, tangents):
    # Written out so that the derivative stays finite at c = +-1, where arccos' is infinite.
    q11, q22, q12 = primals
    t11, t22, t12 = tangents
    rho, c = _correlation(q11, q22, q12)
    s = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
    d12 = (jnp.pi - jnp.arccos(c)) / (2.0 * jnp.pi)
    d11 = jnp.sqrt(q22 / jnp.where(q11 > 0, q11, 1.0)) * s / (4.0 * jnp.pi)
    d22 = jnp.sqrt(q11 / jnp.where(q22 > 0, q22, 1.0)) * s / (4.0 * jnp.pi)
    return _relu_pair(q11, q22, q12), d11 * t11 + d22 * t22 + d12 * t12


def _relu_deriv_pair(q11: Array, q22: Array, q12: Array) -> Array:
    _, c = _correlation(q11, q22, q12)
    return (jnp.pi - jnp.arccos(c)) / (2.0 * jnp.pi)


def _erf_pair(q11: Array, q22: Array, q12: Array) -> Array:
    return (2.0 / jnp.pi) * jnp.arcsin(2.0 * q12 / jnp.sqrt((1.0 + 2.0 * q11) * (1.0 + 2.0 * q22)))


def _erf_deriv_pair(q11: Array, q22: Array, q12: Array) -> Array:
    det = (1.0 + 2.0 * q11) * (1.0 + 2.0 * q22) - 4.0 * q12 * q12
    return (4.0 / jnp.pi) / jnp.sqrt(det)


def _linear_pair(q11: Array, q22: Array, q12: Array) -> Array:
    return jnp.asarray(q12, dtype=jnp.float64) + 0.0 * (q11 + q22)


def _linear_deriv_pair(q11: Array, q22: Array, q12: Array) -> Array:
    return jnp.ones_like(jnp.asarray(q12 + q11 + q22, dtype=jnp.float64))


@dataclass(frozen=True, eq=False, repr=False)
class _AlphaReLU(Activation):
    """Power of the ReLU, with exact one-dimensional moments (see :func:`alpha_relu`)."""

    alpha: float = 1.0

    def mean_square(self, q: Array) -> Array:
        q = jnp.asarray(q, dtype=jnp.float64)
        return _relu_power_moment(2 * self.alpha) * q**self.alpha

    def mean_square_derivative(self, q: Array) -> Array:
        q = jnp.asarray(q, dtype=jnp.float64)
        return self.alpha**2 * _relu_power_moment(2 * self.alpha - 2) * q ** (self.alpha - 1)


def _relu_power_moment(k: float) -> float:
    r""":math:`\mathbb{E}[\mathrm{relu}(z)^k] = 2^{k/2-1}\Gamma((k+1)/2)/\sqrt{\pi}`, k > -1."""
    return 2 ** (k / 2 - 1) * math.gamma((k + 1) / 2) / math.sqrt(math.pi)


def alpha_relu(alpha: float) -> Activation:
    r"""The :math:`\alpha`-ReLU :math:`\phi(u) = \max(0, u)^\alpha` of Yang & Schoenholz (2017).

    Its one-dimensional moments are exact,
    :math:`\mathbb{E}[\phi(\sqrt q z)^2] = c_\alpha q^\alpha` and
    :math:`\mathbb{E}[\phi'(\sqrt q z)^2] = \alpha^2 c_{\alpha-1} q^{\alpha-1}` with
    :math:`c_\beta = \mathbb{E}[\mathrm{relu}(z)^{2\beta}]
    = 2^{\beta-1}\Gamma(\beta+\tfrac12)/\sqrt\pi`; pair moments use quadrature. ``alpha`` must
    lie in :math:`(1/2, 1]`, where :math:`\mathbb{E}[\phi'^2]` is finite (``alpha = 1`` is the
    ReLU itself).
    """
    a = float(alpha)
    if not (0.5 < a <= 1.0):
        raise ValueError(
            f"alpha must lie in (1/2, 1] (E[phi'^2] diverges for alpha <= 1/2), got {alpha!r}"
        )
    if a == 1.0:
        return _REGISTRY["relu"]

    def fn(x):
        pos = x > 0
        # where-twice: the untaken branch must have a finite derivative at x <= 0
        return jnp.where(pos, jnp.where(pos, x, 1.0) ** a, 0.0)

    return _AlphaReLU(f"alpha_relu({a:g})", fn, alpha=a)


_REGISTRY: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("linear", lambda x: x, _linear_pair, _linear_deriv_pair, homogeneous=True),
        Activation("relu", jax.nn.relu, _relu_pair, _relu_deriv_pair, homogeneous=True),
        Activation("erf", jax.scipy.special.erf, _erf_pair, _erf_deriv_pair),
        Activation("tanh", jnp.tanh),
        Activation("gelu", lambda x: jax.nn.gelu(x, approximate=False)),
        Activation("sigmoid", jax.nn.sigmoid),
        Activation("softplus", jax.nn.softplus),
    )
}


def known_activations() -> tuple[str, ...]:
    """Names accepted by :func:`activation`."""
    return tuple(_REGISTRY)


def activation(phi: str | Activation) -> Activation:
    """Return the :class:`Activation` for a name (or pass an ``Activation`` through).

    Raises:
        ValueError: unknown name; the message lists the known ones.
        TypeError: ``phi`` is neither a string nor an ``Activation``.
    """
    if isinstance(phi, Activation):
        return phi
    if isinstance(phi, str):
        key = phi.strip().lower()
        if key not in _REGISTRY:
            raise ValueError(
                f"phi: unknown activation {phi!r}; known activations are "
                f"{', '.join(known_activations())} (or pass an mftlib.Activation)"
            )
        return _REGISTRY[key]
    raise TypeError(
        f"phi must be an activation name (str) or an Activation, got {type(phi).__name__}"
    )
