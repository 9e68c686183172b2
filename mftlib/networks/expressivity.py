r"""A circle of inputs through finite random dense networks, with exact derivatives along it.

The input manifold of Poole et al. (2016, Fig. 3) is the great circle of pre-activations

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

Two drivers for pairs and sets of inputs through :func:`mftlib.networks.preactivation_moments`:
:func:`pair_correlations` (inputs at length :math:`q^*` with prescribed correlations, for the
correlation map) and :func:`length_trajectories` (inputs of prescribed lengths, for the length
map). Four more experiments, each the finite-network check of one prediction there:

* :func:`circle_principal_components`: the variances of the circle's principal components
  (:func:`mftlib.expressivity.circle_spectrum_theory`);
* :func:`circle_autocorrelation`: the correlation :math:`c^l(\Delta\theta)` between points of
  the circle an angle :math:`\Delta\theta` apart, layer by layer
  (:func:`mftlib.expressivity.correlation_trajectory` from :math:`c^0 = \cos\Delta\theta`);
* :func:`boundary_curvatures`: the principal curvatures of the decision boundary of a random
  readout, from the gradient and Hessian of the network computed by JAX autodiff
  (:func:`mftlib.expressivity.boundary_curvature_theory`);
* :func:`circle_lengths`: the length of the curve traced by each layer's post-activations, for
  deep and for one-hidden-layer networks (:func:`mftlib.expressivity.circle_length_theory`,
  :func:`mftlib.expressivity.shallow_length_bound`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import expressivity
from mftlib.activations import Activation
from mftlib.dense import q_star
from mftlib.networks.dense import (
    draw_layer,
    forward,
    init_dense,
    make_inputs,
    preactivation_moments,
)

Array = jax.Array


# --- the circle through a random network --------------------------------------------------------


def circle_basis(key: Array, width: int, q: float) -> Array:
    r"""The columns :math:`\sqrt{Nq}\,[u^0, u^1]`, shape ``(width, 2)``, of the paper's circle.

    :math:`u^0, u^1` are a uniformly random orthonormal pair (:func:`mftlib.networks.make_inputs`
    with cosine 0), so :math:`\|h^0(\theta)\|^2 = Nq` exactly for every :math:`\theta` and each unit
    :math:`h^0_i(\theta)` is spread like :math:`\mathcal{N}(0, q)` over units, as mean-field theory
    assumes: the circle of Poole et al. (2016, Fig. 3), with :math:`q = q^*` there.
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


# --- the correlation along the circle -------------------------------------------------------------


@partial(jax.jit, static_argnames=("act",))
def _dense_step(W, b, h, *, act: Activation) -> Array:
    return act.fn(h) @ W.T + b


def _circle_layers(seed_key, act: Activation, sigma_w2, sigma_b2, width, depth, q, x):
    r"""Yield :math:`h^0, \dots, h^{depth}` of the network of :func:`_circle_params` at the points
    ``x = (cos t, sin t)``, one jitted layer at a time; each layer's weights are dropped once
    used, so memory holds one layer's weights and activations."""
    params = _circle_params(seed_key, act, sigma_w2, sigma_b2, width, depth, q)
    h = x @ params[0][0].T + params[0][1]
    yield h
    for layer in range(1, depth + 1):
        h = _dense_step(*params[layer], h, act=act)
        params[layer] = None
        yield h


@jax.jit
def _pair_correlations(h_base: Array, h_off: Array) -> Array:
    """Cosine between h(theta_j) ``(B, N)`` and h(theta_j + delta_m) ``(B, M, N)``: ``(B, M)``."""
    dot = jnp.einsum("bn,bmn->bm", h_base, h_off)
    norms = jnp.linalg.norm(h_base, axis=-1)[:, None] * jnp.linalg.norm(h_off, axis=-1)
    return dot / norms


