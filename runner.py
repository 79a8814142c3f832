#!/usr/bin/env python
"""daybreak's runner: `python runner.py --help` lists the commands."""

import sys

from daybreak.cli import main

if __name__ == "__main__":
    sys.exit(main())
