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


@partial(jax.jit, static_argnames=("act", "depth", "width", "center", "bias", "activations"))
def _forward(
    key,
    a,
    *,
    act: Activation,
    sw2,
    sb2,
    c,
    depth: int,
    width: int,
    center: bool,
    bias: bool,
    activations: bool,
):
    n = a.shape[0]
    x0 = jax.random.normal(jax.random.fold_in(key, 0), (n, width))
    scale = jnp.sqrt(sw2 / (c * width))

    def step(x, t):  # a scan over layers: compile time does not grow with depth
        kt = jax.random.fold_in(key, t)
        if bias:  # W^t and b^t from two streams of fold_in(key, t)
            w = jax.random.normal(jax.random.fold_in(kt, 0), (width, width))
        else:  # W^t from fold_in(key, t) itself
            w = jax.random.normal(kt, (width, width))
        h = a @ (x @ w) * scale
        if center:
            h = h - h.mean(axis=0)
        if bias:
            h = h + jax.random.normal(jax.random.fold_in(kt, 1), (width,)) * jnp.sqrt(sb2)
        x = act.fn(h)
        return x, (x if activations else h)

    _, out = jax.lax.scan(step, x0, jnp.arange(1, depth + 1))
    return out


def forward(
    key,
    adjacency,
    phi: PhiLike,
    sigma_w2: float,
    depth: int,
    width: int,
    c: float | None = None,
    center: bool = True,
    sigma_b2: float | None = None,
    activations: bool = False,
) -> Array:
    """Pre-activations :math:`h^1, \\dots, h^T` of one random GNN, shape ``(depth, n, width)``.

    With ``sigma_b2`` a bias :math:`b^t_\\mu \\sim \\mathcal{N}(0, \\sigma_b^2)` is added after
    the (optional) centring, :math:`h^t = P A x^{t-1} W^t + \\mathbf{1} (b^t)^\\top`, and
    ``W^t``, ``b^t`` come from ``fold_in(fold_in(key, t), 0)`` and
    ``fold_in(fold_in(key, t), 1)`` (the streams of :func:`mftlib.networks.gnn_paper_forward`);
    without it ``W^t`` comes from ``fold_in(key, t)``.

    Args:
        key: JAX PRNG key (the network and the initial features).
        adjacency: scipy sparse matrix, dense array or BCOO, ``(n, n)``.
        phi: activation name or :class:`~mftlib.activations.Activation`.
        sigma_w2: weight variance (> 0), in units of ``1/(c D)``.
        depth, width: ``T`` and ``D``.
        c: the normalising degree; default the graph's mean degree.
        center: subtract the mean over nodes after each aggregation.
        sigma_b2: bias variance (>= 0); ``None``: no bias.
        activations: return the activations :math:`x^t = \\phi(h^t)` instead.
    """
    key = V.key(key)
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    if sigma_b2 is not None:
        V.variance("sigma_b2", sigma_b2)
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
        sb2=0.0 if sigma_b2 is None else float(sigma_b2),
        c=float(c),
        depth=depth,
        width=width,
        center=bool(center),
        bias=sigma_b2 is not None,
        activations=bool(activations),
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
    It is :func:`mftlib.networks.gnn_forward` with ``sigma_b2``, ``center=False`` and
    ``activations=True``.
    """
    V.variance("sigma_b2", sigma_b2)
    return forward(
        key,
        adjacency,
        phi,
        sigma_w2,
        depth,
        width,
        c=c,
        center=False,
        sigma_b2=sigma_b2,
        activations=True,
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


# --- Training by the normalised mutual information (Kawamoto et al. 2018, Sec. 5) -------------

_NMI_TINY = 1e-12  # inside the logarithms: 0 log 0 = 0 with a finite gradient


def _soft_nmi(probs, onehot, xp=jnp):
    """:func:`soft_nmi` on one-hot group labels ``(n, G)`` and ``probs`` ``(n, K)``; ``xp`` is
    ``jax.numpy`` (traceable, the training loss) or ``numpy`` (no compilation)."""
    joint = onehot.T @ probs / probs.shape[0]
    pg, ps = joint.sum(axis=1), joint.sum(axis=0)
    log_ratio = (
        xp.log(joint + _NMI_TINY)
        - xp.log(pg + _NMI_TINY)[:, None]
        - xp.log(ps + _NMI_TINY)[None, :]
    )
    info = xp.sum(joint * log_ratio)
    hg = -xp.sum(pg * xp.log(pg + _NMI_TINY))
    hs = -xp.sum(ps * xp.log(ps + _NMI_TINY))
    return 2.0 * info / (hg + hs)


def soft_nmi(probs, groups) -> float:
    r"""Normalised mutual information between a soft assignment and the true groups.

    With :math:`p_{is}` the probability that node :math:`i` is in output class :math:`s` and
    :math:`g_i` its true group, the joint distribution is
    :math:`P(g, s) = n^{-1}\sum_i [g_i = g]\, p_{is}`, with marginals :math:`P(g)`, :math:`P(s)`;

    .. math::

       \mathrm{NMI} = \frac{2 I}{H_g + H_s}, \qquad
       I = \sum_{g,s} P(g,s) \log\frac{P(g,s)}{P(g)P(s)}, \qquad
       H_g = -\sum_g P(g)\log P(g),

    between 0 (independent) and 1 (a one-to-one map from groups to classes); invariant under
    any permutation of the classes. Differentiable in ``probs`` (the loss of ``train_gnn_nmi``).

    Args:
        probs: ``(n, K)``, non-negative rows summing to one.
        groups: ``(n,)`` integers ``0 .. G-1`` with at least two distinct values.
    """
    p = np.asarray(V.matrix("probs", probs), np.float64)
    g = np.asarray(groups)
    if g.shape != (p.shape[0],) or not np.issubdtype(g.dtype, np.integer) or g.min() < 0:
        raise ValueError(f"groups must be {p.shape[0]} non-negative integers, got shape {g.shape}")
    if np.unique(g).size < 2:
        raise ValueError("groups must contain at least two groups (H_g > 0)")
    if p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-9):
        raise ValueError("probs must be non-negative with rows summing to 1")
    onehot = np.eye(int(g.max()) + 1)[g]
    return float(_soft_nmi(p, onehot, xp=np))


def _nmi_init(key, *, sw2, sb2, c, depth: int, width: int, n_classes: int):
    """Initial parameters: ``W^t``, ``b^t`` as in ``paper_forward``; a Gaussian readout."""
    scale = jnp.sqrt(sw2 / (c * width))
    ws, bs = [], []
    for t in range(1, depth + 1):
        kt = jax.random.fold_in(key, t)
        ws.append(jax.random.normal(jax.random.fold_in(kt, 0), (width, width)) * scale)
        bs.append(jax.random.normal(jax.random.fold_in(kt, 1), (width,)) * jnp.sqrt(sb2))
    kv = jax.random.fold_in(key, depth + 1)
    v = jax.random.normal(kv, (width, n_classes)) / jnp.sqrt(width)
    return {"W": jnp.stack(ws), "b": jnp.stack(bs), "V": v, "c": jnp.zeros(n_classes)}


def _nmi_logits(params, a, x0, n_graphs: int, act: Activation, center: bool):
    """Logits ``(n_graphs * n, K)`` of the GNN on a block-diagonal stack of ``n_graphs`` graphs."""
    width = x0.shape[1]

    def step(x, wb):
        w, b = wb
        h = a @ (x @ w)
        if center:  # per graph
            h = h.reshape(n_graphs, -1, width)
            h = (h - h.mean(axis=1, keepdims=True)).reshape(-1, width)
        return act.fn(h + b), None

    x, _ = jax.lax.scan(step, x0, (params["W"], params["b"]))
    if center:  # the readout sees centred features too
        x = x.reshape(n_graphs, -1, width)
        x = (x - x.mean(axis=1, keepdims=True)).reshape(-1, width)
    return x @ params["V"] + params["c"]


@partial(jax.jit, static_argnames=("act", "n_graphs", "steps", "center"))
def _train_nmi(key, params, a, onehot, *, act, n_graphs: int, steps: int, lr, center: bool):
    from mftlib.training import optimize  # local import: training imports optax

    width = params["W"].shape[1]
    n_total = onehot.shape[0]
    keys = jax.random.split(key, steps)

    def loss(p, k):
        x0 = jax.random.normal(k, (n_total, width))  # fresh random input features every step
        probs = jax.nn.softmax(_nmi_logits(p, a, x0, n_graphs, act, center))
        probs = probs.reshape(n_graphs, -1, probs.shape[1])
        oh = onehot.reshape(n_graphs, -1, onehot.shape[1])
        return -jnp.mean(jax.vmap(_soft_nmi)(probs, oh))

    return optimize(loss, params, (keys,), optimizer="adam", learning_rate=lr)


def _block_graphs(graphs) -> tuple[jsparse.BCOO, int, int]:
    mats = [sp.csr_matrix(g, dtype=np.float64) for g in graphs]
    if not mats:
        raise ValueError("graphs is empty: nothing to train on")
    n = mats[0].shape[0]
    if any(m.shape != (n, n) for m in mats):
        raise ValueError("all graphs must be square with the same number of nodes")
    return _to_bcoo(sp.block_diag(mats, format="csr")), len(mats), n


def train_gnn_nmi(
    key,
    graphs,
    labels,
    phi: PhiLike,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    width: int,
    steps: int = 300,
    learning_rate: float = 1e-2,
    center: bool = False,
    n_classes: int = 2,
) -> dict:
    r"""Train the GNN :math:`x^{t} = \phi(A x^{t-1} W^t + b^t)` with a softmax readout
    :math:`p_i = \mathrm{softmax}(x^T_i V + c)` over ``n_classes`` classes by maximising the
    mean :func:`mftlib.networks.gnn_soft_nmi` between :math:`p` and the true groups of each
    training graph (Adam on :math:`-\mathrm{NMI}`, full batch over the graphs).

    The inputs :math:`x^0_i \sim \mathcal{N}(0, I_D)` carry no information and are drawn afresh
    at every step, so the network learns weights that work for any random input. ``W^t`` and
    ``b^t`` start as in ``paper_forward`` with the same ``key`` (scale
    :math:`\sigma_w^2/(cD)`, ``c`` the mean degree of the training graphs); ``V`` from
    ``fold_in(key, depth + 1)``. ``center=True`` subtracts the mean over each graph's nodes
    before the bias (the book's centred layer) and from :math:`x^T` before the readout.

    Args:
        graphs: sequence of adjacency matrices (scipy sparse or dense), all ``(n, n)``.
        labels: sequence of their planted labels ``(n,)``, :math:`\pm 1`.

    Returns:
        dict with ``params`` (``W`` ``(depth, D, D)``, ``b`` ``(depth, D)``, ``V`` ``(D, K)``,
        ``c`` ``(K,)``), ``center`` and ``nmi`` (the training NMI before each step).
    """
    key = V.key(key)
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("sigma_b2", sigma_b2)
    depth, width = V.positive_int("depth", depth), V.positive_int("width", width)
    steps, n_classes = V.positive_int("steps", steps), V.positive_int("n_classes", n_classes)
    V.real("learning_rate", learning_rate, lo=0.0, lo_open=True)
    graphs, labels = list(graphs), list(labels)
    if len(labels) != len(graphs):
        raise ValueError(f"{len(graphs)} graphs but {len(labels)} label arrays")
    a, n_graphs, n = _block_graphs(graphs)
    ys = [np.asarray(y, np.float64) for y in labels]
    if any(y.shape != (n,) or not set(np.unique(y)) <= {-1.0, 1.0} for y in ys):
        raise ValueError("labels must have one entry +-1 per node of each graph")
    groups = np.concatenate([(1 - y.astype(int)) // 2 for y in ys])
    c = float(jnp.sum(a.data)) / a.shape[0]
    params = _nmi_init(
        key,
        sw2=float(sigma_w2),
        sb2=float(sigma_b2),
        c=c,
        depth=depth,
        width=width,
        n_classes=n_classes,
    )
    params, losses = _train_nmi(
        jax.random.fold_in(key, depth + 2),
        params,
        a,
        jnp.asarray(np.eye(2)[groups]),
        act=act,
        n_graphs=n_graphs,
        steps=steps,
        lr=float(learning_rate),
        center=bool(center),
    )
    return {"params": params, "center": bool(center), "nmi": -np.asarray(losses)}


def nmi_gnn_labels(key, model: dict, adjacency, phi: PhiLike) -> np.ndarray:
    r"""Group assignment of the nodes of a graph by a GNN trained with ``train_gnn_nmi``:
    :math:`\pm 1` for the two classes of largest probability (class 0 is +1), on random input
    features :math:`x^0 \sim \mathcal{N}(0, I_D)` drawn from ``key``."""
    key = V.key(key)
    act = activation(phi)
    a = _to_bcoo(adjacency)
    cls = _nmi_classes(key, model["params"], a, act=act, center=bool(model["center"]))
    return np.where(np.asarray(cls) == 0, 1, -1)


@partial(jax.jit, static_argnames=("act", "center"))
def _nmi_classes(key, params, a, *, act: Activation, center: bool):
    x0 = jax.random.normal(key, (a.shape[0], params["W"].shape[1]))
    return jnp.argmax(_nmi_logits(params, a, x0, 1, act, center), axis=1)