def circle_autocorrelation(
    key: Array,
    phi,
    sigma_w2,
    sigma_b2,
    width: int,
    depth: int,
    q: float,
    offsets,
    n_base: int = 32,
    n_seeds: int = 1,
) -> dict[str, np.ndarray]:
    r"""Correlation :math:`c^l(\Delta\theta)` between points of the circle, layer by layer.

    For each of ``n_seeds`` networks fed the circle of :func:`propagate_circle` (the same keys as
    :func:`manifold_geometry`), at ``n_base`` equally spaced angles :math:`\theta_j` and each
    offset :math:`\Delta\theta_m` in ``offsets``:

    .. math::

       c^l_{jm} = \frac{h^l(\theta_j)\cdot h^l(\theta_j + \Delta\theta_m)}
       {|h^l(\theta_j)|\,|h^l(\theta_j + \Delta\theta_m)|},

    whose mean over :math:`j` mean-field theory predicts as the correlation map iterated from
    :math:`c^0 = \cos\Delta\theta` (:func:`mftlib.expressivity.correlation_trajectory`). The
    network is run one layer at a time (one jitted step), so memory is one layer's activations.

    Returns:
        dict of numpy arrays ``(n_seeds, depth + 1, len(offsets))``: ``mean`` and ``std`` of
        :math:`c^l_{jm}` over the base angles :math:`j` of each network.
    """
    act = expressivity.check_parameters(phi, sigma_w2, sigma_b2)
    width = V.positive_int("width", width)
    depth = V.nonneg_int("depth", depth)
    n_base = V.positive_int("n_base", n_base)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    V.grid("offsets", offsets)
    off = jnp.asarray(offsets, dtype=jnp.float64)
    base = jnp.arange(n_base, dtype=jnp.float64) * (2.0 * np.pi / n_base)
    angles = jnp.concatenate([base[:, None], base[:, None] + off[None, :]], axis=1).ravel()
    x = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    means, stds = [], []
    for seed_key in jax.random.split(key, n_seeds):
        rows = []
        for h in _circle_layers(seed_key, act, sigma_w2, sigma_b2, width, depth, q, x):
            hb = h.reshape(n_base, off.size + 1, width)
            rows.append(_pair_correlations(hb[:, 0], hb[:, 1:]))
        c = np.asarray(jnp.stack(rows))  # (depth + 1, n_base, n_offsets)
        means.append(c.mean(axis=1))
        stds.append(c.std(axis=1))
    return {"mean": np.array(means), "std": np.array(stds)}


# --- the decision boundary of a random readout ----------------------------------------------------


def _readout(params, v, h0, act: Activation) -> Array:
    """y = v . h^L for a single point h^0 (``params`` the layers 1..L)."""
    h = h0
    for W, b in params:
        h = act.fn(h) @ W.T + b
    return v @ h


@partial(jax.jit, static_argnames=("act", "steps"))
def _project(params, v, h0, *, act: Activation, steps: int):
    """Newton steps h <- h - y g / |g|^2 onto y = 0, for a batch of points (n, N)."""
    value_grad = jax.vmap(jax.value_and_grad(lambda h: _readout(params, v, h, act)))

    def body(_, h):
        y, g = value_grad(h)
        return h - (y / jnp.sum(g * g, axis=-1))[:, None] * g

    h = jax.lax.fori_loop(0, steps, body, h0)
    y, g = value_grad(h)
    return h, jnp.abs(y) / jnp.linalg.norm(g, axis=-1)


@partial(jax.jit, static_argnames=("act",))
def _pull_back(W, b, h, g, H, *, act: Activation):
    """Gradient and Hessian of y with respect to h^l from those with respect to h^{l+1}.

    Second-order chain rule through F(u) = W phi(u) + b, each piece by autodiff: the Jacobian
    J = dF/du (``jax.jacfwd``) and the Hessian of g . F (``jax.hessian``);
    g^l = J^T g^{l+1} and H^l = J^T H^{l+1} J + d^2(g^{l+1} . F)/du^2. Batched over points.
    """

    def one(hp, gp, Hp):
        def F(u):
            return W @ act.fn(u) + b

        J = jax.jacfwd(F)(hp)
        curv = jax.hessian(lambda u: gp @ F(u))(hp)
        return J.T @ gp, J.T @ Hp @ J + curv

    return jax.vmap(one)(h, g, H)


