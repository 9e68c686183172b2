"""Budget (ARCHITECTURE.md): a 200 x 200 tanh phase diagram of (q*, c*, chi_1, xi_q, xi_c) in
<= 2 s after compilation, with relative error <= 1e-8 against adaptive quadrature.

The accuracy check takes 12 grid points at random and recomputes q*, chi_1 and c* with scipy's
adaptive quadrature (QUADPACK) and brentq, independently of mftlib's rules.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.optimize
from _common import best_time, report

import mftlib as mft

BUDGET_S = 2.0
SIGMA_W2 = np.linspace(0.5, 4.0, 200)
SIGMA_B2 = np.linspace(0.0, 0.5, 200)


def _gauss(f, q):
    def g(z):
        return f(np.sqrt(q) * z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)

    return scipy.integrate.quad(g, -40, 40, points=[0.0], epsabs=0, epsrel=1e-13, limit=400)[0]


def _gauss2(q, c):
    s = np.sqrt(1 - c * c)

    def inner(z1):
        def h(z2):
            return np.tanh(np.sqrt(q) * (c * z1 + s * z2)) * np.exp(-z2 * z2 / 2)

        zs = -c * z1 / s
        pts = [zs] if abs(zs) < 40 else None
        return scipy.integrate.quad(h, -40, 40, points=pts, epsabs=1e-15, limit=400)[0]

    def outer(z1):
        return np.tanh(np.sqrt(q) * z1) * inner(z1) * np.exp(-z1 * z1 / 2)

    val = scipy.integrate.quad(outer, -40, 40, points=[0.0], epsabs=1e-15, limit=400)[0]
    return val / (2 * np.pi)


def reference(sw: float, sb: float) -> dict:
    """q*, chi_1 and c* from QUADPACK + brentq."""
    q = scipy.optimize.brentq(
        lambda q: sw * _gauss(lambda u: np.tanh(u) ** 2, q) + sb - q,
        1e-12,
        50.0,
        xtol=1e-15,
        rtol=1e-15,
    )
    chi = sw * _gauss(lambda u: (1 - np.tanh(u) ** 2) ** 2, q)
    c = 1.0
    if chi > 1.0:

        def cmap(c):
            return (sw * _gauss2(q, c) + sb) / q - c

        c = 0.0 if cmap(0.0) <= 0 else scipy.optimize.brentq(cmap, 0.0, 1 - 1e-9, xtol=1e-14)
    return {"q_star": q, "chi1": chi, "c_star": c}


def main() -> bool:
    seconds = best_time(lambda: mft.phase_diagram("tanh", SIGMA_W2, SIGMA_B2))
    out = mft.phase_diagram("tanh", SIGMA_W2, SIGMA_B2)
    rng = np.random.default_rng(0)
    worst = 0.0
    for i, j in zip(rng.integers(0, 200, 12), rng.integers(1, 200, 12), strict=True):
        ref = reference(SIGMA_W2[i], SIGMA_B2[j])
        for k, v in ref.items():
            worst = max(worst, abs(float(out[k][i, j]) - v) / abs(v))
    ok_time = report(
        "phase diagram, tanh, 200 x 200",
        seconds,
        BUDGET_S,
        f"max rel. error vs QUADPACK {worst:.1e} (budget 1e-8)",
    )
    return ok_time and worst <= 1e-8


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
