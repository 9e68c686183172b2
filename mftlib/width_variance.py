r"""Width variation and variance variation of residual networks (Yang & Schoenholz 2018).

The networks are the full residual networks of :mod:`mftlib.resnet` (no biases unless given),

.. math::

   h^l = W^l x^{l-1}, \qquad x^l = x^{l-1} + V^l \phi(h^l),

with :math:`W^l \in \mathbb{R}^{M_l\times N}` of variance :math:`\sigma_{w,l}^2/N` and
:math:`V^l \in \mathbb{R}^{N\times M_l}` of variance :math:`\sigma_{v,l}^2/M_l`: the hidden
width :math:`M_l` may change from block to block (*width variation*) and the variances may decay,
:math:`\sigma_{v,l}^2 = \sigma_v^2 l^{-\beta_v}`, :math:`\sigma_{w,l}^2 = \sigma_w^2 l^{-\beta_w}`
(*variance variation*). This module holds the chapter's theory beyond :mod:`mftlib.resnet`:

* :func:`block_gradients` and :func:`simulate_block_gradients`: which gradient statistics depend
  on the widths :math:`M_l` and which do not, in theory and in finite networks;
* :func:`predicted_phase`, :func:`decay_grid` and :func:`local_exponents`: the asymptotic phases
  of the length :math:`p^l` and of the gradient amplification :math:`\chi^0/\chi^L` in the decay
  exponents, and the apparent exponents of the iterated maps to compare them with;
* :func:`amplification_share` and :func:`train_decay_grid`: the training experiment's driver
  and the share of the amplification made in the first blocks;
* :func:`hidden_bias_phase`, :func:`decay_trajectories` and :func:`stream_ratios`: the phases
  with a decaying hidden bias, the maps with decaying biases, and simulated networks against
  them;
* :func:`predicted_metric_expressivity` and :func:`rank_correlations`: the metric expressivity
  :math:`s^L/s^0` over the training grid, and how well each predictor ranks the accuracies.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from mftlib import _validate as V
from mftlib import resnet
from mftlib.activations import activation
from mftlib.networks import resnet as rn

Array = jax.Array

#: :math:`\kappa = 8/(3\sqrt{2\pi})`, the constant of the tanh gradient laws.
KAPPA = resnet.TANH_GRADIENT_CONSTANT


def _widths(hidden_widths, depth: int, width: int) -> np.ndarray:
    if hidden_widths is None:
        return np.full(depth, width, np.int64)
    m = np.asarray(hidden_widths)
    if m.shape != (depth,) or np.any(m < 1) or np.any(m != np.round(m)):
        raise ValueError(f"hidden_widths must be {depth} integers >= 1, got {hidden_widths!r}")
    return m.astype(np.int64)


def block_gradients(
    phi, sigma_v2, p0, depth: int, *, sigma_w2, width: int, hidden_widths=None
) -> dict:
    r"""Mean-field gradient statistics of every block for the loss :math:`E = N^{-1/2} v\cdot
    x^L` (:math:`v` standard Gaussian, so :math:`\chi^L = 1/N`), with hidden widths :math:`M_l`.

    With :math:`\chi^l = \mathbb{E}(\partial E/\partial x^l_i)^2` from
    :func:`mftlib.resnet.weight_gradients` (gradient independence):

    .. math::

       \mathbb{E}\Bigl(\frac{\partial E}{\partial W^l_{jk}}\Bigr)^2
       = \frac{N\sigma_{v,l}^2}{M_l}\chi^l\,\mathbb{E}\phi'^2\,p^{l-1}, \qquad
       \mathbb{E}\Bigl(\frac{\partial E}{\partial V^l_{ij}}\Bigr)^2 = \chi^l\,\mathbb{E}\phi^2,

    and the block totals :math:`\mathbb{E}\lVert\partial E/\partial W^l\rVert^2 = N^2\sigma_{v,l}^2
    \chi^l\,\mathbb{E}\phi'^2\,p^{l-1}` (no :math:`M_l`) and :math:`\mathbb{E}\lVert\partial
    E/\partial V^l\rVert^2 = N M_l\,\chi^l\,\mathbb{E}\phi^2` (proportional to :math:`M_l`). The
    block total is also the first-order loss change :math:`-\Delta E/\eta` of one SGD step of
    rate :math:`\eta` on that matrix alone. Expectations are at :math:`q^l = \sigma_{w,l}^2
    p^{l-1}`; neither :math:`p^l` nor :math:`\chi^l` depends on the widths.

    Returns:
        dict with ``W_entry``, ``V_entry``, ``W_block``, ``V_block`` ``(depth,)``, ``p``
        ``(depth+1,)`` and ``chi`` ``(depth+1,)``.
    """
    width = V.positive_int("width", width)
    depth = V.positive_int("depth", depth)
    m = _widths(hidden_widths, depth, width).astype(np.float64)
    g = resnet.weight_gradients(
        phi,
        sigma_v2,
        0.0,
        p0,
        depth,
        sigma_w2=sigma_w2,
        width=width,
        hidden_widths=m,
    )
    p = resnet.length_trajectory(phi, sigma_v2, 0.0, p0, depth, sigma_w2=sigma_w2)["p"]
    return {
        "W_entry": g["W"],
        "V_entry": g["V"],
        "W_block": g["W"] * m * width,
        "V_block": g["V"] * m * width,
        "p": p,
        "chi": g["chi"],
    }


def simulate_block_gradients(
    key,
    x,
    phi,
    sigma_v2,
    depth: int,
    *,
    sigma_w2,
    hidden_widths=None,
    n_seeds: int = 1,
) -> dict:
    r"""Gradient statistics of finite random residual nets with hidden widths :math:`M_l`, for
    comparison with :func:`block_gradients`.

    Each seed draws :math:`W^l` (:math:`\sigma_{w,l}^2/N`) and :math:`V^l`
    (:math:`\sigma_{v,l}^2/M_l`) and a standard Gaussian readout :math:`v_a` per input, and
    differentiates :math:`E_a = N^{-1/2} v_a\cdot x^L_a` for each input ``a`` of ``x``
    separately.

    Args:
        x: ``(B, N)`` inputs in the residual stream.
        sigma_v2, sigma_w2: scalars or one value per block.
        hidden_widths: integers :math:`M_l` (default :math:`N`).

    Returns:
        dict of ``(n_seeds, depth)`` arrays averaged over the inputs: ``W_entry`` and ``V_entry``
        (mean squared gradient per entry), ``W_block`` and ``V_block`` (squared norm of the
        block's gradient); and ``p`` ``(n_seeds, depth+1)``, the length :math:`|x^l|^2/N`.
    """
    key = V.key(key)
    x = jnp.asarray(V.matrix("x", x), jnp.float64)
    n = x.shape[1]
    depth = V.positive_int("depth", depth)
    act, (sv, _, sw, _) = resnet.check_parameters(phi, sigma_v2, 0.0, sigma_w2, 0.0)
    sv, sw = resnet.per_layer_variances(depth, sv, sw)
    m = _widths(hidden_widths, depth, n)
    m_max = int(m.max())
    mask = jnp.asarray(np.arange(m_max)[None, :] < m[:, None], jnp.float64)  # (depth, M_max)
    mf = jnp.asarray(m, jnp.float64)

    def stream(weights, x0):
        def block(xl, wv):
            w, v = wv
            xl = xl + act.fn(w @ xl) @ v.T
            return xl, xl

        xl, xs = jax.lax.scan(block, x0, weights)
        return xl, xs

    def one(k):
        kw, kv, kr = jax.random.split(k, 3)
        w = jax.random.normal(kw, (depth, m_max, n)) * jnp.sqrt(sw / n)[:, None, None]
        w = w * mask[:, :, None]
        v = jax.random.normal(kv, (depth, n, m_max)) * jnp.sqrt(sv / mf)[:, None, None]
        v = v * mask[:, None, :]
        readout = jax.random.normal(kr, x.shape)

        def per_input(x0, r):
            def loss(wv):
                xl, xs = stream(wv, x0)
                return jnp.dot(r, xl) / jnp.sqrt(n), xs

            (gw, gv), xs = jax.grad(loss, has_aux=True)((w, v))
            wb, vb = jnp.sum(gw**2, axis=(1, 2)), jnp.sum(gv**2, axis=(1, 2))
            p = jnp.concatenate([jnp.mean(x0**2)[None], jnp.mean(xs**2, axis=1)])
            return wb, vb, p

        wb, vb, p = jax.vmap(per_input)(x, readout)
        return wb.mean(0), vb.mean(0), p.mean(0)

    keys = jax.random.split(key, V.positive_int("n_seeds", n_seeds))
    wb, vb, p = jax.lax.map(jax.jit(one), keys)
    wb, vb = np.asarray(wb), np.asarray(vb)
    return {
        "W_entry": wb / (m * n),
        "V_entry": vb / (m * n),
        "W_block": wb,
        "V_block": vb,
        "p": np.asarray(p),
    }


def _check_betas(beta_v, beta_w):
    bv = float(V.real("beta_v", beta_v))
    bw = float(V.real("beta_w", beta_w))
    if bv < 0 or bw < 0:
        raise ValueError(f"the phases are derived for beta_v, beta_w >= 0, got {bv}, {bw}")
    return bv, bw


def predicted_phase(phi, beta_v, beta_w, sigma_v2=1.0, sigma_w2=1.0, tol=1e-9) -> dict:
    r"""Asymptotic phase of the length and of the gradient amplification of full residual nets
    with :math:`\sigma_{v,l}^2 = \sigma_v^2 l^{-\beta_v}`, :math:`\sigma_{w,l}^2 = \sigma_w^2
    l^{-\beta_w}` (no biases, :math:`\beta_v, \beta_w \ge 0`, :math:`\beta = \beta_v + \beta_w`).

    ReLU (:math:`\mathbb{E}\,\mathrm{relu}^2 = q/2`, :math:`\mathbb{E}\,\mathrm{relu}'^2 = 1/2`:
    :math:`p^L/p^0 = \chi^0/\chi^L = \prod_l (1 + \sigma_v^2\sigma_w^2 l^{-\beta}/2)`):
    ``"stretched"`` :math:`\log p, \log(\chi^0/\chi^L) \propto L^{1-\beta}` for :math:`\beta < 1`;
    ``"power"`` :math:`\propto L^{\sigma_v^2\sigma_w^2/2}` at :math:`\beta = 1`; ``"bounded"``
    above.

    tanh: length ``"power"`` :math:`p \propto l^{1-\beta_v}` for :math:`\beta \le 1,
    \beta_v < 1`; ``"log"`` :math:`p \approx \sigma_v^2 \log l` at :math:`(1, 0)`; ``"bounded"``
    for :math:`\beta > 1`. Gradient: ``"stretched"`` :math:`\log(\chi^0/\chi^L) \propto
    L^{(1-\beta)/2}` for :math:`\beta < 1`; ``"power"`` :math:`\chi^0/\chi^L \propto
    L^{\delta}` on :math:`\beta = 1, \beta_v < 1`, with :math:`\delta = \sigma_v^2\sigma_w^2\,
    \mathbb{E}\,\mathrm{sech}^4(\sqrt{q^*}z)`, :math:`q^* = \sigma_w^2 A`, :math:`(1-\beta_v) A
    = \sigma_v^2\,\mathbb{E}\tanh^2(\sqrt{q^*}z)` (the limit of :math:`q^l`, :math:`p^l
    \approx A\,l^{1-\beta_v}`), which has a positive solution when :math:`\sigma_v^2
    \sigma_w^2 > 1 - \beta_v`; otherwise :math:`q^l \to 0` and :math:`p \propto
    l^{\sigma_v^2\sigma_w^2}`, :math:`\delta = \sigma_v^2\sigma_w^2` (with logarithmic
    corrections at equality); ``"sqrt_log"`` :math:`\log(\chi^0/\chi^L) \approx \kappa\,
    \sigma_v\sigma_w\sqrt{\log L}` at :math:`(1, 0)`, slower than any power of :math:`L`;
    ``"bounded"`` for :math:`\beta > 1`.

    Returns:
        dict ``{"length": (kind, exponent), "gradient": (kind, exponent)}``; the exponent is
        the power of :math:`L` in the law named by ``kind`` (for ``"stretched"`` of the
        logarithm, for ``"sqrt_log"`` the prefactor of :math:`\sqrt{\log L}`, ``nan`` for
        ``"bounded"`` and ``"log"``'s prefactor :math:`\sigma_v^2`).
    """
    act = activation(phi)
    bv, bw = _check_betas(beta_v, beta_w)
    sv = float(V.variance("sigma_v2", sigma_v2, positive=True))
    sw = float(V.variance("sigma_w2", sigma_w2, positive=True))
    b = bv + bw
    nan = float("nan")
    if act.name == "relu":
        if b < 1 - tol:
            law = ("stretched", 1 - b)
        elif b <= 1 + tol:
            law = ("power", sv * sw / 2)
        else:
            law = ("bounded", nan)
        return {"length": law, "gradient": law}
    if act.name != "tanh":
        raise ValueError(f"the decay phases are derived for tanh and relu, not {act.name}")
    if b > 1 + tol:
        return {"length": ("bounded", nan), "gradient": ("bounded", nan)}
    if abs(bv - 1) <= tol:  # b <= 1 and beta_w >= 0: the endpoint (1, 0)
        return {
            "length": ("log", sv),
            "gradient": ("sqrt_log", KAPPA * math.sqrt(sv * sw)),
        }
    if b < 1 - tol:
        return {
            "length": ("power", 1 - bv),
            "gradient": ("stretched", (1 - b) / 2),
        }
    if sv * sw <= 1 - bv + tol:  # no positive fixed point: q^l -> 0, tanh acts linearly
        return {"length": ("power", sv * sw), "gradient": ("power", sv * sw)}
    a = optimize.brentq(
        lambda A: (1 - bv) * A - sv * float(act.mean_square(jnp.asarray(sw * A))),
        1e-12,
        sv / (1 - bv) + 1.0,
        xtol=1e-14,
    )
    delta = sv * sw * float(act.mean_square_derivative(jnp.asarray(sw * a)))
    return {"length": ("power", 1 - bv), "gradient": ("power", delta)}


def decay_grid(phi, beta_v, beta_w, depths, *, sigma_v2=1.0, sigma_w2=1.0, p0=1.0) -> dict:
    r"""Iterate the length and gradient maps of :mod:`mftlib.resnet` with decaying variances
    over a grid of exponents, and read them out at several depths.

    :math:`p^l = p^{l-1} + \sigma_{v,l}^2\,\mathbb{E}\phi(\sqrt{q^l}z)^2`, :math:`q^l =
    \sigma_{w,l}^2 p^{l-1}`, :math:`\log(\chi^0/\chi^L) = \sum_{l \le L}\log(1 +
    \sigma_{v,l}^2\sigma_{w,l}^2\,\mathbb{E}\phi'(\sqrt{q^l}z)^2)`.

    Args:
        beta_v, beta_w: 1-D grids of exponents.
        depths: increasing positive depths :math:`L` at which to read out.

    Returns:
        dict with ``p`` and ``log_amplification`` (natural log), each ``(len(beta_v),
        len(beta_w), len(depths))``, and ``depths``.
    """
    act = activation(phi)
    bv = jnp.asarray(V.grid("beta_v", beta_v), jnp.float64)
    bw = jnp.asarray(V.grid("beta_w", beta_w), jnp.float64)
    d = np.asarray(depths)
    if d.ndim != 1 or d.size == 0 or np.any(d < 1) or np.any(np.diff(d) <= 0):
        raise ValueError(f"depths must be increasing positive integers, got {depths!r}")
    if np.any(d != np.round(d)):
        raise ValueError(f"depths must be integers, got {depths!r}")
    d = d.astype(np.int64)
    sv0 = float(V.variance("sigma_v2", sigma_v2, positive=True))
    sw0 = float(V.variance("sigma_w2", sigma_w2, positive=True))
    p_init = jnp.asarray(float(V.variance("p0", p0, positive=True)), jnp.float64)
    ell = jnp.arange(1, int(d[-1]) + 1, dtype=jnp.float64)
    idx = jnp.asarray(d - 1)

    def one(b_v, b_w):
        sv, sw = sv0 * ell ** (-b_v), sw0 * ell ** (-b_w)

        def step(carry, s):
            p, g = carry
            v, w = s
            q = w * p
            p = p + v * act.mean_square(q)
            g = g + jnp.log1p(v * w * act.mean_square_derivative(q))
            return (p, g), (p, g)

        _, (p, g) = jax.lax.scan(step, (p_init, jnp.asarray(0.0, jnp.float64)), (sv, sw))
        return p[idx], g[idx]

    grid = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))
    p, g = grid(bv, bw)
    return {
        "p": np.asarray(p),
        "log_amplification": np.asarray(g),
        "depths": d,
    }


def local_exponents(values, depths) -> np.ndarray:
    r"""Apparent exponents :math:`d\log y/d\log L` between consecutive depths: for ``values``
    ``(..., len(depths))``, returns ``(..., len(depths) - 1)``. Applied to :math:`p^L` it gives
    the length exponent, to :math:`\log(\chi^0/\chi^L)` the exponent :math:`\nu` of a
    stretched exponential."""
    y = np.asarray(values, np.float64)
    d = np.asarray(depths, np.float64)
    if y.shape[-1] != d.size or d.size < 2:
        raise ValueError(f"values need a last axis of len(depths) = {d.size} >= 2")
    if np.any(y <= 0):
        raise ValueError("local exponents need positive values")
    return np.diff(np.log(y), axis=-1) / np.diff(np.log(d))


def amplification_share(phi, sigma_v2, p0, depth: int, first: int, *, sigma_w2=1.0) -> float:
    r"""Fraction of :math:`\log(\chi^0/\chi^L)` made in the first ``first`` blocks:
    :math:`\sum_{l\le k}\log(1+\sigma_{v,l}^2\sigma_{w,l}^2\mathbb{E}\phi'^2) / \sum_{l\le L}`."""
    depth = V.positive_int("depth", depth)
    first = V.positive_int("first", first)
    if first > depth:
        raise ValueError(f"first ({first}) must not exceed depth ({depth})")
    log_amp = np.log(
        resnet.gradient_amplification(phi, sigma_v2, 0.0, p0, depth, sigma_w2=sigma_w2)
    )
    return float(log_amp[first] / log_amp[depth])


def train_decay_grid(
    key,
    data,
    sigma_v2s,
    beta_vs,
    *,
    depth: int,
    width: int,
    steps: int,
    n_seeds: int = 2,
    learning_rate: float = 0.05,
    batch_size: int = 32,
    first: int = 4,
) -> dict:
    r"""Train tanh residual classifiers (:func:`mftlib.networks.init_resnet_classifier`) with
    :math:`\sigma_{v,l}^2 = \sigma_v^2 l^{-\beta_v}`, :math:`\sigma_w^2 = 1`, over a grid of
    :math:`(\beta_v, \sigma_v^2)`, and predict each configuration's amplification.

    Returns:
        dict of ``(len(beta_vs), len(sigma_v2s))`` arrays: ``accuracy`` (test accuracy, mean
        over seeds), ``accuracy_se`` (its standard error), ``decades``
        (:math:`\log_{10}(\chi^0/\chi^L)` at the data's mean squared input) and ``share`` (the
        part of it made in the first ``first`` blocks, :func:`amplification_share`), and
        ``accuracy_seeds`` ``(len(beta_vs), len(sigma_v2s), n_seeds)``, each seed's accuracy.
    """
    from mftlib import training

    sv2 = np.asarray(V.grid("sigma_v2s", sigma_v2s), np.float64)
    bvs = np.asarray(V.grid("beta_vs", beta_vs), np.float64)
    if np.any(sv2 <= 0):
        raise ValueError("sigma_v2s must be positive")
    n_seeds = V.positive_int("n_seeds", n_seeds)
    k_init, k_train = jax.random.split(V.key(key))
    configs = [(s, b) for b in bvs for s in sv2]
    schedules = np.array([resnet.schedule(s, b, depth) for s, b in configs])
    params = rn.init_classifier(
        k_init,
        data.x_train.shape[1],
        width,
        depth,
        data.n_classes,
        np.repeat(schedules, n_seeds, axis=0),
        1.0,
        n_models=n_seeds * len(configs),
    )
    out = training.train_models(
        k_train,
        rn.classifier("tanh"),
        params,
        data,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer="sgd",
        dtype=np.float32,
    )
    acc = np.asarray(out["test_accuracy"]).reshape(len(bvs), len(sv2), n_seeds)
    px = float(np.mean(np.asarray(data.x_train) ** 2))
    amp = np.array(
        [
            resnet.gradient_amplification("tanh", s, 0.0, px, depth, sigma_w2=1.0)[-1]
            for s in schedules
        ]
    ).reshape(len(bvs), len(sv2))
    share = np.array([amplification_share("tanh", s, px, depth, first) for s in schedules]).reshape(
        len(bvs), len(sv2)
    )
    se = acc.std(-1, ddof=1) / np.sqrt(n_seeds) if n_seeds > 1 else np.full(acc.shape[:2], np.nan)
    return {
        "accuracy": acc.mean(-1),
        "accuracy_se": se,
        "accuracy_seeds": acc,
        "decades": np.log10(amp),
        "share": share,
        "sigma_v2": sv2,
        "beta_v": bvs,
    }


def width_ratio_table(theory: dict, sims: dict, a: str, b: str, block: int = -1) -> dict:
    r"""Ratio of each statistic of :func:`block_gradients` / :func:`simulate_block_gradients`
    between two width profiles ``a`` and ``b`` at one block (default the last).

    The simulated ratio is taken seed by seed (the two profiles' simulations must share their
    seeds) and averaged.

    Returns:
        ``{name: (theory ratio, mean simulated ratio, its standard error)}`` for ``p``,
        ``W_entry``, ``V_entry``, ``W_block`` and ``V_block``.
    """
    out = {}
    for k in ("p", "W_entry", "V_entry", "W_block", "V_block"):
        r = np.asarray(sims[a][k])[:, block] / np.asarray(sims[b][k])[:, block]
        se = r.std(ddof=1) / np.sqrt(r.size) if r.size > 1 else float("nan")
        out[k] = (
            float(theory[a][k][block] / theory[b][k][block]),
            float(r.mean()),
            float(se),
        )
    return out


def _apparent(kind: str, y, p0: float, d) -> float:
    """Apparent value of a phase's exponent from ``y`` (p or log amplification) at depths d."""
    d = np.asarray(d, np.float64)
    if kind == "log":  # p ~ a log L: a = dp / dlog L
        return float(np.diff(y)[0] / np.diff(np.log(d))[0])
    if kind == "sqrt_log":  # log amplification ~ c sqrt(log L)
        return float(y[-1] / np.sqrt(np.log(d[-1])))
    return float(local_exponents(y, d)[0])


def phase_table(grid: dict, betas, points, p0: float = 1.0) -> list:
    r"""Predicted against apparent exponents at points of a :func:`decay_grid` (both activations,
    the grid's two longest depths).

    For each ``phi`` in ``grid`` and ``(beta_v, beta_w)`` in ``points`` (on the grid ``betas``,
    the same for both exponents): the kind and exponent of :func:`predicted_phase` for the
    length and the gradient, and the apparent value measured on the iterated maps: for a
    ``"power"`` law the local exponent :math:`d\log y/d\log L` of :math:`p` or
    :math:`\chi^0/\chi^L`; for ``"stretched"`` that of :math:`\log(p/p^0)` or
    :math:`\log(\chi^0/\chi^L)` (for the ReLU length the latter, equal to :math:`\log(p^L/p^0)`
    and free of overflow); for ``"log"`` :math:`dp/d\log L`; for ``"sqrt_log"``
    :math:`\log(\chi^0/\chi^L)/\sqrt{\log L}`; for ``"bounded"`` the local exponent of
    :math:`p` or :math:`\chi^0/\chi^L` (predicted 0).

    Points where the maps overflowed (ReLU without decay at depth :math:`10^4`) are left out.

    Returns:
        list of ``(phi, beta_v, beta_w, (kind, predicted, apparent) for the length, (same) for
        the gradient)``.
    """
    b = np.asarray(betas, np.float64)
    rows = []
    for phi, g in grid.items():
        d = g["depths"][-2:]
        for bv, bw in points:
            i, j = int(np.argmin(abs(b - bv))), int(np.argmin(abs(b - bw)))
            if abs(b[i] - bv) > 1e-9 or abs(b[j] - bw) > 1e-9:
                raise ValueError(f"({bv}, {bw}) is not on the grid of exponents")
            ph = predicted_phase(phi, bv, bw)
            p, la = g["p"][i, j, -2:], g["log_amplification"][i, j, -2:]
            if not (np.all(np.isfinite(p)) and np.all(np.isfinite(la))):
                continue  # overflowed (ReLU without decay): no apparent exponent
            out = []
            for (kind, pred), (y_log, y_pow) in (
                # ReLU: log(p^L/p^0) = log(chi^0/chi^L) exactly, and p itself may overflow.
                (ph["length"], (la if phi == "relu" else np.log(p / p0), p)),
                (ph["gradient"], (la, np.exp(la))),
            ):
                if kind == "stretched":
                    app = _apparent(kind, y_log, p0, d)
                elif kind in ("log",):
                    app = _apparent(kind, y_pow, p0, d)
                elif kind == "sqrt_log":
                    app = _apparent(kind, y_log, p0, d)
                else:
                    app = _apparent("power", y_pow, p0, d)
                out.append((kind, 0.0 if kind == "bounded" else pred, app))
            rows.append((phi, bv, bw, out[0], out[1]))
    return rows


def simulation_ratios(sims: dict, p0: float) -> dict:
    r"""Simulated over mean-field length and amplification at the last block, for the outputs of
    :func:`mftlib.networks.simulate_resnet` keyed by ``(phi, beta_v, beta_w)`` (full nets,
    :math:`\sigma_v^2 = \sigma_w^2 = 1`, decaying as :func:`mftlib.resnet.schedule`); a key
    ``(phi, beta_v, beta_w, beta_a)`` adds a stream bias :math:`\sigma_{a,l}^2 = l^{-\beta_a}`.

    Returns:
        ``{key: (length ratio, its s.e., amplification ratio, its s.e.)}``: mean and standard
        error over the seeds of the simulated value, divided by the theory.
    """
    out = {}
    for key, sim in sims.items():
        phi, bv, bw = key[:3]
        amp = np.asarray(sim["amplification"])
        depth = amp.shape[1] - 1
        sv, sw = (
            resnet.schedule(1.0, bv, depth),
            resnet.schedule(1.0, bw, depth),
        )
        sa = resnet.schedule(1.0, key[3], depth) if len(key) > 3 else 0.0
        p_th = resnet.length_trajectory(phi, sv, sa, p0, depth, sigma_w2=sw)["p"][-1]
        a_th = resnet.gradient_amplification(phi, sv, sa, p0, depth, sigma_w2=sw)[-1]
        cov = np.asarray(sim["cov"])[:, -1]
        p = np.einsum("sii->si", cov).mean(-1)
        n = amp.shape[0]
        out[key] = (
            float(p.mean() / p_th),
            float(p.std(ddof=1) / np.sqrt(n) / p_th),
            float(amp[:, -1].mean() / a_th),
            float(amp[:, -1].std(ddof=1) / np.sqrt(n) / a_th),
        )
    return out


def training_summary(grid: dict, low: float, high: float) -> dict:
    r"""Range of accuracies of :func:`train_decay_grid` where fewer than ``low`` and more than
    ``high`` decades of amplification are predicted.

    Returns:
        dict with ``low_min``, ``low_max``, ``low_n``, ``high_min``, ``high_max``, ``high_n``.
    """
    if not low <= high:
        raise ValueError(f"need low <= high, got {low}, {high}")
    acc, dec = np.asarray(grid["accuracy"]), np.asarray(grid["decades"])
    out = {}
    for name, sel in (("low", dec < low), ("high", dec > high)):
        if not sel.any():
            raise ValueError(f"no configuration with {name} predicted decades")
        out[f"{name}_min"] = float(acc[sel].min())
        out[f"{name}_max"] = float(acc[sel].max())
        out[f"{name}_n"] = int(sel.sum())
    return out


def predicted_decades(sigma_v2s, beta_vs, depth: int, p0: float, sigma_w2: float = 1.0):
    r""":math:`\log_{10}(\chi^0/\chi^L)` of tanh residual nets with :math:`\sigma_{v,l}^2 =
    \sigma_v^2 l^{-\beta_v}` and constant :math:`\sigma_w^2`, on a grid:
    ``(len(beta_vs), len(sigma_v2s))`` (for contour lines over :func:`train_decay_grid`); the
    maps of :func:`mftlib.resnet.gradient_amplification`, compiled once for the whole grid."""
    sv2 = jnp.asarray(V.grid("sigma_v2s", sigma_v2s), jnp.float64)
    bvs = jnp.asarray(V.grid("beta_vs", beta_vs), jnp.float64)
    if np.any(np.asarray(sv2) <= 0):
        raise ValueError("sigma_v2s must be positive")
    depth = V.positive_int("depth", depth)
    sw = float(V.variance("sigma_w2", sigma_w2, positive=True))
    p_init = jnp.asarray(float(V.variance("p0", p0, positive=True)), jnp.float64)
    act = activation("tanh")
    ell = jnp.arange(1, depth + 1, dtype=jnp.float64)

    def one(b, s):
        def step(carry, v):
            p, g = carry
            q = sw * p
            return (
                p + v * act.mean_square(q),
                g + jnp.log1p(v * sw * act.mean_square_derivative(q)),
            ), None

        (_, g), _ = jax.lax.scan(step, (p_init, jnp.asarray(0.0, jnp.float64)), s * ell ** (-b))
        return g

    grid = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))
    return np.asarray(grid(bvs, sv2)) / np.log(10)