@jax.jit
def _principal_curvatures(g: Array, H: Array) -> Array:
    """Eigenvalues of H / |g| on the tangent space g-perp, ascending: (n, N - 1) for (n, N)."""

    def one(gp, Hp):
        n = gp.shape[0]
        norm = jnp.linalg.norm(gp)
        unit = gp / norm
        sign = jnp.where(unit[0] >= 0, 1.0, -1.0)
        u = unit + sign * jnp.eye(n, dtype=gp.dtype)[0]
        u = u * jnp.sqrt(2.0) / jnp.linalg.norm(u)  # the reflection I - u u^T maps g to e_0
        Hu = Hp @ u
        # (I - u u^T) H (I - u u^T), as a rank-2 update (no N^3 products)
        M = Hp - jnp.outer(u, Hu) - jnp.outer(Hu, u) + (u @ Hu) * jnp.outer(u, u)
        return jnp.linalg.eigvalsh(0.5 * (M + M.T)[1:, 1:]) / norm

    return jax.vmap(one)(g, H)


@jax.jit
def _tangent_sum_sq(g: Array, H: Array) -> Array:
    """Sum of squared principal curvatures |P H P|_F^2 / |g|^2, without an eigendecomposition:
    P H P = H - n (n^T H) - (H n) n^T + (n^T H n) n n^T for the unit normal n."""

    def one(gp, Hp):
        g2 = gp @ gp
        n = gp / jnp.sqrt(g2)
        Hn = Hp @ n
        return (jnp.sum(Hp * Hp) - 2.0 * (Hn @ Hn) + (n @ Hn) ** 2) / g2

    return jax.vmap(one)(g, H)


