"""The project's virtualenv, made and kept in step with requirements.lock (Linux, macOS, Windows).

`python daybreak/venv.py` (what `make` runs) and `python runner.py ...` with a Python that lacks
daybreak's dependencies (`py runner.py run daily_sales_flow` on a fresh Windows clone, no make
needed) both come here: `.venv` is created if missing, uv is installed into it, the locked
dependencies are synced and daybreak installed in editable mode, and a stamp records the hash of
pyproject.toml and requirements.lock so the next call installs nothing unless they changed.
runner.py then hands itself to `.venv`'s Python.

Imports nothing beyond the standard library: it runs before the dependencies exist.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UV_VERSION = "0.13.9"
STAMP = ".daybreak-installed"


def venv_python(root: Path = ROOT, *, windows: bool = os.name == "nt") -> Path:
    """The virtualenv's interpreter (.venv\\Scripts\\python.exe on Windows)."""
    return root / ".venv" / ("Scripts/python.exe" if windows else "bin/python")


def fingerprint(root: Path = ROOT) -> str:
    """What the installed environment must match: the dependency declarations."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "requirements.lock"):
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def is_current(root: Path = ROOT, *, windows: bool = os.name == "nt") -> bool:
    stamp = root / ".venv" / STAMP
    try:
        return venv_python(root, windows=windows).exists() and stamp.read_text() == fingerprint(
            root
        )
    except OSError:
        return False


def bootstrap_commands(
    root: Path = ROOT, python: str = sys.executable, *, windows: bool = os.name == "nt"
) -> list[list[str]]:
    """The commands that make `.venv` match requirements.lock, in order."""
    venv = venv_python(root, windows=windows)
    uv = venv.parent / ("uv.exe" if windows else "uv")
    commands = []
    if not venv.exists():
        commands.append([python, "-m", "venv", str(root / ".venv")])
    if not uv.exists():
        commands.append([str(venv), "-m", "pip", "install", "--quiet",
                         "--disable-pip-version-check", f"uv=={UV_VERSION}"])  # fmt: skip
    # --compile-bytecode: imports read .pyc from the start (machines that set
    # PYTHONDONTWRITEBYTECODE would otherwise compile pandas, dbt and Hamilton on every command).
    commands.append([str(uv), "pip", "sync", "--quiet", "--compile-bytecode", "--python",
                     str(venv), str(root / "requirements.lock")])  # fmt: skip
    commands.append([str(uv), "pip", "install", "--quiet", "--python", str(venv), "--no-deps",
                     "-e", str(root)])  # fmt: skip
    return commands


def bootstrap(root: Path = ROOT, python: str = sys.executable) -> Path:
    """Make `.venv` match requirements.lock (nothing to do if the stamp says it does)."""
    if is_current(root):
        return venv_python(root)
    print(f"daybreak: setting up {root / '.venv'} from requirements.lock (once; a few minutes "
          "the first time)", file=sys.stderr, flush=True)  # fmt: skip
    for command in bootstrap_commands(root, python):
        done = subprocess.run(command, cwd=root)
        if done.returncode != 0:
            sys.exit(f"daybreak: setting up .venv failed: {' '.join(command)} exited with "
                     f"{done.returncode}")  # fmt: skip
    (root / ".venv" / STAMP).write_text(fingerprint(root))
    return venv_python(root)


def ensure_project_python(script: str) -> None:
    """Re-run `script` under the project's .venv Python if this one lacks the dependencies,
    making .venv first if it is missing or out of date."""
    if importlib.util.find_spec("duckdb") is not None and importlib.util.find_spec("hamilton"):
        return
    if Path(sys.prefix).resolve() == (ROOT / ".venv").resolve():
        sys.exit("daybreak's dependencies are missing from .venv: run `make bootstrap` or "
                 "`python daybreak/venv.py`")  # fmt: skip
    venv = bootstrap()
    args = [str(venv), script, *sys.argv[1:]]
    if os.name == "nt":  # the one platform-specific branch: Windows has no exec
        sys.exit(subprocess.call(args))
    os.execv(str(venv), args)


if __name__ == "__main__":
    bootstrap()
