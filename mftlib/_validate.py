"""Input validation for the public API: fail early with a message naming the parameter.

Checks run on concrete values before any tracing. Inside ``jax.jit`` the arguments are tracers
whose values are unknown; value checks are then skipped (shapes are still checked).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _as_array(name: str, value) -> np.ndarray:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got a bool")
    try:
        arr = np.asarray(value)
    except Exception as err:  # pragma: no cover - numpy raises many kinds here
        raise TypeError(
            f"{name} must be a real number or array, got {type(value).__name__}"
        ) from err
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real number or array, got dtype {arr.dtype}")
    return arr


def real(
    name: str, value, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False
):
    """Check a real scalar or array: finite and within ``[lo, hi]`` (``(lo, hi]`` if lo_open)."""
    if _is_tracer(value):
        return value
    arr = _as_array(name, value)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if lo is not None and (np.any(arr <= lo) if lo_open else np.any(arr < lo)):
        bound = f"> {lo}" if lo_open else f">= {lo}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    if hi is not None and np.any(arr > hi):
        raise ValueError(f"{name} must be <= {hi}, got {value!r}")
    return value


def variance(name: str, value, *, positive: bool = False):
    """A variance: finite and >= 0 (> 0 with ``positive``)."""
    return real(name, value, lo=0.0, lo_open=positive)


def correlation(name: str, value):
    """A correlation coefficient in [-1, 1]."""
    return real(name, value, lo=-1.0, hi=1.0)


def nonneg_int(name: str, value) -> int:
    """A non-negative integer (a depth, a count)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        raise TypeError(f"{name} must be a non-negative int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value}")
    return int(value)


def positive_int(name: str, value) -> int:
    """An integer >= 1 (a width, a batch size)."""
    value = nonneg_int(name, value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def matrix(name: str, value, *, ndim: int = 2):
    """A finite real array with ``ndim`` dimensions."""
    if _is_tracer(value):
        if value.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
        return value
    arr = _as_array(name, value)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return value


def grid(name: str, value):
    """A 1-D grid of hyperparameters (finite, non-empty)."""
    return matrix(name, value, ndim=1)


def covariance(name: str, value):
    """A symmetric positive semi-definite matrix (checked to rounding)."""
    matrix(name, value)
    if _is_tracer(value):
        return value
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be square, got shape {arr.shape}")
    scale = max(1.0, float(np.max(np.abs(arr))))
    if not np.allclose(arr, arr.T, rtol=0, atol=1e-12 * scale):
        raise ValueError(f"{name} must be symmetric")
    if np.linalg.eigvalsh((arr + arr.T) / 2).min() < -1e-10 * scale:
        raise ValueError(f"{name} must be positive semi-definite")
    return value


def key(value, name: str = "key"):
    """A single JAX PRNG key: a typed key (``jax.random.key(seed)``) or a raw ``uint32[2]`` key
    (``jax.random.PRNGKey(seed)``, or its numpy data). Returns it as a JAX array."""
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        if value.shape != ():
            raise TypeError(
                f"{name} must be a single PRNG key, got an array of shape {value.shape}"
            )
        return value
    arr = jnp.asarray(value) if isinstance(value, (jax.Array, np.ndarray)) else None
    if arr is None or arr.dtype != jnp.uint32 or arr.shape != (2,):
        raise TypeError(
            f"{name} must be a JAX PRNG key (jax.random.key(seed) or jax.random.PRNGKey)"
        )
    return arr
