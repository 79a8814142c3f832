"""`runner.py check`: everything a scheduled run depends on, checked without running anything.

The config (keys, types, zones, cron expressions) and the secrets its backends need are checked
by load_settings; here: the asset graph builds (the dataflows import, dbt parses the project),
every job's selection names assets or groups that exist, every export names tables that dbt
builds and upstream assets that exist, every schedule evaluates, and every `on_arrival` input is
an asset of the job that syncs files. Each problem names where it
is (the config file and line, or the dbt project). The scheduler runs this at start and logs it;
a job with a problem still gets its ticks, and fails them as recorded, alerted runs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from daybreak.config import Settings
from daybreak.errors import ConfigError, UsageError


@dataclass(frozen=True)
class Problem:
    """One thing a scheduled run would trip over, and where it is."""

    where: str  # file:line, or a file, or a key
    key: str  # the config key or the component ("dbt project", "dataflows")
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.message}"

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def _line_of(config: Path, pattern: str, occurrence: int = 0) -> str:
    """`file:line` of the `occurrence`-th line matching `pattern`, else just the file."""
    try:
        lines = config.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError:
        return str(config)
    found = [n for n, line in enumerate(lines, start=1) if re.match(pattern, line.strip())]
    return f"{config}:{found[occurrence]}" if len(found) > occurrence else str(config)


def check(settings: Settings) -> tuple[list[Problem], dict[str, Any]]:
    """Every problem found, and what was checked (counts), for a config that loaded."""
    from daybreak.assets import catalogue
    from daybreak.assets.dbt_models import MODEL_KIND
    from daybreak.runner.plan import uses_sync
    from daybreak.runner.scheduler import schedule_of
    from daybreak.warehouse.dbt_project import DbtError

    config = settings.config_path
    problems: list[Problem] = []
    try:
        dr = catalogue.build_driver(settings)
        assets = catalogue.catalogue(dr)
    except DbtError as exc:
        return [Problem(str(settings.paths.dbt_project), "dbt project", str(exc))], {}
    except (ConfigError, UsageError) as exc:
        return [Problem(str(config), "graph", str(exc))], {}
    except Exception as exc:  # a dataflow that does not import, say: name it, do not crash
        return [Problem(str(config), "graph", f"{type(exc).__name__}: {exc}")], {}

    for name, job in settings.jobs.items():
        where = _line_of(config, rf"\[jobs\.{re.escape(name)}\]")
        try:
            runs = catalogue.with_upstream(assets, catalogue.select(assets, job.select))
        except UsageError as exc:
            problems.append(Problem(where, f"jobs.{name}.select", str(exc).split(" (")[0]))
            runs = []
        for asset in job.on_arrival:
            if asset not in assets or not uses_sync(dr, asset):
                syncs = [a for a in assets if uses_sync(dr, a)]
                problems.append(
                    Problem(
                        where,
                        f"jobs.{name}.on_arrival",
                        f"{asset!r} is not an "
                        f"asset that syncs files (those are: {', '.join(syncs)})",
                    )
                )
            elif runs and asset not in runs:
                problems.append(
                    Problem(
                        where,
                        f"jobs.{name}.on_arrival",
                        f"{asset!r} is not run by the job, so its files would never be taken",
                    )
                )
        if job.cron:
            try:
                schedule_of(job)
            except ValueError as exc:
                problems.append(Problem(where, f"jobs.{name}.cron", str(exc)))

    models = {n for n, a in assets.items() if a.tags.get("kind") == MODEL_KIND}
    for i, export in enumerate(settings.exports):
        where = _line_of(config, r"\[\[exports\]\]", i)
        for table in export.tables:
            if table not in models:
                problems.append(Problem(
                    where, f"exports[{i}].tables",
                    f"{table!r} is not a dbt model, so no build makes it (models: "
                    f"{', '.join(sorted(models))})",
                ))  # fmt: skip
    if settings.engine.kind == "dask":  # the scheduler answers, and its workers fit this runner
        from daybreak.runner.engine import EngineUnavailable, open_engine

        try:
            open_engine(settings).close()
        except EngineUnavailable as exc:
            problems.append(Problem(_line_of(config, r"\[engine\]"), "engine", str(exc)))
    counts = {
        "jobs": len(settings.jobs),
        "scheduled": sum(1 for j in settings.jobs.values() if j.cron),
        "assets": len(assets),
        "dbt_models": len(models),
        "exports": len(settings.exports),
    }
    return problems, counts
