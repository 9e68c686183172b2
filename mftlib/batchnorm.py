r"""Mean-field theory of batch normalisation (Yang et al., ICLR 2019).

The network acts on a batch of :math:`B` inputs. Each layer multiplies by a Gaussian weight matrix,
normalises every unit over the batch, and applies :math:`\phi` (with a gain :math:`\gamma`):

.. math::

   h^l = W^l x^{l-1}, \qquad
   z^l_i = \sqrt{B}\,\frac{G h^l_i}{\lVert G h^l_i \rVert}, \qquad x^l_i = \phi(\gamma z^l_i),

with :math:`W^l_{ij} \sim \mathcal{N}(0, \sigma_w^2/N)`, :math:`h^l_i \in \mathbb{R}^B` the
pre-activations of unit :math:`i` over the batch and :math:`G = I - \mathbf{1}\mathbf{1}^\top/B`
the centring projector (batch norm without :math:`\epsilon`, mean subtracted and divided by the
batch standard deviation). The mean field is a map on the :math:`B \times B` batch covariance,

.. math::

   \Sigma^{l} = \sigma_w^2\,\mathbb{E}_{h \sim \mathcal{N}(0, \Sigma^{l-1})}
   \bigl[\phi(\gamma z)\,\phi(\gamma z)^\top\bigr], \qquad z = \sqrt{B}\,Gh/\lVert Gh \rVert.

**Fixed point.** If :math:`\Sigma` has the BSB1 form :math:`q\,[(1-c) I + c\,\mathbf{1}
\mathbf{1}^\top]`, then :math:`Gh` is isotropic in the :math:`(B-1)`-dimensional subspace
orthogonal to :math:`\mathbf{1}` and :math:`z` is uniform on the sphere of radius
:math:`\sqrt{B}` there, whatever :math:`q` and :math:`c`. The map therefore sends every BSB1 matrix
to the same one, :math:`\Sigma^* = \sigma_w^2 M` with :math:`M = \mathbb{E}[\phi(\gamma z)
\phi(\gamma z)^\top]` for that uniform :math:`z` (Yang et al. 2019, the "BSB1 fixed
point"). It is BSB1 itself, with diagonal :math:`\sigma_w^2 M_{aa}` and off-diagonal
:math:`\sigma_w^2 M_{ab}`.

**Gradients.** Backpropagation through one layer, under the gradient-independence assumption,
maps the gradient covariance :math:`\Pi` linearly: with :math:`u = z/\sqrt B`,
:math:`D = \mathrm{diag}(\gamma\phi'(\gamma z))`, :math:`P_u = (I - uu^\top) G` and the norm
:math:`r = \lVert Gh \rVert` (independent of :math:`u`, :math:`r^2/(\sigma_w^2(M_{aa} - M_{ab}))
\sim \chi^2_{B-1}` at the fixed point),

.. math::

   \Pi^{l-1} = \sigma_w^2 B\,\mathbb{E}[r^{-2}]\;\mathbb{E}_u\bigl[P_u D\,\Pi^l D P_u\bigr],
   \qquad \mathbb{E}[r^{-2}] = \frac{1}{\sigma_w^2 (M_{aa} - M_{ab})(B - 3)} .

The weight variance cancels: batch norm makes each layer invariant to the scale of :math:`W`, so
no :math:`\sigma_w^2` can tune the gradients. The map commutes with permutations of the batch and
preserves positive semi-definite matrices, so its top eigenvector is :math:`G` and the growth
factor of :math:`\lVert \nabla_{x^{l-1}} \rVert^2 / \lVert \nabla_{x^{l}} \rVert^2` is

.. math::

   \lambda_B = \frac{B}{(B - 3)(M_{aa} - M_{ab})}\,
   \frac{\mathbb{E}_u\,\mathrm{tr}(D G D P_u)}{B - 1},
   \qquad
   \lambda_\infty = \frac{\gamma^2\,\mathbb{E}[\phi'(\gamma \zeta)^2]}
   {\mathrm{Var}[\phi(\gamma \zeta)]},
   \quad \zeta \sim \mathcal{N}(0, 1),

finite only for :math:`B > 3`. For ReLU, :math:`\lambda_\infty = \pi/(\pi - 1)` (Yang et al.
2019). Finite batches are evaluated by Monte Carlo over :math:`u`
(a fixed number of samples from the key passed, :data:`mftlib.batchnorm.DEFAULT_KEY` by
default: deterministic, with a reported standard error);
the infinite batch by 1-D Gaussian quadrature (:mod:`mftlib.gaussian`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import gaussian
from mftlib.activations import Activation, activation

Array = jax.Array

#: Monte Carlo samples of the direction u used by default for finite batches.
N_SAMPLES = 2**17

#: The key the Monte Carlo functions use when ``key=None``: the data of ``jax.random.PRNGKey(0)``
#: (a read-only ``uint32[2]`` numpy array, so that importing mftlib starts no JAX backend).
DEFAULT_KEY = np.zeros(2, dtype=np.uint32)
DEFAULT_KEY.flags.writeable = False


def _key(key):
    return V.key(DEFAULT_KEY if key is None else key)


def _check_batch(batch_size, minimum: int = 2) -> int | None:
    if batch_size is None:
        return None
    b = V.positive_int("batch_size", batch_size)
    if b < minimum:
        why = "" if minimum <= 2 else " (the mean inverse batch variance diverges for B <= 3)"
        raise ValueError(
            f"batch_size must be at least {minimum} (or None for an infinite batch), got {b}{why}"
        )
    return b


def _check(phi, gamma) -> Activation:
    act = activation(phi)
    V.real("gamma", gamma, lo=0.0, lo_open=True)
    return act


def _directions(key, batch_size: int, n: int) -> Array:
    """n points uniform on the unit sphere of the subspace orthogonal to the all-ones vector."""
    g = jax.random.normal(key, (n, batch_size))
    g = g - g.mean(axis=1, keepdims=True)
    return g / jnp.linalg.norm(g, axis=1, keepdims=True)


@partial(jax.jit, static_argnums=(0, 2, 3))
def _moments(act: Activation, gamma, batch_size: int, n: int, key):
    u = _directions(key, batch_size, n)
    z = gamma * jnp.sqrt(batch_size) * u
    f = act.fn(z)
    d = gamma * act.derivative(z)
    fc = f - f.mean(axis=1, keepdims=True)
    # Per sample: phi^T G phi / (B - 1) (estimates M_aa - M_ab), the mean of phi_a^2 (M_aa), the
    # mean of phi_a phi_b over a != b (M_ab), and tr(D G D P_u) / (B - 1).
    spread = jnp.sum(fc * fc, axis=1) / (batch_size - 1)
    diag = jnp.mean(f * f, axis=1)
    s = jnp.sum(f, axis=1)
    off = (s * s - jnp.sum(f * f, axis=1)) / (batch_size * (batch_size - 1))
    d2 = d * d
    tr_dgdg = jnp.sum(d2, 1) * (1 - 2 / batch_size) + jnp.sum(d, 1) ** 2 / batch_size**2
    du = d * u
    u_dgd_u = jnp.sum(du * du, 1) - jnp.sum(du, 1) ** 2 / batch_size
    trace = (tr_dgdg - u_dgd_u) / (batch_size - 1)
    return spread, diag, off, trace


def _stats(x):
    x = np.asarray(x)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))


def bn_fixed_point(
    phi,
    sigma_w2: float,
    batch_size: int,
    gamma: float = 1.0,
    n_samples: int = N_SAMPLES,
    *,
    key=None,
) -> dict:
    r"""The BSB1 fixed point :math:`\Sigma^* = \sigma_w^2 M` of the batch-covariance map.

    Args:
        phi: activation; sigma_w2: weight variance (> 0); batch_size: :math:`B \ge 2`;
        gamma: gain inside the activation, :math:`\phi(\gamma z)`; n_samples: Monte Carlo size.
        key: JAX PRNG key of the Monte Carlo samples; ``None`` for
            :data:`mftlib.batchnorm.DEFAULT_KEY`.

    Returns:
        dict with ``q_star`` (diagonal), ``c_star`` (off-diagonal / diagonal), ``Sigma`` (the
        :math:`B \times B` matrix) and the standard errors ``q_star_se``, ``offdiag_se``.
    """
    act = _check(phi, gamma)
    V.variance("sigma_w2", sigma_w2, positive=True)
    b = _check_batch(batch_size)
    n = V.positive_int("n_samples", n_samples)
    _, diag, off, _ = _moments(act, float(gamma), b, n, _key(key))
    (m_aa, se_aa), (m_ab, se_ab) = _stats(diag), _stats(off)
    q = sigma_w2 * m_aa
    sigma = sigma_w2 * ((m_aa - m_ab) * np.eye(b) + m_ab * np.ones((b, b)))
    return {
        "q_star": q,
        "c_star": m_ab / m_aa,
        "Sigma": sigma,
        "q_star_se": sigma_w2 * se_aa,
        "offdiag_se": sigma_w2 * se_ab,
    }


def bn_gradient_rate_estimate(
    phi, batch_size: int | None, gamma: float = 1.0, n_samples: int = N_SAMPLES, *, key=None
) -> dict:
    r"""Per-layer growth factor :math:`\lambda_B` of the squared gradient norm, with its error.

    ``key``: JAX PRNG key of the Monte Carlo samples (finite batches); ``None`` for
    :data:`mftlib.batchnorm.DEFAULT_KEY`.

    Returns:
        dict with ``rate`` and ``stderr`` (0 for ``batch_size=None``, which is exact quadrature;
        otherwise the delta-method standard error of the Monte Carlo ratio).
    """
    act = _check(phi, gamma)
    b = _check_batch(batch_size, minimum=4)
    key = _key(key)
    if b is None:
        g = float(gamma)
        num = g * g * float(gaussian.expect1(lambda x: act.derivative(g * x) ** 2, 1.0))
        mean = float(gaussian.expect1(lambda x: act.fn(g * x), 1.0))
        var = float(gaussian.expect1(lambda x: act.fn(g * x) ** 2, 1.0)) - mean**2
        if var <= 0:
            raise ValueError(f"phi(gamma z) has zero variance for {act.name}: no batch norm map")
        return {"rate": num / var, "stderr": 0.0}
    n = V.positive_int("n_samples", n_samples)
    spread, _, _, trace = (np.asarray(a) for a in _moments(act, float(gamma), b, n, key))
    t, s = trace.mean(), spread.mean()
    if s <= 0:
        raise ValueError(f"phi(gamma z) has zero variance over the batch for {act.name}")
    factor = b / (b - 3)
    rate = factor * t / s
    # Delta method for the ratio of two means from the same samples.
    resid = trace / s - t * spread / s**2
    return {"rate": float(rate), "stderr": float(factor * resid.std(ddof=1) / np.sqrt(n))}


def bn_gradient_rate(
    phi, batch_size: int | None, gamma: float = 1.0, n_samples: int = N_SAMPLES, *, key=None
) -> float:
    r"""Per-layer growth factor of the squared gradient norm in a deep batch-normalised network.

    :math:`\lambda_B` of the module docstring (Yang et al. 2019): gradients grow as
    :math:`\lambda_B^{L}` from the output back through :math:`L` layers, for every
    :math:`\sigma_w^2`. ``batch_size=None`` gives the infinite-batch value
    :math:`\lambda_\infty = \gamma^2\mathbb{E}[\phi'(\gamma\zeta)^2]/
    \mathrm{Var}[\phi(\gamma\zeta)]` (:math:`\pi/(\pi - 1)` for ReLU); finite batches need
    :math:`B \ge 4`, estimated by Monte Carlo from ``key`` (``None``:
    :data:`mftlib.batchnorm.DEFAULT_KEY`, the
    same numbers on every call).

    Raises:
        ValueError: ``batch_size`` below 4, a non-positive ``gamma``, an unknown activation.
    """
    return bn_gradient_rate_estimate(phi, batch_size, gamma, n_samples, key=key)["rate"]


def irrep_directions(batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm representatives of the two nontrivial symmetric-group components of the
    symmetric matrices :math:`A = GAG`: the "standard" one :math:`G\\,\\mathrm{diag}(a)\\,G`
    with :math:`a \\perp \\mathbf{1}`, and the "pair" one (zero diagonal, zero row sums).

    Args:
        batch_size: :math:`B \\ge 4` (the pair component needs four distinct samples).

    Returns:
        ``(standard, pair)``: two ``(B, B)`` float64 matrices of unit Frobenius norm.

    Raises:
        ValueError: ``batch_size`` is not an integer of at least 4.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be an integer >= 4, got {batch_size!r}")
    if batch_size < 4:
        raise ValueError(f"batch_size must be an integer >= 4, got {batch_size}")
    b = int(batch_size)
    g = np.eye(b) - 1.0 / b
    a = np.zeros(b)
    a[0], a[1] = 1.0, -1.0
    std = g @ np.diag(a) @ g
    pair = np.zeros((b, b))
    for i, j, s in ((0, 1, 1.0), (2, 3, 1.0), (0, 2, -1.0), (1, 3, -1.0)):
        pair[i, j] = pair[j, i] = s
    return std / np.linalg.norm(std), pair / np.linalg.norm(pair)


@partial(jax.jit, static_argnums=(0, 2, 3))
def _forward_slopes(act: Activation, gamma, batch_size: int, n: int, key, directions, spread):
    b = batch_size
    xi = jax.random.normal(key, (n, b))
    g = jnp.eye(b) - 1.0 / b
    root = jnp.sqrt(spread)

    def value(t, a):
        # h = (sqrt(s) G + t A / (2 sqrt(s))) xi has covariance s G + t A + O(t^2).
        h = xi @ (root * g + t * a / (2 * root))
        c = h - h.mean(axis=1, keepdims=True)
        z = jnp.sqrt(b) * c / jnp.linalg.norm(c, axis=1, keepdims=True)
        x = act.fn(gamma * z)
        return jnp.einsum("na,ab,nb->n", x, a, x)

    return [jax.jvp(lambda t, a=a: value(t, a), (0.0,), (1.0,))[1] for a in directions]


def bn_forward_eigenvalues(
    phi,
    batch_size: int,
    gamma: float = 1.0,
    n_samples: int = N_SAMPLES,
    *,
    key=None,
) -> dict:
    r"""Eigenvalues of the batch-covariance map linearised at its BSB1 fixed point.

    The map :math:`\Sigma \mapsto F(\Sigma) = \sigma_w^2\,\mathbb{E}[\phi(\gamma z)\phi(\gamma
    z)^\top]` depends on :math:`\Sigma` only through :math:`G\Sigma G` and is invariant to its
    scale (eigenvalue 0 along :math:`\Sigma^*`). It commutes with permutations of the batch, so on
    the symmetric matrices :math:`A = GAG` orthogonal to :math:`G` its Jacobian is a multiple of
    the identity on each of two components (Schur's lemma): the ``standard`` one,
    :math:`A = G\,\mathrm{diag}(a)\,G` with :math:`a \perp \mathbf{1}` (dimension :math:`B-1`),
    and the ``pair`` one, zero diagonal and zero row sums (dimension :math:`B(B-3)/2`). Each
    eigenvalue is the Rayleigh quotient

    .. math::

       \lambda_A = \frac{\langle A, \mathrm{d}F_{\Sigma^*}[A]\rangle}{\langle A, A\rangle},

    evaluated by Monte Carlo (``n_samples`` Gaussian batches from ``key``) with a forward-mode
    derivative; it does not depend on :math:`\sigma_w^2`. A deviation from the fixed point in
    that component shrinks by :math:`\lambda_A` per layer. For the linear activation both equal
    :math:`(B-1)/(B+1)`.

    Args:
        phi: activation; batch_size: :math:`B \ge 4`; gamma: gain (> 0); n_samples: Monte Carlo
            size; key: PRNG key (``None``: :data:`DEFAULT_KEY`).

    Returns:
        dict with ``standard``, ``pair`` and their standard errors ``standard_se``, ``pair_se``.

    Raises:
        ValueError: ``batch_size`` below 4, a non-positive ``gamma``, an unknown activation.
    """
    act = _check(phi, gamma)
    b = _check_batch(batch_size, minimum=4)
    if b is None:
        raise ValueError("batch_size must be a finite integer >= 4 for the forward eigenvalues")
    n = V.positive_int("n_samples", n_samples)
    key = _key(key)
    spread, _, _, _ = _moments(act, float(gamma), b, n, jax.random.fold_in(key, 1))
    s = float(np.mean(np.asarray(spread)))  # M_aa - M_ab: the scale of G Sigma* G (sigma_w2 = 1)
    if s <= 0:
        raise ValueError(f"phi(gamma z) has zero variance over the batch for {act.name}")
    dirs = irrep_directions(b)
    slopes = _forward_slopes(act, float(gamma), b, n, key, [jnp.asarray(d) for d in dirs], s)
    out = {}
    for name, d in zip(("standard", "pair"), slopes, strict=True):
        mean, se = _stats(d)
        out[name], out[name + "_se"] = mean, se
    return out


def _eps_check(sigma_w2, eps):
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.real("eps", eps, lo=0.0)
    return float(sigma_w2), float(eps)


@partial(jax.jit, static_argnums=(0, 2, 3))
def _eps_samples(act: Activation, gamma, batch_size: int, n: int, key, sw2, eps, kappa):
    b = batch_size
    g = jax.random.normal(key, (n, b))
    g = g - g.mean(axis=1, keepdims=True)
    rho2 = sw2 * kappa * jnp.sum(g * g, axis=1)  # |G h|^2 at the fixed point
    u = g / jnp.linalg.norm(g, axis=1, keepdims=True)
    s2 = rho2 + b * eps
    z = gamma * jnp.sqrt(b * rho2 / s2)[:, None] * u
    f = act.fn(z)
    fc = f - f.mean(axis=1, keepdims=True)
    spread = jnp.sum(fc * fc, axis=1) / (b - 1)
    d = gamma * act.derivative(z)
    a = rho2 / s2
    tr_dgdg = jnp.sum(d * d, 1) * (1 - 2 / b) + jnp.sum(d, 1) ** 2 / b**2
    du = d * u
    u_dgd_u = jnp.sum(du * du, 1) - jnp.sum(du, 1) ** 2 / b
    back = sw2 * b / s2 * (tr_dgdg - a * (2 - a) * u_dgd_u) / (b - 1)
    return spread, back, a


def bn_eps_fixed_point(
    phi,
    batch_size: int,
    sigma_w2: float,
    eps: float,
    gamma: float = 1.0,
    n_samples: int = 2**16,
    *,
    key=None,
    iterations: int = 200,
) -> dict:
    r"""Fixed point and gradient rate of batch norm with :math:`\epsilon`, at finite batch size.

    With :math:`\epsilon > 0` a layer computes :math:`z = \sqrt{B}\,Gh/\sqrt{\lVert Gh\rVert^2 +
    B\epsilon}` and :math:`x = \phi(\gamma z)`, and is no longer invariant to the scale of the
    weights. The map still commutes with permutations, so it keeps a BSB1 fixed point: there
    :math:`Gh = \sigma_w\sqrt{\kappa}\,g` with :math:`g` standard Gaussian in the subspace
    orthogonal to :math:`\mathbf{1}` and :math:`\kappa = M_{aa} - M_{ab}` of the
    post-activations, which solves

    .. math::

       \kappa = \mathbb{E}\,\frac{\lVert G\phi(\gamma z)\rVert^2}{B - 1}, \qquad
       z = \sqrt{B a}\,u, \quad
       a = \frac{\rho^2}{\rho^2 + B\epsilon}, \quad \rho^2 = \sigma_w^2\kappa\,\chi^2_{B-1},

    (iterated from :math:`\kappa = 1` on fixed samples). The Jacobian of the layer is
    :math:`(\sqrt{B}/s)(G - a\,uu^\top)` with :math:`s^2 = \rho^2 + B\epsilon`, and the squared
    gradient grows per layer by

    .. math::

       \lambda = \frac{\sigma_w^2 B}{B - 1}\,\mathbb{E}\Bigl[\frac{\mathrm{tr}(DGDG)
       - a(2 - a)\,u^\top DGDu}{s^2}\Bigr], \qquad D = \mathrm{diag}(\gamma\phi'(\gamma z)),

    which for :math:`\epsilon = 0` is :func:`mftlib.bn_gradient_rate`. It depends on
    :math:`\sigma_w^2` and :math:`\epsilon` only through :math:`\sigma_w^2/\epsilon`. Small
    :math:`\sigma_w^2/\epsilon` shrinks :math:`z` (an effective gain :math:`\gamma\sqrt{a}`) and
    moves the network towards its linear regime.

    Args:
        phi: activation.
        batch_size: :math:`B \ge 4`.
        sigma_w2: weight variance (> 0).
        eps: :math:`\epsilon \ge 0`.
        gamma: gain (> 0).
        n_samples: Monte Carlo size.
        key: PRNG key (``None`` for :data:`DEFAULT_KEY`).
        iterations: of the map on :math:`\kappa`.

    Returns:
        dict with ``kappa``, ``rate``, ``rate_se`` (Monte Carlo standard error), ``gain`` (the
        mean effective gain :math:`\gamma\,\mathbb{E}\sqrt{a}`).

    Raises:
        ValueError: bad arguments, or ``kappa`` collapsing to 0 (the signal dies, leaving no
            BSB1 fixed point with a nonzero spread, for :math:`\gamma^2\sigma_w^2/\epsilon`
            too small).
    """
    act = _check(phi, gamma)
    b = _check_batch(batch_size, minimum=4)
    if b is None:
        raise ValueError("batch_size must be a finite integer >= 4")
    sw2, eps = _eps_check(sigma_w2, eps)
    n = V.positive_int("n_samples", n_samples)
    iterations = V.positive_int("iterations", iterations)
    key = _key(key)
    kappa = 1.0
    for _ in range(iterations):
        spread, _, _ = _eps_samples(act, float(gamma), b, n, key, sw2, eps, kappa)
        new = float(np.mean(np.asarray(spread)))
        if not new > 1e-12:
            raise ValueError(
                f"the batch spread collapses to 0 at sigma_w2/eps = {sw2 / max(eps, 1e-300):.3g}"
                " (no BSB1 fixed point with a nonzero spread)"
            )
        done = abs(new - kappa) < 1e-12 * kappa
        kappa = new
        if done:
            break
    _, back, a = (
        np.asarray(v) for v in _eps_samples(act, float(gamma), b, n, key, sw2, eps, kappa)
    )
    rate, se = _stats(back)
    return {
        "kappa": kappa,
        "rate": rate,
        "rate_se": se,
        "gain": float(gamma) * float(np.mean(np.sqrt(a))),
    }
