# daybreak porcelain: every target bootstraps .venv from requirements.lock first (once; a repeat
# installs nothing unless pyproject.toml or the lock changed). Tests run through nox (noxfile.py).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.daybreak-installed
UV_VERSION := 0.13.9

.DEFAULT_GOAL := help
.PHONY: help bootstrap daily-sales runner ui lineage demo-data test bench lint typecheck lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# --compile-bytecode: imports read .pyc from the start (and on machines that set
# PYTHONDONTWRITEBYTECODE they never would otherwise): a runner command starts ~1 s sooner.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $@

bootstrap: $(STAMP)  ## create .venv and install daybreak with its locked dependencies

daily-sales: $(STAMP)  ## run the daily sales flow (writes demo data first if the landing zone is empty)
	$(PY) runner.py run daily_sales_flow

runner: $(STAMP)  ## the long-lived scheduler: runs the jobs on their schedules until Ctrl-C
	$(PY) runner.py

ui: $(STAMP)  ## the Hamilton UI on 127.0.0.1:8241: lineage and every run (sign in as daybreak@localhost)
	$(PY) runner.py ui

lineage: $(STAMP)  ## draw the asset graph by last status to data/exports/lineage.svg (ARGS="--job J -o x.png")
	$(PY) runner.py lineage $(ARGS)

demo-data: $(STAMP)  ## (re)write the demo landing zone
	$(PY) -m daybreak.ingest.demo

test: $(STAMP)  ## the whole test suite (installs Azurite from npm and Chromium from Debian on first use)
	$(VENV)/bin/nox -s tests

SCALE ?= small
bench: $(STAMP)  ## benchmarks beside their floors (SCALE=small|large): bench/results/, docs/PERFORMANCE.md
	$(VENV)/bin/nox -s bench -- --scale $(SCALE)

lint: $(STAMP)  ## ruff
	$(VENV)/bin/nox -s lint

typecheck: $(STAMP)  ## mypy
	$(VENV)/bin/nox -s typecheck

lock: $(STAMP)  ## re-resolve requirements.lock from pyproject.toml
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 -o requirements.lock

clean:  ## remove everything daybreak wrote under data/ (landing zone, lake, state)
	rm -rf data
