"""Mean-field theory against finite random networks (width >= 1000, several seeds).

Tolerances: each simulated quantity is averaged over ``SEEDS`` independent networks; the error
allowed is ``Z`` standard errors of that mean (estimated from the seed spread, so the test adapts
to the real fluctuations) plus a finite-width bias allowance ``BIAS / width``: the empirical
moments of a width-N layer deviate from the infinite-width map at order 1/N in the mean (and
1/sqrt(N) per network, which the seed spread already measures). With Z = 5 a correct theory fails
by chance far less than once in 10^4 runs.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import mftlib as mft
from mftlib import networks

pytestmark = pytest.mark.slow  # every test here simulates width-1000 networks

WIDTH, DEPTH, SEEDS, D_IN = 1000, 12, 6, 400
Z, BIAS = 5.0, 3.0


def _allowed(samples: np.ndarray, scale: float) -> np.ndarray:
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    return Z * se + BIAS * scale / WIDTH


@pytest.fixture(scope="module")
def two_inputs():
    return networks.make_inputs(jax.random.PRNGKey(1), 2, D_IN, q0=1.0, c0=0.6)


@pytest.mark.parametrize(
    ("phi", "sigma_w2", "sigma_b2"),
    [("tanh", 1.2, 0.05), ("tanh", 2.5, 0.1), ("erf", 3.0, 0.2), ("relu", 1.8, 0.1)],
)
def test_length_and_correlation_trajectories(two_inputs, phi, sigma_w2, sigma_b2):
    """q^l_aa and c^l_12 of simulated nets follow the covariance map from the layer-0 kernel."""
    x = np.asarray(two_inputs)
    sim = networks.preactivation_moments(
        jax.random.PRNGKey(7), x, phi, sigma_w2, sigma_b2, WIDTH, DEPTH, n_seeds=SEEDS
    )
    sigma0 = sigma_b2 + sigma_w2 * (x @ x.T) / D_IN
    theory = np.asarray(mft.covariance_trajectory(phi, sigma_w2, sigma_b2, sigma0, DEPTH))
    q_sim = np.asarray(sim["q"])[:, :, 0]  # (seeds, layers)
    q_th = theory[:, 0, 0]
    assert np.all(np.abs(q_sim.mean(0) - q_th) <= _allowed(q_sim, q_th.max()))
    c_sim = np.asarray(sim["c"])[:, :, 0, 1]
    c_th = theory[:, 0, 1] / np.sqrt(theory[:, 0, 0] * theory[:, 1, 1])
    assert np.all(np.abs(c_sim.mean(0) - c_th) <= _allowed(c_sim, 1.0))


@pytest.mark.parametrize(("sigma_w2", "phase"), [(1.3, "ordered"), (2.5, "chaotic")])
def test_gradient_norms_grow_as_chi1_per_layer(sigma_w2, phase):
    """||delta^l||^2 / ||delta^{l+1}||^2 -> chi_1 (Schoenholz et al. 2017), inputs at q*."""
    phi, sigma_b2 = "tanh", 0.05
    q_star = float(mft.q_star(phi, sigma_w2, sigma_b2))
    chi = float(mft.chi1(phi, sigma_w2, sigma_b2))
    assert (chi < 1) == (phase == "ordered")
    # Layer-0 variance sigma_w2 q0 + sigma_b2 = q*: the whole net sits at the fixed point.
    q0 = (q_star - sigma_b2) / sigma_w2
    x = networks.make_inputs(jax.random.PRNGKey(3), 1, D_IN, q0=q0)
    g = np.asarray(
        networks.gradient_norms(
            jax.random.PRNGKey(11), x, phi, sigma_w2, sigma_b2, WIDTH, DEPTH, n_seeds=SEEDS
        )
    )[:, :, 0]
    # Per-seed growth rate over the whole depth: log(||delta^0||^2 / ||delta^L||^2) / L.
    rate = np.log(g[:, 0] / g[:, -1]) / DEPTH
    se = rate.std(ddof=1) / np.sqrt(SEEDS)
    assert abs(rate.mean() - np.log(chi)) <= Z * se + BIAS / WIDTH


def test_critical_line_separates_decorrelation():
    """Two nearby inputs stay correlated in the ordered phase and decorrelate in the chaotic one.

    At depth 30 the ordered net has c^l -> c* = 1, while the chaotic one has moved most of the way
    to c* < 1 (the theory trajectory gives the depth-30 value, approached at the rate 1/xi_c).
    """
    phi, sigma_b2, depth = "tanh", 0.05, 30
    crit = float(mft.critical_sigma_w2(phi, sigma_b2))
    x = np.asarray(networks.make_inputs(jax.random.PRNGKey(5), 2, D_IN, q0=1.0, c0=0.95))
    for factor in (0.8, 1.6):
        sigma_w2 = factor * crit
        sim = networks.preactivation_moments(
            jax.random.PRNGKey(9), x, phi, sigma_w2, sigma_b2, WIDTH, depth, n_seeds=4
        )
        c_sim = np.asarray(sim["c"])[:, -1, 0, 1]
        sigma0 = sigma_b2 + sigma_w2 * (x @ x.T) / D_IN
        end = np.asarray(mft.covariance_trajectory(phi, sigma_w2, sigma_b2, sigma0, depth))[-1]
        c_th = end[0, 1] / np.sqrt(end[0, 0] * end[1, 1])
        c_star = float(mft.c_star(phi, sigma_w2, sigma_b2))
        if factor < 1:
            assert c_star == 1.0 and c_th > 0.99
        else:
            assert c_star < 0.5 and c_th < 0.6
        assert abs(c_sim.mean() - c_th) <= _allowed(c_sim[:, None], 1.0)[0]
