r"""Finite deep batch-normalised networks: batch covariances and gradient norms layer by layer.

The network of :mod:`mftlib.batchnorm`: ``x^0 = input`` (a batch ``(B, d)``), then for
``l = 1..depth``: ``h = x^{l-1} W^T`` with ``W ~ N(0, sigma_w2 / fan_in)``, batch norm of every
unit over the batch (mean subtracted, divided by the batch standard deviation, no epsilon and no
learned scale or shift), and ``x^l = phi(gamma * z)``. Layer ``l`` of seed ``s`` uses
``fold_in(split(key, n_seeds)[s], l)``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib.activations import Activation, activation

Array = jax.Array


def batch_norm(h: Array, eps: float = 0.0) -> Array:
    r"""Normalise each column (unit) of ``h`` ``(B, N)`` over the batch: zero mean, and divided by
    :math:`\sqrt{\mathrm{var} + \epsilon}` (unit variance for ``eps = 0``)."""
    c = h - h.mean(axis=0, keepdims=True)
    return c / jnp.sqrt(jnp.mean(c * c, axis=0, keepdims=True) + eps)


def layer_weights(key, n_out: int, n_in: int, orthogonal: bool) -> Array:
    r"""Unit-variance weights ``(n_out, n_in)``: Gaussian, or (square only) Haar orthogonal times
    :math:`\sqrt{n}` (the same second moments, :math:`W W^\top = n I`); a non-square
    ``orthogonal`` request falls back to Gaussian weights.

    Args:
        key: a JAX PRNG key.
        n_out, n_in: the weight matrix's shape.
        orthogonal: Haar orthogonal (square only) instead of Gaussian.

    Returns:
        ``(n_out, n_in)`` float64 array.
    """
    if orthogonal and n_out == n_in:
        return jax.random.orthogonal(key, n_in) * jnp.sqrt(n_in)
    return jax.random.normal(key, (n_out, n_in))


def _layers(
    key,
    x,
    act: Activation,
    sw2,
    gamma,
    width: int,
    depth: int,
    p0,
    ps,
    eps=0.0,
    orth=False,
):
    """Forward pass, layers 2..depth in a ``lax.scan``; the probes ``p0`` (input) and ``ps``
    ``(depth, B, width)`` are added to x^l so that their gradients are dL/dx^l.

    Returns x^1..x^depth stacked, ``(depth, B, width)``.
    """
    d = x.shape[1]
    w1 = layer_weights(jax.random.fold_in(key, 1), width, d, orth)
    x1 = act.fn(gamma * batch_norm((x + p0) @ w1.T * jnp.sqrt(sw2 / d), eps)) + ps[0]

    def layer(xl, inputs):
        index, probe = inputs
        w = layer_weights(jax.random.fold_in(key, index), width, width, orth)
        out = act.fn(gamma * batch_norm(xl @ w.T * jnp.sqrt(sw2 / width), eps)) + probe
        return out, out

    _, rest = jax.lax.scan(layer, x1, (jnp.arange(2, depth + 1), ps[1:]))
    return jnp.concatenate([x1[None], rest], axis=0)


@partial(jax.jit, static_argnums=(2, 5, 6, 8))
def _simulate(keys, x, act, sw2, gamma, width, depth, eps=0.0, orth=False):
    def one(key):
        b = x.shape[0]
        p0 = jnp.zeros_like(x)
        ps = jnp.zeros((depth, b, width))
        # One readout vector per input: a readout shared by the batch would only see the batch
        # mean of the last layer, which batch norm sets to zero for a linear activation.
        readout = jax.random.normal(jax.random.fold_in(key, 2**31 - 1), (b, width))

        def loss(probes):
            xs = _layers(
                key,
                x,
                act,
                sw2,
                gamma,
                width,
                depth,
                *probes,
                eps=eps,
                orth=orth,
            )
            return jnp.sum(xs[-1] * readout) / jnp.sqrt(width), xs

        (g0, gs), xs = jax.grad(loss, has_aux=True)((p0, ps))
        norms = jnp.concatenate(
            [jnp.sum(g0 * g0)[None] / g0.shape[1], jnp.sum(gs * gs, axis=(1, 2)) / width]
        )
        covs = jnp.einsum("lai,lbi->lab", xs, xs) / width
        return norms, covs

    return jax.vmap(one)(keys)


def simulate(
    key,
    x,
    phi,
    sigma_w2: float,
    depth: int,
    width: int,
    gamma: float = 1.0,
    n_seeds: int = 1,
    *,
    eps: float = 0.0,
    weights: str = "gaussian",
) -> dict:
    r"""Run ``n_seeds`` random BN networks on the batch ``x`` and backpropagate random readouts.

    ``eps`` is the :math:`\epsilon` of batch norm (0: exactly scale invariant); ``weights``
    ``"gaussian"`` (the mean-field theory's) or ``"orthogonal"`` (Haar orthogonal square layers
    with the same variance; the first layer stays Gaussian unless the input dimension equals
    ``width``).

    Returns:
        dict of numpy arrays: ``grad_norms`` ``(n_seeds, depth + 1)``, the squared gradient norm
        :math:`\lVert \partial L/\partial x^l \rVert^2 / N_l` at layers ``0..depth`` for the loss
        :math:`L = \sum_a v_a \cdot x^{\text{depth}}_a/\sqrt{N}` with an independent standard
        Gaussian readout :math:`v_a` for each input :math:`a` (so the last layer's value is
        about :math:`B/N`; a readout shared by the batch would only see the batch mean, which
        batch norm removes);
        ``batch_cov`` ``(n_seeds, depth, B, B)``, the batch covariance
        :math:`N^{-1} \sum_i x^l_{ai} x^l_{bi}` of layers ``1..depth`` (the post-activations,
        whose mean-field value times :math:`\sigma_w^2` is the map's :math:`\Sigma`).
    """
    key = V.key(key)
    act = activation(phi)
    x = np.asarray(V.matrix("x", x), np.float64)
    if x.shape[0] < 2:
        raise ValueError(f"a batch needs at least 2 inputs, got {x.shape[0]}")
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.real("gamma", gamma, lo=0.0, lo_open=True)
    depth = V.positive_int("depth", depth)
    width = V.positive_int("width", width)
    keys = jax.random.split(key, V.positive_int("n_seeds", n_seeds))
    V.real("eps", eps, lo=0.0)
    if weights not in ("gaussian", "orthogonal"):
        raise ValueError(f"weights must be 'gaussian' or 'orthogonal', got {weights!r}")
    norms, covs = _simulate(
        keys,
        jnp.asarray(x),
        act,
        float(sigma_w2),
        float(gamma),
        width,
        depth,
        float(eps),
        weights == "orthogonal",
    )
    return {"grad_norms": np.asarray(norms), "batch_cov": np.asarray(covs)}


def init_classifier(key, in_dim: int, width: int, depth: int, n_out: int, n_models: int) -> dict:
    r"""Unit-scaled weights of ``n_models`` BN classifiers, stacked (for ``train_models``).

    Each model has ``depth`` batch-normalised layers of ``width`` units (the layer of
    :func:`simulate`, with :math:`\sigma_w^2 = 1`: batch norm makes the scale irrelevant) and a
    dense readout with bias. Model ``m`` uses ``jax.random.split(key, n_models)[m]``.
    """
    key = V.key(key)
    in_dim, width = (
        V.positive_int("in_dim", in_dim),
        V.positive_int("width", width),
    )
    depth, n_out = (
        V.positive_int("depth", depth),
        V.positive_int("n_out", n_out),
    )

    def one(k):
        k0, k1, k2 = jax.random.split(k, 3)
        return {
            "W0": jax.random.normal(k0, (width, in_dim)) / jnp.sqrt(in_dim),
            "Ws": jax.random.normal(k1, (depth - 1, width, width)) / jnp.sqrt(width),
            "Wout": jax.random.normal(k2, (n_out, width)) / jnp.sqrt(width),
            "bout": jnp.zeros(n_out),
        }

    return jax.vmap(one)(jax.random.split(key, V.positive_int("n_models", n_models)))


def classifier(phi, gamma: float = 1.0):
    """``apply(params, x) -> logits`` of one BN classifier; batch statistics from ``x`` itself."""
    fn = activation(phi).fn
    V.real("gamma", gamma, lo=0.0, lo_open=True)

    def apply(p, x):
        h = fn(gamma * batch_norm(x @ p["W0"].T))

        def layer(h, w):
            return fn(gamma * batch_norm(h @ w.T)), None

        h, _ = jax.lax.scan(layer, h, p["Ws"])
        return h @ p["Wout"].T + p["bout"]

    return apply