def bias_decay_exponent(beta_v, beta_w, beta_a) -> tuple:
    r"""Predicted growth of :math:`\log(\chi^0/\chi^L)` for tanh residual nets whose stream bias
    variance decays too, :math:`\sigma_{a,l}^2 = \sigma_a^2 l^{-\beta_a}` (with
    :math:`\sigma_{v,l}^2 \propto l^{-\beta_v}`, :math:`\sigma_{w,l}^2 \propto l^{-\beta_w}`,
    :math:`\sigma_b = 0`).

    With :math:`m = \min(\beta_v, \beta_a) < 1` the length grows like :math:`l^{1-m}` and, if
    :math:`1 - m - \beta_w > 0`, :math:`q^l \propto l^{1-m-\beta_w} \to \infty`; the terms
    :math:`\sigma_{v,l}^2\sigma_{w,l}^2\,\tfrac43(2\pi q^l)^{-1/2}` then sum to

    .. math::

       \log\frac{\chi^0}{\chi^L} \propto L^{\nu}, \qquad
       \nu = \tfrac12\,(1 - 2\beta_v - \beta_w + \min(\beta_v, \beta_a)),

    for :math:`\nu > 0` (``"stretched"``); :math:`\nu = 0` gives :math:`\chi^0/\chi^L \propto
    L^{\delta}` (``"power"``, returned in place of :math:`\nu`) with :math:`\delta =
    (\kappa/2)\,\sigma_v^2\sigma_w/\sqrt{A}`, :math:`p^l \approx A\,l^{1-m}`, here for unit
    variances (:math:`A = 1/(1-\beta_a)`, :math:`1/(1-\beta_v)`, or their sum when equal),
    and :math:`\nu < 0` a bounded amplification (``"bounded"``). A bias that decays more slowly
    than :math:`\sigma_v^2` (:math:`\beta_a < \beta_v`) lengthens the stream and so
    lowers :math:`\nu`. Pass ``beta_a=inf`` for no bias.

    Returns:
        ``(kind, nu)``. Raises ``ValueError`` outside the regime :math:`q^l \to \infty`.
    """
    bv, bw = _check_betas(beta_v, beta_w)
    ba = float(beta_a)
    if not ba >= 0:
        raise ValueError(f"beta_a must be >= 0 (inf for no bias), got {beta_a}")
    m = min(bv, ba)
    if not (m < 1 and 1 - m - bw > 0):
        raise ValueError(
            "derived only where q^l grows without bound: min(beta_v, beta_a) + beta_w < 1"
        )
    nu = 0.5 * (1 - 2 * bv - bw + m)
    if abs(nu) <= 1e-12:  # terms delta/l: p ~ A l^(1-m), A from the dominant increments
        a = (bv <= ba) / (1 - bv) + (ba <= bv) / (1 - ba)
        return "power", KAPPA / 2 / math.sqrt(a)
    return ("stretched", nu) if nu > 0 else ("bounded", nu)


