"""API hygiene: no private name crosses a module.

A name starting with ``_`` (dunders aside) is private to the mftlib module that defines it. Library
code, benchmarks and chapter code cells may use only public names of other mftlib modules; a
building block that is shared gets a public, documented name in the module that owns it. The
package's infrastructure modules ``mftlib._validate`` and ``mftlib._config`` may be imported as a
whole (their public functions used), but not their private names.

Tests may use private names of the module they test: ``tests/test_X.py`` those of ``mftlib.X`` (and,
for a package, of its submodules); other test helpers (``reference.py``, ``conftest.py``) none.

The checker reads the source with :mod:`ast`, resolving imports and aliases (``import mftlib as
mft``, ``from mftlib import dense as D``, ``from mftlib.dense import _q_star``, relative imports)
to dotted paths, and reports ``file:line`` for every private name of another module reached by
``from ... import``, by an attribute chain or by ``getattr(module, "_name")``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "mftlib"
#: Private modules of the package that any mftlib user may import as a whole.
SHARED_PRIVATE_MODULES = {"mftlib._validate", "mftlib._config"}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_of(path: Path) -> str | None:
    """Dotted module name of a file under mftlib/, else None."""
    rel = path.resolve().relative_to(ROOT)
    if rel.parts[0] != PKG:
        return None
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _private_owner(dotted: str) -> tuple[str, str] | None:
    """For a dotted path into mftlib, the first private component and the path that owns it."""
    parts = dotted.split(".")
    if parts[0] != PKG:
        return None
    for i in range(1, len(parts)):
        if _is_private(parts[i]):
            owner = ".".join(parts[:i])
            if ".".join(parts[: i + 1]) in SHARED_PRIVATE_MODULES:
                continue  # the shared module itself; a private name inside it is still caught
            return owner, parts[i]
    return None


def _allowed(owner: str, allowed: tuple[str, ...]) -> bool:
    return any(owner == a or owner.startswith(a + ".") for a in allowed)


def _resolve_from(node: ast.ImportFrom, module: str | None, is_pkg: bool) -> str | None:
    if not node.level:
        return node.module
    if module is None:
        return None
    base = module.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def find_crossings(
    source: str,
    filename: str,
    *,
    module: str | None = None,
    is_pkg: bool = False,
    allowed: tuple[str, ...] = (),
) -> list[str]:
    """``filename:line: message`` for each private name of another mftlib module used in source.

    ``module`` is the dotted name of the file itself (for relative imports); ``allowed`` the
    modules whose private names the file may use (its own module, or the module a test tests).
    """
    tree = ast.parse(source, filename=filename)
    aliases: dict[str, str] = {}  # local name -> dotted path into mftlib
    out: list[str] = []

    def report(node, dotted):
        hit = _private_owner(dotted)
        if hit and not _allowed(hit[0], allowed):
            out.append(f"{filename}:{node.lineno}: private {hit[0]}.{hit[1]} used outside {hit[0]}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] != PKG:
                    continue
                report(node, a.name)
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    aliases[PKG] = PKG
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(node, module, is_pkg)
            if base is None or base.split(".")[0] != PKG:
                continue
            for a in node.names:
                if a.name == "*":
                    continue
                dotted = f"{base}.{a.name}"
                report(node, dotted)
                aliases[a.asname or a.name] = dotted

    def dotted_of(expr) -> str | None:
        if isinstance(expr, ast.Name):
            return aliases.get(expr.id)
        if isinstance(expr, ast.Attribute):
            head = dotted_of(expr.value)
            return None if head is None else f"{head}.{expr.attr}"
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            head = dotted_of(node.value)
            # Report a chain once, at its first private component.
            if head is not None and _is_private(node.attr) and not _private_owner(head):
                report(node, f"{head}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            head = dotted_of(node.args[0])
            if head is not None and not _private_owner(head):
                report(node, f"{head}.{node.args[1].value}")
    return out


_FENCE = re.compile(r"^(`{3,}|~{3,})\s*\{code-cell\}")


def markdown_code(text: str) -> str:
    """The code cells of a MyST notebook, at their own line numbers (everything else blanked).

    Cell options (a ``---`` YAML block or ``:key: value`` lines at the top of a cell) and IPython
    magics / shell escapes (``%``, ``!``) are blanked too.
    """
    lines = text.splitlines()
    out = [""] * len(lines)
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group(1)
        i += 1
        if i < len(lines) and lines[i].strip() == "---":
            i += 1
            while i < len(lines) and lines[i].strip() != "---":
                i += 1
            i += 1
        while i < len(lines) and re.match(r"^:\w[\w-]*:", lines[i]):
            i += 1
        while i < len(lines) and not lines[i].startswith(fence[0] * len(fence)):
            if not lines[i].lstrip().startswith(("%", "!")):
                out[i] = lines[i]
            i += 1
        i += 1
    return "\n".join(out) + "\n"


def _sources():
    """(path, source, module, is_pkg, allowed) for every file the rule covers."""
    for path in sorted((ROOT / PKG).rglob("*.py")):
        mod = _module_of(path)
        yield path, path.read_text(), mod, path.name == "__init__.py", (mod,)
    for path in sorted((ROOT / "benchmarks").rglob("*.py")):
        yield path, path.read_text(), None, False, ()
    for pattern in ("chapters/*.md", "chapters/appendix/*.md"):
        for path in sorted(ROOT.glob(pattern)):
            yield path, markdown_code(path.read_text()), None, False, ()
    for path in sorted((ROOT / "tests").glob("*.py")):
        allowed = ()
        if path.name.startswith("test_"):
            allowed = (f"{PKG}.{path.stem[len('test_') :]}",)
        yield path, path.read_text(), None, False, allowed


def test_no_private_name_crosses_a_module():
    problems = []
    n_files = 0
    for path, source, mod, is_pkg, allowed in _sources():
        n_files += 1
        rel = str(path.relative_to(ROOT))
        problems += find_crossings(source, rel, module=mod, is_pkg=is_pkg, allowed=allowed)
    assert n_files > 40, f"only {n_files} files scanned: the file discovery is broken"
    assert not problems, "private names used across modules:\n" + "\n".join(problems)


def test_checker_catches_each_form():
    bad = """\
