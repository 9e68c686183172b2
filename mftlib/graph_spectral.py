r"""The GNN mean field on a sampled graph's own spectrum, at finite width, and spectral baselines.

Companion of :mod:`mftlib.graph` (book chapter 10). Three pieces:

1. **The spectral mean field on the graph itself.** For the centred GNN of
   ``mftlib.networks.graph``, :math:`h^t = PA\,x^{t-1}W^t`, with the activations' covariance
   linearised, :math:`\mathbb{E}[\phi\phi^\top] \approx \beta_t^2 K^t + \nu_t I`
   (:math:`\beta_t = \mathbb{E}\phi'`, :math:`\nu_t = \mathbb{E}\phi^2 - \beta_t^2 q_t`), the
   covariance over nodes of layer ``t`` is exactly a sum of walk matrices,

   .. math::

      K^t = \sum_{k=1}^{t} a_{t,k}\, \frac{(PA)^k (AP)^k}{c^k}, \qquad
      a_{t+1,k+1} = \sigma_w^2 \beta_t^2 a_{t,k}, \quad a_{t+1,1} = \sigma_w^2 \nu_t,
      \quad a_{0,0} = 1,

   so :math:`q_t = \sum_k a_{t,k} \mu_k` and :math:`1 + r_t = \sum_k a_{t,k} \mu^v_k / q_t`
   with the walk moments :math:`\mu_k = \lVert (AP)^k\rVert_F^2/(n c^k)` and
   :math:`\mu^v_k = \lVert (AP)^k v\rVert^2/c^k`, :math:`v = s/\sqrt n`
   (:func:`walk_moments`). The dense-graph theory of :func:`mftlib.graph.spectral_order_parameters`
   replaces these moments by those of the semicircle law and a BBP outlier; on a sparse graph
   the moments are larger (degree fluctuations), which is what this version keeps.

2. **Finite width.** At width ``D`` the last layer's ``D`` feature columns are, in the
   Gaussian-process limit, ``D`` independent samples of :math:`\mathcal{N}(0, K^T)`; PCA over the
   nodes of ``D`` samples in dimension ``n`` is the generalised spiked covariance model (ratio
   :math:`\gamma = n/D`). With :math:`\alpha` the top eigenvalue of :math:`K^T` (the spike) and
   :math:`\kappa_j` the others (the bulk),

   .. math::

      \psi(\alpha) = \alpha\Bigl(1 + \frac{\gamma}{n}\sum_j
      \frac{\kappa_j}{\alpha - \kappa_j}\Bigr), \qquad
      \zeta = \frac{\alpha\,\psi'(\alpha)}{\psi(\alpha)} \quad (\psi'(\alpha) > 0,
      \text{ else } 0),

   :math:`\zeta` the squared cosine between the sample and population top eigenvectors (Bai &
   Yao's generalised spiked model; for a bulk at 1 it is the BBP formula
   :math:`(1 - \gamma/\ell^2)/(1 + \gamma/\ell)`, :math:`\ell = \alpha - 1`). The predicted squared
   cosine between the PCA direction and the group vector is :math:`\zeta\,\langle u_1, v\rangle^2`
   (:func:`finite_width_pca_cosine2`).

3. **Baselines:** the top eigenvector of the centred adjacency matrix (what a wide, deep GNN
   converges to) and the overlap's noise floor :math:`\mathbb{E}\lvert 2a - 1\rvert \approx
   \sqrt{2/(\pi n)}` of a random assignment (:func:`overlap_noise_floor`, :func:`limit_crossing`).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mftlib import _validate as V
from mftlib.activations import Activation, activation

PhiLike = str | Activation

_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(61)
_GH_W = _GH_W / _GH_W.sum()


def _check_graph(adjacency, labels) -> tuple[sp.csr_matrix, np.ndarray]:
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    if a.shape[0] != a.shape[1] or a.shape[0] < 4:
        raise ValueError(f"adjacency must be square with >= 4 nodes, got shape {a.shape}")
    if a.nnz and not np.all(np.isfinite(a.data)):
        raise ValueError("adjacency must contain only finite values")
    s = np.asarray(labels, dtype=np.float64)
    if s.shape != (a.shape[0],) or not set(np.unique(s)) <= {-1.0, 1.0}:
        raise ValueError("labels must be +-1, one per node")
    if a.nnz == 0:
        raise ValueError("adjacency has no edges")
    return a, s


def walk_moments(adjacency, labels, kmax: int, c: float | None = None) -> dict:
    r"""Walk moments of the centred aggregation, ``k = 0..kmax``.

    :math:`\mu_k = \lVert (AP)^k\rVert_F^2/(n c^k)` and
    :math:`\mu^v_k = \lVert (AP)^k v\rVert^2/c^k` with :math:`P = I - \mathbf{1}\mathbf{1}^\top/n`
    and :math:`v = s/\sqrt n`. Computed exactly with a dense ``(n, n)`` iterate (memory
    :math:`8n^2` bytes; cost ``kmax`` sparse-dense products).

    Args:
        adjacency: ``(n, n)`` symmetric matrix (scipy sparse or dense).
        labels: ``(n,)`` of +-1.
        kmax: highest moment (>= 1).
        c: normalising degree; default the graph's mean degree.

    Returns:
        dict with arrays ``mu`` and ``mu_v`` of length ``kmax + 1``.
    """
    a, s = _check_graph(adjacency, labels)
    kmax = V.positive_int("kmax", kmax)
    n = a.shape[0]
    if c is None:
        c = a.sum() / n
    V.real("c", c, lo=0.0, lo_open=True)
    z = np.eye(n)
    v = s / math.sqrt(n)
    mu, mu_v = [1.0], [float(v @ v)]
    for _ in range(kmax):
        z = a @ (z - z.mean(axis=0)) / math.sqrt(c)  # (AP) z, rows are the nodes
        v = a @ (v - v.mean()) / math.sqrt(c)
        mu.append(float(np.sum(z * z)) / n)
        mu_v.append(float(v @ v))
    return {"mu": np.array(mu), "mu_v": np.array(mu_v)}


def _beta2_nu(act: Activation, q: float) -> tuple[float, float]:
    """(beta^2, nu) at variance q: beta = E[z phi(sqrt q z)]/sqrt q, nu = E phi^2 - beta^2 q."""
    fz = np.asarray(act.fn(math.sqrt(q) * _GH_Z), dtype=np.float64)
    beta2 = float(_GH_W @ (_GH_Z * fz)) ** 2 / q
    return beta2, max(float(_GH_W @ fz**2) - beta2 * q, 0.0)


def walk_coefficients(phi: PhiLike, sigma_w2, mu, depth: int) -> dict:
    r"""Coefficients :math:`a_{t,k}` of :math:`K^t` in the walk matrices, and :math:`q_t`.

    The recursion of the module docstring, with :math:`\beta_t, \nu_t` from :math:`q_t` by
    Gauss-Hermite quadrature and :math:`q_0 = 1` (white input features,
    :math:`\beta_0 = 0, \nu_0 = 1`).

    Args:
        phi: an odd activation (linear, tanh, erf).
        sigma_w2: weight variance (> 0).
        mu: walk moments :math:`\mu_0..\mu_K` with ``K >= depth`` (:func:`walk_moments`, or the
            Catalan numbers for the dense-graph limit).
        depth: number of layers ``T``.

    Returns:
        dict with ``coef`` (``(depth, depth + 1)``, row ``t-1`` holds :math:`a_{t,k}`) and ``q``.
    """
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    depth = V.positive_int("depth", depth)
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 1 or mu.size < depth + 1 or not np.all(np.isfinite(mu)):
        raise ValueError(f"mu must hold finite moments 0..{depth}, got shape {mu.shape}")
    u = np.array([0.3, 1.1, 2.7])
    if not np.allclose(np.asarray(act.fn(-u)), -np.asarray(act.fn(u)), atol=1e-12):
        raise ValueError(f"the walk expansion needs an odd activation, got {act.name}")
    sw2 = float(sigma_w2)
    a = np.zeros(depth + 1)
    a[0] = 1.0
    beta2, nu = 0.0, 1.0
    coef, qs = [], []
    for _ in range(depth):
        new = np.zeros_like(a)
        new[1:] = sw2 * beta2 * a[:-1]
        new[1] += sw2 * nu
        a = new
        q = float(a @ mu[: depth + 1])
        if not (math.isfinite(q) and q > 0):
            raise ValueError("q_t diverged or vanished: use a bounded activation or sigma_w2 ~ 1")
        beta2, nu = _beta2_nu(act, q)
        coef.append(a.copy())
        qs.append(q)
    return {"coef": np.array(coef), "q": np.array(qs)}


def empirical_order_parameters(
    phi: PhiLike,
    sigma_w2,
    adjacency,
    labels,
    depth: int,
    c: float | None = None,
) -> dict:
    r"""Spectral mean field of the centred GNN evaluated on one sampled graph.

    :math:`q_t = \sum_k a_{t,k}\mu_k` and :math:`r_t = \sum_k a_{t,k}\mu^v_k/q_t - 1` (module
    docstring), the signal ratio measured by :func:`mftlib.networks.gnn_order_parameters`.

    Returns:
        dict with arrays ``q`` and ``r`` of length ``depth``.
    """
    depth = V.positive_int("depth", depth)
    m = walk_moments(adjacency, labels, depth, c=c)
    w = walk_coefficients(phi, sigma_w2, m["mu"], depth)
    return {"q": w["q"], "r": w["coef"] @ m["mu_v"] / w["q"] - 1.0}


def catalan_moments(kmax: int) -> np.ndarray:
    r"""Moments :math:`\int x^{2k} d\mu_{sc} = C_k` (Catalan numbers) of the semicircle law,
    ``k = 0..kmax``: the dense-graph limit of :math:`\mu_k` in :func:`walk_moments`."""
    kmax = V.nonneg_int("kmax", kmax)
    return np.array(
        [math.comb(2 * k, k) / (k + 1) for k in range(kmax + 1)],
        dtype=np.float64,
    )


def covariance_spectrum(phi: PhiLike, sigma_w2, adjacency, labels, depth: int) -> dict:
    r"""Eigen-decomposition of the last layer's covariance :math:`K^T` over the nodes.

    Uses :math:`K^T \approx \sum_k a_{T,k} H^{2k}` with :math:`H = PAP/\sqrt c` (the walk
    matrices :math:`(PA)^k(AP)^k/c^k` up to the degree mode :math:`P d d^\top P/(nc)` between
    the two halves), so a dense ``eigh`` of ``H`` gives it: cost :math:`O(n^3)`.

    Returns:
        dict with ``eig`` (eigenvalues of :math:`K^T`, descending), ``h_eig`` (the eigenvalues of
        ``H`` in the same order), ``u1`` (the top eigenvector of :math:`K^T`, that of the
        largest :math:`|\lambda|` of ``H``, by Lanczos) and ``cos2`` (its squared cosine with
        :math:`v = s/\sqrt n`).
    """
    a, s = _check_graph(adjacency, labels)
    depth = V.positive_int("depth", depth)
    n = a.shape[0]
    c = a.sum() / n
    m = walk_moments(a, s, depth)
    coef = walk_coefficients(phi, sigma_w2, m["mu"], depth)["coef"][-1]
    h = a.toarray()
    h -= h.mean(axis=0)
    h -= h.mean(axis=1)[:, None]
    h /= math.sqrt(c)
    lam = np.linalg.eigvalsh(h)  # eigenvalues only: ~3x cheaper than eigh
    del h
    kt = np.polynomial.polynomial.polyval(lam**2, coef)
    order = np.argsort(kt)[::-1]

    def mv(x):  # H x without forming H
        x = np.ravel(x)
        y = a @ (x - x.mean())
        return (y - y.mean()) / math.sqrt(c)

    op = spla.LinearOperator((n, n), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    _, vec = spla.eigsh(op, k=1, which="LM", v0=v0)  # top |eigenvalue| of H = top of K^T
    u1 = vec[:, 0]
    v = s / math.sqrt(n)
    return {
        "eig": kt[order],
        "cos2": float(v @ u1) ** 2,
        "h_eig": lam[order],
        "u1": u1,
    }


def spiked_cosine2(spike: float, bulk, n_samples: int) -> float:
    r"""Squared cosine :math:`\zeta` between the top sample and population eigenvectors.

    Generalised spiked covariance model: ``n_samples`` = ``D`` Gaussian samples in dimension
    ``p = len(bulk) + 1`` with population eigenvalues ``spike`` and ``bulk``;
    :math:`\psi(\alpha) = \alpha(1 + (\gamma/p)\sum_j \kappa_j/(\alpha - \kappa_j))`,
    :math:`\gamma = p/D`, :math:`\zeta = \alpha\psi'(\alpha)/\psi(\alpha)` if
    :math:`\psi'(\alpha) > 0`, else 0 (the spike is not separated from the sample bulk).
    """
    bulk = np.asarray(bulk, dtype=np.float64)
    V.real("spike", spike, lo=0.0, lo_open=True)
    V.real("n_samples", n_samples, lo=0.0, lo_open=True)  # may be an effective (real) count
    if bulk.ndim != 1 or bulk.size < 1 or np.any(bulk < 0) or not np.all(np.isfinite(bulk)):
        raise ValueError("bulk must be a 1-D array of finite non-negative eigenvalues")
    alpha = float(spike)
    if np.any(bulk >= alpha):
        raise ValueError("spike must exceed every bulk eigenvalue")
    g = (bulk.size + 1) / n_samples
    s1 = np.mean(bulk / (alpha - bulk))
    s2 = np.mean(bulk / (alpha - bulk) ** 2)
    psi = alpha * (1.0 + g * s1)
    dpsi = 1.0 + g * s1 - alpha * g * s2
    return max(0.0, alpha * dpsi / psi)


def finite_width_pca_cosine2(spec: dict, width: int) -> float:
    r"""Predicted squared cosine between the PCA direction of ``width`` feature columns and the
    group vector: :math:`\zeta\,\langle u_1, v\rangle^2` (module docstring), from
    :func:`covariance_spectrum`. ``width = None`` is not allowed; the infinite-width value is
    ``spec["cos2"]``."""
    V.real("width", width, lo=0.0, lo_open=True)
    return spiked_cosine2(spec["eig"][0], spec["eig"][1:], width) * float(spec["cos2"])


def cosine2_to_overlap(cos2) -> np.ndarray:
    r"""Sign overlap :math:`2\Phi(\sqrt{a^2/(1 - a^2)}) - 1` of a vector
    :math:`a v + \sqrt{1 - a^2}\,w` with delocalised Gaussian :math:`w` (:math:`a^2` = ``cos2``)."""
    from scipy.special import ndtr

    c2 = np.asarray(cos2, dtype=np.float64)
    if np.any((c2 < 0) | (c2 > 1)):
        raise ValueError("cos2 must lie in [0, 1]")
    return 2.0 * ndtr(np.sqrt(c2 / np.maximum(1.0 - c2, 1e-300))) - 1.0


def top_eigenvector_labels(adjacency) -> np.ndarray:
    r"""Signs of the top eigenvector of the centred adjacency :math:`PAP` (sparse Lanczos).

    What a wide, deep centred GNN converges to (the adjacency spectral method); on sparse
    graphs its eigenvectors localise on high-degree nodes as ``n`` grows.
    """
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    if a.shape[0] != a.shape[1] or a.shape[0] < 4:
        raise ValueError(f"adjacency must be square with >= 4 nodes, got shape {a.shape}")
    n = a.shape[0]

    def mv(x):
        x = np.ravel(x)
        y = a @ (x - x.mean())
        return y - y.mean()

    op = spla.LinearOperator((n, n), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    _, vec = spla.eigsh(op, k=1, which="LA", v0=v0)
    return np.sign(vec[:, 0])


def overlap_noise_floor(n: int) -> float:
    r"""Mean overlap :math:`\mathbb{E}\lvert 2a - 1\rvert` of a random assignment of ``n``
    nodes: :math:`\sqrt{2/(\pi n)} \approx 0.8/\sqrt n` (the half-normal mean of
    :math:`2a - 1 \sim \mathcal{N}(0, 1/n)`)."""
    n = V.positive_int("n", n)
    return math.sqrt(2.0 / (math.pi * n))


def limit_crossing(eps, overlaps, n: int, factor: float = 3.0) -> float:
    r"""Measured detectability limit: the :math:`\epsilon` beyond which the mean overlap stays
    below ``factor`` times the noise floor :func:`overlap_noise_floor` (the last downward
    crossing, linearly interpolated between grid points).

    Args:
        eps: increasing grid of :math:`\epsilon`.
        overlaps: mean overlap at each :math:`\epsilon` (same length).
        n: number of nodes.
        factor: multiple of the noise floor that defines "at chance" (3: the mean overlap of a
            random assignment plus a margin for the noise of a mean over a few graphs).

    Returns:
        the crossing; ``nan`` if the last overlap is still above the level (the limit lies
        beyond the grid), ``eps[0]`` if the first is already below it.
    """
    x = np.asarray(eps, dtype=np.float64)
    y = np.asarray(overlaps, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2 or np.any(np.diff(x) <= 0):
        raise ValueError("eps must be an increasing 1-D grid and overlaps of the same shape")
    if not np.all(np.isfinite(y)):
        raise ValueError("overlaps must be finite")
    V.real("factor", factor, lo=0.0, lo_open=True)
    level = factor * overlap_noise_floor(n)
    above = np.nonzero(y >= level)[0]
    if above.size == 0:
        return float(x[0])
    k = int(above[-1])
    if k == x.size - 1:
        return float("nan")
    return float(x[k] + (y[k] - level) * (x[k + 1] - x[k]) / (y[k] - y[k + 1]))


def effective_width(width, depth: int) -> float:
    r"""Effective number of independent feature columns of a depth-``T`` linear GNN of width
    ``D``: :math:`D_{eff} = D/(T + 1)`.

    The last layer is :math:`M X^0 W^1\cdots W^T`: its ``D`` columns are Gaussian samples
    weighted by the eigenvalues of :math:`\Sigma = W_p W_p^\top`, :math:`W_p = W^1\cdots W^T`.
    :math:`D_{eff} = (\mathrm{tr}\,\Sigma)^2/\mathrm{tr}\,\Sigma^2`, and for a product of ``T``
    square Gaussian matrices :math:`\mathrm{tr}\,\Sigma^2/D \to (T+1)(\mathrm{tr}\,\Sigma/D)^2`
    (the second Fuss-Catalan number) as :math:`D \to \infty`.
    """
    V.real("width", width, lo=0.0, lo_open=True)
    depth = V.nonneg_int("depth", depth)
    return float(width) / (depth + 1)