def boundary_curvatures(
    key: Array,
    phi,
    sigma_w2,
    sigma_b2,
    width: int,
    depth: int,
    q: float,
    n_points: int = 8,
    n_seeds: int = 1,
    newton_steps: int = 0,
    spectrum: bool = True,
) -> dict[str, np.ndarray]:
    r"""Principal curvatures of the level sets of a random network's readout, layer by layer.

    Each of ``n_seeds`` networks is :math:`h^l = W^l\phi(h^{l-1}) + b^l`, :math:`l = 1..L`
    (:math:`L` = ``depth``, width :math:`N`, :math:`W^l_{ij}\sim\mathcal{N}(0,\sigma_w^2/N)`,
    :math:`b^l_i\sim\mathcal{N}(0,\sigma_b^2)`, layer :math:`l` drawn with
    ``mftlib.networks.draw_layer``), read out by :math:`y = v\cdot h^L` with
    :math:`v\sim\mathcal{N}(0, I/N)`. At ``n_points`` points :math:`h^0\sim\mathcal{N}(0, qI)`
    it measures the level set :math:`\{y = y(h^0)\}` through the point: the decision boundary
    :math:`y = 0` is one of these level sets. With ``newton_steps > 0`` the points are first moved
    onto :math:`y = 0` by Newton steps :math:`h^0 \leftarrow h^0 - y\,\nabla y/|\nabla y|^2`
    (the paper's procedure minimises :math:`y^2` instead); such points are not typical points of
    input space, since the steps end preferentially where :math:`y` varies slowly.

    At each point and layer the gradient :math:`g^l` and Hessian :math:`H^l` of :math:`y` with
    respect to :math:`h^l` come from JAX autodiff (second-order chain rule, layer by layer from
    :math:`g^L = v`, :math:`H^L = 0`, each layer's Jacobian by ``jax.jacfwd`` and curvature term
    by ``jax.hessian``), and the principal curvatures are the eigenvalues of :math:`H^l/|g^l|`
    on the tangent space :math:`g^{l\perp}` (projected by a Householder reflection). Their sum
    of squares is :math:`\|PH^lP\|_F^2/|g^l|^2` and needs no eigendecomposition; with
    ``spectrum=False`` only it is computed (the eigendecompositions dominate the cost). The
    mean-field prediction for the sum of squares at typical points is
    :func:`mftlib.expressivity.boundary_curvature_theory`.

    Seed ``s`` uses ``seed_key = jax.random.split(key, n_seeds)[s]``, split as
    ``k_net, k_read, k_points = jax.random.split(seed_key, 3)``: layer :math:`l` is
    ``draw_layer(k_net, l, ...)``, :math:`v` = ``normal(k_read, (N,)) / sqrt(N)`` and the
    starting points ``sqrt(q) * normal(k_points, (n_points, N))``.

    Returns:
        dict of numpy arrays: ``curvatures`` ``(n_seeds, n_points, depth + 1, N - 1)``
        (ascending at each layer; exactly 0 at :math:`l = L`; only with ``spectrum=True``);
        ``sum_sq`` (:math:`\sum_i\kappa_i^2`) and ``grad_sq`` (:math:`|g^l|^2`), both
        ``(n_seeds, n_points, depth + 1)``; ``offset`` ``(n_seeds, n_points)``,
        :math:`|y|/|\nabla y|` at the points (after the Newton steps: the remaining distance to
        :math:`y = 0`); and ``points`` ``(n_seeds, n_points, N)``, the points :math:`h^0`.
    """
    act = expressivity.check_parameters(phi, sigma_w2, sigma_b2)
    width = V.positive_int("width", width)
    if width < 2:
        raise ValueError(f"width must be >= 2 for a boundary with a tangent space, got {width}")
    depth = V.positive_int("depth", depth)
    q = expressivity.check_length("q", q)
    n_points = V.positive_int("n_points", n_points)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    newton_steps = V.nonneg_int("newton_steps", newton_steps)
    sw2, sb2 = jnp.float64(sigma_w2), jnp.float64(sigma_b2)
    out = {"curvatures": [], "sum_sq": [], "grad_sq": [], "offset": [], "points": []}
    for seed_key in jax.random.split(key, n_seeds):
        k_net, k_read, k_points = jax.random.split(seed_key, 3)
        params = [
            draw_layer(k_net, i, sw2, sb2, fan_in=width, fan_out=width) for i in range(1, depth + 1)
        ]
        v = jax.random.normal(k_read, (width,), dtype=jnp.float64) / np.sqrt(width)
        h0 = np.sqrt(q) * jax.random.normal(k_points, (n_points, width), dtype=jnp.float64)
        h0, offset = _project(params, v, h0, act=act, steps=newton_steps)
        hs = [h0]
        for W, b in params:
            hs.append(_dense_step(W, b, hs[-1], act=act))
        g = jnp.broadcast_to(v, (n_points, width))
        H = jnp.zeros((n_points, width, width), dtype=jnp.float64)
        curv, grad_sq = [jnp.zeros((n_points, width - 1))], [jnp.sum(g * g, axis=-1)]
        sum_sq = [jnp.zeros(n_points)]
        for layer in range(depth - 1, -1, -1):
            g, H = _pull_back(*params[layer], hs[layer], g, H, act=act)
            if spectrum:
                curv.append(_principal_curvatures(g, H))
            sum_sq.append(_tangent_sum_sq(g, H))
            grad_sq.append(jnp.sum(g * g, axis=-1))
        if spectrum:  # (n_points, depth + 1, N - 1)
            out["curvatures"].append(np.asarray(jnp.stack(curv[::-1], axis=1)))
        out["sum_sq"].append(np.asarray(jnp.stack(sum_sq[::-1], axis=1)))
        out["grad_sq"].append(np.asarray(jnp.stack(grad_sq[::-1], axis=1)))
        out["offset"].append(np.asarray(offset))
        out["points"].append(np.asarray(h0))
    if not spectrum:
        del out["curvatures"]
    return {k: np.array(v) for k, v in out.items()}


# --- deep against shallow: the length of the post-activation curve ------------------------------


@partial(jax.jit, static_argnames=("act",))
def _tangent_step(W, b, h, v, *, act: Activation):
    """(h, v) -> (W phi(h) + b, W (phi'(h) v)) by ``jax.jvp`` of the layer."""
    return jax.jvp(lambda u: act.fn(u) @ W.T + b, (h,), (v,))