def bias_decay_trajectories(beta_v, beta_w, beta_a, depth: int, p0: float) -> dict:
    r"""Length and :math:`\log(\chi^0/\chi^L)` of tanh residual nets with :math:`\sigma_{v,l}^2
    = l^{-\beta_v}`, :math:`\sigma_{w,l}^2 = l^{-\beta_w}` and stream bias :math:`\sigma_{a,l}^2
    = l^{-\beta_a}` (``beta_a=inf``: no bias), from :func:`mftlib.resnet.length_trajectory` and
    :func:`mftlib.resnet.gradient_amplification`: dict with ``p`` and ``log_amplification``,
    each ``(depth+1,)``."""
    depth = V.positive_int("depth", depth)
    sv = resnet.schedule(1.0, beta_v, depth)
    sw = resnet.schedule(1.0, beta_w, depth)
    sa = 0.0 if np.isinf(beta_a) else resnet.schedule(1.0, beta_a, depth)
    p = resnet.length_trajectory("tanh", sv, sa, p0, depth, sigma_w2=sw)["p"]
    amp = resnet.gradient_amplification("tanh", sv, sa, p0, depth, sigma_w2=sw)
    return {"p": p, "log_amplification": np.log(amp)}


def init_width_classifier(
    key,
    in_dim: int,
    width: int,
    hidden_widths,
    n_out: int,
    sigma_v2,
    n_models: int = 1,
) -> dict:
    r"""Weights of ``n_models`` tanh residual classifiers with hidden widths :math:`M_l` (the
    layout of :func:`mftlib.networks.init_resnet_classifier`, for
    :func:`mftlib.networks.resnet_classifier`).

    :math:`W^l` is stored ``(M_max, N)`` with rows beyond :math:`M_l` zero and :math:`V^l`
    ``(N, M_max)`` with those columns zero, :math:`W \sim \mathcal{N}(0, 1/N)`, :math:`V \sim
    \mathcal{N}(0, \sigma_v^2/M_l)`. Since :math:`\tanh(0) = 0`, the zero entries get zero
    gradients and stay zero under gradient descent: the network keeps its widths.

    Args:
        sigma_v2: a scalar or one value per model.
    """
    key = V.key(key)
    in_dim, width = (
        V.positive_int("in_dim", in_dim),
        V.positive_int("width", width),
    )
    n_out, n_models = (
        V.positive_int("n_out", n_out),
        V.positive_int("n_models", n_models),
    )
    m = np.asarray(hidden_widths)
    if m.ndim != 1 or m.size == 0:
        raise ValueError(f"hidden_widths must be a 1-D list of widths, got {hidden_widths!r}")
    depth = m.size
    m = _widths(m, depth, width)
    sv = np.broadcast_to(
        np.asarray(V.variance("sigma_v2", sigma_v2, positive=True)),
        (n_models,),
    )
    m_max = int(m.max())
    mask = jnp.asarray(np.arange(m_max)[None, :] < m[:, None], jnp.float64)  # (depth, M_max)
    scale_v = jnp.sqrt(1.0 / jnp.asarray(m, jnp.float64))[:, None, None]

    def one(k, s):
        k0, k1, k2, k3 = jax.random.split(k, 4)
        w = jax.random.normal(k1, (depth, m_max, width)) / jnp.sqrt(width) * mask[:, :, None]
        v = jax.random.normal(k2, (depth, width, m_max)) * scale_v * jnp.sqrt(s)
        return {
            "Win": jax.random.normal(k0, (width, in_dim)) / jnp.sqrt(in_dim),
            "W": w,
            "V": v * mask[:, None, :],
            "Wout": jax.random.normal(k3, (n_out, width)) / jnp.sqrt(width),
            "bout": jnp.zeros(n_out),
        }

    return jax.vmap(one)(jax.random.split(key, n_models), jnp.asarray(sv, jnp.float64))


