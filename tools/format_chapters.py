"""Format the code cells of the MyST chapters in place with ruff (``make format`` runs it).

Usage: ``python tools/format_chapters.py [--check] [chapters/x.md ...]`` (default: every
chapter).

The chapters' sources are MyST Markdown (``chapters/**/*.md``); ruff reads Python and notebooks,
not Markdown. This script lifts every ``{code-cell}`` out of each source into a file of its own,
sorts its imports and formats it with ruff under ``chapters/ruff.toml`` (79 columns, the width the
book's code column shows whole), and writes the result back between the cell's fences, leaving
the cell's options (``tags``, ``mystnb`` captions) and all Markdown untouched. Cells are
formatted one by one, as ruff formats a notebook's cells; linting that needs the whole chapter
(names defined in earlier cells) runs on the generated ``.ipynb`` in ``make lint``.

``--check`` writes nothing and fails if a source would change.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "chapters" / "ruff.toml"
RUFF = Path(sys.executable).with_name("ruff")

# A code cell: the opening fence, its body, the closing fence.
CELL = re.compile(r"^(```\{code-cell\}[^\n]*\n)(.*?)(^```[ \t]*$)", re.DOTALL | re.MULTILINE)


def split_options(body: str) -> tuple[str, str]:
    """(options, code) of a cell body: a ``---`` YAML block or ``:key: value`` lines first."""
    if body.startswith("---\n"):
        end = body.index("\n---\n", 3) + len("\n---\n")
        return body[:end], body[end:]
    lines = body.splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].startswith(":"):
        n += 1
    if n and n < len(lines) and not lines[n].strip():
        n += 1  # the blank line after short options
    return "".join(lines[:n]), "".join(lines[n:])


def _formattable(code: str) -> bool:
    # IPython magics and shell escapes are not Python; no chapter uses them today.
    return bool(code.strip()) and not re.search(r"^\s*[%!]", code, re.MULTILINE)


def ruff_cells(codes: list[str]) -> list[str]:
    """Each snippet with its imports sorted and formatted, by one ruff run over all of them."""
    if not codes:
        # ruff given no file formats the working directory: a page without code must not reach it
        return []
    with tempfile.TemporaryDirectory(prefix="format_chapters_") as tmp:
        paths = [Path(tmp) / f"cell_{i:04d}.py" for i in range(len(codes))]
        for path, code in zip(paths, codes, strict=True):
            path.write_text(code)
        files = [str(p) for p in paths]
        common = ["--config", str(CONFIG), "--no-cache"]
        subprocess.run(
            [str(RUFF), "check", "--select", "I", "--fix", "--quiet", *common, *files],
            check=False,  # an unfixable finding is reported by `make lint`, not here
        )
        subprocess.run([str(RUFF), "format", "--quiet", *common, *files], check=True)
        return [p.read_text() for p in paths]


def format_source(text: str) -> str:
    """The MyST source with every Python code cell formatted."""
    cells = list(CELL.finditer(text))
    parts = [split_options(m.group(2)) for m in cells]
    todo = [i for i, (_, code) in enumerate(parts) if _formattable(code)]
    formatted = dict(zip(todo, ruff_cells([parts[i][1] for i in todo]), strict=True))
    out, last = [], 0
    for i, m in enumerate(cells):
        options, code = parts[i]
        out.append(text[last : m.start()])
        out.append(m.group(1) + options + formatted.get(i, code) + m.group(3))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a source would change")
    parser.add_argument("files", nargs="*", type=Path, help="MyST sources (default: all)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tools"))
    from make_notebooks import sources

    changed = []
    for source in [f.resolve() for f in args.files] or sources():
        text = source.read_text(encoding="utf-8")
        new = format_source(text)
        if new != text:
            changed.append(str(source.relative_to(ROOT)))
            if not args.check:
                source.write_text(new, encoding="utf-8")
    verb = "would reformat" if args.check else "reformatted"
    for name in changed:
        print(f"{verb} {name}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
