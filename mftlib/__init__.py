"""mftlib: mean-field theory of deep neural networks, in JAX.

A mean-field layer is a deterministic map on covariance matrices, Sigma_{l+1} = F(Sigma_l). Each
architecture supplies its map; :mod:`mftlib.dynamics` finds fixed points, linearises, and turns the
eigenvalues into depth scales for all of them. Importing mftlib switches JAX to float64.
"""

from mftlib._config import by_scale, ensure_x64, scale
from mftlib.activations import Activation, activation, known_activations
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

ensure_x64()

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "activation",
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
    "nngp_kernel",
    "phase_diagram",
    "q_star",
    "scale",
]
