r"""Mean-field theory of residual networks (Yang & Schoenholz 2017).

The *full* residual network has two weight matrices per block,

.. math::

   h^l = W^l x^{l-1} + b^l, \qquad x^l = V^l \phi(h^l) + a^l + x^{l-1},

with :math:`W_{ij} \sim \mathcal{N}(0, \sigma_w^2/N)`, :math:`V_{ij} \sim \mathcal{N}(0,
\sigma_v^2/N)`, :math:`b_i \sim \mathcal{N}(0, \sigma_b^2)`, :math:`a_i \sim \mathcal{N}(0,
\sigma_a^2)`. The *reduced* network has :math:`h^l = x^{l-1}` (no :math:`W`, no :math:`b`). Here a
function takes ``sigma_w2=None`` for the reduced network.

Every variance may be *layer dependent*: an array with one value per block :math:`l = 1..L`, for
example :func:`schedule` (:math:`\sigma_l^2 = \sigma^2 l^{-\beta}`, Yang & Schoenholz 2018).
The covariance :math:`\Sigma^l` of the residual stream :math:`x^l` over a set of inputs maps as

.. math::

   \Sigma^{l} = \Sigma^{l-1} + \sigma_v^2\,\mathbb{E}_{u \sim \mathcal{N}(0, \Gamma^l)}
   [\phi(u)\phi(u)^T] + \sigma_a^2, \qquad \Gamma^l = \sigma_w^2 \Sigma^{l-1} + \sigma_b^2

(:math:`\Gamma^l = \Sigma^{l-1}` when reduced): the dense layer's map of :mod:`mftlib.dense` *added*
to the identity. Its diagonal is the length :math:`p^l`, with :math:`q^l = \Gamma^l_{aa}`.
Backpropagated squared gradients per unit (:math:`\chi^l = \mathbb{E}(\partial E/\partial x^l_i)^2`,
gradient-independence assumption) obey

.. math::

   \chi^{l-1} = \chi^l \left(1 + \sigma_v^2 \sigma_w^2\,
   \mathbb{E}[\phi'(\sqrt{q^l} z)^2]\right).

Because the identity is always added, nothing in these maps has a stable fixed point at finite
:math:`p`: the length grows without bound, and the dynamics are polynomial or sub-exponential in
depth where a feedforward net's are exponential. For tanh, :math:`p^l \approx
(\sigma_v^2 + \sigma_a^2)\, l` and :math:`\log(\chi^0/\chi^L) \approx \kappa\,
\sigma_v^2\sigma_w \sqrt{L/(\sigma_v^2+\sigma_a^2)}` with :math:`\kappa = 8/(3\sqrt{2\pi})`; for
the :math:`\alpha`-ReLU (:func:`mftlib.activations.alpha_relu`, :math:`1/2 < \alpha < 1`),
:math:`p^l \propto l^{1/(1-\alpha)}` and :math:`\chi^0/\chi^L \propto L^{\delta}` with
:math:`\delta = \alpha^2/((1-\alpha)(2\alpha - 1))` (see :func:`exponents`).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dynamics, gaussian, layers
from mftlib.activations import Activation, activation

Array = jax.Array

#: :math:`\kappa = 8/(3\sqrt{2\pi})`: :math:`\int \mathrm{sech}^4 = 4/3` times the Gaussian density
#: at 0, integrated over depth (:math:`\sum_l l^{-1/2} \approx 2\sqrt{L}`).
TANH_GRADIENT_CONSTANT = 8.0 / (3.0 * math.sqrt(2.0 * math.pi))


def check_parameters(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2) -> tuple[Activation, tuple]:
    """Validate a residual net's activation and variances (``sigma_w2=None``: the reduced net).

    Returns ``(act, (sv, sa, sw, sb))``: the :class:`~mftlib.activations.Activation` and the
    variances as float64 arrays (scalars, or one value per block), with ``sw, sb = 1, 0`` for the
    reduced net. Shared by the theory here and by ``mftlib.networks.resnet.simulate``, so
    that both read the variances the same way.
    """
    act = activation(phi)
    V.variance("sigma_v2", sigma_v2, positive=True)
    V.variance("sigma_a2", sigma_a2)
    if sigma_w2 is None:
        if sigma_b2 not in (None, 0, 0.0):
            raise ValueError(
                "sigma_b2 is only defined for the full residual net; pass sigma_w2 as well "
                "(sigma_w2=None means the reduced net h^l = x^(l-1), which has no bias b)"
            )
        sw, sb = 1.0, 0.0
    else:
        V.variance("sigma_w2", sigma_w2, positive=True)
        sb = 0.0 if sigma_b2 is None else sigma_b2
        V.variance("sigma_b2", sb)
        sw = sigma_w2
    return act, tuple(jnp.asarray(v, jnp.float64) for v in (sigma_v2, sigma_a2, sw, sb))


def per_layer_variances(depth: int, *values) -> tuple:
    """Broadcast each variance to one value per block ``l = 1..depth`` (layer-dependent
    variances are arrays of length ``depth``): a tuple of ``(depth,)`` float64 arrays.

    Raises ``ValueError`` for an array of any other length (traceable otherwise)."""
    out = []
    for v in values:
        v = jnp.asarray(v, jnp.float64)
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != depth):
            raise ValueError(
                f"a layer-dependent variance needs one value per block ({depth}), got shape "
                f"{tuple(v.shape)}"
            )
        out.append(jnp.broadcast_to(v, (depth,)))
    return tuple(out)


def schedule(sigma2, beta, depth: int) -> np.ndarray:
    r"""Variance decay :math:`\sigma_l^2 = \sigma^2 l^{-\beta}` for blocks :math:`l = 1..`
    ``depth`` (Yang & Schoenholz 2018): pass the result as a layer-dependent variance."""
    V.variance("sigma2", sigma2, positive=True)
    V.real("beta", beta)
    depth = V.positive_int("depth", depth)
    return float(sigma2) * np.arange(1, depth + 1, dtype=np.float64) ** (-float(beta))


def _spec(act, sv, sa, sw, sb) -> layers.Residual:
    return layers.Residual(
        layers.serial(layers.Dense(sw, sb), layers.Phi(act), layers.Dense(sv, sa))
    )


def block(phi, sigma_v2, sigma_a2, sigma_w2=None, sigma_b2=None) -> layers.Residual:
    """One residual block as layer specs (:mod:`mftlib.layers`): ``Residual(serial(Dense(sigma_w2,
    sigma_b2), Phi(phi), Dense(sigma_v2, sigma_a2)))``; the reduced block (``sigma_w2=None``)
    has ``Dense(1, 0)``, the identity, in front. Hand it to :func:`mftlib.analyse`,
    :func:`mftlib.kernels` or :func:`mftlib.simulate`."""
    act, (sv, sa, sw, sb) = check_parameters(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    if any(jnp.ndim(v) for v in (sv, sa, sw, sb)):
        raise ValueError("block takes scalar variances (one block)")
    return _spec(act, sv, sa, sw, sb)


def _block(act: Activation, sv, sa, sw, sb, S):
    return _spec(act, sv, sa, sw, sb).kernel(S, None, ())[0]


def covariance_map(phi, sigma_v2, sigma_a2, Sigma, *, sigma_w2=None, sigma_b2=None) -> Array:
    r"""One residual block's map :math:`\Sigma^{l-1} \mapsto \Sigma^l` (module docstring).

    ``Sigma`` is the :math:`n\times n` covariance of the residual stream over ``n`` inputs;
    ``sigma_w2=None`` selects the reduced network.
    """
    act, (sv, sa, sw, sb) = check_parameters(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    if any(jnp.ndim(v) for v in (sv, sa, sw, sb)):
        raise ValueError(
            "covariance_map is one block: pass scalar variances (layer-dependent variances go to "
            "covariance_trajectory)"
        )
    V.covariance("Sigma", Sigma)
    return _block(act, sv, sa, sw, sb, jnp.asarray(Sigma, jnp.float64))


def covariance_trajectory(
    phi, sigma_v2, sigma_a2, Sigma0, depth: int, *, sigma_w2=None, sigma_b2=None
) -> Array:
    """:func:`covariance_map` iterated ``depth`` times from ``Sigma0``: ``(depth+1, n, n)``."""
    act, (sv, sa, sw, sb) = check_parameters(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    V.covariance("Sigma0", Sigma0)
    depth = V.nonneg_int("depth", depth)
    S0 = jnp.asarray(Sigma0, jnp.float64)
    if all(jnp.ndim(v) == 0 for v in (sv, sa, sw, sb)):
        return dynamics.iterate(lambda S: _block(act, sv, sa, sw, sb, S), S0, depth)
    per_layer = per_layer_variances(depth, sv, sa, sw, sb)
    return dynamics.iterate_driven(lambda S, v: _block(act, *v, S), S0, per_layer)


@partial(jax.jit, static_argnums=(0, 6))
def _lengths(act: Activation, sv, sa, sw, sb, p0, depth: int):
    def step(p, variances):
        v, a, w, b = variances
        return p + v * act.mean_square(w * p + b) + a

    if all(jnp.ndim(v) == 0 for v in (sv, sa, sw, sb)):
        p = dynamics.iterate(lambda p: step(p, (sv, sa, sw, sb)), p0, depth)
        return p, sw * p[:-1] + sb
    per_layer = per_layer_variances(depth, sv, sa, sw, sb)
    p = dynamics.iterate_driven(step, p0, per_layer)
    return p, per_layer[2] * p[:-1] + per_layer[3]


def length_trajectory(
    phi, sigma_v2, sigma_a2, p0, depth: int, *, sigma_w2=None, sigma_b2=None
) -> dict:
    r"""Length :math:`p^l` of the residual stream, :math:`l = 0..` ``depth``, and :math:`q^l`.

    :math:`q^l = \sigma_w^2 p^{l-1} + \sigma_b^2`,
    :math:`p^l = p^{l-1} + \sigma_v^2\,\mathbb{E}[\phi(\sqrt{q^l}z)^2] + \sigma_a^2`.

    Returns:
        dict with ``p`` ``(depth+1,)`` and ``q`` ``(depth,)`` (``q[l-1]`` is :math:`q^l`).
    """
    act, (sv, sa, sw, sb) = check_parameters(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    V.variance("p0", p0)
    depth = V.positive_int("depth", depth)
    p, q = _lengths(act, sv, sa, sw, sb, jnp.asarray(p0, jnp.float64), depth)
    return {"p": np.asarray(p), "q": np.asarray(q)}


def _backward(phi, sigma_v2, sigma_a2, p0, depth, sigma_w2, sigma_b2) -> dict:
    """Validated forward lengths and the per-block log gradient factors of
    the gradient recursion (module docstring), shared by the gradient functions below."""
    act, (sv, sa, sw, sb) = check_parameters(phi, sigma_v2, sigma_a2, sigma_w2, sigma_b2)
    V.variance("p0", p0)
    depth = V.positive_int("depth", depth)
    p, q = _lengths(act, sv, sa, sw, sb, jnp.asarray(p0, jnp.float64), depth)
    sv, sw = per_layer_variances(depth, sv, sw)
    dphi2 = act.mean_square_derivative(q)
    return {
        "act": act,
        "p": np.asarray(p),
        "q": np.asarray(q),
        "sv": np.asarray(sv),
        "dphi2": np.asarray(dphi2),
        "log_factor": np.asarray(jnp.log1p(sv * sw * dphi2)),
    }


def gradient_trajectory(
    phi, sigma_v2, sigma_a2, p0, depth: int, *, sigma_w2=None, sigma_b2=None
) -> np.ndarray:
    r"""Gradient amplification :math:`\chi^l/\chi^{L}` for :math:`l = 0..L` (``L = depth``).

    :math:`\log(\chi^l/\chi^L) = \sum_{k=l+1}^{L} \log(1 + \sigma_v^2\sigma_w^2\,
    \mathbb{E}[\phi'(\sqrt{q^k}z)^2])` along the lengths of :func:`length_trajectory`.
    """
    log_factor = _backward(phi, sigma_v2, sigma_a2, p0, depth, sigma_w2, sigma_b2)["log_factor"]
    tail = np.cumsum(log_factor[::-1])[::-1]
    return np.exp(np.concatenate([tail, [0.0]]))


def gradient_amplification(
    phi, sigma_v2, sigma_a2, p0, depth: int, *, sigma_w2=None, sigma_b2=None
) -> np.ndarray:
    r"""Input-to-output gradient amplification :math:`\chi^0/\chi^L` of the networks of every
    depth :math:`L = 0..` ``depth`` at once (entry ``L``; entry 0 is 1).

    A network of depth :math:`L` sees the same lengths :math:`q^1..q^L` as the first :math:`L`
    blocks of a deeper one, so :math:`\log(\chi^0/\chi^L)` is a cumulative sum of the factors
    of :func:`gradient_trajectory`.
    """
    log_factor = _backward(phi, sigma_v2, sigma_a2, p0, depth, sigma_w2, sigma_b2)["log_factor"]
    return np.exp(np.concatenate([[0.0], np.cumsum(log_factor)]))


def weight_gradients(
    phi,
    sigma_v2,
    sigma_a2,
    p0,
    depth: int,
    *,
    sigma_w2,
    sigma_b2=None,
    width: int = 1,
    hidden_widths=None,
) -> dict:
    r"""Mean squared gradient per *weight* of each block of a full residual net, for the loss
    :math:`E = N^{-1/2} v\cdot x^L` (:math:`\chi^L = 1/N`), with hidden widths :math:`M_l`.

    Block :math:`l` has :math:`W^l \in \mathbb{R}^{M_l\times N}`
    (:math:`\sigma_{w,l}^2/N`) and :math:`V^l \in \mathbb{R}^{N\times M_l}`
    (:math:`\sigma_{v,l}^2/M_l`), so the forward maps do not involve :math:`M_l`, and
    (gradient independence)

    .. math::

       \mathbb{E}\Bigl(\frac{\partial E}{\partial W^l_{jk}}\Bigr)^2
       = \frac{N\sigma_{v,l}^2}{M_l}\,\chi^l\,\mathbb{E}[\phi'(\sqrt{q^l}z)^2]\,p^{l-1},
       \qquad
       \mathbb{E}\Bigl(\frac{\partial E}{\partial V^l_{ij}}\Bigr)^2
       = \chi^l\,\mathbb{E}[\phi(\sqrt{q^l}z)^2] .

    Args:
        width: :math:`N`, the width of the residual stream.
        hidden_widths: :math:`M_l` for ``l = 1..depth`` (default: ``width`` everywhere).

    Returns:
        dict with ``W`` and ``V`` ``(depth,)`` and ``chi`` ``(depth+1,)`` (:math:`\chi^l`).
    """
    if sigma_w2 is None:
        raise ValueError("weight gradients are defined here for the full net: pass sigma_w2")
    b = _backward(phi, sigma_v2, sigma_a2, p0, depth, sigma_w2, sigma_b2)
    depth = len(b["q"])
    n = V.positive_int("width", width)
    m = np.full(depth, n, np.float64) if hidden_widths is None else np.asarray(hidden_widths, float)
    if m.shape != (depth,) or np.any(m < 1):
        raise ValueError(f"hidden_widths must hold {depth} widths >= 1, got {hidden_widths!r}")
    tail = np.cumsum(b["log_factor"][::-1])[::-1]
    chi = np.exp(np.concatenate([tail, [0.0]])) / n
    return {
        "W": n * b["sv"] / m * chi[1:] * b["dphi2"] * b["p"][:-1],
        "V": chi[1:] * np.asarray(b["act"].mean_square(b["q"])),
        "chi": chi,
    }


def decay_phase_diagram(
    phi, beta_v, beta_w, depth: int, sigma_v2=1.0, sigma_w2=1.0, p0=1.0
) -> np.ndarray:
    r"""Gradient amplification :math:`\log(\chi^0/\chi^L)` of full residual nets with variance
    decay :math:`\sigma_{v,l}^2 = \sigma_v^2 l^{-\beta_v}`, :math:`\sigma_{w,l}^2 = \sigma_w^2
    l^{-\beta_w}` (no biases), over a grid of decay exponents.

    Args:
        beta_v, beta_w: 1-D grids of exponents.
        depth: :math:`L`.

    Returns:
        ``(len(beta_v), len(beta_w))`` array of :math:`\log(\chi^0/\chi^L)` (natural log).
    """
    act = activation(phi)
    bv = np.asarray(V.grid("beta_v", beta_v), np.float64)
    bw = np.asarray(V.grid("beta_w", beta_w), np.float64)
    depth = V.positive_int("depth", depth)
    V.variance("sigma_v2", sigma_v2, positive=True)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("p0", p0)
    ell = jnp.arange(1, depth + 1, dtype=jnp.float64)
    zero = jnp.zeros(depth)

    def one(b_v, b_w):
        sv = sigma_v2 * ell ** (-b_v)
        sw = sigma_w2 * ell ** (-b_w)
        _, q = _lengths(act, sv, zero, sw, zero, jnp.asarray(p0, jnp.float64), depth)
        return jnp.sum(jnp.log1p(sv * sw * act.mean_square_derivative(q)))

    grid = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))
    return np.asarray(grid(jnp.asarray(bv), jnp.asarray(bw)))


def exponents(phi, sigma_v2=1.0, sigma_a2=0.0, sigma_w2=None) -> dict:
    r"""The asymptotic laws of Yang & Schoenholz (2017) for tanh and the :math:`\alpha`-ReLU.

    Returns a dict with

    * ``length``: :math:`\gamma` in :math:`p^l \propto l^{\gamma}` (tanh: 1; :math:`\alpha`-ReLU:
      :math:`1/(1-\alpha)`);
    * ``gradient_kind``: ``"exp_sqrt"`` (tanh: :math:`\log\chi^0/\chi^L \approx
      \kappa_{\nabla}\sqrt{L}`) or ``"power"`` (:math:`\alpha`-ReLU: :math:`\chi^0/\chi^L
      \propto L^{\delta}`);
    * ``gradient``: :math:`\kappa_\nabla = \kappa\,\sigma_v^2\sigma_w/\sqrt{\sigma_v^2 +
      \sigma_a^2}` for tanh, :math:`\delta = \alpha^2/((1-\alpha)(2\alpha-1))` for the
      :math:`\alpha`-ReLU (independent of the variances).

    Other activations raise ``ValueError``: their laws are not derived here (iterate the maps).
    """
    act = activation(phi)
    V.variance("sigma_v2", sigma_v2, positive=True)
    V.variance("sigma_a2", sigma_a2)
    sw = 1.0 if sigma_w2 is None else float(V.variance("sigma_w2", sigma_w2, positive=True))
    alpha = getattr(act, "alpha", None)
    if act.name == "tanh":
        k = TANH_GRADIENT_CONSTANT * sigma_v2 * math.sqrt(sw / (sigma_v2 + sigma_a2))
        return {"length": 1.0, "gradient_kind": "exp_sqrt", "gradient": k}
    if alpha is not None and alpha < 1.0:
        return {
            "length": 1.0 / (1.0 - alpha),
            "gradient_kind": "power",
            "gradient": alpha**2 / ((1.0 - alpha) * (2.0 * alpha - 1.0)),
        }
    raise ValueError(
        f"asymptotic exponents are derived for tanh and alpha_relu(alpha < 1), not {act.name}; "
        "iterate length_trajectory / gradient_trajectory instead"
    )


def _normalised_kernel(act: Activation):
    """``K(e) = E[phi(z1) phi(z2)] / E[phi(z)^2]`` for unit variances and correlation ``e``."""
    norm = float(act.mean_square(1.0))
    return lambda e: float(act.pair_moment(1.0, 1.0, e)) / norm


def correlation_fixed_point(phi, sigma_v2=1.0, sigma_a2=0.0) -> dict:
    r"""Asymptotic fixed point :math:`e^*` of the correlation of two inputs in a residual stream,
    and the power law of its approach (zero :math:`\sigma_b^2`; any :math:`\sigma_w^2`).

    With equal lengths :math:`p` and :math:`\varepsilon = \sigma_v^2\mathbb{E}\phi^2/p \to 0`, one
    block changes :math:`\log p` by :math:`\varepsilon` and the correlation by
    :math:`\varepsilon\,(G(e) - e)`, so to first order in :math:`\varepsilon`

    .. math::

       \frac{de}{d\log p} = G(e) - e, \qquad
       e^* - e^l \propto p^{-\nu}, \quad \nu = 1 - G'(e^*), \qquad
       e^* - e^l \propto l^{-\mu}, \quad \mu = \gamma\,\nu,

    with :math:`\gamma` the length exponent (:func:`exponents`). For tanh at large length
    :math:`\phi` acts as a sign, :math:`G(e) = (\sigma_v^2\,\tfrac2\pi\arcsin e + \sigma_a^2) /
    (\sigma_v^2 + \sigma_a^2)` (:math:`e^* = 0`, :math:`\mu = 1 - 2/\pi` at :math:`\sigma_a = 0`;
    :math:`e^* > 0` otherwise). For the :math:`\alpha`-ReLU, :math:`G = K`, the normalised kernel
    :math:`\mathbb{E}[\phi(z_1)\phi(z_2)]/\mathbb{E}\phi^2` (quadrature), independent of the
    variances: :math:`\sigma_a^2/p` vanishes faster than :math:`\varepsilon`, so
    :math:`\sigma_a^2` does not move :math:`e^*`, and :math:`\mu = (1 - K'(e^*))/(1-\alpha)`.

    Returns:
        dict with ``e_star``, ``slope`` (:math:`G'(e^*)`), ``nu`` and ``mu``.
    """
    from scipy.optimize import brentq

    act = activation(phi)
    V.variance("sigma_v2", sigma_v2, positive=True)
    V.variance("sigma_a2", sigma_a2)
    sv, sa = float(sigma_v2), float(sigma_a2)
    gamma = exponents(act)["length"]
    if act.name == "tanh":
        tot = sv + sa

        def g(e):
            return (sv * 2.0 / math.pi * math.asin(e) + sa) / tot

        def dg(e):
            return sv * 2.0 / (math.pi * math.sqrt(1.0 - e * e)) / tot

        e_star = 0.0 if sa == 0.0 else brentq(lambda e: g(e) - e, 0.0, 1.0 - 1e-15, xtol=1e-15)
        slope = dg(e_star)
    else:
        k = _normalised_kernel(act)
        e_star = brentq(lambda e: k(e) - e, 0.0, 1.0 - 1e-7, xtol=1e-13)
        h = min(1e-5, (1.0 - e_star) / 4)
        slope = (k(e_star + h) - k(e_star - h)) / (2 * h)
    nu = 1.0 - slope
    return {
        "e_star": float(e_star),
        "slope": float(slope),
        "nu": float(nu),
        "mu": gamma * nu,
    }


def amplification_law(phi, sigma_v2, p0, depth: int, *, sigma_a2=0.0, sigma_w2=None) -> dict:
    r"""Asymptotic gradient amplification :math:`\chi^0/\chi^L` for :math:`L = 0..` ``depth``,
    with its depth scale :math:`l_0` (zero :math:`\sigma_b^2`).

    * :math:`\alpha`-ReLU (:math:`\sigma_a = 0`): :math:`p^{1-\alpha} \approx p_0^{1-\alpha}
      (1 + l/l_0)` with :math:`l_0 = p_0^{1-\alpha}/((1-\alpha)\sigma_v^2 c_\alpha
      \sigma_w^{2\alpha})`, each block multiplies :math:`\chi` by :math:`1 + \delta/(l_0 + l)`,
      and :math:`\chi^0/\chi^L \approx (1 + L/l_0)^{\delta}`.
    * tanh: :math:`p^l \approx p_0 + (\sigma_v^2+\sigma_a^2) l`, :math:`l_0 = p_0/(\sigma_v^2 +
      \sigma_a^2)`, :math:`\log(\chi^0/\chi^L) \approx \kappa_\nabla(\sqrt{L + l_0} -
      \sqrt{l_0})` with :math:`\kappa_\nabla` of :func:`exponents`
      (:math:`\kappa\sigma_v\sigma_w` at :math:`\sigma_a = 0`).

    Both depend on :math:`\sigma_v^2` and :math:`L` only through :math:`\sigma_v^2 L` (at fixed
    :math:`p_0`, :math:`\sigma_w^2`, :math:`\sigma_a = 0`): the dimensional analysis of Yang &
    Schoenholz (2017).

    Returns:
        dict with ``amplification`` ``(depth+1,)`` and ``l0``.
    """
    act = activation(phi)
    V.variance("sigma_v2", sigma_v2, positive=True)
    V.variance("p0", p0, positive=True)
    V.variance("sigma_a2", sigma_a2)
    depth = V.nonneg_int("depth", depth)
    sw = 1.0 if sigma_w2 is None else float(V.variance("sigma_w2", sigma_w2, positive=True))
    sv, sa, p0 = float(sigma_v2), float(sigma_a2), float(p0)
    e = exponents(act, sv, sa, sigma_w2)
    ell = np.arange(depth + 1, dtype=np.float64)
    if e["gradient_kind"] == "power":
        if sa != 0.0:
            raise ValueError("the alpha-ReLU amplification law is derived for sigma_a2 = 0")
        a = act.alpha
        c_a = float(act.mean_square(1.0))
        l0 = p0 ** (1 - a) / ((1 - a) * sv * c_a * sw**a)
        amp = (1.0 + ell / l0) ** e["gradient"]
    else:
        l0 = p0 / (sv + sa)
        amp = np.exp(e["gradient"] * (np.sqrt(ell + l0) - np.sqrt(l0)))
    return {"amplification": amp, "l0": float(l0)}


#: A coarser rule for the 2-D moments of :func:`squared_distance` (tested against
#: :func:`covariance_trajectory`: relative error below 1e-7 for tanh, 1e-4 for the alpha-ReLU).
DISTANCE_RULE = gaussian.QuadratureRule(uniform_panels=4, graded_panels=4, ratio=0.3, nodes=6)


@partial(jax.jit, static_argnums=(0, 6, 7))
def _pair_distances(act: Activation, sv, sa, sw, sb, S0, depth: int, rule):
    def step(S, v):
        q = sw * S + sb
        if act.closed_pair_moment is not None:
            k = act.pair_moment(q[0], q[1], q[2])
        else:
            k = gaussian.expect2(act.fn, act.fn, q[0], q[1], q[2], rule)
        new = S + v * jnp.stack([act.mean_square(q[0]), act.mean_square(q[1]), k]) + sa
        return new, new

    def trajectory(v, S):
        x0 = jnp.stack([S[0, 0], S[1, 1], S[0, 1]])
        _, T = jax.lax.scan(lambda x, _: step(x, v), x0, None, length=depth)
        T = jnp.concatenate([x0[None], T])
        return T[:, 0] + T[:, 1] - 2.0 * T[:, 2]

    return jax.vmap(lambda v: jax.vmap(lambda S: trajectory(v, S))(S0))(sv)


def squared_distance(
    phi, sigma_v2s, Sigma0, depth: int, *, sigma_a2=0.0, sigma_w2=None, sigma_b2=None
) -> np.ndarray:
    r"""Metric expressivity: the squared distance :math:`s^l = \Sigma^l_{aa} + \Sigma^l_{bb} -
    2\Sigma^l_{ab}` (:math:`= \|x^l_a - x^l_b\|^2/N` in the mean field) between two inputs,
    :math:`l = 0..` ``depth``, for every :math:`\sigma_v^2` of ``sigma_v2s`` and every input
    pair of ``Sigma0``, along :func:`covariance_trajectory` (scalar variances).

    Args:
        sigma_v2s: 1-D grid of :math:`\sigma_v^2 > 0`.
        Sigma0: ``(2, 2)`` covariance of one pair at :math:`x^0`, or ``(P, 2, 2)`` for ``P``
            pairs.

    Returns:
        ``(len(sigma_v2s), P, depth+1)`` array (``P = 1`` for a single pair); entry
        ``[i, j, L]`` is :math:`s^L` of pair ``j`` in the nets of depth :math:`L` (a net of depth
        :math:`L` sees the first :math:`L` blocks of a deeper one).
    """
    sv = np.asarray(V.grid("sigma_v2s", sigma_v2s), np.float64)
    if np.any(sv <= 0):
        raise ValueError(f"sigma_v2s must be > 0, got {sigma_v2s!r}")
    act, (_, sa, sw, sb) = check_parameters(phi, sv[0], sigma_a2, sigma_w2, sigma_b2)
    if any(jnp.ndim(v) for v in (sa, sw, sb)):
        raise ValueError("squared_distance takes scalar sigma_a2, sigma_w2, sigma_b2")
    S0 = np.asarray(Sigma0, np.float64)
    if S0.shape == (2, 2):
        S0 = S0[None]
    if S0.ndim != 3 or S0.shape[1:] != (2, 2):
        raise ValueError(f"Sigma0 must be (2, 2) or (P, 2, 2), got shape {S0.shape}")
    for j, S in enumerate(S0):
        V.covariance(f"Sigma0[{j}]", S)
    depth = V.nonneg_int("depth", depth)
    s = _pair_distances(act, jnp.asarray(sv), sa, sw, sb, jnp.asarray(S0), depth, DISTANCE_RULE)
    return np.asarray(s)
