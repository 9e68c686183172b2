"""Tests for mftlib._config: the MFT_SCALE switch and float64."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import mftlib
from mftlib import _config


def test_default_scale_is_quick(monkeypatch):
    monkeypatch.delenv("MFT_SCALE", raising=False)
    assert mftlib.scale() == "quick"
    assert mftlib.by_scale(1, 2) == 1


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_scale_is_quick(monkeypatch, value):
    monkeypatch.setenv("MFT_SCALE", value)
    assert mftlib.scale() == "quick"


@pytest.mark.parametrize("value", ["paper", "PAPER", " paper "])
def test_paper_scale(monkeypatch, value):
    monkeypatch.setenv("MFT_SCALE", value)
    assert mftlib.scale() == "paper"
    assert mftlib.by_scale("small", "big") == "big"


def test_quick_scale_explicit(monkeypatch):
    monkeypatch.setenv("MFT_SCALE", "quick")
    assert mftlib.scale() == "quick"
    assert mftlib.by_scale("small", "big") == "small"


@pytest.mark.parametrize("value", ["bogus", "full", "1"])
def test_bad_scale_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("MFT_SCALE", value)
    with pytest.raises(ValueError, match="MFT_SCALE") as info:
        mftlib.scale()
    for allowed in _config.SCALES:
        assert allowed in str(info.value)
    with pytest.raises(ValueError, match="MFT_SCALE"):
        mftlib.by_scale(1, 2)


def test_scale_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("MFT_SCALE", "paper")
    assert mftlib.scale() == "paper"
    monkeypatch.setenv("MFT_SCALE", "quick")
    assert mftlib.scale() == "quick"


def test_importing_mftlib_enables_float64():
    assert jax.config.read("jax_enable_x64")
    assert jnp.asarray(1.0).dtype == jnp.float64
    _config.ensure_x64()  # idempotent
    assert jax.config.read("jax_enable_x64")


def test_float64_is_on_after_importing_any_submodule_alone():
    """ensure_x64 runs once, in mftlib/__init__.py, which any ``import mftlib.x`` runs first."""
    code = "import mftlib.dense, jax.numpy as jnp; print(jnp.ones(1).dtype)"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "float64"
