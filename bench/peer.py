"""The peer in the benchmark: Dagster running a no-op job of daily_sales_flow's shape.

Dagster is installed into its own virtualenv under bench/.dagster (git-ignored), never into
daybreak's, with uv (which `make` already put in .venv). The job is written from daybreak's own
graph of the no-op flow (bench/noop_flow.py): one op per asset, the same dependencies, each op
doing nothing, so both sides pay only for orchestration. `dagster job execute` runs it in-process
from the CLI with an empty DAGSTER_HOME, the closest thing Dagster has to `runner.py run`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DAGSTER = "dagster>=1.13,<1.14"


def ensure_dagster(root: Path) -> Path:
    """bench/.dagster with Dagster in it (made once); its python."""
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    marker = root / ".installed"
    if marker.exists() and python.exists():
        return python
    uv = Path(sys.executable).with_name("uv.exe" if os.name == "nt" else "uv")
    subprocess.run([str(uv), "venv", "--python", sys.executable, str(root)], check=True)
    subprocess.run([str(uv), "pip", "install", "--python", str(python), DAGSTER], check=True)
    marker.touch()
    return python


def job_source(name: str, shape: dict[str, list[str]]) -> str:
    """A Dagster job named `name`: one no-op op per asset, `shape` asset -> its upstream (in
    dependency order)."""
    lines = [
        "from dagster import In, Nothing, job, op",
        "",
    ]
    for asset, upstream in shape.items():
        ins = ", ".join(f'"{u}": In(Nothing)' for u in upstream)
        lines += [f"@op(ins={{{ins}}})", f"def {asset}():", "    return None", ""]
    lines += ["@job", f"def {name}():"]
    for asset, upstream in shape.items():
        args = ", ".join(f"{u}=r_{u}" for u in upstream)
        lines.append(f"    r_{asset} = {asset}({args})")
    return "\n".join(lines) + "\n"
