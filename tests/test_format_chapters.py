"""tools/format_chapters.py: code cells of the MyST sources are formatted, nothing else is."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

_PATH = Path(__file__).parents[1] / "tools" / "format_chapters.py"
_spec = importlib.util.spec_from_file_location("format_chapters", _PATH)
format_chapters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(format_chapters)

PAGE = """# A page

Prose with `x=1` stays as written.

```{code-cell} ipython3
:tags: [remove-input]
y=[1,2,
  3]
```

```python
z=2
```
"""


def test_a_page_without_code_cells_never_runs_ruff(monkeypatch):
    # ruff given no file formats the whole working directory: it must not be called at all
    def refuse(*args, **kwargs):
        raise AssertionError(f"ruff ran on {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    text = "# Glossary\n\nNo code here.\n\n```python\nz=2\n```\n"
    assert format_chapters.format_source(text) == text
    assert format_chapters.ruff_cells([]) == []


def test_code_cells_are_formatted_and_everything_else_kept():
    out = format_chapters.format_source(PAGE)
    assert "y = [1, 2, 3]\n" in out
    assert ":tags: [remove-input]\n" in out  # cell options untouched
    assert "`x=1`" in out and "```python\nz=2\n```" in out  # prose and plain fences untouched
    assert format_chapters.format_source(out) == out  # idempotent
