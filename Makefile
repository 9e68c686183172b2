# Build, test and benchmark the book and mftlib.  GNU make.
#
#   make book       set up .venv (once) and build the site into _build/html
#   make test       run the fast mftlib tests (under 3 minutes cold on two cores)
#   make test-slow  run the slow tests: finite networks simulated and trained (CI runs both)
#   make test-all   both
#   make test-site  load every built page in headless Chromium and check what a reader sees
#   make notebooks  regenerate chapters/*.ipynb from the MyST sources (make book does it too)
#   make bench   run the timing benchmarks against their budgets
#   make lint    ruff check + ruff format --check (library, tests, tools and the chapters' code)
#   make format  apply ruff's fixes and formatting (the chapters' code cells in their .md sources)
#   make lock    re-resolve requirements.lock from requirements.txt at today's newest versions
#   make clean   remove _build
#
# float64 for JAX is switched on inside mftlib, not here.

PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export JAX_PLATFORMS = cpu
export PYTHONHASHSEED = 0

.PHONY: all venv lock book test test-slow test-all test-site notebooks bench lint format clean

all: book

# The virtual environment is installed from requirements.lock (exact versions, hashed), so that
# every machine builds with what CI tested; it is rebuilt whenever the lock or pyproject.toml
# changes. requirements.txt keeps the ranges for people who install mftlib into their own
# environment; `make lock` resolves it again.
venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	touch $@

# Newest versions within requirements.txt's ranges, for Python 3.11.5+ on every platform, with the
# hashes of every file. Review the diff, run `make test` and `make book`, and commit the lock.
LOCK_FLAGS := --universal --python-version 3.11.5 --generate-hashes --no-emit-package mftlib \
	--custom-compile-command "make lock"

lock: $(STAMP)
	$(BIN)/uv pip compile requirements.txt $(LOCK_FLAGS) --upgrade -o requirements.lock

# -W turns every Sphinx warning into an error (--keep-going reports all of them first);
# -n (nitpicky) also flags every unresolved cross-reference.
# tools/book_cache.py clears the execution cache when mftlib, the installed packages or MFT_SCALE
# changed since the last build (MyST-NB's cache keys on a notebook's code cells only).
book: $(STAMP) notebooks
	$(BIN)/python tools/book_cache.py --build _build
	@start=$$(date +%s); \
	$(BIN)/jupyter-book build . --builder html -W --keep-going -n; \
	status=$$?; \
	echo "book: built in $$(( $$(date +%s) - start )) s (exit $$status)"; \
	exit $$status

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow" --durations=15 tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m slow tests

test-all: test test-slow

notebooks: $(STAMP)
	$(BIN)/python tools/make_notebooks.py

# The checker first proves on a broken fixture page that it still catches every defect.
test-site: $(STAMP)
	$(BIN)/python tests/site/check_site.py --self-test
	$(BIN)/python tests/site/check_site.py --html _build/html --screenshots _build/site-check

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The chapters are linted as the generated notebooks (whole chapters, so names from earlier
# cells resolve) under chapters/ruff.toml (79 columns); their formatting is checked in the
# MyST sources themselves.
lint: $(STAMP) notebooks
	$(BIN)/ruff check mftlib tests benchmarks tools chapters
	$(BIN)/ruff format --check mftlib tests benchmarks tools
	$(BIN)/python tools/format_chapters.py --check

format: $(STAMP)
	$(BIN)/ruff check --fix mftlib tests benchmarks tools
	$(BIN)/ruff format mftlib tests benchmarks tools
	$(BIN)/python tools/format_chapters.py
	$(BIN)/python tools/make_notebooks.py

clean:
	rm -rf _build