@partial(jax.jit, static_argnames=("act",))
def _post_speed(h, v, *, act: Activation) -> Array:
    """|d phi(h)/d theta| = |phi'(h) v| per point, phi' by ``jax.jvp``."""
    return jnp.linalg.norm(jax.jvp(act.fn, (h,), (v,))[1], axis=-1)


def circle_lengths(
    key: Array,
    phi,
    sigma_w2,
    sigma_b2,
    width: int,
    depth: int,
    q_theta: float,
    n_points: int = 512,
    n_seeds: int = 1,
    chunk: int = 1024,
) -> dict[str, np.ndarray]:
    r"""Length of the curve traced by each layer's post-activations, for a circle of inputs.

    Each of ``n_seeds`` networks is :func:`mftlib.networks.init_dense` with input dimension 2
    (seed ``s``: ``jax.random.split(key, n_seeds)[s]``), fed the circle
    :math:`x(\theta) = r(\cos\theta, \sin\theta)` with :math:`r^2 = 2q_\theta/\sigma_w^2`, so
    that the part of :math:`h^0_i = W^0_i\cdot x + b^0_i` that moves with :math:`\theta` has
    variance ``q_theta`` over units. The tangent :math:`v^l = \partial_\theta h^l` is carried
    forward with ``jax.jvp``; the post-activations :math:`z^l = \phi(h^l)` trace a curve of
    length :math:`\oint|\phi'(h^l)\odot v^l|\,d\theta`, integrated by the periodic rectangle
    rule on ``n_points`` angles (in chunks of ``chunk`` angles, so that a wide shallow layer fits
    in memory). ``depth = 0`` is a network with one hidden layer.

    Returns:
        dict of numpy arrays: ``post_length`` ``(n_seeds, depth + 1)``, the normalised length
        :math:`\Lambda^l = \mathcal{L}^E(z^l)/\sqrt N`
        (:func:`mftlib.expressivity.circle_length_theory`); ``q`` ``(n_seeds, depth + 1)``, the
        mean of
        :math:`|h^l|^2/N` over the circle; and ``total_variation`` ``(n_seeds,)``,
        :math:`\sum_i 2|\phi(b_i + a_i) - \phi(b_i - a_i)|/\sqrt N` for the first hidden layer
        (:math:`a_i = r|W^0_i|`), the bound its length cannot exceed
        (:func:`mftlib.expressivity.shallow_length_bound`).
    """
    act = expressivity.check_parameters(phi, sigma_w2, sigma_b2)
    if float(sigma_w2) <= 0:
        raise ValueError(f"sigma_w2 must be > 0 to embed the circle, got {sigma_w2}")
    width = V.positive_int("width", width)
    depth = V.nonneg_int("depth", depth)
    q_theta = expressivity.check_length("q_theta", q_theta)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    chunk = V.positive_int("chunk", chunk)
    theta = expressivity.theta_grid(n_points)
    radius = np.sqrt(2.0 * q_theta / float(sigma_w2))
    out = {"post_length": [], "q": [], "total_variation": []}
    for seed_key in jax.random.split(key, n_seeds):
        params = init_dense(seed_key, 2, width, depth, sigma_w2, sigma_b2)
        W0, b0 = params[0]
        a = radius * jnp.linalg.norm(W0, axis=1)
        tv = 2.0 * jnp.abs(act.fn(b0 + a) - act.fn(b0 - a))
        speed = np.zeros(depth + 1)
        q_sum = np.zeros(depth + 1)
        for start in range(0, int(theta.size), chunk):
            th = theta[start : start + chunk]
            h = radius * jnp.stack([jnp.cos(th), jnp.sin(th)], axis=1) @ W0.T + b0
            v = radius * jnp.stack([-jnp.sin(th), jnp.cos(th)], axis=1) @ W0.T
            for layer in range(depth + 1):
                if layer:
                    h, v = _tangent_step(*params[layer], h, v, act=act)
                speed[layer] += float(jnp.sum(_post_speed(h, v, act=act)))
                q_sum[layer] += float(jnp.sum(h * h)) / width
        out["post_length"].append(2.0 * np.pi * speed / theta.size / np.sqrt(width))
        out["q"].append(q_sum / theta.size)
        out["total_variation"].append(float(jnp.sum(tv)) / np.sqrt(width))
    return {k: np.array(v) for k, v in out.items()}


