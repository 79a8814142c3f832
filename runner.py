#!/usr/bin/env python
"""daybreak's runner: `python runner.py --help` lists the commands."""

import os
import sys
from pathlib import Path

try:
    from daybreak.cli import main
except ModuleNotFoundError as missing:
    # Run with a Python that lacks daybreak's dependencies: use the project's .venv if it exists.
    here = Path(__file__).resolve().parent
    venv = here / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if venv.exists() and Path(sys.prefix).resolve() != (here / ".venv").resolve():
        if os.name == "nt":  # the one platform-specific branch: Windows has no exec
            import subprocess

            sys.exit(subprocess.call([str(venv), __file__, *sys.argv[1:]]))
        os.execv(str(venv), [str(venv), __file__, *sys.argv[1:]])
    sys.exit(
        f"daybreak's dependencies are not installed ({missing.name} is missing): "
        "run `make bootstrap` (or `make daily-sales`) first"
    )

if __name__ == "__main__":
    sys.exit(main())
