r"""Mean-field theory of an untrained graph neural network on the stochastic block model.

Graph partitioning by a GNN with random weights (Kawamoto, Tsubaki & Obuchi, NeurIPS 2018,
arXiv:1810.11908), in the book's form: one layer is a map on the covariance of the
pre-activations over the nodes, reduced to two group-wise order parameters.

The graph: a symmetric two-group stochastic block model (SBM) with ``n`` nodes, labels
:math:`s_i = \pm 1` (two equal groups), mean degree :math:`c = (c_{in} + c_{out})/2` and
:math:`\epsilon = c_{out}/c_{in}`, so that

.. math::

   c_{in} = \frac{2c}{1+\epsilon}, \qquad c_{out} = \frac{2c\epsilon}{1+\epsilon}, \qquad
   \lambda = \frac{c_{in} - c_{out}}{2} = c\,\frac{1-\epsilon}{1+\epsilon}.

The Kesten-Stigum (KS) threshold of Decelle et al. (2011) is :math:`\lambda^2 = c`, i.e.
:math:`\epsilon_{KS} = (\sqrt c - 1)/(\sqrt c + 1)`.

The network (``mftlib.networks.graph``): node features :math:`x^0_i \sim \mathcal{N}(0, I_D)`
and, for :math:`t = 1, \dots, T`,

.. math::

   h^t = P A\, x^{t-1} W^t, \qquad x^t = \phi(h^t), \qquad
   W^t_{\nu\mu} \sim \mathcal{N}(0, \sigma_w^2/(cD)), \qquad P = I - \mathbf{1}\mathbf{1}^\top/n,

with ``A`` the adjacency matrix and ``P`` the centring over nodes (it removes the uniform mode,
whose eigenvalue ``c`` would otherwise swamp the group signal). A bias per feature is removed by
``P`` and is therefore omitted.

Order parameters (annealed mean field, :math:`D \to \infty`): the pre-activation of node ``i``
in feature :math:`\mu` is :math:`h_{i\mu} = s_i m_\mu + \xi_{i\mu}` with a group mean
:math:`m_\mu \sim \mathcal{N}(0, M)` and a local part :math:`\xi \sim \mathcal{N}(0, q)`. With
:math:`\bar\phi(m) = \tfrac12\mathbb{E}_\xi[\phi(m+\xi) - \phi(-m+\xi)]` (the antisymmetric
group mean of the activations) the layer map is

.. math::

   M' = \sigma_w^2\,\frac{\lambda^2}{c}\Bigl(\mathbb{E}_m \bar\phi(m)^2
        + \frac{1}{n}\,\mathbb{V}\Bigr), \qquad
   q' = \sigma_w^2\,\mathbb{E}_{\sigma, m, \xi}\,\phi(\sigma m + \xi)^2,

where :math:`\mathbb{V}` is the local variance of the activations (:math:`\mathbb{E}\phi^2` less
the group means and the uniform mode): through common neighbours it seeds a group signal of
order :math:`1/n` (with random initial features this seed is the only source of signal). At
small :math:`M` the signal ratio :math:`M/q` is multiplied per layer by

.. math::

   \kappa = \frac{\lambda^2}{c}\,\rho(q), \qquad
   \rho(q) = \frac{q\,\mathbb{E}[\phi'(\sqrt q z)]^2}{\mathbb{E}[\phi(\sqrt q z)^2]} \le 1,

so the mean-field detectability limit of a deep network is :math:`\kappa = 1` at the fixed
point :math:`q^*` of the length map: :math:`\lambda^2 = c/\rho(q^*)`. A linear activation
(:math:`\rho = 1`) reaches the KS threshold; any nonlinearity (:math:`\rho < 1`, the weight of
the first Hermite coefficient of :math:`\phi`) moves the limit below it.

This group-wise (annealed) reduction treats each layer as if it met a fresh graph and so misses
the walks that return along their own edges: it is exact for the first layer and overestimates
the signal from the second on, on sparse and dense graphs alike (tests/test_graph.py, book
chapter 10). :func:`spectral_order_parameters` keeps those walks by writing the covariance over
nodes as a function of :math:`H = PA/\sqrt c` (a spiked Wigner matrix in the dense-graph
limit); its deep-network limit is the KS threshold for every odd activation
(:func:`spectral_overlap`). On sparse graphs (c = 8) this dense closure overestimates the signal
ratio: :mod:`mftlib.graph_spectral` evaluates the same linearised map on a sampled graph's own
walk moments, which follow simulated networks. :func:`spectral_readout_overlap` turns it into a
prediction for the overlap of a finite network's PCA readout (a heuristic).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jax.scipy.special import ndtr

from mftlib import _validate as V
from mftlib import dynamics, gaussian
from mftlib.activations import Activation, activation
from mftlib.dense import q_star

Array = jax.Array
PhiLike = str | Activation

# Product Gauss-Hermite rule (probabilists'), for E over the two independent Gaussians (m, xi).
_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(61)
_GH_W = _GH_W / _GH_W.sum()


# --- the stochastic block model --------------------------------------------------------------
def _check_sbm(c, epsilon) -> tuple[float, float]:
    V.real("c", c, lo=0.0, lo_open=True)
    V.real("epsilon", epsilon, lo=0.0, hi=1.0)
    return float(c), float(epsilon)


def sbm_parameters(c: float, epsilon: float) -> dict:
    r"""The affinities of the two-group SBM with mean degree ``c`` and :math:`\epsilon`.

    Returns:
        dict with ``c_in = 2c/(1+eps)``, ``c_out = 2c eps/(1+eps)`` and the signal eigenvalue
        ``lam = (c_in - c_out)/2 = c (1-eps)/(1+eps)`` of the expected adjacency matrix.
    """
    c, eps = _check_sbm(c, epsilon)
    c_in = 2.0 * c / (1.0 + eps)
    return {"c_in": c_in, "c_out": eps * c_in, "lam": c * (1.0 - eps) / (1.0 + eps)}


def ks_threshold(c: float) -> float:
    r"""Kesten-Stigum threshold :math:`\epsilon_{KS} = (\sqrt c - 1)/(\sqrt c + 1)`.

    Decelle et al. (2011): for two equal groups, :math:`c_{in} - c_{out} = 2\sqrt c`. Below
    :math:`\epsilon_{KS}` the groups are detectable (better than chance) in polynomial time; above
    it, no algorithm does better than chance as :math:`n \to \infty` (two groups). ``c <= 1``
    gives 0 (no detectable range).
    """
    V.real("c", c, lo=0.0, lo_open=True)
    r = math.sqrt(float(c))
    return max(0.0, (r - 1.0) / (r + 1.0))


def epsilon_from_lambda2(lam2: float, c: float) -> float:
    r"""The :math:`\epsilon` at which :math:`\lambda^2 = ` ``lam2``: invert
    :math:`\lambda = c(1-\epsilon)/(1+\epsilon)`; 0 when ``lam2 >= c**2`` (not reachable)."""
    V.real("lam2", lam2, lo=0.0)
    V.real("c", c, lo=0.0, lo_open=True)
    theta = math.sqrt(float(lam2)) / float(c)
    return max(0.0, (1.0 - theta) / (1.0 + theta))


def sbm(key, n: int, c: float, epsilon: float) -> tuple[sp.csr_matrix, np.ndarray]:
    r"""Sample a symmetric two-group SBM as a sparse adjacency matrix.

    Nodes ``0 .. n/2-1`` have label +1, the others -1. Each unordered pair ``i < j`` is an edge
    with probability ``c_in/n`` (same group) or ``c_out/n`` (different groups); sampled as a
    Poisson number of uniformly placed pairs per block (exact as ``n`` grows; duplicate pairs and
    self-loops, a fraction ``O(c/n)``, are dropped).

    Args:
        key: a JAX PRNG key.
        n: number of nodes, even, >= 4.
        c: mean degree, > 0.
        epsilon: ``c_out / c_in`` in [0, 1].

    Returns:
        ``(A, labels)``: ``A`` a symmetric ``scipy.sparse.csr_matrix`` of 0/1 (float64),
        ``labels`` an int array of +-1.
    """
    n = V.positive_int("n", n)
    if n < 4 or n % 2:
        raise ValueError(f"n must be an even int >= 4, got {n}")
    p = sbm_parameters(c, epsilon)
    half = n // 2
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for g in (0, 1):  # within-group pairs
        m = rng.poisson(p["c_in"] / n * half * (half - 1) / 2)
        rows.append(rng.integers(0, half, m) + g * half)
        cols.append(rng.integers(0, half, m) + g * half)
    m = rng.poisson(p["c_out"] / n * half * half)  # between-group pairs
    rows.append(rng.integers(0, half, m))
    cols.append(rng.integers(0, half, m) + half)
    r, col = np.concatenate(rows), np.concatenate(cols)
    keep = r != col
    a = sp.coo_matrix((np.ones(keep.sum()), (r[keep], col[keep])), shape=(n, n)).tocsr()
    a = a + a.T
    a.data[:] = 1.0
    a.eliminate_zeros()
    labels = np.where(np.arange(n) < half, 1, -1)
    return a.tocsr(), labels


def overlap(pred, labels) -> float:
    r"""Overlap of a two-group assignment with the planted one, invariant to swapping the groups.

    :math:`\max(a, 1-a)` rescaled as :math:`|2a - 1|` with ``a`` the fraction of nodes whose
    sign of ``pred`` equals ``labels``: 0 for chance, 1 for perfect (Decelle et al. 2011,
    two equal groups).
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape or pred.ndim != 1:
        raise ValueError(
            f"pred and labels must be 1-D of one shape, got {pred.shape}, {labels.shape}"
        )
    if not np.all(np.isfinite(pred)):
        raise ValueError("pred must be finite")
    a = float(np.mean(np.sign(pred) == np.sign(labels)))
    return abs(2.0 * a - 1.0)


