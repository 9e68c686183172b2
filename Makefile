# Build, test and benchmark the book and mftlib.  GNU make.
#
#   make book    set up .venv (once) and build the site into _build/html
#   make test    run the mftlib test suite
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

.PHONY: all venv book test bench lint format clean

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
book: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/jupyter-book build . --builder html -W --keep-going -n; \
	status=$$?; \
	echo "book: built in $$(( $$(date +%s) - start )) s (exit $$status)"; \
	exit $$status

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check mftlib tests benchmarks
	$(BIN)/ruff format --check mftlib tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix mftlib tests benchmarks
	$(BIN)/ruff format mftlib tests benchmarks

clean:
	rm -rf _build
