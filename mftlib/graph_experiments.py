r"""Experiment drivers of the graph-network chapter (book chapter 10): each samples SBM graphs,
runs random GNNs of ``mftlib.networks.graph`` on them and returns measured values next to
the theories of :mod:`mftlib.graph` and :mod:`mftlib.graph_spectral`.

Seeds: graph ``seed`` is ``sbm(PRNGKey(1000 + seed), ...)`` and its network ``PRNGKey(seed)``,
as in the chapter, so that the drivers see the same graphs.
"""

from __future__ import annotations

import jax
import numpy as np

from mftlib import _validate as V
from mftlib import graph
from mftlib import graph_spectral as gs
from mftlib.networks import graph as gnn


def _graph(n, c, eps, seed):
    return graph.sbm(jax.random.PRNGKey(1000 + int(seed)), n, c, eps)


def signal_ratio_runs(
    n: int,
    c: float,
    eps: float,
    seeds: int,
    depth: int,
    widths,
    phi="tanh",
    sigma_w2=1.0,
) -> dict:
    r"""Signal ratio :math:`r_t` per graph: simulated at each width, against the spectral mean
    field on the graph's own walk moments (:func:`mftlib.graph_spectral.empirical_order_parameters`)
    and the dense-graph (semicircle) one (:func:`mftlib.graph.spectral_order_parameters`).

    Returns:
        dict with ``sim`` ``(len(widths), seeds, depth)``, ``empirical`` ``(seeds, depth)`` and
        ``dense`` ``(depth,)``.
    """
    seeds, depth = (
        V.positive_int("seeds", seeds),
        V.positive_int("depth", depth),
    )
    widths = [V.positive_int("width", w) for w in widths]
    sim = np.zeros((len(widths), seeds, depth))
    emp = np.zeros((seeds, depth))
    for k in range(seeds):
        a, s = _graph(n, c, eps, k)
        emp[k] = gs.empirical_order_parameters(phi, sigma_w2, a, s, depth)["r"]
        for j, w in enumerate(widths):
            hs = gnn.forward(jax.random.PRNGKey(k), a, phi, sigma_w2, depth, w)
            sim[j, k] = gnn.order_parameters(hs, s)["r"]
    dense = graph.spectral_order_parameters(phi, sigma_w2, c, eps, depth)["r"]
    return {"sim": sim, "empirical": emp, "dense": dense}


def weight_variance_runs(
    n: int,
    c: float,
    eps: float,
    seeds: int,
    depth: int,
    width: int,
    sigma_w2s,
    phi="tanh",
) -> dict:
    r"""Last-layer signal ratio and PCA overlap against :math:`\sigma_w^2`, simulated and from
    the spectral mean field on each graph (walk moments computed once per graph).

    Returns:
        dict with ``r_sim``, ``r_emp``, ``overlap`` (each ``(seeds, len(sigma_w2s))``).
    """
    seeds, depth = (
        V.positive_int("seeds", seeds),
        V.positive_int("depth", depth),
    )
    sw = [float(x) for x in sigma_w2s]
    out = {k: np.zeros((seeds, len(sw))) for k in ("r_sim", "r_emp", "overlap")}
    for k in range(seeds):
        a, s = _graph(n, c, eps, k)
        m = gs.walk_moments(a, s, depth)
        for j, s2 in enumerate(sw):
            w = gs.walk_coefficients(phi, s2, m["mu"], depth)
            out["r_emp"][k, j] = w["coef"][-1] @ m["mu_v"] / w["q"][-1] - 1.0
            hs = gnn.forward(jax.random.PRNGKey(k), a, phi, s2, depth, width)
            out["r_sim"][k, j] = gnn.order_parameters(hs, s)["r"][-1]
            out["overlap"][k, j] = graph.overlap(gnn.pca_labels(hs[-1]), s)
    return out