def bethe_hessian_labels(adjacency) -> np.ndarray:
    r"""Spectral baseline: signs of the Bethe-Hessian eigenvector (Saade, Krzakala, Zdeborova 2014).

    :math:`H(r) = (r^2 - 1) I - r A + D` with :math:`r = \sqrt{\langle d^2\rangle/\langle d
    \rangle - 1}`; the eigenvector of its second-smallest eigenvalue carries the two-group
    partition, down to the KS threshold on sparse graphs.
    """
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    if a.shape[0] != a.shape[1] or a.shape[0] < 4:
        raise ValueError(f"adjacency must be square with >= 4 nodes, got shape {a.shape}")
    d = np.asarray(a.sum(axis=1)).ravel()
    if d.mean() <= 0:
        raise ValueError("adjacency has no edges")
    r = math.sqrt(max((d**2).mean() / d.mean() - 1.0, 1e-12))
    h = (r * r - 1.0) * sp.eye(a.shape[0]) - r * a + sp.diags(d)
    v0 = np.random.default_rng(0).standard_normal(a.shape[0])
    vals, vecs = spla.eigsh(h.tocsc(), k=2, which="SA", v0=v0)
    return np.sign(vecs[:, np.argsort(vals)[1]])


# --- the group-wise mean-field map -----------------------------------------------------------
def _act_stats(act: Activation, M: Array, q: Array) -> tuple[Array, Array, Array]:
    """(E_m phibar^2, local variance, E phi^2) for h = s m + xi, m ~ N(0, M), xi ~ N(0, q)."""
    z = jnp.asarray(_GH_Z)
    w = jnp.asarray(_GH_W)
    m = jnp.sqrt(M) * z[:, None]
    xi = jnp.sqrt(q) * z[None, :]
    fp, fm = act.fn(m + xi), act.fn(-m + xi)
    phibar = 0.5 * ((fp - fm) @ w)  # antisymmetric group mean, (n_m,)
    phisym = 0.5 * ((fp + fm) @ w)  # uniform mode (removed by the centring)
    mean_sq = 0.5 * (((fp**2 + fm**2) @ w) @ w)
    s2bar = phibar**2 @ w
    return s2bar, mean_sq - s2bar - phisym**2 @ w, mean_sq


