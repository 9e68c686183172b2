r"""A circle of inputs through finite random dense networks, with exact derivatives along it.

The input manifold of Poole et al. (2016, Sec. 5) is the great circle of pre-activations

.. math::

   h^0(\theta) = \sqrt{N q}\,\big[u^0 \cos\theta + u^1 \sin\theta\big], \qquad \theta \in [0, 2\pi),

with a random orthonormal pair :math:`u^0, u^1 \in \mathbb{R}^N` (:func:`circle_basis`), carried
by one sampled network :math:`h^l(\theta) = W^l\phi(h^{l-1}(\theta)) + b^l`
(:func:`mftlib.networks.init_dense`) in :func:`propagate_circle`, with the tangent
:math:`\partial_\theta h` and the acceleration :math:`\partial_\theta^2 h`.
:func:`manifold_geometry` measures the curve's length and curvature at every layer
(:func:`mftlib.expressivity.curve_geometry`). They check the mean-field theory of
:mod:`mftlib.expressivity` (:func:`mftlib.expressivity.manifold_theory`,
:func:`mftlib.expressivity.polygon_length_theory`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import expressivity
from mftlib.networks.dense import forward, init_dense, make_inputs

Array = jax.Array


# --- the circle through a random network --------------------------------------------------------


def circle_basis(key: Array, width: int, q: float) -> Array:
    r"""The columns :math:`\sqrt{Nq}\,[u^0, u^1]`, shape ``(width, 2)``, of the paper's circle.

    :math:`u^0, u^1` are a uniformly random orthonormal pair (:func:`mftlib.networks.make_inputs`
    with cosine 0), so :math:`\|h^0(\theta)\|^2 = Nq` exactly for every :math:`\theta` and each unit
    :math:`h^0_i(\theta)` is spread like :math:`\mathcal{N}(0, q)` over units, as mean-field theory
    assumes. Poole et al. (2016), Sec. 5 (their layer-1 circle with :math:`q = q^*`).
    """
    width = V.positive_int("width", width)
    if width < 2:
        raise ValueError(f"width must be >= 2 to hold a circle, got {width}")
    q = expressivity.check_length("q", q)
    return make_inputs(key, 2, width, q, c0=0.0).T


def _circle_params(key, phi, sigma_w2, sigma_b2, width, depth, q):
    """Network whose layer 0 embeds (cos t, sin t) as the circle: h^0 = sqrt(Nq) [u0 u1] x."""
    k_basis, k_net = jax.random.split(key)
    params = init_dense(k_net, 2, width, depth, sigma_w2, sigma_b2)
    params[0] = (circle_basis(k_basis, width, q), jnp.zeros(width, dtype=jnp.float64))
    return params


def propagate_circle(
    key: Array, phi, sigma_w2, sigma_b2, width: int, depth: int, q: float, theta
) -> tuple[list[Array], list[Array], list[Array]]:
    r"""The circle through one random network, with exact :math:`\theta`-derivatives.

    Layer 0 is the circle :math:`h^0(\theta)` (:func:`circle_basis`), layers :math:`1..` ``depth``
    are :math:`h^l = W^l\phi(h^{l-1}) + b^l` with :math:`W^l_{ij}\sim\mathcal{N}(0,\sigma_w^2/N)`,
    :math:`b^l_i\sim\mathcal{N}(0,\sigma_b^2)` (:func:`mftlib.networks.init_dense` and
    :func:`mftlib.networks.forward`). The tangent :math:`v^l = \partial_\theta h^l` and the
    acceleration :math:`a^l = \partial^2_\theta h^l` come from nested ``jax.jvp``: with
    :math:`x(\theta) = (\cos\theta, \sin\theta)` and :math:`f` the forward pass,
    :math:`a = D^2 f[x', x'] + Df[x'']`, exact to rounding (no finite differences).

    Returns:
        ``(hs, vs, accs)``: three lists of ``depth + 1`` arrays ``(len(theta), width)``.
    """
    act = expressivity.check_parameters(phi, sigma_w2, sigma_b2)
    width = V.positive_int("width", width)
    depth = V.nonneg_int("depth", depth)
    V.grid("theta", theta)
    params = _circle_params(key, act, sigma_w2, sigma_b2, width, depth, q)
    th = jnp.asarray(theta, dtype=jnp.float64)
    x = jnp.stack([jnp.cos(th), jnp.sin(th)], axis=1)
    dx = jnp.stack([-jnp.sin(th), jnp.cos(th)], axis=1)

    def f(z):
        return forward(params, z, act)

    def tangent(z, t):
        return jax.jvp(f, (z,), (t,))[1]

    (vs, accs) = jax.jvp(tangent, (x, dx), (dx, -x))
    return f(x), vs, accs


def manifold_geometry(
    key: Array,
    phi,
    sigma_w2,
    sigma_b2,
    width: int,
    depth: int,
    q: float,
    n_points: int = 256,
    n_seeds: int = 1,
) -> dict[str, np.ndarray]:
    r""":func:`~mftlib.expressivity.curve_geometry` at every layer of ``n_seeds`` random
    networks fed the circle.

    Seed ``s`` uses the key ``jax.random.split(key, n_seeds)[s]`` (split again into the circle's
    basis and the network). Each network is simulated by :func:`propagate_circle` on the grid
    :func:`mftlib.expressivity.theta_grid` of ``n_points`` angles.

    Returns:
        dict of numpy arrays ``(n_seeds, depth + 1)``, keys as in
        :func:`~mftlib.expressivity.curve_geometry`.
    """
    act = expressivity.check_parameters(phi, sigma_w2, sigma_b2)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    theta = expressivity.theta_grid(n_points)
    rows = []
    for seed_key in jax.random.split(key, n_seeds):
        hs, vs, accs = propagate_circle(seed_key, act, sigma_w2, sigma_b2, width, depth, q, theta)
        rows.append([_geometry_jit(h, v, a) for h, v, a in zip(hs, vs, accs, strict=True)])
    return {k: np.array([[float(layer[k]) for layer in row] for row in rows]) for k in rows[0][0]}


_geometry_jit = jax.jit(expressivity.curve_geometry)
