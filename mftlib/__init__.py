"""mftlib: mean-field theory of deep neural networks, in JAX.

A mean-field layer is a deterministic map on covariance matrices, Sigma_{l+1} = F(Sigma_l). Each
architecture supplies its map; :mod:`mftlib.dynamics` finds fixed points, linearises, and turns the
eigenvalues into depth scales for all of them. Importing mftlib switches JAX to float64.

Modules: :mod:`~mftlib.gaussian` (Gaussian expectations), :mod:`~mftlib.activations`,
:mod:`~mftlib.hermite` (series for large batches), :mod:`~mftlib.dynamics` (the generic toolbox),
:mod:`~mftlib.dense` (fully connected nets; its main names are re-exported here),
:mod:`~mftlib.ntk` (neural tangent kernel), :mod:`~mftlib.resnet` (residual networks),
:mod:`~mftlib.recurrent` (RNN, minimalRNN, GRU and LSTM through time),
:mod:`~mftlib.gp` (Gaussian-process prediction),
:mod:`~mftlib.batchnorm` (batch normalisation), :mod:`~mftlib.conv` (convolutions),
:mod:`~mftlib.spectra` (Jacobian spectra), :mod:`~mftlib.graph` (graph networks on the SBM),
:mod:`~mftlib.dropout`, :mod:`~mftlib.dmft` (the random recurrent net of Sompolinsky et al.),
:mod:`~mftlib.expressivity` (manifolds through deep nets) and :mod:`~mftlib.networks` (finite
random networks for simulation). Three modules are imported on their own, to keep
``import mftlib`` light: ``from mftlib import plotting, datasets, training`` (matplotlib,
scikit-learn, optax).
"""

from mftlib import (
    activations,
    batchnorm,
    conv,
    dense,
    dmft,
    dropout,
    dynamics,
    expressivity,
    gaussian,
    gp,
    graph,
    hermite,
    networks,
    ntk,
    recurrent,
    resnet,
    spectra,
)
from mftlib._config import by_scale, ensure_x64, scale
from mftlib.activations import Activation, activation, known_activations
from mftlib.batchnorm import bn_fixed_point, bn_gradient_rate
from mftlib.dense import (
    c_star,
    chi1,
    correlation_map,
    covariance_map,
    covariance_trajectory,
    critical_sigma_w2,
    depth_scales,
    gradient_depth_scale,
    length_map,
    nngp_kernel,
    phase_diagram,
    q_star,
)
from mftlib.dmft import scs_autocorrelation, scs_delta0, scs_lyapunov
from mftlib.ntk import nngp_and_ntk, ntk_kernel

ensure_x64()

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "activations",
    "batchnorm",
    "conv",
    "dense",
    "dmft",
    "dropout",
    "dynamics",
    "expressivity",
    "gaussian",
    "gp",
    "graph",
    "hermite",
    "networks",
    "ntk",
    "recurrent",
    "resnet",
    "spectra",
    "activation",
    "bn_fixed_point",
    "bn_gradient_rate",
    "by_scale",
    "c_star",
    "chi1",
    "correlation_map",
    "covariance_map",
    "covariance_trajectory",
    "critical_sigma_w2",
    "depth_scales",
    "gradient_depth_scale",
    "known_activations",
    "length_map",
    "nngp_and_ntk",
    "nngp_kernel",
    "ntk_kernel",
    "phase_diagram",
    "q_star",
    "scale",
    "scs_autocorrelation",
    "scs_delta0",
    "scs_lyapunov",
]