@partial(jax.jit, static_argnums=0)
def _layer(act: Activation, sw2, lam2_over_c, inv_n, M, q):
    s2bar, local, e2 = _act_stats(act, M, q)
    return sw2 * lam2_over_c * (s2bar + inv_n * local), sw2 * e2


@partial(jax.jit, static_argnums=(0, 1))
def _layers(act: Activation, steps: int, sw2, lam2_over_c, inv_n, x1):
    """Layers 1..steps+1 of (M, q) from layer 1's ``x1``: :func:`mftlib.dynamics.iterate`."""

    def F(x):
        return jnp.stack(_layer(act, sw2, lam2_over_c, inv_n, x[0], x[1]))

    return dynamics.iterate(F, x1, steps)


def _check_common(phi, sigma_w2, c, epsilon, n):
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    p = sbm_parameters(c, epsilon)
    if n is not None:
        n = V.positive_int("n", n)
    return act, p, (0.0 if n is None else 1.0 / n)


def layer_map(phi: PhiLike, sigma_w2, c, epsilon, M, q, n: int | None = None):
    r"""One GNN layer on the order parameters: :math:`(M, q) \mapsto (M', q')` (module docstring).

    ``(M, q)`` describe the previous layer's pre-activations; ``n`` the number of nodes (the
    :math:`1/n` seed term; ``None`` for :math:`n = \infty`).
    """
    act, p, inv_n = _check_common(phi, sigma_w2, c, epsilon, n)
    V.variance("M", M)
    V.variance("q", q)
    return _layer(
        act, float(sigma_w2), p["lam"] ** 2 / float(c), inv_n, jnp.float64(M), jnp.float64(q)
    )


