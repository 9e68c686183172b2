r"""The neural tangent kernel of a deep fully connected network (Jacot et al. 2018).

Parameterisation (the "NTK parameterisation" of Jacot et al. and of neural-tangents'
``parameterization='ntk'``): the trained parameters are unit Gaussians :math:`\omega, \beta`,

.. math::

   h^0 = \frac{\sigma_w}{\sqrt d}\,\omega^0 x + \sigma_b \beta^0, \qquad
   h^{l} = \frac{\sigma_w}{\sqrt{N_{l-1}}}\,\omega^{l} \phi(h^{l-1}) + \sigma_b \beta^{l},

so the forward pass, and hence the NNGP kernel :math:`K^l`, is exactly that of
:func:`mftlib.nngp_kernel` (the same network written differently). The kernel of gradient descent
on :math:`(\omega, \beta)`, :math:`\Theta(x, x') = \sum_p \partial_p f(x)\,\partial_p f(x')`,
becomes deterministic as the widths grow and obeys (Jacot et al. 2018, Theorem 1; Lee et al. 2019,
eq. 7)

.. math::

   \Theta^0 = K^0, \qquad
   \Theta^{l+1} = K^{l+1} + \sigma_w^2\,
   \mathbb{E}_{(u, u') \sim \mathcal{N}(0, K^l)}[\phi'(u)\phi'(u')]\;\Theta^{l},

where the first term is the contribution of layer :math:`l+1`'s own parameters and the second
carries the earlier layers' contributions through the layer's Jacobian. The finite network that
this kernel describes is in ``mftlib.networks.ntk`` (:func:`mftlib.networks.init_ntk`).
"""

from __future__ import annotations

from functools import partial

import jax
import numpy as np

from mftlib import _validate as V
from mftlib._config import ensure_x64
from mftlib.activations import Activation
from mftlib.dense import _f64, _nngp_input_layer, _params

ensure_x64()

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
    NTK follows the recursion in the module docstring. Gaussian expectations use the closed forms
    where they exist (ReLU, erf, linear) and 2-D quadrature otherwise (fine for a few hundred
    inputs; the kernels of thousands of inputs are fast only for the closed forms).

    Args:
        x1: inputs ``(n1, d)``; x2: inputs ``(n2, d)`` or ``None`` for ``x1``.
        phi, sigma_w2, sigma_b2: activation and variances (``sigma_w2 > 0``).
        depth: number of hidden layers (>= 0).

    Returns:
        ``(K, Theta)``, each ``(n1, n2)``, float64.
    """
    act = _params(phi, sigma_w2, sigma_b2)
    V.variance("sigma_w2", sigma_w2, positive=True)
    x2 = _check_inputs(x1, x2)
    depth = V.nonneg_int("depth", depth)
    sw, sb = _f64(sigma_w2), _f64(sigma_b2)
    d1, d2, k12 = _nngp_input_layer(_f64(x1), _f64(x2), sw, sb)
    return _ntk_layers(act, d1, d2, k12, sw, sb, depth)


def ntk_kernel(x1, x2, phi, sigma_w2, sigma_b2, depth: int) -> Array:
    r"""The NTK :math:`\Theta` after ``depth`` hidden layers (see :func:`nngp_and_ntk`)."""
    return nngp_and_ntk(x1, x2, phi, sigma_w2, sigma_b2, depth)[1]


@partial(jax.jit, static_argnums=(0, 6))
def _ntk_layers(act: Activation, d1, d2, k12, sw, sb, depth: int):
    pair = jax.vmap(jax.vmap(act.pair_moment, (None, 0, 0)), (0, None, 0))
    dpair = jax.vmap(jax.vmap(act.deriv_pair_moment, (None, 0, 0)), (0, None, 0))

    def layer(carry, _):
        a, b, k, theta = carry
        k_next = sw * pair(a, b, k) + sb
        theta = k_next + sw * dpair(a, b, k) * theta
        return (sw * act.mean_square(a) + sb, sw * act.mean_square(b) + sb, k_next, theta), None

    (_, _, k, theta), _ = jax.lax.scan(layer, (d1, d2, k12, k12), None, length=depth)
    return k, theta
