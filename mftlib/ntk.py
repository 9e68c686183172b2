r"""The neural tangent kernel of a deep fully connected network (Jacot et al. 2018).

Parameterisation (the "NTK parameterisation" of Jacot et al. and of neural-tangents'
``parameterization='ntk'``): the trained parameters are unit Gaussians :math:`\omega, \beta`,

.. math::

   h^0 = \frac{\sigma_w}{\sqrt d}\,\omega^0 x + \sigma_b \beta^0, \qquad
   h^{l} = \frac{\sigma_w}{\sqrt{N_{l-1}}}\,\omega^{l} \phi(h^{l-1}) + \sigma_b \beta^{l},

so the forward pass, and hence the NNGP kernel :math:`K^l`, is exactly that of
:func:`mftlib.nngp_kernel` (the same network written differently). The kernel of gradient descent
on :math:`(\omega, \beta)`, :math:`\Theta(x, x') = \sum_p \partial_p f(x)\,\partial_p f(x')`,
becomes deterministic as the widths grow and obeys (Jacot et al. 2018)

.. math::

   \Theta^0 = K^0, \qquad
   \Theta^{l+1} = K^{l+1} + \sigma_w^2\,
   \mathbb{E}_{(u, u') \sim \mathcal{N}(0, K^l)}[\phi'(u)\phi'(u')]\;\Theta^{l},

where the first term is the contribution of layer :math:`l+1`'s own parameters and the second
carries the earlier layers' contributions through the layer's Jacobian. Unrolled, the NTK is a
sum over layers: the parameters of layer :math:`l` contribute
:math:`K^l \odot \dot K^{l} \odot \cdots \odot \dot K^{L-1}` to :math:`\Theta^L`, with
:math:`\dot K^m = \sigma_w^2\,\mathbb{E}[\phi'(u)\phi'(u')]` at :math:`K^m`
(:func:`ntk_depth_profile` gives these shares on the diagonal). On the diagonal at the fixed point
:math:`q^*` the factor is :math:`\chi_1`, so in the ordered phase (:math:`\chi_1 < 1`) the diagonal
saturates, :math:`\Theta^L(x, x) \to q^*/(1 - \chi_1)` (:func:`ntk_diagonal_limit`), while it
grows as :math:`\chi_1^L` in the chaotic phase. The finite network that this kernel describes is
in ``mftlib.networks.ntk`` (:func:`mftlib.networks.init_ntk`).
"""

from __future__ import annotations

import jax
import numpy as np

from mftlib import _validate as V
from mftlib import core, dense, layers
from mftlib.activations import activation

Array = jax.Array


def _check_inputs(x1, x2):
    V.matrix("x1", x1)
    x2 = x1 if x2 is None else x2
    V.matrix("x2", x2)
    if np.shape(x1)[1] != np.shape(x2)[1]:
        raise ValueError(
            f"x1 and x2 must have the same number of features, got {np.shape(x1)} and "
            f"{np.shape(x2)}"
        )
    return x2


def nngp_and_ntk(x1, x2, phi, sigma_w2, sigma_b2, depth: int) -> tuple[Array, Array]:
    r"""The NNGP kernel :math:`K` and the NTK :math:`\Theta` after ``depth`` hidden layers.

    Same convention as :func:`mftlib.nngp_kernel` (layer 0 kernel
    :math:`\sigma_b^2 + \sigma_w^2 x\cdot x'/d`, ``depth`` hidden layers, then the readout); the
    NTK follows the recursion in the module docstring, computed by :func:`mftlib.kernels` on
    :func:`mftlib.ntk.network` (the layer specs of :mod:`mftlib.layers`). Gaussian expectations use
    the
    closed forms where they exist (ReLU, erf, linear) and 2-D quadrature otherwise (fine for a
    few hundred inputs; the kernels of thousands of inputs are fast only for the closed forms).

    Args:
        x1: inputs ``(n1, d)``; x2: inputs ``(n2, d)`` or ``None`` for ``x1``.
        phi, sigma_w2, sigma_b2: activation and variances (``sigma_w2 > 0``).
        depth: number of hidden layers (>= 0).

    Returns:
        ``(K, Theta)``, each ``(n1, n2)``, float64.
    """
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("sigma_b2", sigma_b2)
    x2 = _check_inputs(x1, x2)
    depth = V.nonneg_int("depth", depth)
    out = core.kernels(network(phi, sigma_w2, sigma_b2, depth), x1, None if x2 is x1 else x2)
    return out.nngp, out.ntk


