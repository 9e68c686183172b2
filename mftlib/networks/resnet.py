r"""Finite random residual networks (the nets of :mod:`mftlib.resnet`), simulated in JAX.

Block ``l = 1..depth`` of seed ``s`` draws its weights from ``fold_in(split(key, n_seeds)[s], l)``:
:math:`h = x W^T + b`, :math:`x \leftarrow x + \phi(h) V^T + a` (full), or :math:`h = x` (reduced,
``sigma_w2=None``). Layers run in a ``lax.scan``; gradients come from one backward pass with a
probe added to every :math:`x^l`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import resnet
from mftlib.activations import Activation, activation

Array = jax.Array


def _stream(key, x, act: Activation, layers, reduced: bool, probes, hprobes):
    """Residual stream x^1..x^L, ``(depth, B, N)``; ``probes[l-1]`` is added to x^l and
    ``hprobes[l-1]`` to the hidden pre-activation h^l (its gradient is dE/dh^l).

    ``layers`` = (sv, sa, sw, sb, mask, m): per-block variances, the mask of the ``m`` active
    hidden units out of ``M_max`` (hidden width variation), and ``m``.
    """
    n = x.shape[1]
    m_max = hprobes.shape[2]

    def block(xl, inputs):
        index, probe, hprobe, (sv, sa, sw, sb, mask, m) = inputs
        kw, kv, kb, ka = jax.random.split(jax.random.fold_in(key, index), 4)
        if reduced:
            h = xl + hprobe
        else:
            w = jax.random.normal(kw, (m_max, n)) * jnp.sqrt(sw / n)
            h = (xl @ w.T + jax.random.normal(kb, (m_max,)) * jnp.sqrt(sb)) * mask + hprobe
        v = jax.random.normal(kv, (n, m_max)) * jnp.sqrt(sv / m) * mask
        out = xl + act.fn(h) @ v.T + jax.random.normal(ka, (n,)) * jnp.sqrt(sa) + probe
        return out, out

    index = jnp.arange(1, probes.shape[0] + 1)
    _, xs = jax.lax.scan(block, x, (index, probes, hprobes, layers))
    return xs


@partial(jax.jit, static_argnums=(2, 4, 5, 6))
def _simulate(keys, x, act, layers, reduced, depth, m_max):
    b, n = x.shape
    zeros = (jnp.zeros((depth, b, n)), jnp.zeros((depth, b, m_max)))

    def one(key):
        # An independent readout per input, so every input's gradient is backpropagated.
        readout = jax.random.normal(jax.random.fold_in(key, 2**31 - 1), (b, n))

        def loss(p0, ps, hs):
            xs = _stream(key, x + p0, act, layers, reduced, ps, hs)
            return jnp.sum(xs[-1] * readout) / jnp.sqrt(n), xs

        (g0, gs, gh), xs = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(
            jnp.zeros_like(x), *zeros
        )
        grads = jnp.concatenate([g0[None], gs])
        norms = jnp.sum(grads * grads, axis=(1, 2)) / (b * n)
        stream = jnp.concatenate([x[None], xs])
        covs = jnp.einsum("lai,lbi->lab", stream, stream) / n
        # dE/dW^l_jk = delta_j x^{l-1}_k for one input: mean over the m_l N active entries.
        lengths = jnp.sum(stream[:-1] ** 2, axis=2)  # (depth, B)
        w_grad = jnp.mean(jnp.sum(gh * gh, axis=2) * lengths, axis=1) / (layers[5] * n)

        # Gradient at the input of the readout placed after block k, for every k at once:
        # one forward pass, ``depth`` backward passes (vmapped cotangents).
        _, pull = jax.vjp(lambda x0: _stream(key, x0, act, layers, reduced, *zeros), x)
        cot = jnp.eye(depth)[:, :, None, None] * readout / jnp.sqrt(n)
        (g_in,) = jax.vmap(pull)(cot)
        g_in = jnp.sum(g_in * g_in, axis=(1, 2)) / (b * n)
        g_out = jnp.sum(readout * readout) / (b * n * n)
        return (
            norms,
            covs,
            jnp.concatenate([g_out[None], g_in]) / g_out,
            w_grad,
        )

    return jax.vmap(one)(keys)


def _setup(key, x, phi, sigma_v2, sigma_a2, depth, sigma_w2, sigma_b2, n_seeds, hidden_widths):
    """Validated arguments ``(keys, x, act, layers, reduced, depth, m_max)`` of ``_simulate``
    and ``_simulate_stream``, shared by ``simulate`` and ``simulate_stream``."""
    key = V.key(key)
    x = np.asarray(V.matrix("x", x), np.float64)
    n = x.shape[1]
    depth = V.positive_int("depth", depth)
    # The variances are checked and broadcast to one per block exactly as the theory's are.
    act, variances = resnet.check_parameters(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    sv, sa, sw, sb = resnet.per_layer_variances(depth, *variances)
    reduced = sigma_w2 is None
    if reduced and hidden_widths is not None:
        raise ValueError("hidden_widths needs the full net (the reduced net has no W)")
    m = np.full(depth, n) if hidden_widths is None else np.asarray(hidden_widths)
    if m.shape != (depth,) or np.any(m < 1) or np.any(m != np.round(m)):
        raise ValueError(f"hidden_widths must be {depth} integers >= 1, got {hidden_widths!r}")
    m_max = int(m.max())
    mask = (np.arange(m_max)[None, :] < m[:, None]).astype(np.float64)
    layers = tuple(jnp.asarray(a, jnp.float64) for a in (sv, sa, sw, sb, mask, m))
    keys = jax.random.split(key, V.positive_int("n_seeds", n_seeds))
    return keys, jnp.asarray(x), act, layers, reduced, depth, m_max


def simulate(
    key,
    x,
    phi,
    sigma_v2: float,
    sigma_a2: float,
    depth: int,
    sigma_w2: float | None = None,
    sigma_b2: float | None = None,
    n_seeds: int = 1,
    hidden_widths=None,
) -> dict:
    r"""Run ``n_seeds`` random residual nets of width ``N = x.shape[1]`` on the inputs ``x``.

    Args:
        x: ``(B, N)`` inputs, already in the residual stream (:math:`x^0`).
        sigma_w2: ``None`` for the reduced net; otherwise the full net's :math:`\sigma_w^2`.
        sigma_v2, sigma_a2, sigma_w2, sigma_b2: scalars, or arrays with one value per block
            (layer-dependent variances, e.g. :func:`mftlib.resnet.schedule`).
        hidden_widths: widths :math:`M_l` of the hidden layer :math:`h^l` of each block (full
            net only; default ``N``); :math:`V^l` has variance :math:`\sigma_v^2/M_l`.

    Returns:
        dict of numpy arrays: ``cov`` ``(n_seeds, depth+1, B, B)``, the covariance
        :math:`N^{-1}\sum_i x^l_{ai} x^l_{bi}` of the stream (its diagonal is the length
        :math:`p^l`); ``grad_norms`` ``(n_seeds, depth+1)``, the squared gradient per unit and
        input :math:`\lVert\partial L/\partial x^l\rVert^2/(BN)` for the loss
        :math:`L = N^{-1/2}\sum_a v_a\cdot x^L_a` with independent standard Gaussian readouts
        :math:`v_a` (its mean-field value is :math:`\chi^l/\chi^L` times :math:`1/N`);
        ``amplification`` ``(n_seeds, depth+1)``, entry ``k`` the squared gradient at the *input*
        of the same loss read out after block ``k`` instead, divided by its value at the readout:
        the measured :math:`\chi^0/\chi^k` of the depth-``k`` network (entry 0 is 1); for
        the full net, ``weight_grad`` ``(n_seeds, depth)``, the mean squared gradient per entry
        of :math:`W^l` for one input, :math:`|\partial E/\partial h^l|^2 |x^{l-1}|^2/(M_l N)`
        averaged over the inputs (compare :func:`mftlib.resnet.weight_gradients`).
    """
    args = _setup(
        key, x, phi, sigma_v2, sigma_a2, depth, sigma_w2, sigma_b2, n_seeds, hidden_widths
    )
    reduced = sigma_w2 is None
    norms, covs, amp, w_grad = _simulate(*args)
    out = {
        "cov": np.asarray(covs),
        "grad_norms": np.asarray(norms),
        "amplification": np.asarray(amp),
    }
    if not reduced:
        out["weight_grad"] = np.asarray(w_grad)
    return out


def init_classifier(
    key, in_dim: int, width: int, depth: int, n_out: int, sigma_v2, sigma_w2=1.0, n_models=1
) -> dict:
    r"""Weights of ``n_models`` full tanh-style residual classifiers, stacked for
    :func:`mftlib.training.train_models`.

    An input layer :math:`x^0 = W_{\text{in}} x`, :math:`W_{\text{in}} \sim \mathcal{N}(0,
    1/d)`, ``depth`` full residual blocks with :math:`\sigma_w^2`, :math:`\sigma_v^2` (no biases)
    and a dense readout. ``sigma_v2`` may be an array of length ``n_models`` (one value per model)
    or of shape ``(n_models, depth)`` (layer-dependent variances, one schedule per model).
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
    n_models = V.positive_int("n_models", n_models)
    sv = np.asarray(V.variance("sigma_v2", sigma_v2, positive=True), np.float64)
    if sv.ndim < 2:
        sv = np.broadcast_to(sv, (n_models,))[:, None]
    if sv.shape not in ((n_models, 1), (n_models, depth)):
        raise ValueError(
            f"sigma_v2 must be a scalar, ({n_models},) or ({n_models}, {depth}), got {sv.shape}"
        )
    sv = np.broadcast_to(sv, (n_models, depth))
    sw = float(V.variance("sigma_w2", sigma_w2, positive=True))

    def one(k, s):
        k0, k1, k2, k3 = jax.random.split(k, 4)
        return {
            "Win": jax.random.normal(k0, (width, in_dim)) / jnp.sqrt(in_dim),
            "W": jax.random.normal(k1, (depth, width, width)) * jnp.sqrt(sw / width),
            "V": jax.random.normal(k2, (depth, width, width)) * jnp.sqrt(s / width)[:, None, None],
            "Wout": jax.random.normal(k3, (n_out, width)) / jnp.sqrt(width),
            "bout": jnp.zeros(n_out),
        }

    return jax.vmap(one)(jax.random.split(key, n_models), jnp.asarray(sv, jnp.float64))


