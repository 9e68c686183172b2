"""Browser test of the built book: every page of the toc, as a reader's browser renders it.

Usage (``make test-site`` runs both steps)::

    python tests/site/check_site.py --self-test      # the checker must catch a broken page
    python tests/site/check_site.py [--html _build/html] [--screenshots _build/site-check]

For every page listed in ``_toc.yml`` the built HTML is served on localhost and loaded in headless
Chromium (Debian's ``chromium`` with ``chromedriver``, driven by Selenium). After MathJax has
finished, the rendered DOM is asserted on:

- **math**: every ``.math`` element holds MathJax output, and no raw ``$...$``, ``$$``, ``\\(`` or
  ``\\[`` is left in the visible text (code blocks and program output excluded);
- **figures**: every image in the page body has loaded (``complete`` with non-zero natural size)
  and carries alt text;
- **outputs**: no cell shows an error or a traceback, and no stderr output mentions one;
- **links**: every internal link and cross-reference resolves to a built page and, if it has a
  ``#fragment``, to an element with that id on the target page;
- **reader comfort**: every figure a cell produces has a caption, and every chapter (not the
  appendix) opens with a "What you will learn" admonition and has a "Summary" section;
- **no sideways scrolling**: no code cell or printed output (collapsed cells opened first) is wider
  than its box in a 1280-px window;
- **numbers carry their chapter**: in chapter *n* of the numbered part of ``_toc.yml`` every
  figure reads "Fig. n.k" and every numbered equation "(n.k)".

A full-page screenshot of each page is saved for a person to look at. ``--self-test`` loads the
fixture ``tests/site/fixtures/broken.html`` (raw math, a missing image, an error output, a broken
link) and ``good.html``: it fails unless every defect of the first is reported and the second
passes, so a checker that has stopped seeing defects cannot pass CI.

The checks on what the browser returns are plain functions (:func:`problems`), unit-tested in
``tests/test_site_check.py`` without a browser.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Raw TeX left in visible text: $...$ (not a lone price like "$5"), $$, \( or \[.
RAW_MATH = re.compile(r"\$\$|\\\(|\\\[|\$[^$\s\d][^$\n]{0,200}?\$")

# What the browser collects from one page, as JSON.
COLLECT_JS = r"""
const main = document.querySelector('main') || document.body;
const clone = main.cloneNode(true);
for (const el of clone.querySelectorAll(
    'mjx-container, script, style, pre, code, .highlight, .cell_output, .output, textarea'))
  el.remove();
const untypeset = [...main.querySelectorAll('.math')]
  .filter(el => !el.querySelector('mjx-container'))
  .map(el => el.textContent.trim().slice(0, 80));
const images = [...main.querySelectorAll('img')].map(img => ({
  src: img.getAttribute('src') || '', complete: img.complete,
  width: img.naturalWidth, height: img.naturalHeight,
  alt: (img.getAttribute('alt') || '').trim()}));
const errors = [...main.querySelectorAll('.traceback, .output.error, .cell_output .error')]
  .map(el => el.textContent.trim().slice(0, 200));
const stderr = [...main.querySelectorAll('.stderr, .output.stderr')]
  .map(el => el.textContent.trim().slice(0, 300));
const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
// Figures from cell outputs: an image in the page body that is not a logo or an icon.
const uncaptioned = [...main.querySelectorAll('.cell_output img, .output img')]
  .filter(img => !(img.closest('figure') && img.closest('figure').querySelector('figcaption')))
  .map(img => img.getAttribute('src') || '');
const headings = [...main.querySelectorAll('h1, h2')]
  .map(h => h.textContent.replace('#', '').trim());
const admonitions = [...main.querySelectorAll('.admonition-title')].map(t => t.textContent.trim());
// Code and output blocks wider than their box, measured with every collapsed cell opened.
const closed = [...main.querySelectorAll('details:not([open])')];
closed.forEach(d => { d.open = true; });
const overflowing = [...main.querySelectorAll('pre')]
  .filter(p => p.scrollWidth > p.clientWidth + 1)
  .map(p => {
    const longest = p.textContent.split('\n').reduce((a, b) => (b.length > a.length ? b : a), '');
    const kind = p.closest('.cell_output, .output') ? 'output' : 'code';
    return `${kind} line of ${longest.length} characters: ${longest.trim().slice(0, 50)}`;
  });
closed.forEach(d => { d.open = false; });
const figure_numbers = [...main.querySelectorAll('figcaption .caption-number')]
  .map(s => s.textContent.trim());
const equation_numbers = [...main.querySelectorAll('.math .eqno, span.eqno')]
  .map(s => s.textContent.replace('#', '').trim());
return {text: clone.textContent, untypeset, images, errors, stderr, links, uncaptioned,
        headings, admonitions, overflowing, figure_numbers, equation_numbers,
        height: document.documentElement.scrollHeight};
