# daybreak porcelain: every target bootstraps .venv from requirements.lock first (once; a repeat
# installs nothing unless pyproject.toml or the lock changed), through daybreak/venv.py, which
# also serves `py runner.py ...` with no make at all. Tests run through nox (noxfile.py).
#
# Works with GNU make on Linux and macOS, and on Windows (OS=Windows_NT: .venv\Scripts, `py -3`)
# from cmd.exe, PowerShell or Git Bash: recipes are single commands with no shell syntax.

VENV := .venv
ifeq ($(OS),Windows_NT)
PYTHON ?= py -3
PY     := $(VENV)\Scripts\python.exe
NOX    := $(VENV)\Scripts\nox.exe
UV     := $(VENV)\Scripts\uv.exe
else
PYTHON ?= python3
PY     := $(VENV)/bin/python
NOX    := $(VENV)/bin/nox
UV     := $(VENV)/bin/uv
endif
STAMP  := $(VENV)/.daybreak-installed

.DEFAULT_GOAL := help
.PHONY: help bootstrap daily-sales runner ui lineage demo-data test bench lint typecheck lock clean

help:  ## list the targets
	@$(PYTHON) -c "import re; [print('  make %-12s %s' % m) for m in re.findall(r'^([a-z-]+):.*?## (.*)$$', open('Makefile').read(), re.M)]"

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) daybreak/venv.py

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
	$(NOX) -s tests

SCALE ?= small
bench: $(STAMP)  ## benchmarks beside their floors (SCALE=small|large): bench/results/, docs/PERFORMANCE.md
	$(NOX) -s bench -- --scale $(SCALE)

lint: $(STAMP)  ## ruff and the rooms' import contracts (import-linter)
	$(NOX) -s lint

typecheck: $(STAMP)  ## mypy
	$(NOX) -s typecheck

lock: $(STAMP)  ## re-resolve requirements.lock from pyproject.toml
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 -o requirements.lock

clean:  ## remove everything daybreak wrote under data/ (landing zone, lake, state)
	$(PYTHON) -c "import shutil; shutil.rmtree('data', ignore_errors=True)"
