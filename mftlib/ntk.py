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

import jax
import numpy as np

from mftlib import _validate as V
from mftlib import core, layers

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