"""

WAIT_MATHJAX_JS = r"""
const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise)
  MathJax.startup.promise.then(() => done(true)).catch(e => done(String(e)));
else done(window.MathJax ? 'MathJax present but not started' : true);
"""


# --- pure checks (unit-tested) ---


def raw_math(text: str) -> list[str]:
    """Snippets of raw TeX left in the visible text of a page."""
    return [m.group(0)[:60] for m in RAW_MATH.finditer(text)]


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def page_ids(path: Path) -> frozenset[str]:
    """The ids (and named anchors) defined in a built HTML file."""
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def broken_link(href: str, base_url: str, html_root: Path) -> str | None:
    """Why an internal link does not resolve (None if it does, or if it is external)."""
    url = urlsplit(href)
    base = urlsplit(base_url)
    if url.scheme not in ("http", "https", "") or (url.netloc and url.netloc != base.netloc):
        return None  # external (or mailto:, javascript:): not this site's business
    path = unquote(url.path)
    rel = path.lstrip("/")
    target = html_root / rel if rel else html_root / "index.html"
    if target.is_dir():
        target = target / "index.html"
    if not target.exists():
        return f"{href}: no such page ({target.relative_to(html_root)})"
    if url.fragment and target.suffix == ".html":
        if unquote(url.fragment) not in page_ids(target):
            return f"{href}: no anchor #{url.fragment} in {target.relative_to(html_root)}"
    return None


def problems(
    report: dict,
    page_url: str,
    html_root: Path,
    chapter: bool = False,
    number: int | None = None,
) -> list[str]:
    """Every defect in what the browser collected from one page (empty list: the page is fine).

    ``chapter=True`` adds the chapter conventions: a "What you will learn" admonition at the
    start and a "Summary" section. ``number`` is the chapter's number in the numbered part of
    the toc: every figure and numbered equation on the page must carry it.
    """
    found = []
    for line in report.get("overflowing", []):
        found.append(f"scrolls sideways at 1280 px: {line}")
    if number is not None:
        for label in report.get("figure_numbers", []):
            if not re.fullmatch(rf"Fig\. {number}\.\d+", label.rstrip(".: ")):
                found.append(f"figure number {label!r} does not carry chapter {number}")
        for label in report.get("equation_numbers", []):
            if not re.fullmatch(rf"\({number}\.\d+\)", label):
                found.append(f"equation number {label!r} does not carry chapter {number}")
    for src in report.get("uncaptioned", []):
        found.append(f"figure without a caption: {src[:80]}")
    if chapter:
        if not any("What you will learn" in t for t in report.get("admonitions", [])):
            found.append("chapter without a 'What you will learn' admonition")
        # Sphinx prefixes numbered chapters' headings with their number ("4.6. Summary").
        titles = [re.sub(r"^[\d.]+\s*", "", h) for h in report.get("headings", [])]
        if not any(t.startswith("Summary") for t in titles):
            found.append("chapter without a 'Summary' section")
    for snippet in raw_math(report["text"]):
        found.append(f"raw math left in the text: {snippet!r}")
    for snippet in report["untypeset"]:
        found.append(f"math element not typeset by MathJax: {snippet!r}")
    for img in report["images"]:
        if not img["complete"] or img["width"] == 0 or img["height"] == 0:
            found.append(f"image not loaded: {img['src']}")
        if not img["alt"]:
            found.append(f"image without alt text: {img['src']}")
    for text in report["errors"]:
        found.append(f"error output: {text[:120]!r}")
    for text in report["stderr"]:
        if re.search(r"Traceback|Error\b|Exception\b", text):
            found.append(f"stderr output with an error: {text[:120]!r}")
    for href in sorted(set(report["links"])):
        why = broken_link(href, page_url, html_root)
        if why:
            found.append(f"broken link {why}")
    return found


def toc_pages(toc: Path) -> list[str]:
    """Docnames listed in _toc.yml (root first), without a YAML dependency."""
    names = []
    for line in toc.read_text().splitlines():
        m = re.match(r"\s*(?:-\s*)?(?:root|file):\s*(\S+)", line)
        if m:
            names.append(m.group(1).removesuffix(".md").removesuffix(".ipynb"))
    return names


def _toc_files(toc: Path) -> list[tuple[str, int, bool]]:
    """``(docname, indent, in a numbered part)`` for every ``- file:`` entry of _toc.yml."""
    entries, numbered = [], False
    for line in toc.read_text().splitlines():
        if re.match(r"\s*-\s*caption:", line):
            numbered = False
        elif re.match(r"\s*numbered:\s*true", line):
            numbered = True
        elif m := re.match(r"(\s*)-\s*file:\s*(\S+)", line):
            entries.append((m.group(2).removesuffix(".md"), len(m.group(1)), numbered))
    return entries


def numbered_chapters(toc: Path) -> dict[str, int]:
    """Docname -> chapter number for the part of _toc.yml marked ``numbered: true``.

    A chapter's section pages (entries nested deeper under it) carry the chapter's number.
    """
    entries = _toc_files(toc)
    top = min((indent for _, indent, _ in entries), default=0)
    numbers: dict[str, int] = {}
    chapter = 0
    for name, indent, numbered in entries:
        if numbered:
            chapter += indent == top
            numbers[name] = chapter
    return numbers


def section_pages(toc: Path) -> set[str]:
    """Docnames listed under another page's ``sections:`` (not chapters in their own right)."""
    entries = _toc_files(toc)
    top = min((indent for _, indent, _ in entries), default=0)
    return {name for name, indent, _ in entries if indent > top}


