"""Independent references for the tests: scipy's adaptive quadrature (QUADPACK), not mftlib."""

from __future__ import annotations

import math

from scipy import integrate

SQRT2PI = math.sqrt(2.0 * math.pi)
LIMIT = 40.0  # integration limits in z; the Gaussian mass beyond is ~1e-350
QUAD = dict(epsabs=0.0, epsrel=1e-13, limit=500)


def pdf(z: float) -> float:
    """The standard normal density."""
    return math.exp(-0.5 * z * z) / SQRT2PI


def ref_expect1(f, q: float) -> float:
    """int Dz f(sqrt(q) z) by adaptive quadrature, split at z = 0 (the activations' feature)."""
    s = math.sqrt(q)

    def h(z):
        return f(s * z) * pdf(z)

    return integrate.quad(h, -LIMIT, 0.0, **QUAD)[0] + integrate.quad(h, 0.0, LIMIT, **QUAD)[0]