def train_width_grid(
    key,
    data,
    sigma_v2s,
    profiles: dict,
    *,
    width: int,
    steps: int,
    n_seeds: int = 2,
    learning_rate: float = 0.05,
    batch_size: int = 32,
) -> dict:
    r"""Train tanh residual classifiers (:func:`init_width_classifier`) for each hidden-width
    profile in ``profiles`` (name: widths per block) and each :math:`\sigma_v^2`.

    Returns:
        dict ``{name: (accuracy, standard error)}``, arrays over ``sigma_v2s`` (test accuracy,
        mean and standard error over seeds).
    """
    from mftlib import training

    sv2 = np.asarray(V.grid("sigma_v2s", sigma_v2s), np.float64)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    out = {}
    for i, (name, m) in enumerate(profiles.items()):
        k_init = jax.random.fold_in(V.key(key), i)
        params = init_width_classifier(
            k_init,
            data.x_train.shape[1],
            width,
            m,
            data.n_classes,
            np.repeat(sv2, n_seeds),
            n_models=n_seeds * sv2.size,
        )
        res = training.train_models(
            jax.random.fold_in(V.key(key), 10**6),  # the same minibatches for every profile
            rn.classifier("tanh"),
            params,
            data,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            optimizer="sgd",
            dtype=np.float32,
        )
        acc = np.asarray(res["test_accuracy"]).reshape(sv2.size, n_seeds)
        se = acc.std(-1, ddof=1) / np.sqrt(n_seeds) if n_seeds > 1 else np.full(sv2.size, np.nan)
        out[name] = (acc.mean(-1), se)
    return out