def width_runs(
    n: int,
    c: float,
    eps: float,
    seeds: int,
    depth: int,
    widths,
    phi="tanh",
    sigma_w2=1.0,
) -> dict:
    r"""PCA readout against the width ``D``, simulated and predicted, per graph.

    For each graph: the covariance spectrum of :math:`K^T`
    (:func:`mftlib.graph_spectral.covariance_spectrum`), the squared cosine of its top
    eigenvector with the group vector (the :math:`D \to \infty` readout), and at each ``D`` the
    predicted squared cosine of the PCA direction for ``D`` independent columns
    (:func:`~mftlib.graph_spectral.finite_width_pca_cosine2`) and for
    :func:`~mftlib.graph_spectral.effective_width` columns; then the simulated network's PCA
    direction: its squared cosine and sign overlap.

    Returns:
        dict with ``cos2_sim``, ``overlap_sim``, ``cos2_gp``, ``cos2_eff`` (each
        ``(seeds, len(widths))``), ``cos2_top`` and ``overlap_top`` (``(seeds,)``).
    """
    seeds, depth = (
        V.positive_int("seeds", seeds),
        V.positive_int("depth", depth),
    )
    widths = [V.positive_int("width", w) for w in widths]
    shape = (seeds, len(widths))
    out = {k: np.zeros(shape) for k in ("cos2_sim", "overlap_sim", "cos2_gp", "cos2_eff")}
    out["cos2_top"], out["overlap_top"] = np.zeros(seeds), np.zeros(seeds)
    for k in range(seeds):
        a, s = _graph(n, c, eps, k)
        v = s / np.sqrt(n)
        spec = gs.covariance_spectrum(phi, sigma_w2, a, s, depth)
        out["cos2_top"][k] = spec["cos2"]
        out["overlap_top"][k] = graph.overlap(np.sign(spec["u1"]), s)
        for j, w in enumerate(widths):
            out["cos2_gp"][k, j] = gs.finite_width_pca_cosine2(spec, w)
            out["cos2_eff"][k, j] = gs.finite_width_pca_cosine2(spec, gs.effective_width(w, depth))
            hs = gnn.forward(jax.random.PRNGKey(k), a, phi, sigma_w2, depth, w)
            f = np.asarray(hs[-1])
            f = f - f.mean(axis=0)
            u = np.linalg.svd(f, full_matrices=False)[0][:, 0]
            out["cos2_sim"][k, j] = float(u @ v) ** 2
            out["overlap_sim"][k, j] = graph.overlap(np.sign(u), s)
    return out


def detection_runs(
    n: int,
    c: float,
    eps_grid,
    seeds: int,
    depths,
    width: int,
    phi="tanh",
    sigma_w2=1.0,
    sigma_b2=0.1,
) -> dict:
    r"""Overlap against :math:`\epsilon`: the book's centred GNN (PCA readout) and the paper's
    GNN with bias and no centring (:func:`mftlib.networks.gnn_paper_forward`, 2-means readout of
    :math:`x^T`) at each depth, with the top eigenvector of the centred adjacency and the Bethe
    Hessian on the same graphs.

    Returns:
        dict of ``(seeds, len(eps_grid))`` arrays: ``book_T{t}``, ``paper_T{t}`` for each depth,
        ``adjacency`` and ``bethe_hessian``.
    """
    seeds = V.positive_int("seeds", seeds)
    depths = sorted(V.positive_int("depth", t) for t in depths)
    eps_grid = [float(e) for e in eps_grid]
    keys = [f"{m}_T{t}" for m in ("book", "paper") for t in depths]
    out = {k: np.zeros((seeds, len(eps_grid))) for k in keys + ["adjacency", "bethe_hessian"]}
    for k in range(seeds):
        for j, e in enumerate(eps_grid):
            a, s = _graph(n, c, e, k)
            hs = gnn.forward(jax.random.PRNGKey(k), a, phi, sigma_w2, depths[-1], width)
            xs = gnn.paper_forward(
                jax.random.PRNGKey(k),
                a,
                phi,
                sigma_w2,
                sigma_b2,
                depths[-1],
                width,
            )
            for t in depths:
                out[f"book_T{t}"][k, j] = graph.overlap(gnn.pca_labels(hs[t - 1]), s)
                lab = gnn.kmeans_labels(np.asarray(xs[t - 1]), seed=k)
                out[f"paper_T{t}"][k, j] = graph.overlap(lab, s)
            out["adjacency"][k, j] = graph.overlap(gs.top_eigenvector_labels(a), s)
            out["bethe_hessian"][k, j] = graph.overlap(graph.bethe_hessian_labels(a), s)
    return out