def order_parameters(phi: PhiLike, sigma_w2, c, epsilon, depth: int, n: int | None) -> dict:
    r"""Order parameters of layers ``1..depth`` for random initial features :math:`x^0 \sim
    \mathcal{N}(0, I)`.

    The first layer sees activations with :math:`\mathbb{E}\bar\phi^2 = 0` and
    :math:`\mathbb{E}\phi^2 = 1`: :math:`M_1 = \sigma_w^2\lambda^2/(cn)`,
    :math:`q_1 = \sigma_w^2`; later layers apply :func:`layer_map`.

    Returns:
        dict of arrays of length ``depth``: ``M``, ``q``, ``r = n M / q`` (the signal ratio
        measured by :func:`mftlib.networks.simulate_gnn`; ``nan`` for ``n=None``) and
        ``overlap`` = :func:`readout_overlap` of each layer.
    """
    act, p, inv_n = _check_common(phi, sigma_w2, c, epsilon, n)
    depth = V.positive_int("depth", depth)
    sw2, l2c = float(sigma_w2), p["lam"] ** 2 / float(c)
    first = jnp.array([sw2 * l2c * inv_n, sw2])
    traj = np.asarray(_layers(act, depth - 1, sw2, l2c, inv_n, first))
    if not np.all(np.isfinite(traj)):
        raise ValueError(
            "the order parameters diverged (use a bounded activation or a smaller sigma_w2)"
        )
    Ms, qs = traj[:, 0], traj[:, 1]
    r = Ms / qs * n if n is not None else np.full(depth, np.nan)
    return {"M": Ms, "q": qs, "r": r, "overlap": readout_overlap(Ms, qs)}


