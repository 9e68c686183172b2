"""Run every benchmark and print its timing against the budgets of ARCHITECTURE.md.

Usage: ``make bench`` (or ``python benchmarks/run_all.py``). Exit status 1 if any budget is missed.
Timings are after compilation, best of three, on whatever machine runs them; the budgets are set
for the project's 2-core CPU.
"""

from __future__ import annotations

import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_nngp  # noqa: E402
import bench_phase_diagram  # noqa: E402
import jax  # noqa: E402


def main() -> int:
    print(
        f"mftlib benchmarks on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, jax {jax.__version__} ({jax.devices()[0].platform})"
    )
    results = [bench_phase_diagram.main(), bench_nngp.main()]
    print("all within budget" if all(results) else "some budgets missed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
