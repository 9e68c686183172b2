"""mftlib: mean-field theory of deep neural networks, in JAX.

A mean-field layer is a deterministic map on covariance matrices, Sigma_{l+1} = F(Sigma_l). The
composable core: :mod:`~mftlib.layers` (specs ``Dense``, ``Phi``, ``Dropout``, ``Conv``,
``Residual``, ``GlobalAvgPool``, ``serial``, ``repeat``; each carries its covariance map, with the
NTK, and its finite random network) and :mod:`~mftlib.core` (``analyse``, ``analyse_grid``,
``kernels``, ``simulate``, re-exported here). Architectures whose state is not a covariance over
inputs (batch norm, recurrent cells, graphs, DMFT, spectra) keep their own maps; for all of them
:mod:`mftlib.dynamics` finds fixed points, linearises, and turns the eigenvalues into depth scales.
Importing mftlib switches JAX to float64. See ARCHITECTURE.md in the repository.

Modules: :mod:`~mftlib.gaussian` (Gaussian expectations), :mod:`~mftlib.activations`,
:mod:`~mftlib.hermite` (series for large batches), :mod:`~mftlib.dynamics` (the generic toolbox),
:mod:`~mftlib.dense` (fully connected nets; its main names are re-exported here),
:mod:`~mftlib.ntk` (neural tangent kernel), :mod:`~mftlib.resnet` (residual networks),
:mod:`~mftlib.recurrent` (RNN, minimalRNN, GRU and LSTM through time),
:mod:`~mftlib.gp` (Gaussian-process prediction),
:mod:`~mftlib.batchnorm` (batch normalisation), :mod:`~mftlib.conv` (convolutions),
:mod:`~mftlib.spectra` (Jacobian spectra), :mod:`~mftlib.graph` (graph networks on the SBM),
:mod:`~mftlib.dropout`, :mod:`~mftlib.dmft` (the random recurrent net of Sompolinsky et al.),
:mod:`~mftlib.expressivity` (manifolds through deep nets), :mod:`~mftlib.networks` (finite
random networks for simulation) and :mod:`~mftlib.fitting` (depth scales, exponents and rates
measured in them, with standard errors). Three modules are imported on their own, to keep
``import mftlib`` light: ``from mftlib import plotting, datasets, training`` (matplotlib,
scikit-learn, optax).
"""

# float64 is switched on here, once, before any submodule runs: importing ``mftlib.x`` runs this
# package ``__init__`` first, so every mftlib module computes in float64 (mftlib._config).
from mftlib._config import by_scale, ensure_x64, scale

ensure_x64()

from mftlib import (  # noqa: E402
    activations,
    batchnorm,
    conv,
    dense,
    dmft,
    dropout,
    dynamics,
    expressivity,
    fitting,
    gaussian,
    gp,
    graph,
    hermite,
    layers,
    networks,
    ntk,
    recurrent,
    resnet,
    spectra,
)
from mftlib.activations import Activation, activation, known_activations  # noqa: E402
from mftlib.batchnorm import bn_fixed_point, bn_gradient_rate  # noqa: E402
from mftlib.core import (  # noqa: E402
    Kernels,
    MeanField,
    Simulation,
    analyse,
    analyse_grid,
    kernels,
    simulate,
)
from mftlib.dense import (  # noqa: E402
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
from mftlib.dmft import scs_autocorrelation, scs_delta0, scs_lyapunov  # noqa: E402
from mftlib.ntk import nngp_and_ntk, ntk_kernel  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Kernels",
    "MeanField",
    "Simulation",
    "analyse",
    "analyse_grid",
    "kernels",
    "layers",
    "simulate",
    "activations",
    "batchnorm",
    "conv",
    "dense",
    "dmft",
    "dropout",
    "dynamics",
    "expressivity",
    "fitting",
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