def readout_overlap(M, q) -> np.ndarray:
    r"""Overlap of the sign readout predicted from the order parameters,
    :math:`2\Phi(\sqrt{M/q}) - 1`.

    Assumes that the readout sees one effective feature per node, :math:`s_i m + \xi_i` with
    :math:`m^2 = M` and :math:`\xi_i \sim \mathcal{N}(0, q)`: the node-level part of the local
    noise (the degree and neighbourhood of the node) is the same in every feature.
    """
    M, q = np.asarray(M, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if np.any(M < 0) or np.any(q <= 0):
        raise ValueError("M must be >= 0 and q > 0")
    return 2.0 * np.asarray(ndtr(np.sqrt(M / q))) - 1.0


def signal_ratio_gain(phi: PhiLike, q) -> float:
    r""":math:`\rho(q) = q\,\mathbb{E}[\phi'(\sqrt q z)]^2 / \mathbb{E}[\phi(\sqrt q z)^2]`.

    The factor by which one nonlinear layer multiplies the signal-to-noise ratio :math:`M/q`
    (relative to a linear layer). By Stein's lemma :math:`\sqrt q\,\mathbb{E}\phi' =
    \mathbb{E}[z\phi(\sqrt q z)]`, so :math:`\rho \le 1` (Cauchy-Schwarz), with equality for a
    linear :math:`\phi`. At ``q = 0`` the limit, 1 for an activation with
    :math:`\phi'(0) \ne 0`, is returned.
    """
    act = activation(phi)
    V.variance("q", q)
    q = max(float(q), 1e-12)
    # Stein: sqrt(q) E[phi'] = E[z phi(sqrt(q) z)], smooth for relu too (no step to integrate).
    d1 = float(gaussian.expect1(lambda u: u * act.fn(u), q)) / q
    e2 = float(gaussian.expect1(lambda u: act.fn(u) ** 2, q))
    if e2 <= 0:
        raise ValueError(f"E[phi^2] vanishes at q={q} for {act.name}")
    return q * d1**2 / e2


def detectability_limit(phi: PhiLike, sigma_w2, c) -> dict:
    r"""Mean-field detectability limit of a deep untrained GNN (:math:`T \to \infty`).

    The signal ratio grows iff :math:`\kappa = (\lambda^2/c)\,\rho(q^*) > 1`, with :math:`q^*`
    the stable fixed point of the length map :math:`q = \sigma_w^2\mathbb{E}\phi(\sqrt q z)^2`
    (:func:`mftlib.q_star` with :math:`\sigma_b^2 = 0`; for homogeneous activations, linear and
    relu, :math:`\rho` does not depend on ``q``). The limit is :math:`\lambda^2 = c/\rho(q^*)`.
    This closed form is the fast path: :math:`\kappa` is the eigenvalue of the signal direction
    of the linearisation (:func:`mftlib.dynamics.linearise`) of :func:`layer_map` at
    :math:`(M \to 0, q^*)` (tests/test_graph.py).

    Returns:
        dict with ``q_star``, ``rho``, ``lam2`` and ``epsilon`` (the limit: detectable for
        :math:`\epsilon` below it), and ``epsilon_ks`` for comparison.
    """
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.real("c", c, lo=0.0, lo_open=True)
    if act.homogeneous:
        qs = 1.0
    else:
        qs = float(q_star(act, float(sigma_w2), 0.0))
        if not math.isfinite(qs):
            raise ValueError(f"the length map of {act.name} diverges at sigma_w2={sigma_w2}")
    rho = signal_ratio_gain(act, qs)
    lam2 = float(c) / rho
    return {
        "q_star": qs,
        "rho": rho,
        "lam2": lam2,
        "epsilon": epsilon_from_lambda2(lam2, c),
        "epsilon_ks": ks_threshold(c),
    }


# --- the spectral (dense-graph) mean field ---------------------------------------------------
# Gauss-Chebyshev rule of the second kind: sum_k w_k f(x_k) = int f(x) sqrt(4 - x^2)/(2 pi) dx.
_CH_K = 600
_CH_T = np.arange(1, _CH_K + 1) * np.pi / (_CH_K + 1)
_CH_X = 2.0 * np.cos(_CH_T)
_CH_W = 2.0 / (_CH_K + 1) * np.sin(_CH_T) ** 2


def spectral_measure(theta: float) -> dict:
    r"""Spectral measure of the group vector :math:`v = s/\sqrt n` for the spiked Wigner matrix
    :math:`H = \theta\, v v^\top + X` (:math:`X` with the semicircle law on [-2, 2]).

    :math:`H` is the dense-graph limit of :math:`(A - \mathbb{E}\text{-uniform mode})/\sqrt c`
    with :math:`\theta = \lambda/\sqrt c`. Its resolvent at :math:`v` is
    :math:`g_v = g/(1 - \theta g)` with :math:`g(z) = (z - \sqrt{z^2-4})/2`: a continuous part on
    [-2, 2] and, for :math:`\theta > 1`, an atom of weight :math:`1 - \theta^{-2}` at
    :math:`\theta + 1/\theta` (the outlier eigenvalue; Baik-Ben Arous-Peche / Benaych-Georges &
    Nadakuditi).

    Returns:
        dict with ``x`` (Chebyshev nodes), ``w_sc`` (semicircle weights at ``x``), ``w_v``
        (weights of the continuous part of the measure of ``v``), ``atom_x``, ``atom_w``.
    """
    V.real("theta", theta, lo=0.0)
    theta = float(theta)
    x = _CH_X
    g = (x - 1j * np.sqrt(4.0 - x * x)) / 2.0
    dens_v = -(g / (1.0 - theta * g)).imag / np.pi
    dens_sc = np.sqrt(4.0 - x * x) / (2.0 * np.pi)
    atom_w = 1.0 - theta**-2 if theta > 1.0 else 0.0
    atom_x = theta + 1.0 / theta if theta > 1.0 else 0.0
    return {
        "x": x,
        "w_sc": _CH_W,
        "w_v": _CH_W * dens_v / dens_sc,
        "atom_x": atom_x,
        "atom_w": atom_w,
    }


def _check_odd(act: Activation) -> None:
    u = jnp.array([0.3, 1.1, 2.7])
    if not np.allclose(np.asarray(act.fn(-u)), -np.asarray(act.fn(u)), atol=1e-12):
        raise ValueError(
            f"the spectral theory needs an odd activation (linear, tanh, erf), got "
            f"{act.name}: an even part adds a mean and a degree mode it omits"
        )


def spectral_order_parameters(phi: PhiLike, sigma_w2, c, epsilon, depth: int) -> dict:
    r"""Order parameters of layers ``1..depth`` in the dense-graph (spectral) mean field.

    At large width the covariance over nodes of layer ``t`` is a function of the aggregation,
    :math:`K^t = f_t(H)` with :math:`H = PA/\sqrt c`: linearising the activations' covariance
    for the small correlations between distinct nodes, :math:`\mathbb{E}[\phi\phi^\top] \approx
    \beta_t^2 K^t + \nu_t I` (:math:`\beta_t = \mathbb{E}\phi'`, :math:`\nu_t = \mathbb{E}\phi^2 -
    \beta_t^2 q_t`: the nonlinearity's white noise), so

    .. math::

       f_{t+1}(x) = \sigma_w^2 x^2 \bigl(\beta_t^2 f_t(x) + \nu_t\bigr), \quad f_0 = 1, \qquad
       q_t = \int f_t\, d\mu_{sc}, \qquad 1 + r_t = \frac{\int f_t\, d\mu_v}{q_t},

    with :math:`\mu_{sc}` the semicircle law and :math:`\mu_v` the spectral measure of the group
    vector (:func:`spectral_measure`, :math:`\theta = \lambda/\sqrt c`). Unlike the group-wise
    map, this counts the walks that return along their own edges (the moments of the semicircle
    are the Catalan numbers), which the annealed reduction misses.

    Returns:
        dict of arrays of length ``depth``: ``q`` and ``r`` (signal ratio, as measured by
        :func:`mftlib.networks.gnn_order_parameters`).
    """
    act = activation(phi)
    _check_odd(act)
    V.variance("sigma_w2", sigma_w2, positive=True)
    p = sbm_parameters(c, epsilon)
    depth = V.positive_int("depth", depth)
    sm = spectral_measure(p["lam"] / math.sqrt(float(c)))
    traj = _spectral_layers(
        act, depth, float(sigma_w2), sm["x"] ** 2, float(sm["atom_x"]) ** 2, sm["w_sc"]
    )
    f, fa = np.asarray(traj[1:, :-3]), np.asarray(traj[1:, -3])
    qs = f @ sm["w_sc"]
    if not np.all(np.isfinite(qs) & (qs > 0)):
        raise ValueError(
            "the order parameters diverged or vanished (use a bounded "
            "activation or a sigma_w2 nearer 1)"
        )
    rs = (f @ sm["w_v"] + sm["atom_w"] * fa) / qs - 1.0
    return {"q": qs, "r": rs}


@partial(jax.jit, static_argnums=(0, 1))
def _spectral_layers(act: Activation, depth: int, sw2, x2, atom_x2, w_sc):
    """The state ``(f_t(x) at the nodes, f_t(atom), beta_t^2, nu_t)`` for t = 0..depth, iterated
    by :func:`mftlib.dynamics.iterate` (one row per layer)."""
    z, w = jnp.asarray(_GH_Z), jnp.asarray(_GH_W)

    def F(s):
        f, fa, beta2, nu = s[:-3], s[-3], s[-2], s[-1]
        f = sw2 * x2 * (beta2 * f + nu)
        fa = sw2 * atom_x2 * (beta2 * fa + nu)
        q = w_sc @ f
        # Gauss-Hermite (61 nodes; phi odd and smooth here); Stein: E phi' = E[z phi]/sqrt(q)
        fz = act.fn(jnp.sqrt(q) * z)
        beta2 = (w @ (z * fz)) ** 2 / q
        nu = jnp.maximum(w @ fz**2 - beta2 * q, 0.0)
        return jnp.concatenate([f, jnp.stack([fa, beta2, nu])])

    # x^0 ~ N(0, I): white, no linear part (f_0 = 1, beta_0 = 0, nu_0 = 1).
    s0 = jnp.concatenate([jnp.ones_like(x2), jnp.array([1.0, 0.0, 1.0])])
    return dynamics.iterate(F, s0, depth)


def spectral_overlap(c, epsilon) -> float:
    r"""Overlap of the sign of the outlier eigenvector of :math:`H` (wide, deep limit):
    :math:`2\Phi(\sqrt{\theta^2 - 1}) - 1` for :math:`\theta = \lambda/\sqrt c > 1`, else 0.

    The outlier eigenvector is :math:`a v + \sqrt{1-a^2}\,w` with :math:`a^2 = 1 - \theta^{-2}`
    and delocalised Gaussian :math:`w`. It is what PCA of the last layer finds at infinite width
    (:math:`K^T = f_T(H)` with :math:`f_T` increasing in :math:`|x|`), for any depth and any odd
    activation: the dense-graph limit of spectral clustering, zero beyond the KS threshold.
    """
    p = sbm_parameters(c, epsilon)
    theta2 = p["lam"] ** 2 / float(c)
    return 2.0 * float(ndtr(math.sqrt(theta2 - 1.0))) - 1.0 if theta2 > 1.0 else 0.0


def spectral_readout_overlap(phi: PhiLike, sigma_w2, c, epsilon, depth: int, n: int) -> np.ndarray:
    r"""Predicted overlap of the PCA sign readout after layers ``1..depth`` on ``n`` nodes.

    Two limits, whichever is smaller: the group signal not yet grown,
    :math:`2\Phi(\sqrt{M_t/q_t}) - 1` with :math:`M_t/q_t = r_t/n` from
    :func:`spectral_order_parameters` (:func:`readout_overlap`: one effective feature per node),
    and the quality of the outlier eigenvector that the signal grows along,
    :func:`spectral_overlap`. The first is the finite-depth, finite-size limit (the signal starts
    from a seed of order :math:`1/n`, so the depth needed grows like :math:`\log n`); the second
    the infinite-depth one.
    """
    n = V.positive_int("n", n)
    r = spectral_order_parameters(phi, sigma_w2, c, epsilon, depth)["r"]
    grown = readout_overlap(np.maximum(r, 0.0) / n, np.ones_like(r))
    return np.minimum(grown, spectral_overlap(c, epsilon))