def classifier(phi):
    """``apply(params, x) -> logits`` for one residual classifier of
    :func:`~mftlib.networks.init_resnet_classifier`."""
    fn = activation(phi).fn

    def apply(p, x):
        h = x @ p["Win"].T

        def block(h, wv):
            w, v = wv
            return h + fn(h @ w.T) @ v.T, None

        h, _ = jax.lax.scan(block, h, (p["W"], p["V"]))
        return h @ p["Wout"].T + p["bout"]

    return apply


@partial(jax.jit, static_argnums=(2, 4, 5, 6))
def _simulate_stream(keys, x, act, layers, reduced, depth, m_max):
    b, n = x.shape
    zeros = (jnp.zeros((depth, b, n)), jnp.zeros((depth, b, m_max)))

    def one(key):
        readout = jax.random.normal(jax.random.fold_in(key, 2**31 - 1), (b, n))

        def loss(p0, ps):
            xs = _stream(key, x + p0, act, layers, reduced, ps, zeros[1])
            return jnp.sum(xs[-1] * readout) / jnp.sqrt(n), xs

        (g0, gs), xs = jax.grad(loss, argnums=(0, 1), has_aux=True)(jnp.zeros_like(x), zeros[0])
        grads = jnp.concatenate([g0[None], gs])
        norms = jnp.sum(grads * grads, axis=(1, 2)) / (b * n)
        stream = jnp.concatenate([x[None], xs])
        return norms, jnp.einsum("lai,lbi->lab", stream, stream) / n

    return jax.vmap(one)(keys)


