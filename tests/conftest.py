"""Test-session settings: a headless matplotlib backend, a shared JAX compilation cache, and
repeatable hypothesis examples.

Most of the suite's time is XLA compilation. With ``pytest -n 2`` both workers compile the same
functions; a persistent cache under .pytest_cache lets the second one (and the next run) reuse them.
"""

from __future__ import annotations

import os

import jax
import matplotlib
from hypothesis import settings

matplotlib.use("Agg")

_CACHE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "jax"
)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

# Property tests draw the same examples on every run (CI and make test alike), so a result is
# reproducible; a failure found once stays found. HYPOTHESIS_PROFILE=explore draws fresh ones.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