def network(phi, sigma_w2, sigma_b2, depth: int) -> layers.Serial:
    """The network of :func:`mftlib.nngp_and_ntk` as layer specs: ``serial(Dense, repeat(serial(Phi,
    Dense), depth))``, all dense layers with the same variances."""
    dense = layers.Dense(sigma_w2, sigma_b2)
    return layers.serial(dense, layers.repeat(layers.serial(layers.Phi(phi), dense), depth))


def ntk_kernel(x1, x2, phi, sigma_w2, sigma_b2, depth: int) -> Array:
    r"""The NTK :math:`\Theta` after ``depth`` hidden layers (see :func:`mftlib.nngp_and_ntk`)."""
    return nngp_and_ntk(x1, x2, phi, sigma_w2, sigma_b2, depth)[1]


def ntk_depth_profile(x, phi, sigma_w2, sigma_b2, depth: int) -> np.ndarray:
    r"""Each layer's share of the NTK diagonal :math:`\Theta^L(x_a, x_a)`, for every depth ``L``.

    With :math:`q^0_a = \sigma_b^2 + \sigma_w^2 \lVert x_a\rVert^2/d`, the length map
    :math:`q^{m+1}_a = \sigma_w^2\,\mathbb{E}[\phi(\sqrt{q^m_a} z)^2] + \sigma_b^2` and the
    per-layer gradient factor :math:`\chi^m_a = \sigma_w^2\,\mathbb{E}[\phi'(\sqrt{q^m_a} z)^2]`,
    the diagonal of the recursion in the module docstring unrolls to

    .. math::

       \Theta^L(x_a, x_a) = \sum_{l=0}^{L} s^{L}_{l}(a), \qquad
       s^L_l(a) = q^l_a \prod_{m=l}^{L-1} \chi^m_a ,

    the share :math:`s^L_l` of the parameters of layer :math:`l` (weights and biases) in the NTK
    of a network whose readout is layer :math:`L`. At the fixed point the last layers' shares are
    :math:`q^*`, :math:`q^*\chi_1`, :math:`q^*\chi_1^2, \dots`: in the ordered phase the early
    layers' shares decay and the sum saturates at :func:`ntk_diagonal_limit`.

    Args:
        x: inputs ``(n, d)``.
        phi, sigma_w2, sigma_b2: activation and variances (``sigma_w2 > 0``).
        depth: the largest number of hidden layers ``L`` (>= 0).

    Returns:
        ``shares`` of shape ``(depth + 1, depth + 1, n)``, float64: ``shares[L, l, a]`` is
        :math:`s^L_l(a)` (zero for ``l > L``); ``shares[L].sum(0)`` is the diagonal of
        :func:`mftlib.ntk_kernel` at depth ``L``.
    """
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("sigma_b2", sigma_b2)
    x = np.asarray(V.matrix("x", x), np.float64)
    depth = V.nonneg_int("depth", depth)
    sw, sb = float(sigma_w2), float(sigma_b2)
    q = [sb + sw * np.sum(x * x, axis=1) / x.shape[1]]
    chi = []
    for _ in range(depth):
        chi.append(sw * np.asarray(act.mean_square_derivative(q[-1])))
        q.append(sw * np.asarray(act.mean_square(q[-1])) + sb)
    shares = np.zeros((depth + 1, depth + 1, x.shape[0]))
    for L in range(depth + 1):
        factor = np.ones(x.shape[0])
        for layer in range(L, -1, -1):
            shares[L, layer] = q[layer] * factor
            if layer > 0:
                factor = factor * chi[layer - 1]
    return shares


def ntk_diagonal_limit(phi, sigma_w2, sigma_b2) -> float:
    r"""The deep limit :math:`\lim_{L\to\infty}\Theta^L(x, x) = q^*/(1 - \chi_1)` of the NTK
    diagonal in the ordered phase.

    The diagonal obeys :math:`\Theta^{l+1} = q^{l+1} + \chi^l\,\Theta^l`; once
    :math:`q^l = q^*` it is a linear recursion with slope :math:`\chi_1` and fixed point
    :math:`q^*/(1-\chi_1)`, reached at the rate :math:`\chi_1^L` whatever the input.

    Returns:
        the limit as a float; ``inf`` where :math:`\chi_1 \ge 1` (the diagonal grows without
        bound, linearly at criticality and as :math:`\chi_1^L` beyond) or :math:`q^* = \infty`.
    """
    q = float(dense.q_star(phi, sigma_w2, sigma_b2))
    if not np.isfinite(q):
        return float("inf")
    chi = float(dense.chi1(phi, sigma_w2, sigma_b2))
    return q / (1.0 - chi) if chi < 1.0 else float("inf")
