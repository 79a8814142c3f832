"""A graph for the cluster fault tests: one asset that writes a lake file slowly enough to be
killed in the middle, the first time it runs."""

from __future__ import annotations

import os
import time

from hamilton.function_modifiers import tag

from daybreak.assets.tags import retry_policy
from daybreak.config import Settings
from daybreak.files import atomic_path

ROWS = 10_000


@retry_policy(max_retries=2, delay=0, backoff="constant")
@tag(group="cluster_faults", kind="ingestion")
def slow_lake_file(settings: Settings) -> dict[str, int]:
    """Writes lake/slow/part.csv; the first attempt stops half way until it is killed."""
    marker = settings.paths.state / "slow.pid"
    first = not marker.exists()
    target = settings.paths.lake / "slow" / "part.csv"
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as out:
        for row in range(ROWS):
            out.write(f"{row},{row * 2}\n")
            if first and row == ROWS // 2:
                out.flush()
                marker.write_text(str(os.getpid()), encoding="utf-8")
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:  # half written: the test kills us now
                    time.sleep(0.1)
                raise RuntimeError("slow_lake_file was not killed within 120 s")
    return {"rows": ROWS, "pid": os.getpid()}


@tag(group="cluster_faults", kind="ingestion")
def secrets_seen(settings: Settings) -> dict[str, bool]:
    """What the process that runs it knows of the Azure secret."""
    return {"azure": settings.secrets.azure_connection_string is not None}
