r"""A finite untrained graph neural network in JAX, to check :mod:`mftlib.graph` by simulation.

The minimal GNN of Kawamoto, Tsubaki & Obuchi (2018) with random weights, in the convention of
:mod:`mftlib.graph`: features :math:`x^0_i \sim \mathcal{N}(0, I_D)` and

.. math::

   h^t = P A\, x^{t-1} W^t, \qquad x^t = \phi(h^t), \qquad
   W^t_{\nu\mu} \sim \mathcal{N}(0, \sigma_w^2 / (c D)), \qquad t = 1, \dots, T,

with ``A`` a sparse adjacency matrix (``jax.experimental.sparse.BCOO``) and ``P`` the centring
over nodes (``center=False`` drops it). Randomness: ``x^0`` from ``fold_in(key, 0)`` and
``W^t`` from ``fold_in(key, t)``.

Measured order parameters of layer ``t`` (labels :math:`s_i = \pm 1`): the group mean per
feature :math:`m_\mu = n^{-1}\sum_i s_i h_{i\mu}`, the local variance
:math:`\hat q = (nD)^{-1}\sum_{i\mu}(h_{i\mu} - s_i m_\mu)^2` and
:math:`\hat M = D^{-1}\sum_\mu m_\mu^2 - \hat q/n` (the :math:`\hat q/n` removes the bias of
:math:`m_\mu^2` from finite ``n``), with :math:`r = n\hat M/\hat q`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse

from mftlib import _validate as V
from mftlib.activations import Activation, activation

Array = jax.Array
PhiLike = str | Activation


def _to_bcoo(adjacency) -> jsparse.BCOO:
    if isinstance(adjacency, jsparse.BCOO):
        if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
            raise ValueError(f"adjacency must be square, got shape {adjacency.shape}")
        return adjacency
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square, got shape {a.shape}")
    if a.nnz and not np.all(np.isfinite(a.data)):
        raise ValueError("adjacency must contain only finite values")
    a = a.tocoo()
    # Pad the stored entries (zeros at (0, 0)) to a power of two: jit then compiles once for all
    # graphs of similar size instead of once per edge count.
    nse = max(1, 1 << max(0, int(a.nnz - 1)).bit_length())
    idx = np.zeros((nse, 2), dtype=np.int32)
    data = np.zeros(nse)
    idx[: a.nnz, 0], idx[: a.nnz, 1], data[: a.nnz] = a.row, a.col, a.data
    return jsparse.BCOO((jnp.asarray(data), jnp.asarray(idx)), shape=a.shape)


@partial(jax.jit, static_argnames=("act", "depth", "width", "center"))
def _forward(key, a, *, act: Activation, sw2, c, depth: int, width: int, center: bool):
    n = a.shape[0]
    x0 = jax.random.normal(jax.random.fold_in(key, 0), (n, width))
    scale = jnp.sqrt(sw2 / (c * width))

    def step(x, t):  # a scan over layers: compile time does not grow with depth
        w = jax.random.normal(jax.random.fold_in(key, t), (width, width))
        h = a @ (x @ w) * scale
        if center:
            h = h - h.mean(axis=0)
        return act.fn(h), h

    _, hs = jax.lax.scan(step, x0, jnp.arange(1, depth + 1))
    return hs


def forward(
    key,
    adjacency,
    phi: PhiLike,
    sigma_w2: float,
    depth: int,
    width: int,
    c: float | None = None,
    center: bool = True,
) -> Array:
    """Pre-activations :math:`h^1, \\dots, h^T` of one random GNN, shape ``(depth, n, width)``.

    Args:
        key: JAX PRNG key (the network and the initial features).
        adjacency: scipy sparse matrix, dense array or BCOO, ``(n, n)``.
        phi: activation name or :class:`~mftlib.activations.Activation`.
        sigma_w2: weight variance (> 0), in units of ``1/(c D)``.
        depth, width: ``T`` and ``D``.
        c: the normalising degree; default the graph's mean degree.
        center: subtract the mean over nodes after each aggregation.
    """
    key = V.key(key)
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    depth, width = V.positive_int("depth", depth), V.positive_int("width", width)
    a = _to_bcoo(adjacency)
    if c is None:
        c = float(jnp.sum(a.data)) / a.shape[0]
    V.real("c", c, lo=0.0, lo_open=True)
    return _forward(
        key,
        a,
        act=act,
        sw2=float(sigma_w2),
        c=float(c),
        depth=depth,
        width=width,
        center=bool(center),
    )


def order_parameters(hs, labels) -> dict:
    """Measured ``M``, ``q`` and ``r = n M / q`` per layer from pre-activations
    ``(depth, n, width)`` (module docstring). Plain numpy: no compilation per shape."""
    hs = np.asarray(hs, dtype=np.float64)
    s = np.asarray(labels, dtype=np.float64)
    if hs.ndim != 3 or s.ndim != 1 or hs.shape[1] != s.shape[0]:
        raise ValueError(f"hs must be (depth, n, width) with n = len(labels), got {hs.shape}")
    n = s.shape[0]
    m = np.einsum("i,tim->tm", s, hs) / n
    q = np.mean((hs - s[None, :, None] * m[:, None, :]) ** 2, axis=(1, 2))
    M = np.mean(m**2, axis=1) - q / n
    return {"M": M, "q": q, "r": n * M / q}


def pca_labels(features) -> np.ndarray:
    """Unsupervised readout: signs of the top principal component (over nodes) of the centred
    features ``(n, D)``."""
    f = np.asarray(features, dtype=np.float64)
    V.matrix("features", f)
    f = f - f.mean(axis=0)
    # top eigenvector of the small (D x D) Gram matrix, mapped back to the nodes
    vals, vecs = np.linalg.eigh(f.T @ f)
    return np.sign(f @ vecs[:, -1])


def simulate(
    key,
    adjacency,
    labels,
    phi: PhiLike,
    sigma_w2: float,
    depth: int,
    width: int,
    c: float | None = None,
    center: bool = True,
) -> dict:
    """Run one random GNN and measure what the theory predicts.

    Returns:
        dict with ``M``, ``q``, ``r`` (per layer,
        :func:`~mftlib.networks.gnn_order_parameters`), ``overlap`` (of the PCA sign readout of
        the last layer's pre-activations) and ``features`` (the last layer's pre-activations,
        ``(n, width)``).
    """
    from mftlib.graph import overlap  # local import: mftlib.graph imports no networks

    hs = forward(key, adjacency, phi, sigma_w2, depth, width, c=c, center=center)
    out = order_parameters(hs, labels)
    out["features"] = np.asarray(hs[-1])
    out["overlap"] = overlap(pca_labels(out["features"]), labels)
    return out


@partial(jax.jit, static_argnames=("act", "depth", "width", "steps"))
def _train(key, a, y, mask, *, act: Activation, sw2, c, depth: int, width: int, steps: int, lr):
    import optax  # local imports: optax is optional for mftlib.networks, training imports it

    from mftlib.training import optimize

    n = a.shape[0]
    x0 = jax.random.normal(jax.random.fold_in(key, 0), (n, width))
    ws = jnp.stack(
        [jax.random.normal(jax.random.fold_in(key, t), (width, width)) for t in range(1, depth + 1)]
    ) * jnp.sqrt(sw2 / (c * width))
    params = {"W": ws, "v": jnp.zeros(width), "b": jnp.zeros(())}

    def logits(p):
        def step(x, w):
            h = a @ (x @ w)
            h = h - h.mean(axis=0)
            return act.fn(h), None

        x, _ = jax.lax.scan(step, x0, p["W"][:-1])
        h = a @ (x @ p["W"][-1])
        h = h - h.mean(axis=0)
        return h @ p["v"] / jnp.sqrt(width) + p["b"]

    def loss(p):
        z = logits(p)
        per_node = optax.sigmoid_binary_cross_entropy(z, (y + 1) / 2)
        return jnp.sum(per_node * mask) / jnp.sum(mask)

    params, _ = optimize(loss, params, steps=steps, optimizer="adam", learning_rate=lr)
    return jnp.sign(logits(params))


def train_gnn(
    key,
    adjacency,
    labels,
    train_mask,
    phi: PhiLike,
    sigma_w2: float,
    depth: int,
    width: int,
    steps: int = 200,
    learning_rate: float = 1e-2,
) -> np.ndarray:
    r"""Train the GNN of :func:`forward` end to end (all :math:`W^t` and a linear readout) on
    the labels of the nodes in ``train_mask``, by Adam on the logistic loss; the input features
    stay the random :math:`x^0`. The network starts from the same weights as :func:`forward`.

    Returns:
        the predicted labels (:math:`\pm 1`) of all nodes, ``(n,)``.
    """
    key = V.key(key)
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    depth, width = V.positive_int("depth", depth), V.positive_int("width", width)
    steps = V.positive_int("steps", steps)
    V.real("learning_rate", learning_rate, lo=0.0, lo_open=True)
    a = _to_bcoo(adjacency)
    y = np.asarray(labels, np.float64)
    mask = np.asarray(train_mask, bool)
    if y.shape != (a.shape[0],) or mask.shape != y.shape or not set(np.unique(y)) <= {-1.0, 1.0}:
        raise ValueError("labels and train_mask must have one entry per node; labels must be +-1")
    if not mask.any():
        raise ValueError("train_mask selects no node: nothing to train on")
    c = float(jnp.sum(a.data)) / a.shape[0]
    pred = _train(
        key,
        a,
        jnp.asarray(y),
        jnp.asarray(mask, jnp.float64),
        act=act,
        sw2=float(sigma_w2),
        c=c,
        depth=depth,
        width=width,
        steps=steps,
        lr=float(learning_rate),
    )
    return np.asarray(pred)


@partial(jax.jit, static_argnames=("act", "depth", "width"))
def _paper_forward(key, a, *, act: Activation, sw2, sb2, c, depth: int, width: int):
    n = a.shape[0]
    x0 = jax.random.normal(jax.random.fold_in(key, 0), (n, width))
    scale = jnp.sqrt(sw2 / (c * width))

    def step(x, t):
        kt = jax.random.fold_in(key, t)
        w = jax.random.normal(jax.random.fold_in(kt, 0), (width, width))
        b = jax.random.normal(jax.random.fold_in(kt, 1), (width,)) * jnp.sqrt(sb2)
        x = act.fn(a @ (x @ w) * scale + b)
        return x, x

    _, xs = jax.lax.scan(step, x0, jnp.arange(1, depth + 1))
    return xs


def paper_forward(
    key,
    adjacency,
    phi: PhiLike,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    width: int,
    c: float | None = None,
) -> Array:
    r"""Activations :math:`x^1, \dots, x^T` of the GNN as Kawamoto et al. (2018) write it, with
    bias and without centring, shape ``(depth, n, width)``:

    .. math::

       x^{t} = \phi\bigl(A\, x^{t-1} W^t + \mathbf{1} (b^t)^\top\bigr), \qquad
       W^t_{\nu\mu} \sim \mathcal{N}(0, \sigma_w^2/(cD)), \quad b^t_\mu \sim \mathcal{N}(0,
       \sigma_b^2), \quad x^0_i \sim \mathcal{N}(0, I_D).

    The weight scale :math:`1/(cD)` is this book's convention (as in
    :func:`mftlib.networks.gnn_forward`).
    Randomness: ``x^0`` from ``fold_in(key, 0)``; ``W^t``, ``b^t`` from ``fold_in(key, t)``.
    """
    key = V.key(key)
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("sigma_b2", sigma_b2)
    depth, width = (
        V.positive_int("depth", depth),
        V.positive_int("width", width),
    )
    a = _to_bcoo(adjacency)
    if c is None:
        c = float(jnp.sum(a.data)) / a.shape[0]
    V.real("c", c, lo=0.0, lo_open=True)
    return _paper_forward(
        key,
        a,
        act=act,
        sw2=float(sigma_w2),
        sb2=float(sigma_b2),
        c=float(c),
        depth=depth,
        width=width,
    )


def kmeans_labels(features, seed: int = 0) -> np.ndarray:
    """Unsupervised readout of the paper: 2-means over the nodes of the features ``(n, D)``
    (scikit-learn's k-means++, 4 restarts); the clusters as +-1."""
    from sklearn.cluster import KMeans

    f = np.asarray(features, dtype=np.float64)
    V.matrix("features", f)
    if not np.all(np.isfinite(f)):
        raise ValueError("features must be finite")
    km = KMeans(n_clusters=2, n_init=4, random_state=int(seed)).fit(f)
    return np.where(km.labels_ == 0, 1, -1)