def hidden_bias_phase(
    phi, beta_v, beta_w, beta_b, sigma_v2=1.0, sigma_w2=1.0, sigma_b2=1.0, tol=1e-9
) -> dict:
    r"""Asymptotic phases of :func:`predicted_phase` when the *hidden* bias variance decays too,
    :math:`\sigma_{b,l}^2 = \sigma_b^2 l^{-\beta_b}` (``beta_b=inf``: no hidden bias), so that
    :math:`q^l = \sigma_{w,l}^2 p^{l-1} + \sigma_{b,l}^2` (no stream bias).

    tanh (:math:`\beta = \beta_v + \beta_w`, :math:`m = \beta_v + \beta_b`):

    * :math:`\beta < 1` and the endpoint :math:`(1, 0)`: :math:`q^l` grows from the weights
      alone, the bounded :math:`\sigma_{b,l}^2` is subleading: both phases unchanged.
    * :math:`\beta = 1`, :math:`\beta_v < 1`: with :math:`\beta_b > 0` the bias vanishes
      against :math:`q^* > 0`: unchanged. With a constant bias (:math:`\beta_b = 0`) the limit
      of :math:`q^l` moves to :math:`q^* = \sigma_w^2 A + \sigma_b^2`, :math:`(1-\beta_v)A =
      \sigma_v^2\,\mathbb{E}\tanh^2(\sqrt{q^*}z)`, and the gradient power to :math:`\delta =
      \sigma_v^2\sigma_w^2\,\mathbb{E}\,\mathrm{sech}^4(\sqrt{q^*}z)`, smaller than without it.
    * :math:`\beta > 1`: the gradient factors are at most :math:`1 + \sigma_v^2\sigma_w^2
      l^{-\beta}`: the amplification stays ``"bounded"``. The length is now fed by the bias:
      :math:`\sigma_{w,l}^2 p^{l-1}` vanishes against :math:`\sigma_{b,l}^2`, the increments
      are :math:`\sigma_{v,l}^2\,\mathbb{E}\tanh^2(\sqrt{q^l}z) \propto l^{-m}` (for
      :math:`\beta_b > 0`, :math:`\mathbb{E}\tanh^2 \approx q^l`; for :math:`\beta_b = 0`,
      :math:`\to \mathbb{E}\tanh^2(\sigma_b z)`), and :math:`p \propto l^{1-m}` (``"power"``)
      for :math:`m < 1`, ``"log"`` at :math:`m = 1` (prefactor :math:`\sigma_v^2\sigma_b^2`, or
      :math:`\sigma_v^2\,\mathbb{E}\tanh^2(\sigma_b z)` at :math:`\beta_b = 0`), ``"bounded"``
      beyond.

    ReLU: the gradient factors :math:`1 + \sigma_{v,l}^2\sigma_{w,l}^2/2` do not depend on
    :math:`q`: the gradient phase is unchanged exactly. The length obeys :math:`p^l = p^{l-1}(1
    + \sigma_{v,l}^2\sigma_{w,l}^2/2) + \sigma_{v,l}^2\sigma_{b,l}^2/2`, so :math:`p^L/p^0 \ne
    \chi^0/\chi^L`: ``"stretched"`` with the same exponent :math:`1-\beta` below the line (the
    ratio tends to a constant), ``"power"`` :math:`L^{\max(\delta, 1-m)}` on it
    (:math:`\delta = \sigma_v^2\sigma_w^2/2`), and above it as for tanh with
    :math:`\mathbb{E}\,\mathrm{relu}^2 = q/2` (``"log"`` prefactor
    :math:`\sigma_v^2\sigma_b^2/2`).

    Returns:
        dict as :func:`predicted_phase`. Raises ``ValueError`` on the line :math:`\beta = 1`
        for tanh with :math:`\beta_b > 0` and :math:`\sigma_v^2\sigma_w^2 \le 1 - \beta_v`
        (where :math:`q^l \to 0` and the two vanishing terms compete: not derived here).
    """
    act = activation(phi)
    bv, bw = _check_betas(beta_v, beta_w)
    bb = float(beta_b)
    if not bb >= 0:  # also catches nan
        raise ValueError(f"beta_b must be >= 0 (inf for no hidden bias), got {beta_b}")
    base = predicted_phase(act, bv, bw, sigma_v2, sigma_w2, tol)
    if math.isinf(bb):
        return base
    sv = float(V.variance("sigma_v2", sigma_v2, positive=True))
    sw = float(V.variance("sigma_w2", sigma_w2, positive=True))
    sb = float(V.variance("sigma_b2", sigma_b2, positive=True))
    b, m = bv + bw, bv + bb
    nan = float("nan")

    def fed_by_bias(prefactor_log) -> tuple:  # prefactor_log: a callable, used at m = 1 only
        if m < 1 - tol:
            return ("power", 1 - m)
        if m <= 1 + tol:
            return ("log", prefactor_log())
        return ("bounded", nan)

    if act.name == "relu":
        if b < 1 - tol:
            length = base["length"]
        elif b <= 1 + tol:
            length = ("power", max(sv * sw / 2, 1 - m))
        else:
            length = fed_by_bias(lambda: sv * sb / 2)
        return {"length": length, "gradient": base["gradient"]}
    if b > 1 + tol:

        def pref():
            return sv * float(act.mean_square(jnp.asarray(sb))) if bb <= tol else sv * sb

        return {"length": fed_by_bias(pref), "gradient": ("bounded", nan)}
    if b < 1 - tol or abs(bv - 1) <= tol:
        return base
    if bb > tol:  # on the line, a vanishing bias
        if sv * sw <= 1 - bv + tol:
            raise ValueError(
                "on the line with q^l -> 0 (sigma_v2 sigma_w2 <= 1 - beta_v) a decaying hidden "
                "bias competes with the weights: not derived"
            )
        return base
    a = optimize.brentq(
        lambda A: (1 - bv) * A - sv * float(act.mean_square(jnp.asarray(sw * A + sb))),
        1e-12,
        sv / (1 - bv) + 1.0,
        xtol=1e-14,
    )
    delta = sv * sw * float(act.mean_square_derivative(jnp.asarray(sw * a + sb)))
    return {"length": ("power", 1 - bv), "gradient": ("power", delta)}


