r"""Finite random networks in plain JAX, to check mean-field theory by simulation.

One submodule per architecture, next to the mean-field module it checks:
``mftlib.networks.dense`` (fully connected, standard parameterisation),
``mftlib.networks.ntk`` (fully connected, NTK parameterisation),
``mftlib.networks.batchnorm`` (deep batch-normalised nets), ``mftlib.networks.resnet``
(residual nets), ``mftlib.networks.conv`` (CNNs) and ``mftlib.networks.graph`` (GNNs). Their
public names are re-exported here; other architectures' finite networks go in
``mftlib.networks.<architecture>``. The recurrent cells of ``mftlib.networks.recurrent`` (chapter
9) keep their short generic names (``init``, ``step``, ``run``, ...) in their own namespace:
``from mftlib.networks import recurrent as rnn``. So do the simulations that check the theory
modules of the same names, exported here as submodules: ``mftlib.networks.dropout`` (dense nets
with dropout), ``mftlib.networks.dmft`` (the continuous-time random recurrent net),
``mftlib.networks.spectra`` (sampled input-output Jacobians) and ``mftlib.networks.expressivity``
(a circle of inputs through a random net), e.g.
``from mftlib.networks import dropout as dropout_nets``.
"""

from mftlib.networks import dmft, dropout, expressivity, spectra
from mftlib.networks.batchnorm import batch_norm
from mftlib.networks.batchnorm import layer_weights as batchnorm_layer_weights
from mftlib.networks.batchnorm import simulate as simulate_batchnorm
from mftlib.networks.conv import (
    circular_conv,
    conv_forward,
    conv_forward_scan,
    covariances_through_layers,
    init_conv,
    init_conv_layer,
    init_conv_stacked,
    jacobian_singular_values,
    jacobian_spectra,
    layers_from_keys,
    orthogonal_kernel,
    simulate_spatial_covariances,
    spatial_covariance,
    stack_layers,
)
from mftlib.networks.dense import (
    forward,
    gradient_norms,
    init_dense,
    input_output_jacobian,
    make_inputs,
    preactivation_moments,
)
from mftlib.networks.graph import forward as gnn_forward
from mftlib.networks.graph import kmeans_labels, nmi_gnn_labels, pca_labels, train_gnn_nmi
from mftlib.networks.graph import order_parameters as gnn_order_parameters
from mftlib.networks.graph import paper_forward as gnn_paper_forward
from mftlib.networks.graph import simulate as simulate_gnn
from mftlib.networks.graph import soft_nmi as gnn_soft_nmi
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
from mftlib.networks.resnet import simulate_stream as simulate_resnet_stream

__all__ = [
    "dmft",
    "dropout",
    "expressivity",
    "spectra",
    "circular_conv",
    "conv_forward",
    "conv_forward_scan",
    "covariances_through_layers",
    "init_conv",
    "init_conv_layer",
    "init_conv_stacked",
    "jacobian_singular_values",
    "jacobian_spectra",
    "layers_from_keys",
    "orthogonal_kernel",
    "simulate_spatial_covariances",
    "spatial_covariance",
    "stack_layers",
    "batch_norm",
    "simulate_batchnorm",
    "batchnorm_layer_weights",
    "init_resnet_classifier",
    "resnet_classifier",
    "simulate_resnet",
    "simulate_resnet_stream",
    "gnn_forward",
    "gnn_order_parameters",
    "pca_labels",
    "simulate_gnn",
    "gnn_paper_forward",
    "kmeans_labels",
    "gnn_soft_nmi",
    "train_gnn_nmi",
    "nmi_gnn_labels",
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
