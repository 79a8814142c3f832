"""Let `python runner.py` (or an export script) work with any Python once `make` built .venv.

Imports nothing beyond the standard library, so it runs before daybreak's dependencies are known
to be importable.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_project_python(script: str) -> None:
    """Re-run `script` under the project's .venv Python if this one lacks the dependencies."""
    if importlib.util.find_spec("duckdb") is not None and importlib.util.find_spec("hamilton"):
        return
    venv = ROOT / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if venv.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        args = [str(venv), script, *sys.argv[1:]]
        if os.name == "nt":  # the one platform-specific branch: Windows has no exec
            import subprocess

            sys.exit(subprocess.call(args))
        os.execv(str(venv), args)
    sys.exit(
        "daybreak's dependencies are not installed in this Python: "
        "run `make bootstrap` (or `make daily-sales`) first"
    )
