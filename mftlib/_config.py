"""Process-wide settings: float64 in JAX, and the experiment scale switch.

mftlib's only global state is JAX's ``jax_enable_x64`` flag, switched on when mftlib is imported:
fixed points and depth scales near the critical line need float64 (in float32, chi_1 - 1 ~ 1e-7
is lost to rounding). Code that imports mftlib therefore computes in float64 by default.
"""

from __future__ import annotations

import os

import jax

SCALES = ("quick", "paper")


def ensure_x64() -> None:
    """Switch JAX to float64 (idempotent).

    The one place this is called is ``mftlib/__init__.py``, before any submodule is imported:
    importing any ``mftlib.x`` runs the package ``__init__`` first, so no module needs its own
    call. Call it again only after something has switched float64 off.
    """
    if not jax.config.read("jax_enable_x64"):
        jax.config.update("jax_enable_x64", True)


def scale() -> str:
    """The experiment scale from ``MFT_SCALE``: 'quick' (the default) or 'paper'.

    Raises:
        ValueError: for any other value, naming the variable and the allowed values.
    """
    value = os.environ.get("MFT_SCALE", "quick").strip().lower() or "quick"
    if value not in SCALES:
        raise ValueError(f"MFT_SCALE must be one of {SCALES}, got {value!r}")
    return value


def by_scale(quick, paper):
    """Return ``quick`` or ``paper`` according to :func:`scale`."""
    return quick if scale() == "quick" else paper
