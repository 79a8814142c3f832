"""daybreak's verbs: `nox -l` lists them. Sessions run in the project .venv that make creates."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "none"

ROOT = Path(__file__).parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"


def _ensure_node_tools(session: nox.Session) -> None:
    lock = ROOT / "package-lock.json"
    if not AZURITE.exists() or AZURITE.stat().st_mtime < lock.stat().st_mtime:
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
        AZURITE.touch()


CHROMIUM = "/usr/bin/chromium"


def _ensure_chromium(session: nox.Session) -> None:
    """The status page's browser test drives Debian's chromium (never a downloaded browser)."""
    if Path(CHROMIUM).exists():
        return
    if not shutil.which("apt-get"):
        session.error(
            f"the browser test needs {CHROMIUM}: install Chromium (Debian: apt install chromium)"
        )
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run(*sudo, "apt-get", "update", "-qq", external=True, env=env)
    session.run(*sudo, "apt-get", "install", "-y", "-qq", "chromium", external=True, env=env)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (Azurite and Chromium included); extra arguments go to pytest."""
    _ensure_node_tools(session)
    _ensure_chromium(session)
    session.run(sys.executable, "-m", "pytest", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The benchmark suite (not part of the tests): `nox -s bench -- --scale large`; results in
    bench/results/ and docs/PERFORMANCE.md says what they mean."""
    session.run(sys.executable, "-m", "bench.suite", *session.posargs)


@nox.session(default=False)
def dbt(session: nox.Session) -> None:
    """Run the dbt CLI on daybreak's project and paths: `nox -s dbt -- build -s stg_budget`."""
    from daybreak.config import load_settings
    from daybreak.warehouse import warehouse_lock

    settings = load_settings()
    paths = settings.paths
    env = {"DAYBREAK_LAKE": paths.lake.as_posix(), "DAYBREAK_WAREHOUSE": paths.warehouse.as_posix()}
    args = session.posargs or ["build"]
    project = ["--project-dir", str(paths.dbt_project), "--profiles-dir", str(paths.dbt_project)]
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    with warehouse_lock(paths.state, f"nox -s dbt -- {' '.join(args)}"):
        session.run(str(Path(sys.executable).parent / "dbt"), *args, *project, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common mistakes with ruff."""
    session.run(sys.executable, "-m", "ruff", "check", ".", *session.posargs)
    session.run(sys.executable, "-m", "ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check daybreak, the dataflows and the runner with mypy."""
    session.run(sys.executable, "-m", "mypy", *session.posargs)
