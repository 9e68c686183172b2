"""The committed chapter notebooks (chapters/**/*.ipynb) match their MyST sources."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat

_PATH = Path(__file__).parents[1] / "tools" / "make_notebooks.py"
_spec = importlib.util.spec_from_file_location("make_notebooks", _PATH)
make_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_notebooks)


def test_every_chapter_has_a_notebook():
    sources = make_notebooks.sources()
    assert len(sources) >= 4
    for source in sources:
        assert source.with_suffix(".ipynb").exists(), f"run `make notebooks`: {source.name}"


def test_notebooks_are_current():
    assert make_notebooks.main(["--check"]) == 0, "run `make notebooks` and commit the result"


def test_notebook_opens_with_the_setup_cell_then_the_chapter():
    source = make_notebooks.sources()[0]
    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "code" and 'find_spec("mftlib")' in nb.cells[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_setup_cell_installs_the_books_own_release():
    """A reader's notebook installs the mftlib version the book was built with, not the head."""
    import mftlib

    source = make_notebooks.sources()[0]
    setup = nbformat.read(source.with_suffix(".ipynb"), as_version=4).cells[0].source
    version = make_notebooks.book_version()
    assert f'deep-mean-field@v{version}"' in setup
    assert mftlib.__version__ == version