def decay_trajectories(
    phi, beta_v, beta_w, depth: int, p0: float, *, beta_a=np.inf, beta_b=np.inf
) -> dict:
    r"""Length :math:`p^l` and :math:`\log(\chi^0/\chi^l)`, :math:`l = 0..` ``depth``, of full
    residual nets with unit variances decaying as :math:`\sigma_{v,l}^2 = l^{-\beta_v}`,
    :math:`\sigma_{w,l}^2 = l^{-\beta_w}`, a stream bias :math:`\sigma_{a,l}^2 = l^{-\beta_a}`
    and a hidden bias :math:`\sigma_{b,l}^2 = l^{-\beta_b}` (``inf``: no such bias), from
    :func:`mftlib.resnet.length_trajectory` (:math:`q^l = \sigma_{w,l}^2 p^{l-1} +
    \sigma_{b,l}^2`, :math:`p^l = p^{l-1} + \sigma_{v,l}^2\,\mathbb{E}\phi(\sqrt{q^l}z)^2 +
    \sigma_{a,l}^2`) and :func:`mftlib.resnet.gradient_amplification`.

    Returns:
        dict with ``p`` and ``log_amplification``, each ``(depth+1,)``.
    """
    depth = V.positive_int("depth", depth)
    for name, beta in (("beta_a", beta_a), ("beta_b", beta_b)):
        if not float(beta) >= 0:
            raise ValueError(f"{name} must be >= 0 (inf for no bias), got {beta}")

    def sched(beta):
        return 0.0 if np.isinf(beta) else resnet.schedule(1.0, beta, depth)

    sv, sw = resnet.schedule(1.0, beta_v, depth), resnet.schedule(1.0, beta_w, depth)
    args = (phi, sv, sched(beta_a), p0, depth)
    kw = {"sigma_w2": sw, "sigma_b2": sched(beta_b)}
    p = resnet.length_trajectory(*args, **kw)["p"]
    amp = resnet.gradient_amplification(*args, **kw)
    return {"p": p, "log_amplification": np.log(amp)}