def localisation_runs(sizes, c: float, eps: float, seeds: int) -> dict:
    r"""Overlap of the top eigenvector of the centred adjacency matrix (the wide, deep GNN's
    limit) and of the Bethe Hessian against the number of nodes, at fixed ``c`` and
    :math:`\epsilon`.

    Returns:
        dict with ``adjacency`` and ``bethe_hessian``, ``(seeds, len(sizes))``.
    """
    seeds = V.positive_int("seeds", seeds)
    sizes = [V.positive_int("n", n) for n in sizes]
    out = {k: np.zeros((seeds, len(sizes))) for k in ("adjacency", "bethe_hessian")}
    for k in range(seeds):
        for j, n in enumerate(sizes):
            a, s = _graph(n, c, eps, k)
            out["adjacency"][k, j] = graph.overlap(gs.top_eigenvector_labels(a), s)
            out["bethe_hessian"][k, j] = graph.overlap(graph.bethe_hessian_labels(a), s)
    return out


def training_runs(
    n: int,
    c: float,
    eps_grid,
    seeds: int,
    depth: int,
    width: int,
    train_graphs: int = 2,
    steps: int = 200,
    learning_rate: float = 3e-3,
    center: bool = True,
    draws: int = 3,
    phi="tanh",
    sigma_w2=1.0,
    sigma_b2=0.1,
) -> dict:
    r"""Trained against untrained GNNs across :math:`\epsilon`: at each :math:`\epsilon` and seed
    ``k`` one model is trained by ``networks.graph.train_gnn_nmi`` (NMI loss) on
    ``train_graphs`` fresh SBM graphs (keys ``3000 + 100 k + i``) and evaluated on a fresh
    test graph (key ``5000 + k``; its overlap averaged over ``draws`` random inputs
    :math:`x^0`, keys ``10000 + r``), next to the untrained networks on the same test graph: the
    book's centred GNN with the PCA readout (``networks.graph.forward``) and the paper's GNN with
    the 2-means readout (``networks.graph.paper_forward``), both with network key ``k``, and the
    Bethe Hessian.

    Returns:
        dict of ``(seeds, len(eps_grid))`` arrays: ``trained``, ``untrained_book``,
        ``untrained_paper``, ``bethe_hessian`` (overlaps on the test graphs) and ``train_nmi``
        (the training NMI at the last step).
    """
    seeds, depth = V.positive_int("seeds", seeds), V.positive_int("depth", depth)
    width, train_graphs = (
        V.positive_int("width", width),
        V.positive_int("train_graphs", train_graphs),
    )
    draws = V.positive_int("draws", draws)
    eps_grid = [float(e) for e in eps_grid]
    keys = ("trained", "untrained_book", "untrained_paper", "bethe_hessian", "train_nmi")
    out = {name: np.zeros((seeds, len(eps_grid))) for name in keys}
    for k in range(seeds):
        for j, e in enumerate(eps_grid):
            tr = [
                graph.sbm(jax.random.PRNGKey(3000 + 100 * k + i), n, c, e)
                for i in range(train_graphs)
            ]
            model = gnn.train_gnn_nmi(
                jax.random.PRNGKey(k),
                [g for g, _ in tr],
                [s for _, s in tr],
                phi,
                sigma_w2,
                sigma_b2,
                depth,
                width,
                steps=steps,
                learning_rate=learning_rate,
                center=center,
            )
            out["train_nmi"][k, j] = model["nmi"][-1]
            a, s = graph.sbm(jax.random.PRNGKey(5000 + k), n, c, e)
            out["trained"][k, j] = np.mean(
                [
                    graph.overlap(
                        gnn.nmi_gnn_labels(jax.random.PRNGKey(10_000 + r), model, a, phi), s
                    )
                    for r in range(draws)
                ]
            )
            hs = gnn.forward(jax.random.PRNGKey(k), a, phi, sigma_w2, depth, width)
            out["untrained_book"][k, j] = graph.overlap(gnn.pca_labels(hs[-1]), s)
            xs = gnn.paper_forward(jax.random.PRNGKey(k), a, phi, sigma_w2, sigma_b2, depth, width)
            lab = gnn.kmeans_labels(np.asarray(xs[-1]), seed=k)
            out["untrained_paper"][k, j] = graph.overlap(lab, s)
            out["bethe_hessian"][k, j] = graph.overlap(graph.bethe_hessian_labels(a), s)
    return out
