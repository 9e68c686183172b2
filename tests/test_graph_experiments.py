"""Tests for mftlib.graph_experiments (the sweeps of chapter 10) and the merged GNN forward pass."""

import jax
import numpy as np
import pytest

from mftlib import graph
from mftlib import graph_experiments as ge
from mftlib.networks import graph as gnn


@pytest.mark.slow
def test_training_runs_shapes_and_easy_graph():
    # one model per (seed, eps) on n = 400: at eps = 0.05 the Bethe Hessian finds the groups
    # (theory overlap > 0.95), at eps = 0.9 nothing does (chance 0.04 at n = 400).
    r = ge.training_runs(400, 8.0, [0.05, 0.9], 1, 3, 8, steps=20, draws=1)
    assert set(r) == {"trained", "untrained_book", "untrained_paper", "bethe_hessian", "train_nmi"}
    assert all(v.shape == (1, 2) for v in r.values())
    assert r["bethe_hessian"][0, 0] > 0.9 and r["bethe_hessian"][0, 1] < 0.3
    assert np.all((r["train_nmi"] >= -1e-9) & (r["train_nmi"] <= 1 + 1e-9))
    with pytest.raises(ValueError):
        ge.training_runs(400, 8.0, [0.1], 1, 3, 8, draws=0)


@pytest.mark.slow
def test_paper_forward_is_forward_with_bias_without_centring():
    a, _ = graph.sbm(jax.random.PRNGKey(1), 100, 6.0, 0.2)
    key = jax.random.PRNGKey(2)
    xs = gnn.paper_forward(key, a, "tanh", 1.5, 0.2, 3, 8)
    f = gnn.forward(key, a, "tanh", 1.5, 3, 8, center=False, sigma_b2=0.2, activations=True)
    np.testing.assert_array_equal(np.asarray(xs), np.asarray(f))
    # the pre-activations: x^t = tanh(h^t); with sigma_b2 = 0 the bias vanishes
    hs = gnn.forward(key, a, "tanh", 1.5, 3, 8, center=False, sigma_b2=0.2)
    np.testing.assert_allclose(np.tanh(np.asarray(hs)), np.asarray(xs), atol=1e-14)
    h0 = gnn.forward(key, a, "tanh", 1.5, 3, 8, sigma_b2=0.0)
    assert np.abs(np.asarray(h0).mean(axis=1)).max() < 1e-12  # centred, no bias
    with pytest.raises(ValueError):
        gnn.forward(key, a, "tanh", 1.5, 3, 8, sigma_b2=-1.0)
