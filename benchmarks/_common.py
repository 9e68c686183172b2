"""Shared helpers of the benchmark scripts: timing after compilation, and the budget line."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax

# Every report() call of this process, for the book's status page (chapters/appendix/status.md).
RESULTS: list[dict] = []


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn``, after a warm-up (compiling) call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def report(name: str, seconds: float, budget: float, extra: str = "") -> bool:
    """Print 'name: t s, budget b s, OK|OVER, extra'; return whether ``seconds <= budget``."""
    ok = seconds <= budget
    RESULTS.append(dict(name=name, seconds=seconds, budget=budget, ok=ok, extra=extra))
    status = "OK" if ok else f"OVER by {seconds / budget:.1f}x"
    print(f"{name:<48s} {seconds:7.2f} s   budget {budget:5.1f} s   {status}   {extra}".rstrip())
    return ok
