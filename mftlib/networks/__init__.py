r"""Finite random networks in plain JAX, to check mean-field theory by simulation.

One submodule per architecture, next to the mean-field module it checks:
``mftlib.networks.dense`` (fully connected; its names are re-exported here, so
``mftlib.networks.init_dense`` keeps working). The other architectures' finite networks live in
``mftlib.networks.<architecture>`` and are re-exported below as they are added.
"""

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

__all__ = [
    "forward",
    "gradient_norms",
    "init_dense",
    "input_output_jacobian",
    "make_inputs",
    "preactivation_moments",
]
