"""daybreak's verbs: `nox -l` lists them. Sessions run in the project .venv that make creates."""

from __future__ import annotations

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


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (Azurite included); extra arguments go to pytest."""
    _ensure_node_tools(session)
    session.run(sys.executable, "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common mistakes with ruff."""
    session.run(sys.executable, "-m", "ruff", "check", ".", *session.posargs)
    session.run(sys.executable, "-m", "ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check daybreak, the dataflows and the runner with mypy."""
    session.run(sys.executable, "-m", "mypy", *session.posargs)
