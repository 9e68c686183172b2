"""tools/book_cache.py: the execution cache is cleared exactly when the library, the installed
packages or MFT_SCALE change."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[1] / "tools" / "book_cache.py"
_spec = importlib.util.spec_from_file_location("book_cache", _PATH)
book_cache = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book_cache)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A minimal checkout: a package, pyproject.toml, a lock and a build folder with a cache."""
    monkeypatch.delenv("MFT_SCALE", raising=False)
    (tmp_path / "mftlib").mkdir()
    (tmp_path / "mftlib" / "dense.py").write_text("def q_star():\n    return 1.0\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'mftlib'\n")
    (tmp_path / "requirements.lock").write_text("numpy==2.0.0\n")
    return tmp_path


def _fill_cache(build: Path) -> None:
    for name in book_cache.CLEARED:
        (build / name).mkdir(parents=True, exist_ok=True)
        (build / name / "record").write_text("cached")


def _cache_present(build: Path) -> bool:
    return all((build / name / "record").exists() for name in book_cache.CLEARED)


def test_unchanged_library_keeps_the_cache(repo):
    build = repo / "_build"
    assert book_cache.sync(build, book_cache.compute_key(repo)) != []  # first build: no key yet
    _fill_cache(build)
    assert book_cache.sync(build, book_cache.compute_key(repo)) == []
    assert _cache_present(build)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "mftlib" / "dense.py").write_text("def q_star():\n    return 2.0\n"),
        lambda r: (r / "mftlib" / "new_module.py").write_text("x = 1\n"),
        lambda r: (r / "requirements.lock").write_text("numpy==2.1.0\n"),
        lambda r: (r / "pyproject.toml").write_text("[project]\nname = 'mftlib'\n# edited\n"),
    ],
    ids=["edited-function", "new-module", "lock", "pyproject"],
)
def test_a_library_change_clears_the_cache(repo, change):
    build = repo / "_build"
    book_cache.sync(build, book_cache.compute_key(repo))
    _fill_cache(build)
    change(repo)
    assert book_cache.sync(build, book_cache.compute_key(repo)) == ["library"]
    assert not any((build / name).exists() for name in book_cache.CLEARED)
    # and the next build, with nothing changed, keeps what it cached
    _fill_cache(build)
    assert book_cache.sync(build, book_cache.compute_key(repo)) == []
    assert _cache_present(build)


def test_scale_is_part_of_the_key(repo, monkeypatch):
    build = repo / "_build"
    book_cache.sync(build, book_cache.compute_key(repo))
    _fill_cache(build)
    monkeypatch.setenv("MFT_SCALE", "paper")
    assert book_cache.sync(build, book_cache.compute_key(repo)) == ["MFT_SCALE"]
    assert not _cache_present(build)


def test_installed_packages_are_part_of_the_key(repo, monkeypatch):
    build = repo / "_build"
    book_cache.sync(build, book_cache.compute_key(repo))
    real = book_cache.installed_packages()
    monkeypatch.setattr(book_cache, "installed_packages", lambda: [*real, "newpackage==1.0"])
    assert book_cache.sync(build, book_cache.compute_key(repo)) == ["packages"]


def test_bytecode_caches_do_not_change_the_key(repo):
    before = book_cache.compute_key(repo)
    (repo / "mftlib" / "__pycache__").mkdir()
    (repo / "mftlib" / "__pycache__" / "dense.cpython-311.pyc").write_bytes(b"\x00\x01")
    assert book_cache.compute_key(repo) == before


def test_the_real_checkout_has_a_key():
    key = book_cache.compute_key()
    assert set(key) == {"library", "packages", "python", "MFT_SCALE"}
    assert len(book_cache.library_files()) > 10  # the mftlib package was found