import mftlib as mft
import mftlib.dense
from mftlib import dense, _validate as V
from mftlib.dense import _q_star, q_star
from mftlib.networks import dense as nd
from . import recurrent

a = _q_star
b = dense._covariance_map
c = mft.dense._params
d = mftlib.dense._chi1
e = nd._check_key
f = getattr(dense, "_f64")
g = V.real
h = V._is_tracer
i = recurrent._check
j = dense.__name__
"""
    found = find_crossings(bad, "bad.py", module="mftlib.conv")
    lines = sorted(int(p.split(":")[1]) for p in found)
    assert lines == [4, 9, 10, 11, 12, 13, 15, 16], found
    # The owner may use its own privates; a test may use those of the module it tests.
    assert not find_crossings(bad, "ok.py", module="mftlib.conv", allowed=("mftlib",))
    own = "from mftlib import dense\nx = dense._q_star\n"
    assert not find_crossings(own, "test_dense.py", allowed=("mftlib.dense",))
    assert find_crossings(own, "reference.py")


def test_markdown_code_keeps_line_numbers():
    md = (
        "# Title\n"
        "```{code-cell} ipython3\n"
        "---\n"
        "tags: [hide-input]\n"
        "---\n"
        "%matplotlib inline\n"
        "from mftlib import dense\n"
        "```\n"
        "text dense._no\n"
        "```{code-cell} ipython3\n"
        ":tags: [x]\n"
        "y = dense._q_star\n"
        "```\n"
    )
    found = find_crossings(markdown_code(md), "ch.md")
    assert found == ["ch.md:12: private mftlib.dense._q_star used outside mftlib.dense"]