def stream_ratios(sims: dict, p0: float) -> dict:
    r"""Simulated over mean-field length :math:`p^l` and amplification :math:`\chi^0/\chi^l` at
    every block, for outputs of ``mftlib.networks.simulate_stream`` keyed by ``(phi, beta_v,
    beta_w, beta_b)`` (unit variances, decaying as in :func:`decay_trajectories`; ``beta_b =
    inf``: no hidden bias). The simulated amplification of seed :math:`s` is
    ``grad_norms[s, 0] / grad_norms[s, l]``; the length is the mean of the diagonal of ``cov``.

    Returns:
        ``{key: dict}`` with ``p_ratio``, ``p_se``, ``amp_ratio``, ``amp_se`` (mean and standard
        error over the seeds, divided by the theory), each ``(depth+1,)``, and the theory's
        ``p`` and ``amp``.
    """
    out = {}
    for key, sim in sims.items():
        phi, bv, bw, bb = key
        g = np.asarray(sim["grad_norms"], np.float64)
        if g.ndim != 2 or g.shape[0] < 2:
            raise ValueError("need grad_norms of shape (n_seeds >= 2, depth + 1)")
        n, depth = g.shape[0], g.shape[1] - 1
        th = decay_trajectories(phi, bv, bw, depth, p0, beta_b=bb)
        p_th, a_th = th["p"], np.exp(th["log_amplification"])
        p = np.einsum("slii->sli", np.asarray(sim["cov"])).mean(-1)
        amp = g[:, :1] / g
        out[key] = {
            "p_ratio": p.mean(0) / p_th,
            "p_se": p.std(0, ddof=1) / np.sqrt(n) / p_th,
            "amp_ratio": amp.mean(0) / a_th,
            "amp_se": amp.std(0, ddof=1) / np.sqrt(n) / a_th,
            "p": p_th,
            "amp": a_th,
        }
    return out