# --- pairs and sets of inputs at prescribed lengths and correlations ------------------------------


def pair_correlations(
    key: Array,
    phi,
    sigma_w2,
    sigma_b2,
    width: int,
    depth: int,
    c0,
    n_seeds: int = 1,
    d_in: int = 100,
) -> dict[str, np.ndarray]:
    r"""Correlations of input pairs that start at length :math:`q^*` with correlations ``c0``.

    A reference input :math:`x_0` and one partner :math:`x_j` per entry of ``c0``, with
    :math:`x_j = \cos_j\,x_0 + \sin_j\,u_j` (orthonormal directions, :math:`\|x\|^2/d` chosen
    so that :math:`q^0 = \sigma_w^2\|x\|^2/d + \sigma_b^2 = q^*`) and
    :math:`\cos_j = (c_{0,j}q^* - \sigma_b^2)/(q^* - \sigma_b^2)`, so that the layer-0
    pre-activations have correlation :math:`c_{0,j}` in expectation. They go through ``n_seeds``
    networks (:func:`mftlib.networks.preactivation_moments` with ``jax.random.split(key)[1]``;
    the directions come from ``jax.random.split(key)[0]``).

    Returns:
        dict of numpy arrays: ``c`` ``(n_seeds, depth + 1, len(c0))``, the measured correlation
        :math:`c^l` of each partner with the reference, and ``q`` ``(n_seeds, depth + 1,
        len(c0) + 1)``, the lengths (reference first). The mean-field prediction is
        :func:`mftlib.expressivity.correlation_trajectory` from ``c0``.
    """
    act = expressivity.check_parameters(phi, sigma_w2, sigma_b2)
    V.grid("c0", c0)
    V.correlation("c0", c0)
    d_in = V.positive_int("d_in", d_in)
    qs = float(q_star(act, sigma_w2, sigma_b2))
    if not np.isfinite(qs) or qs <= float(sigma_b2):
        raise ValueError(
            f"q* = {qs} at sigma_w2={sigma_w2}, sigma_b2={sigma_b2}: the inputs cannot move the "
            "length, so their correlations cannot be set"
        )
    c0 = np.asarray(c0, dtype=np.float64)
    cos = (c0 * qs - float(sigma_b2)) / (qs - float(sigma_b2))
    if np.any(np.abs(cos) > 1.0):
        lo = (2.0 * float(sigma_b2) - qs) / qs
        raise ValueError(f"c0 must be >= {lo:.4g} here (the bias alone correlates the inputs)")
    if c0.size + 1 > d_in:
        raise ValueError(f"d_in must be > len(c0) = {c0.size}, got {d_in}")
    key_x, key_net = jax.random.split(key)
    base = make_inputs(key_x, c0.size + 1, d_in, (qs - float(sigma_b2)) / float(sigma_w2), c0=0.0)
    partners = cos[:, None] * base[0] + np.sqrt(1.0 - cos**2)[:, None] * base[1:]
    x = jnp.concatenate([base[:1], partners])
    m = preactivation_moments(key_net, x, act, sigma_w2, sigma_b2, width, depth, n_seeds)
    return {"c": np.asarray(m["c"][:, :, 0, 1:]), "q": np.asarray(m["q"])}


