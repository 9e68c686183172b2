"""Unit tests of the site checker's pure checks (the browser part runs in `make test-site`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).parent / "site" / "check_site.py"
_spec = importlib.util.spec_from_file_location("check_site", _PATH)
check_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_site)

FIXTURES = Path(__file__).parent / "site" / "fixtures"
BASE = "http://127.0.0.1:8000/"


def _report(**overrides):
    report = dict(text="", untypeset=[], images=[], errors=[], stderr=[], links=[], height=900)
    report.update(overrides)
    return report


@pytest.mark.parametrize(
    "text",
    [r"the fixed point $q^*$ of", r"display $$x$$", r"inline \(\chi_1\)", r"block \[c\]"],
)
def test_raw_math_is_found(text):
    assert check_site.raw_math(text)


@pytest.mark.parametrize("text", ["it costs $5 or $10", "no math here", "US$ 3"])
def test_dollar_amounts_are_not_math(text):
    assert check_site.raw_math(text) == []


def test_a_clean_page_has_no_problems():
    img = dict(src="a.png", complete=True, width=10, height=10, alt="a plot")
    links = [BASE + "good.html#top", "https://example.org/", "mailto:x@y.z"]
    assert (
        check_site.problems(_report(images=[img], links=links), BASE + "good.html", FIXTURES) == []
    )


def test_every_defect_is_reported():
    report = _report(
        text="left $x^2$ raw",
        untypeset=["\\(c\\)"],
        images=[dict(src="m.png", complete=True, width=0, height=0, alt="")],
        errors=["Traceback ..."],
        stderr=["ValueError: bad"],
        links=[BASE + "nope.html", BASE + "good.html#missing"],
    )
    found = check_site.problems(report, BASE + "good.html", FIXTURES)
    for key in (
        "raw math",
        "not typeset",
        "not loaded",
        "alt text",
        "error output",
        "stderr output",
        "no such page",
        "no anchor",
    ):
        assert any(key in p for p in found), key


def test_harmless_stderr_is_allowed():
    report = _report(stderr=["UserWarning: something harmless"])
    assert check_site.problems(report, BASE + "good.html", FIXTURES) == []


def test_toc_pages_lists_root_and_files(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: C\n    chapters:\n"
        "      - file: chapters/01_a\n      - file: chapters/appendix/b.md\n"
    )
    assert check_site.toc_pages(toc) == ["intro", "chapters/01_a", "chapters/appendix/b"]


def test_the_real_toc_pages_have_sources():
    root = Path(__file__).parents[1]
    for page in check_site.toc_pages(root / "_toc.yml"):
        assert (root / f"{page}.md").exists() or (root / f"{page}.ipynb").exists(), page


def test_chapter_conventions_are_checked():
    bare = _report(uncaptioned=["fig.png"], headings=["A chapter"], admonitions=["Note"])
    found = check_site.problems(bare, BASE + "good.html", FIXTURES, chapter=True)
    assert any("without a caption" in p for p in found)
    assert any("What you will learn" in p for p in found)
    assert any("Summary" in p for p in found)
    fine = _report(headings=["A chapter", "Summary"], admonitions=["What you will learn"])
    assert check_site.problems(fine, BASE + "good.html", FIXTURES, chapter=True) == []
    # The appendix has no such conventions.
    assert check_site.problems(_report(), BASE + "good.html", FIXTURES, chapter=False) == []


def test_sideways_scrolling_is_reported():
    line = "output line of 155 characters: sigma_w = 1.3: ..."
    found = check_site.problems(_report(overflowing=[line]), BASE + "good.html", FIXTURES)
    assert found == [f"scrolls sideways at 1280 px: {line}"]


def test_numbers_must_carry_the_chapter():
    fine = _report(figure_numbers=["Fig. 7.3", "Fig. 7.12"], equation_numbers=["(7.1)", "(7.10)"])
    assert check_site.problems(fine, BASE + "good.html", FIXTURES, number=7) == []
    global_numbers = _report(figure_numbers=["Fig. 35", "Fig. 6.1"], equation_numbers=["(12)"])
    found = check_site.problems(global_numbers, BASE + "good.html", FIXTURES, number=7)
    assert len(found) == 3
    # pages outside the numbered part are not held to a chapter number
    assert check_site.problems(global_numbers, BASE + "good.html", FIXTURES) == []


def test_numbered_chapters_come_from_the_numbered_part(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n"
        "  - caption: Chapters\n    numbered: true\n    chapters:\n"
        "      - file: chapters/one\n      - file: chapters/two.md\n"
        "  - caption: Appendix\n    chapters:\n      - file: chapters/appendix/a\n"
    )
    assert check_site.numbered_chapters(toc) == {"chapters/one": 1, "chapters/two": 2}
    assert check_site.section_pages(toc) == set()


def test_section_pages_carry_their_chapters_number(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n"
        "  - caption: Chapters\n    numbered: true\n    chapters:\n"
        "      - file: chapters/one\n"
        "        sections:\n"
        "          - file: chapters/one/a\n          - file: chapters/one/b\n"
        "      - file: chapters/two\n"
        "  - caption: Appendix\n    chapters:\n      - file: chapters/appendix/a\n"
    )
    assert check_site.numbered_chapters(toc) == {
        "chapters/one": 1,
        "chapters/one/a": 1,
        "chapters/one/b": 1,
        "chapters/two": 2,
    }
    assert check_site.section_pages(toc) == {"chapters/one/a", "chapters/one/b"}


def test_the_books_toc_numbers_ten_chapters():
    numbers = check_site.numbered_chapters(Path(__file__).parents[1] / "_toc.yml")
    assert sorted(set(numbers.values())) == list(range(1, 11))
    assert next(iter(numbers)) == "chapters/01_dynamical_mean_field"
