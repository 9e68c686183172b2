"""Keep the book's execution cache in step with the library it executes.

Usage: ``python tools/book_cache.py [--build _build]`` (``make book`` runs it before building).

MyST-NB's cache (``_build/.jupyter_cache``) keys each notebook on its code cells only. A chapter
whose cells did not change would therefore keep the outputs of an older mftlib, an older set of
installed packages or another ``MFT_SCALE``. This script computes a key over everything else a
chapter's outputs depend on:

- every file of the ``mftlib`` package (its path and its bytes), and ``pyproject.toml``;
- ``requirements.lock`` and the name and version of every package installed in the running
  environment;
- the Python version and the ``MFT_SCALE`` setting;

and compares it with the key stored by the previous build (``_build/.book-key.json``). When it
differs, the execution cache and Sphinx's saved environment (``_build/.doctrees``, so that Sphinx
reads every page again) are removed and the new key is stored; the build then re-executes every
notebook. When it matches, nothing is touched and an unchanged rebuild comes entirely from the
cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY_FILE = ".book-key.json"
CLEARED = (".jupyter_cache", ".doctrees")


def _digest(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def library_files(root: Path = ROOT) -> list[Path]:
    """The files whose bytes a chapter's outputs depend on, besides the chapter itself."""
    package = (root / "mftlib").rglob("*")
    files = [p for p in package if p.is_file() and "__pycache__" not in p.parts]
    files += [root / name for name in ("pyproject.toml", "requirements.lock")]
    return [p for p in files if p.exists()]


def installed_packages() -> list[str]:
    """``name==version`` for every distribution importable in the running environment."""
    found = {f"{d.metadata['Name'].lower()}=={d.version}" for d in metadata.distributions()}
    return sorted(found)


def compute_key(root: Path = ROOT) -> dict[str, str]:
    """The components of the key; two builds may share a cache exactly when these are equal."""
    packages = hashlib.sha256("\n".join(installed_packages()).encode()).hexdigest()
    return {
        "library": _digest(library_files(root), root),
        "packages": packages,
        "python": platform.python_version(),
        "MFT_SCALE": os.environ.get("MFT_SCALE", "").strip().lower() or "quick",
    }


def sync(build: Path, key: dict[str, str]) -> list[str]:
    """Clear the caches under ``build`` if ``key`` differs from the stored one.

    Returns the names of the components that changed (empty when the cache is current).
    """
    stored_path = build / KEY_FILE
    try:
        stored = json.loads(stored_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        stored = None
    if stored == key:
        return []
    changed = sorted(k for k in key if stored is None or stored.get(k) != key[k])
    for name in CLEARED:
        shutil.rmtree(build / name, ignore_errors=True)
    build.mkdir(parents=True, exist_ok=True)
    stored_path.write_text(json.dumps(key, indent=2) + "\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / "_build")
    args = parser.parse_args(argv)
    key = compute_key()
    changed = sync(args.build, key)
    if changed:
        print(
            "book cache: "
            + ", ".join(changed)
            + " changed since the last build; every chapter is executed again"
        )
    else:
        print("book cache: library, packages and MFT_SCALE unchanged; cached outputs are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
