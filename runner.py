#!/usr/bin/env python
"""daybreak's runner: `python runner.py --help` lists the commands."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daybreak.venv import ensure_project_python

ensure_project_python(__file__)

from daybreak.views.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
