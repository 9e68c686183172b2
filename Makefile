# Build, test and benchmark the book and mftlib.  GNU make.
#
#   make book       set up .venv (once) and build the site into _build/html
#   make test       run the fast mftlib tests (under 3 minutes cold on two cores)
#   make test-slow  run the slow tests: finite networks simulated and trained (CI runs both)
#   make test-all   both
#   make test-site  load every built page in headless Chromium and check what a reader sees
#   make notebooks  regenerate chapters/*.ipynb from the MyST sources (make book does it too)
#   make bench   run the timing benchmarks against their budgets
#   make lint    ruff check + ruff format --check
#   make clean   remove _build
#
# float64 for JAX is switched on inside mftlib, not here.

PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export JAX_PLATFORMS = cpu
export PYTHONHASHSEED = 0

.PHONY: all venv book test test-slow test-all test-site notebooks bench lint format clean

all: book

# The virtual environment is rebuilt whenever requirements.txt or pyproject.toml changes.
venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

# -W turns every Sphinx warning into an error (--keep-going reports all of them first);
# -n (nitpicky) also flags every unresolved cross-reference.
book: $(STAMP) notebooks
	@start=$$(date +%s); \
	$(BIN)/jupyter-book build . --builder html -W --keep-going -n; \
	status=$$?; \
	echo "book: built in $$(( $$(date +%s) - start )) s (exit $$status)"; \
	exit $$status

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow" tests

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

lint: $(STAMP)
	$(BIN)/ruff check mftlib tests benchmarks tools
	$(BIN)/ruff format --check mftlib tests benchmarks tools

format: $(STAMP)
	$(BIN)/ruff check --fix mftlib tests benchmarks tools
	$(BIN)/ruff format mftlib tests benchmarks tools

clean:
	rm -rf _build
