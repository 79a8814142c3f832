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
JAVA = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"


def _ensure_debian_package(session: nox.Session, package: str, path: str) -> None:
    """Install a Debian package when `path` is missing (root, or through sudo)."""
    if Path(path).exists():
        return
    if not shutil.which("apt-get"):
        session.error(f"{path} is missing: install {package} (Debian: apt install {package})")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run(*sudo, "apt-get", "update", "-qq", external=True, env=env)
    session.run(*sudo, "apt-get", "install", "-y", "-qq", package, external=True, env=env)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (Azurite and Chromium included); extra arguments go to pytest."""
    _ensure_node_tools(session)
    # The status page's browser test drives Debian's chromium (never a downloaded browser).
    _ensure_debian_package(session, "chromium", CHROMIUM)
    # The Spark tests run a local Spark (pyspark from the lock), which needs a Java runtime.
    if not shutil.which("java"):
        _ensure_debian_package(session, "openjdk-17-jre-headless", JAVA)
    session.run(sys.executable, "-m", "pytest", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The benchmark suite (not part of the tests): `nox -s bench -- --scale large`; results in
    bench/results/ and docs/PERFORMANCE.md says what they mean."""
    session.run(sys.executable, "-m", "bench.suite", *session.posargs)


@nox.session(default=False)
def crash(session: nox.Session) -> None:
    """Crash injection, long: `nox -s crash -- --kills 200 [--seed N]` SIGKILLs a real runner at
    that many random moments (tests/test_crash.py); the summary goes to docs/CRASH-RESULTS.md."""
    import argparse
    import random
    import time

    parser = argparse.ArgumentParser(prog="nox -s crash --")
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1 << 30))
    args = parser.parse_args(session.posargs)
    started = time.monotonic()
    env = {"DAYBREAK_CRASH_KILLS": str(args.kills), "DAYBREAK_CRASH_SEED": str(args.seed)}
    session.run(sys.executable, "-m", "pytest", "-q", "-s", "tests/test_crash.py", env=env)
    minutes = (time.monotonic() - started) / 60
    line = (f"| {time.strftime('%Y-%m-%d')} | {args.seed} | {args.kills} | passed | "
            f"{minutes:.1f} min |\n")  # fmt: skip
    results = ROOT / "docs" / "CRASH-RESULTS.md"
    if not results.exists():
        results.write_text("# Crash injection runs (`nox -s crash`)\n\nEach row: every kill was "
                           "followed by the next ordinary command and every invariant of "
                           "tests/test_crash.py held.\n\n| date | seed | kills | result | took |\n"
                           "|---|---:|---:|---|---:|\n", encoding="utf-8")  # fmt: skip
    with results.open("a", encoding="utf-8") as out:
        out.write(line)
    session.log(f"appended to {results}")


@nox.session(default=False)
def dbt(session: nox.Session) -> None:
    """The dbt CLI on daybreak's project, paths and markets: `nox -s dbt -- build -s stg_budget`."""
    from daybreak.config import load_settings
    from daybreak.warehouse.dbt_project import DbtProject

    code = DbtProject(load_settings()).cli(session.posargs or ["build"])
    if code:
        session.error(f"dbt exited with {code}")


# Where the date-shifted runs put the clock: months ahead, and minutes before each of 2027's clock
# changes in London (28 March and 31 October, 01:00 UTC), so the runs cross them.
SHIFT_DAYS = [97, 200]
SHIFT_TO = ["2027-03-28T00:40:00+00:00", "2027-10-31T00:40:00+00:00"]


@nox.session(default=False)
def dates(session: nox.Session) -> None:
    """The date-sensitive tests (marker `dates`) with the whole process tree's clock moved by
    libfaketime: today, months ahead and across the 2027 clock changes (`-- -k NAME` to narrow).

    The shifted clock ticks; monotonic time is shifted by the same offset (libfaketime's
    FAKETIME_DONT_FAKE_MONOTONIC breaks Python's sleep), so durations and timeouts still hold."""
    import datetime as dt

    _ensure_debian_package(session, "faketime", "/usr/bin/faketime")
    now = dt.datetime.now(dt.UTC)
    targets = [now + dt.timedelta(days=d) for d in SHIFT_DAYS]
    targets += [dt.datetime.fromisoformat(t) for t in SHIFT_TO]
    for target in targets:
        # An offset, not a start time: every process the tests start sees the same clock.
        offset = f"{int((target - dt.datetime.now(dt.UTC)).total_seconds()):+d}"
        session.log(f"clock moved to {target:%Y-%m-%d %H:%M} UTC ({offset} s)")
        session.run(
            "faketime", "-f", offset, sys.executable, "-m", "pytest", "-m", "dates", "-q",
            *session.posargs, external=True,
        )  # fmt: skip


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common mistakes with ruff, and the rooms' import rules with import-linter."""
    session.run(sys.executable, "-m", "ruff", "check", ".", *session.posargs)
    session.run(sys.executable, "-m", "ruff", "format", "--check", ".")
    # The rooms' import rules ([tool.importlinter] in pyproject.toml, docs/ARCHITECTURE.md).
    session.run(str(Path(sys.executable).parent / "lint-imports"))


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check daybreak, the dataflows and the runner with mypy."""
    session.run(sys.executable, "-m", "mypy", *session.posargs)