def predicted_metric_expressivity(sigma_v2s, beta_vs, depth: int, sigma0s, sigma_w2=1.0):
    r"""Mean-field metric expressivity :math:`\log_{10}(s^L/s^0)` of tanh residual nets with
    :math:`\sigma_{v,l}^2 = \sigma_v^2 l^{-\beta_v}` and constant :math:`\sigma_w^2` (no
    biases), on the grid of :func:`predicted_decades`: ``(len(beta_vs), len(sigma_v2s))``.

    :math:`s^l = \langle \Sigma^l_{aa} + \Sigma^l_{bb} - 2\Sigma^l_{ab}\rangle` is the squared
    distance per unit between the two inputs of a pair (Yang & Schoenholz 2017), averaged over
    the pairs whose stream covariances :math:`\Sigma^0` are ``sigma0s`` ``(n_pairs, 2, 2)``;
    each is iterated with the covariance map :math:`\Sigma^l = \Sigma^{l-1} +
    \sigma_{v,l}^2\,\mathbb{E}_{u\sim\mathcal{N}(0,\sigma_w^2\Sigma^{l-1})}
    [\tanh(u)\tanh(u)^\top]`.
    """
    sv2 = np.asarray(V.grid("sigma_v2s", sigma_v2s), np.float64)
    bvs = np.asarray(V.grid("beta_vs", beta_vs), np.float64)
    if np.any(sv2 <= 0):
        raise ValueError("sigma_v2s must be positive")
    depth = V.positive_int("depth", depth)
    sw = float(V.variance("sigma_w2", sigma_w2, positive=True))
    s0 = np.asarray(sigma0s, np.float64)
    if s0.ndim != 3 or s0.shape[1:] != (2, 2) or s0.shape[0] < 1:
        raise ValueError(f"sigma0s must be (n_pairs, 2, 2), got shape {s0.shape}")
    for k, m in enumerate(s0):
        V.covariance(f"sigma0s[{k}]", m)
    dist0 = s0[:, 0, 0] + s0[:, 1, 1] - 2 * s0[:, 0, 1]
    if not dist0.mean() > 0:
        raise ValueError("the pairs' mean squared distance s^0 must be positive")
    act = activation("tanh")
    ell = jnp.arange(1, depth + 1, dtype=jnp.float64)

    def one(b, s, S0):
        def step(S, v):  # (p_a, p_b, gamma_ab): one 2-D quadrature per block
            pa, pb, g = S
            k = act.pair_moment(sw * pa, sw * pb, sw * g)
            return jnp.stack([pa, pb, g]) + v * jnp.stack(
                [act.mean_square(sw * pa), act.mean_square(sw * pb), k]
            ), None

        S, _ = jax.lax.scan(step, jnp.stack([S0[0, 0], S0[1, 1], S0[0, 1]]), s * ell ** (-b))
        return S[0] + S[1] - 2 * S[2]

    pairs = jax.vmap(one, (None, None, 0))
    grid = jax.jit(jax.vmap(jax.vmap(pairs, (None, 0, None)), (0, None, None)))
    dist = np.asarray(grid(jnp.asarray(bvs), jnp.asarray(sv2), jnp.asarray(s0)))
    return np.log10(dist.mean(-1) / dist0.mean())


def rank_correlations(accuracy_seeds, predictors: dict, *, mask=None, n_boot=1000, seed=0):
    r"""Spearman rank correlation over grid cells between the seed-mean accuracy and each
    predictor, with a bootstrap over seeds.

    Args:
        accuracy_seeds: ``(..., n_seeds)`` accuracies of each cell and seed.
        predictors: ``{name: array of the cells' shape}``.
        mask: optional boolean array of the cells' shape: the cells to use (at least 3).
        n_boot: bootstrap resamples; in each, every cell's seeds are drawn with replacement.

    Returns:
        ``{name: (rho, se, samples)}``: :math:`\rho` on the seed means, its bootstrap standard
        error and the ``(n_boot,)`` bootstrap values (the same resamples for every predictor,
        so differences between predictors can be bootstrapped too).
    """
    acc = np.asarray(accuracy_seeds, np.float64)
    if acc.ndim < 2 or acc.shape[-1] < 2:
        raise ValueError("accuracy_seeds needs a last axis of at least 2 seeds")
    cells = acc.shape[:-1]
    sel = np.ones(cells, bool) if mask is None else np.asarray(mask, bool)
    if sel.shape != cells or sel.sum() < 3:
        raise ValueError(f"mask must have shape {cells} and select at least 3 cells")
    n_boot = V.positive_int("n_boot", n_boot)
    preds = {}
    for name, x in predictors.items():
        x = np.asarray(x, np.float64)
        if x.shape != cells or not np.all(np.isfinite(x[sel])):
            raise ValueError(f"predictor {name!r} must be finite of shape {cells}")
        preds[name] = x[sel]
    a = acc[sel]  # (n_cells, n_seeds)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.shape[1], size=(n_boot, *a.shape))
    boot = np.take_along_axis(a[None], idx, axis=-1).mean(-1)  # (n_boot, n_cells)

    def ranks(y):  # average ranks along the last axis (ties share their mean rank)
        below = (y[..., None, :] < y[..., :, None]).sum(-1)
        return below + ((y[..., None, :] == y[..., :, None]).sum(-1) + 1) / 2

    def rho(y, x):  # Spearman: Pearson correlation of the ranks, along the last axis
        ry = ranks(y)
        ry = ry - ry.mean(-1, keepdims=True)
        rx = ranks(x)
        rx = rx - rx.mean()
        norm = np.sqrt((ry**2).sum(-1) * (rx**2).sum())
        # all cells equal (no ordering): rho = 0
        return np.where(norm > 0, (ry * rx).sum(-1) / np.where(norm > 0, norm, 1.0), 0.0)

    out = {}
    for name, x in preds.items():
        samples = rho(boot, x)
        out[name] = (float(rho(a.mean(-1), x)), float(samples.std(ddof=1)), samples)
    return out
