"""The plan: before anything runs, what a run will do and why, asset by asset.

`runner.py plan JOB|ASSET...` prints it and `execute_run` obeys it, so the two never disagree; the
run records it. In dependency order, an asset runs when
- the run is a full refresh;
- it has never succeeded, or its last attempt did not succeed;
- its code changed since its last success (the asset function's source, a dbt model's checksum
  from the manifest, an export's entry in the config);
- it syncs files and the source has new, changed or deleted files (from listing names and ETags:
  the asset itself runs in dry-run mode, so the plan uses the sync's own window and rules), or a
  bad file still waits in quarantine;
- it reads Finance's workbook and the workbook differs from the last copy kept (or it comes from
  SharePoint, where telling would mean downloading it);
- an asset it depends on will run ("upstream will change");
- it is stale by its freshness policy;
- it runs last (the warehouse backup) and something else in the run changes the warehouse.
Otherwise it is up to date and skipped.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hamilton import driver

from daybreak.assets import catalogue
from daybreak.assets.catalogue import Asset
from daybreak.assets.dbt_models import MODEL_KIND
from daybreak.config import Settings
from daybreak.files import same_content, snapshots
from daybreak.logs import redact
from daybreak.runner.freshness import freshness
from daybreak.runner.history import History
from daybreak.warehouse.dbt_project import DbtProject

_SHOWN = 5  # file names listed per reason


@dataclass
class Step:
    """One asset of a plan: whether it runs, and why (or why not)."""

    asset: str
    run: bool
    reasons: list[str]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def code_versions(
    settings: Settings, dr: driver.Driver, assets: dict[str, Asset]
) -> dict[str, str]:
    """A fingerprint of each asset's code: what `plan` compares with its last success."""
    manifest = DbtProject(settings).graph_manifest()
    exports = {e.asset: e for e in settings.exports}
    nodes = {n.name: n for n in dr.graph.get_nodes()}
    found: dict[str, str] = {}
    for name, asset in assets.items():
        if asset.tags.get("kind") == MODEL_KIND:
            node = manifest["nodes"].get(asset.tags.get("dbt_unique_id", ""), {})
            text = json.dumps(node.get("checksum", {}), sort_keys=True)
        elif name in exports:
            text = exports[name].model_dump_json()
        else:
            functions = getattr(nodes.get(name), "originating_functions", None) or ()
            try:
                text = "".join(inspect.getsource(f) for f in functions)
            except (OSError, TypeError):
                continue  # no source to compare (a built-in): never "changed"
        found[name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return found


def _files(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def sync_preview(dr: driver.Driver, name: str, inputs: dict[str, Any]) -> Any:
    """A sync asset run in dry-run mode: its report says which files it would take now (names,
    ETags, sizes from the listing alone) and which are gone; nothing is written. What `plan`
    and the arrival watcher (daybreak.runner.arrival) both ask."""
    return dr.execute([name], inputs={**inputs, "dry_run": True})[name]


def _sync_reasons(dr: driver.Driver, name: str, inputs: dict[str, Any]) -> list[str]:
    try:
        report = sync_preview(dr, name, inputs)
    except Exception as exc:  # Azure down, say: the sync itself retries by its policy
        return [f"its source could not be listed ({redact(f'{type(exc).__name__}: {exc}')}); "
                "the sync runs and retries by its policy"]  # fmt: skip
    reasons = []
    gone = set(report.lake_missing)
    changed = [name for name in report.pending if name not in gone]
    if changed:
        reasons.append(f"{len(changed)} new or changed file(s) upstream: {_files(changed)}")
    if gone:
        reasons.append(f"{len(gone)} file(s) synced before but missing from the lake: "
                       f"{_files(report.lake_missing)}")  # fmt: skip
    if report.deleted:
        reasons.append(f"{len(report.deleted)} file(s) deleted upstream: {_files(report.deleted)}")
    if report.errors:
        reasons.append(f"{len(report.errors)} file(s) refused by name: {report.errors[0]}")
    return reasons


def _budget_reasons(settings: Settings) -> list[str]:
    if settings.budget.source != "local":
        return ["the workbook comes from SharePoint: whether it changed is known only by "
                "downloading it"]  # fmt: skip
    source = settings.paths.landing / "sharepoint" / settings.budget.file
    kept = snapshots(settings.state.downloads("budget"), source.stem, source.suffix)
    if not source.exists():
        return [f"the workbook {source} is missing (the run will say so)"]
    if not kept or not same_content(kept[-1], source):
        return [f"the workbook {settings.budget.file} changed since the last copy kept"]
    return []


def uses_sync(dr: driver.Driver, name: str) -> bool:
    """Whether asset `name` syncs files from the landing zone (it needs a sync context)."""
    node = next((n for n in dr.graph.get_nodes() if n.name == name), None)
    return node is not None and any(d.name == "sync_context" for d in node.dependencies)


def _recovered(settings: Settings) -> dict[str, Any] | None:
    """The last warehouse recovery's note (daybreak.warehouse.backup.recover_warehouse)."""
    try:
        note = json.loads(settings.state.warehouse_recovered.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return note if isinstance(note, dict) and isinstance(note.get("at"), str) else None


def make_plan(
    settings: Settings,
    dr: driver.Driver,
    assets: dict[str, Asset],
    selection: list[str],
    history: History,
    inputs: dict[str, Any],
    *,
    full_refresh: bool = False,
    versions: dict[str, str] | None = None,
) -> list[Step]:
    """Each asset the selection needs, in dependency order, with whether it runs and why
    (`versions`: the code versions, if the caller has them already)."""
    order = catalogue.with_upstream(assets, catalogue.select(assets, selection))
    # What runs last (a backup) is judged last, once it is known whether anything else runs.
    order = sorted(order, key=lambda a: assets[a].tags.get("run_last") == "true")
    versions = code_versions(settings, dr, assets) if versions is None else versions
    succeeded = history.success_versions()
    last = history.last_attempts()
    built = history.success_order()
    states = {f.asset: f for f in freshness(settings, history, assets=order)}
    recovered = _recovered(settings)
    successes = history.last_success() if recovered else {}
    running: set[str] = set()
    steps: list[Step] = []
    for name in order:
        asset = assets[name]
        reasons: list[str] = []
        if full_refresh:
            reasons.append("full refresh")
        elif name not in succeeded:
            reasons.append("never built")
        else:
            attempt = last.get(name)
            if attempt is not None and attempt["status"] not in ("success", "fresh"):
                reasons.append(f"its last attempt {attempt['status']}")
            if versions.get(name) and succeeded[name] != versions[name]:
                reasons.append("its code changed since its last success")
            if uses_sync(dr, name):
                reasons += _sync_reasons(dr, name, inputs)
            elif asset.tags.get("source") == "workbook":
                reasons += _budget_reasons(settings)
            changed = [u for u in asset.upstream if u in running]
            if changed:
                reasons.append(f"upstream will change: {', '.join(changed)}")
            # Built since, by another job, a backfill or by hand: what it has is older.
            newer = [u for u in asset.upstream if u not in running
                     and built.get(u, 0) > built.get(name, 0)]  # fmt: skip
            if newer:
                reasons.append(f"upstream changed since its last success: {', '.join(newer)}")
            if asset.tags.get("run_last") == "true":  # a backup: after the warehouse changed
                models = [a for a in order if assets[a].tags.get("kind") == MODEL_KIND]
                if any(m in running for m in models):
                    reasons.append("runs last, after what changes the warehouse in this run")
                elif any(built.get(m, 0) > built.get(name, 0) for m in models):
                    reasons.append("the warehouse changed since its last success")
            if recovered and asset.tags.get("kind") == MODEL_KIND and (
                    successes.get(name) or "") < recovered["at"]:  # fmt: skip
                how = (f"restored from {Path(recovered['restored_from']).name}"
                       if recovered.get("restored_from") else "rebuilt from the lake")  # fmt: skip
                reasons.append(f"the warehouse did not open and was {how} at {recovered['at']}")
            state = states.get(name)
            if state is not None and state.state == "stale":
                reasons.append(f"stale by its freshness policy (last success {state.last_success})")
        if reasons:
            running.add(name)
            steps.append(Step(name, True, reasons))
        else:
            last_success = states[name].last_success if name in states else None
            steps.append(Step(name, False, [f"up to date (last success {last_success})"]))
    return steps