# --- the browser ---


def _serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep CI logs readable
        pass


def _browser(user_data_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _which("chromium", "chromium-browser", "google-chrome")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={user_data_dir}",
    ):
        options.add_argument(flag)
    service = Service(executable_path=_which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


def _which(*names: str) -> str:
    import shutil

    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(
        f"check_site: none of {names} found (install Debian's chromium, chromium-driver)"
    )


def load(driver, url: str) -> dict:
    driver.get(url)
    status = driver.execute_async_script(WAIT_MATHJAX_JS)
    if status is not True:
        raise RuntimeError(f"{url}: MathJax did not finish: {status}")
    return driver.execute_script(COLLECT_JS)


def screenshot(driver, report: dict, path: Path) -> None:
    driver.set_window_size(1280, min(max(int(report["height"]), 900), 16000))
    time.sleep(0.2)
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)


def check_site(
    html_root: Path,
    pages: list[str],
    shots: Path | None,
    tmp: Path,
    numbers: dict[str, int] | None = None,
    sections: set[str] | None = None,
) -> int:
    server, base = _serve(html_root)
    driver = _browser(tmp / "profile")
    failures = 0
    try:
        for page in pages:
            url = urljoin(base, f"{page}.html")
            if not (html_root / f"{page}.html").exists():
                print(f"FAIL {page}: not built ({page}.html missing)")
                failures += 1
                continue
            t0 = time.perf_counter()
            report = load(driver, url)
            is_chapter = (
                page.startswith("chapters/")
                and not page.startswith("chapters/appendix")
                and page not in (sections or set())
            )
            number = (numbers or {}).get(page)
            found = problems(report, url, html_root, chapter=is_chapter, number=number)
            n_img = len(report["images"])
            status = "ok  " if not found else "FAIL"
            print(f"{status} {page} ({n_img} images, {time.perf_counter() - t0:.1f} s)")
            for line in found:
                print(f"       {line}")
            failures += bool(found)
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                screenshot(driver, report, shots / f"{page.replace('/', '__')}.png")
    finally:
        driver.quit()
        server.shutdown()
    return failures


def self_test(tmp: Path) -> int:
    """The checker must report every planted defect of broken.html and nothing on good.html."""
    server, base = _serve(FIXTURES)
    driver = _browser(tmp / "profile-selftest")
    try:
        bad_report = load(driver, base + "broken.html")
        bad = problems(bad_report, base + "broken.html", FIXTURES, True, number=3)
        good_report = load(driver, base + "good.html")
        good = problems(good_report, base + "good.html", FIXTURES, True, number=3)
    finally:
        driver.quit()
        server.shutdown()
    expected = {
        "raw math": "raw math",
        "missing image": "image not loaded",
        "image without alt": "without alt text",
        "error output": "error output",
        "broken page link": "no such page",
        "broken anchor": "no anchor",
        "figure without caption": "without a caption",
        "no learning goals": "What you will learn",
        "no summary": "Summary",
        "overflowing output": "scrolls sideways at 1280 px: output",
        "overflowing collapsed code": "scrolls sideways at 1280 px: code",
        "figure numbered through the book": "figure number 'Fig. 35'",
        "equation without its chapter": "equation number '(12)'",
    }
    missed = [name for name, key in expected.items() if not any(key in p for p in bad)]
    for p in bad:
        print(f"  caught on broken.html: {p}")
    if missed or good:
        print(f"SELF-TEST FAILED: missed {missed}; false alarms on good.html: {good}")
        return 1
    print(f"self-test ok: all {len(expected)} planted defects caught, good.html clean")
    return 0


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--toc", type=Path, default=ROOT / "_toc.yml")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "site-check")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="check_site_") as tmp:
        if args.self_test:
            return self_test(Path(tmp))
        pages = toc_pages(args.toc)
        numbers = numbered_chapters(args.toc)
        sections = section_pages(args.toc)
        failures = check_site(
            args.html.resolve(), pages, args.screenshots, Path(tmp), numbers, sections
        )
    print(
        f"{len(pages) - failures} of {len(pages)} pages pass; screenshots in {args.screenshots}"
        if not failures
        else f"{failures} of {len(pages)} pages FAIL"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