def simulate_stream(
    key,
    x,
    phi,
    sigma_v2,
    sigma_a2,
    depth: int,
    sigma_w2=None,
    sigma_b2=None,
    n_seeds: int = 1,
) -> dict:
    r"""The forward covariances and one backward pass of ``n_seeds`` random residual nets: the
    cheap part of :func:`mftlib.networks.simulate_resnet` (one backward pass per seed instead
    of ``depth``).

    Same networks, weights and readout as :func:`mftlib.networks.simulate_resnet` (same ``key``
    gives the same ``cov`` and ``grad_norms``). The gradient amplification over the first ``k``
    blocks of the depth-``depth`` network is ``grad_norms[:, 0] / grad_norms[:, k]``, whose
    mean-field value is :math:`\chi^0/\chi^k` (:func:`mftlib.resnet.gradient_amplification`,
    entry ``k``).

    Returns:
        dict of numpy arrays ``cov`` ``(n_seeds, depth+1, B, B)`` and ``grad_norms``
        ``(n_seeds, depth+1)``, as in :func:`mftlib.networks.simulate_resnet`.
    """
    args = _setup(key, x, phi, sigma_v2, sigma_a2, depth, sigma_w2, sigma_b2, n_seeds, None)
    norms, covs = _simulate_stream(*args)
    return {"cov": np.asarray(covs), "grad_norms": np.asarray(norms)}
