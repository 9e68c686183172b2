"""Budget (ARCHITECTURE.md): the NNGP kernel of all 1,797 digits at depth 20 in <= 3 s for relu
and erf (closed forms) and <= 10 s for tanh, with relative error <= 1e-6 for tanh.

Inputs: scikit-learn's bundled digits, standardised per pixel and projected onto the sphere of
radius sqrt(d), so that every input has x.x/d = 1 (as Lee et al. 2018 normalise their inputs).
The tanh accuracy is checked on 40 of the digits against the kernel computed entry by entry with
mftlib's direct 2-D quadrature, itself tested against QUADPACK in tests/test_gaussian.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _common import best_time, report
from sklearn.datasets import load_digits

import mftlib as mft

DEPTH, SIGMA_W2, SIGMA_B2 = 20, 1.6, 0.1
BUDGETS_S = {"relu": 3.0, "erf": 3.0, "tanh": 10.0}


def digits() -> np.ndarray:
    x = load_digits().data
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(x.shape[1])


def tanh_error(x: np.ndarray) -> float:
    """Max |series - direct| / max |direct| on 40 inputs."""
    act = mft.activation("tanh")
    sub = jnp.asarray(x[:40])
    fast = mft.nngp_kernel(sub, None, act, SIGMA_W2, SIGMA_B2, DEPTH)
    k = mft.nngp_kernel(sub, None, act, SIGMA_W2, SIGMA_B2, 0)  # layer 0: sb + sw x.x'/d
    # Each hidden layer entry by entry: E[phi phi] by 2-D quadrature off the diagonal, the
    # diagonal by the 1-D rule (Activation.moment_matrix).
    layer = jax.jit(lambda k: SIGMA_W2 * act.moment_matrix(k) + SIGMA_B2)
    for _ in range(DEPTH):
        k = layer(k)
    return float(jnp.max(jnp.abs(fast - k)) / jnp.max(jnp.abs(k)))


def main() -> bool:
    x = digits()
    ok = True
    for phi, budget in BUDGETS_S.items():
        seconds = best_time(
            lambda phi=phi: mft.nngp_kernel(x, None, phi, SIGMA_W2, SIGMA_B2, DEPTH)
        )
        extra = f"{x.shape[0]} x {x.shape[0]} kernel, depth {DEPTH}"
        if phi == "tanh":
            err = tanh_error(x)
            extra += f", max rel. error vs 2-D quadrature {err:.1e} (budget 1e-6)"
            ok &= err <= 1e-6
        ok &= report(f"NNGP kernel of the digits, {phi}", seconds, budget, extra)
    return ok


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    raise SystemExit(0 if main() else 1)