def length_trajectories(
    key: Array,
    phi,
    sigma_w2,
    sigma_b2,
    width: int,
    depth: int,
    q0,
    n_inputs: int = 8,
    n_seeds: int = 1,
    d_in: int = 100,
) -> np.ndarray:
    r"""The length :math:`q^l` of inputs started at each length in ``q0``, averaged over inputs.

    For each entry of ``q0`` (:math:`\ge \sigma_b^2`), ``n_inputs`` random directions with
    :math:`\|x\|^2/d = (q_0 - \sigma_b^2)/\sigma_w^2`, so that :math:`q^0 = q_0` in
    expectation, go through ``n_seeds`` networks (:func:`mftlib.networks.preactivation_moments`
    with ``jax.random.split(key)[1]``; the inputs from ``jax.random.split(key)[0]``). The
    mean-field prediction is the length map iterated from ``q0``; the number of layers it needs
    to come within a tolerance of :math:`q^*` is
    :func:`mftlib.expressivity.length_convergence_depth`.

    Returns:
        numpy array ``(n_seeds, depth + 1, len(q0))``: :math:`N^{-1}|h^l|^2` averaged over the
        ``n_inputs`` inputs of each starting length.
    """
    act = expressivity.check_parameters(phi, sigma_w2, sigma_b2)
    V.grid("q0", q0)
    V.variance("q0", q0)
    n_inputs = V.positive_int("n_inputs", n_inputs)
    q0 = np.asarray(q0, dtype=np.float64)
    if float(sigma_w2) <= 0 or np.any(q0 < float(sigma_b2)):
        raise ValueError(
            f"q0 must be >= sigma_b2 = {sigma_b2} and sigma_w2 > 0: the bias alone gives "
            "q^0 = sigma_b2"
        )
    keys = jax.random.split(jax.random.split(key)[0], q0.size)
    x = jnp.concatenate(
        [
            make_inputs(k, n_inputs, d_in, (q - float(sigma_b2)) / float(sigma_w2))
            for k, q in zip(keys, q0, strict=True)
        ]
    )
    m = preactivation_moments(
        jax.random.split(key)[1], x, act, sigma_w2, sigma_b2, width, depth, n_seeds
    )
    q = np.asarray(m["q"]).reshape(n_seeds, depth + 1, q0.size, n_inputs)
    return q.mean(axis=-1)


# --- principal components of the circle ---------------------------------------------------------


@jax.jit
def _gram_spectrum(h: Array) -> tuple[Array, Array]:
    """Squared singular values (descending, >= 0) and left singular vectors of the centred
    ``(n, N)`` curve, from the eigendecomposition of its ``n x n`` Gram matrix (cheaper than an
    SVD when N > n; a layer narrower than n gets zeros)."""
    hc = h - h.mean(axis=0)
    evals, evecs = jnp.linalg.eigh(hc @ hc.T)
    return jnp.maximum(evals[::-1], 0.0), evecs[:, ::-1]


def circle_principal_components(
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
    r"""Principal components of the circle :math:`h^l(\theta_k)` in sampled networks.

    For each of ``n_seeds`` networks fed the circle (the keys of :func:`manifold_geometry`) on
    the grid :func:`mftlib.expressivity.theta_grid` of ``n_points`` angles: the curve is centred
    over :math:`\theta` and its singular values :math:`s_k` (from the eigenvalues of its
    :math:`n \times n` Gram matrix) give the variances :math:`s_k^2/N` of its principal
    components. Mean-field theory predicts them from the Fourier
    coefficients of the correlation function (:func:`mftlib.expressivity.circle_spectrum_theory`).

    Returns:
        dict of numpy arrays: ``fractions`` ``(n_seeds, depth + 1, n_points - 1)``, the variance
        fractions sorted in decreasing order (the last singular value of a centred curve is 0 and
        is dropped; a layer narrower than ``n_points - 1`` has zeros at the end), and
        ``projection`` ``(depth + 1, n_points, 2)``, the first network's curve on its two leading
        principal components.
    """
    act = expressivity.check_parameters(phi, sigma_w2, sigma_b2)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    theta = expressivity.theta_grid(n_points)
    x = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    fractions, projection = [], None
    for s, seed_key in enumerate(jax.random.split(key, n_seeds)):
        rows, proj = [], []
        for h in _circle_layers(seed_key, act, sigma_w2, sigma_b2, width, depth, q, x):
            var, u = _gram_spectrum(h)  # variances s_k^2 (descending) and left vectors
            var = np.asarray(var[: theta.size - 1])  # the last one of a centred curve is 0
            rows.append(var / var.sum())
            proj.append(np.asarray(u[:, :2] * jnp.sqrt(var[:2])))
        fractions.append(rows)
        if s == 0:
            projection = np.array(proj)
    return {"fractions": np.array(fractions), "projection": projection}
