r"""Finite random networks in plain JAX, to check mean-field theory by simulation.

One submodule per architecture, next to the mean-field module it checks:
``mftlib.networks.dense`` (fully connected, standard parameterisation),
``mftlib.networks.ntk`` (fully connected, NTK parameterisation),
``mftlib.networks.batchnorm`` (deep batch-normalised nets), ``mftlib.networks.resnet``
(residual nets) and ``mftlib.networks.conv`` (CNNs). Their public names are re-exported here;
other architectures' finite networks go in ``mftlib.networks.<architecture>``.
"""

from mftlib.networks.batchnorm import batch_norm, fit_rate
from mftlib.networks.batchnorm import simulate as simulate_batchnorm
from mftlib.networks.conv import (
    circular_conv,
    conv_forward,
    conv_forward_scan,
    init_conv,
    init_conv_layer,
    init_conv_stacked,
    spatial_covariance,
    stack_layers,
)
from mftlib.networks.dense import (  # noqa: F401  (private helpers shared with dropout/training)
    _check_common,
    _check_key,
    _correlation,
    _draw_layer,
    _sample_layer,
    forward,
    gradient_norms,
    init_dense,
    input_output_jacobian,
    make_inputs,
    preactivation_moments,
)
from mftlib.networks.ntk import (
    apply_ntk,
    empirical_ntk,
    init_ntk,
    sample_outputs,
    train_gd,
)
from mftlib.networks.resnet import classifier as resnet_classifier
from mftlib.networks.resnet import init_classifier as init_resnet_classifier
from mftlib.networks.resnet import simulate as simulate_resnet

__all__ = [
    "circular_conv",
    "conv_forward",
    "conv_forward_scan",
    "init_conv",
    "init_conv_layer",
    "init_conv_stacked",
    "spatial_covariance",
    "stack_layers",
    "batch_norm",
    "fit_rate",
    "simulate_batchnorm",
    "init_resnet_classifier",
    "resnet_classifier",
    "simulate_resnet",
    "apply_ntk",
    "empirical_ntk",
    "init_ntk",
    "sample_outputs",
    "train_gd",
    "forward",
    "gradient_norms",
    "init_dense",
    "input_output_jacobian",
    "make_inputs",
    "preactivation_moments",
]
