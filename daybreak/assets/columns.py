"""Column lineage, end to end: landing CSV column -> lake column -> dbt models -> extract field.

A column is named NAME.COLUMN, NAME being one of four kinds of table:
- landing: a sync asset's files as they land (`uk_orders_azure.discount`, the CSV's column; the
  budget workbook's columns go by `daily_sales_budget_exchange_ingest`);
- lake: the Parquet files the sync writes, by the dbt source that reads them
  (`azure_orders.uk.discount`; `lake.ASSET` for a sync no dbt model reads); how each comes
  from the landing file is declared beside the dataset (daybreak/ingest/datasets.py
  `lake_columns`, daybreak/ingest/workbook.py `LINEAGE`);
- model: a dbt model (`int_orders_summary_daily.net_sales_gbp`), traced through its compiled SQL
  (daybreak/warehouse/column_lineage.py);
- extract: a Hyper extract of [[exports]] (`executive_daily_sales.net_sales_gbp`; an extract of
  several tables names them: `EXTRACT.TABLE.COLUMN`); the export copies its tables' columns
  under their own names.

The graph is computed once per project state (dbt's compiled SQL, the exports, the
declarations) and cached in <state>/column-lineage.json under a key of all of them, so asking
costs the read of one JSON file; a dbt build refreshes it when the project changed
(daybreak/runner/materialize.py). Column types come from the warehouse as the last build left
it (<state>/dbt/columns.json), else from the declarations.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

from daybreak import clock
from daybreak.config import Settings
from daybreak.errors import UnknownNameError, UsageError
from daybreak.files import read_json, write_atomic
from daybreak.ingest import datasets, workbook
from daybreak.logs import redact
from daybreak.warehouse import column_lineage
from daybreak.warehouse.column_lineage import Edge

log = logging.getLogger(__name__)

# Bump when what is computed changes shape or meaning: the cache is then computed again.
FORMAT = 1
NAMESPACE = "daybreak"
# OpenLineage's column-lineage facet: how -> (type, subtype).
_OPENLINEAGE = {
    "copied": ("DIRECT", "IDENTITY"),
    "renamed": ("DIRECT", "IDENTITY"),
    "cast": ("DIRECT", "TRANSFORMATION"),
    "computed": ("DIRECT", "TRANSFORMATION"),
    "aggregated": ("DIRECT", "AGGREGATION"),
    "filtered": ("INDIRECT", "FILTER"),
    "joined": ("INDIRECT", "JOIN"),
}


class ColumnLineageError(UsageError):
    """A column name that is not NAME.COLUMN."""


class ColumnLineageUnavailable(RuntimeError):
    """The lineage could not be computed (dbt could not compile the project); the message is
    redacted."""


# A failed computation is not tried again for this long for the same key (the page's reloads).
RETRY_FAILED_SECONDS = 300.0
_failures: dict[str, tuple[float, str]] = {}


def _key(settings: Settings, fingerprint: str) -> str:
    from sqlglot import __version__ as sqlglot_version

    here = [Path(m.__file__ or "") for m in (datasets, workbook, column_lineage)] + [Path(__file__)]
    stamps = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in here if p.exists()]
    stamps.append(f"sqlglot {sqlglot_version}")
    exports = [e.model_dump(mode="json") for e in settings.exports]
    text = json.dumps(
        [FORMAT, fingerprint, settings.market_codes, exports, stamps], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def load(settings: Settings, *, refresh: bool = False) -> ColumnGraph:
    """The column lineage of this project: from the cache when it was computed from what the
    project is now, else computed (a dbt compile, a few seconds) and cached. Whatever keeps it
    from being had raises ColumnLineageUnavailable, its message redacted; a failed computation
    is not tried again for RETRY_FAILED_SECONDS (a page reloading does not compile each time)."""
    try:
        return _load(settings, refresh)
    except ColumnLineageUnavailable:
        raise
    except Exception as exc:
        raise ColumnLineageUnavailable(redact(f"{type(exc).__name__}: {exc}")) from exc


def _load(settings: Settings, refresh: bool) -> ColumnGraph:
    from daybreak.warehouse.dbt_project import DbtProject

    dbt = DbtProject(settings)
    path = settings.state.column_lineage
    key = _key(settings, dbt.lineage_fingerprint())
    cached = read_json(path, None) if not refresh else None
    if isinstance(cached, dict) and cached.get("key") == key and "tables" in cached:
        return ColumnGraph(cached, _warehouse_types(settings))
    failed = _failures.get(key)
    now = clock.now().timestamp()
    if not refresh and failed is not None and 0 <= now - failed[0] < RETRY_FAILED_SECONDS:
        raise ColumnLineageUnavailable(failed[1])
    try:
        data = compute(settings, dbt.lineage_manifest())
    except Exception as exc:
        said = redact(f"{type(exc).__name__}: {exc}")
        _failures[key] = (now, said)
        while len(_failures) > 16:  # bounded, in a process that lives for months
            del _failures[next(iter(_failures))]
        raise ColumnLineageUnavailable(said) from exc
    data["key"] = key
    try:
        write_atomic(path, json.dumps(data, indent=1))
    except OSError as exc:  # a full disk: the answer stands, the next question computes again
        log.warning("the column lineage cache %s was not written: %s", path, exc)
    return ColumnGraph(data, _warehouse_types(settings))


def refresh_after_build(settings: Settings) -> None:
    """After a dbt build: bring the cache up to date when the project changed (a read of the
    key otherwise). Lineage is shown, never relied on: a failure is logged, not raised."""
    try:
        load(settings)
    except ColumnLineageUnavailable as exc:
        log.warning("column lineage not refreshed: %s", exc)


def _warehouse_types(settings: Settings) -> dict[str, dict[str, str]]:
    found = read_json(settings.state.warehouse_columns, {})
    return found if isinstance(found, dict) else {}


def _edge(edge: Edge) -> dict[str, str]:
    return {k: v for k, v in asdict(edge).items() if v}


def _column(kind: str, description: str = "", inputs: list[Edge] | None = None,
            constant: str | None = None) -> dict[str, Any]:  # fmt: skip
    found: dict[str, Any] = {"type": kind, "description": description,
                             "inputs": [_edge(e) for e in inputs or []]}  # fmt: skip
    if constant is not None:
        found["constant"] = constant
    return found


def _csv_tables(
    asset: str, dataset: datasets.CsvDataset, description: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A CSV dataset's landing table and lake table, from its declaration."""
    landing = {
        "kind": "landing", "asset": asset, "indirect": [],
        "description": f"CSV files under {dataset.prefix} ({dataset.blob_pattern})",
        "columns": {c: _column(t, "optional" if c in dataset.optional else "")
                    for c, t in dataset.columns},
    }  # fmt: skip
    lake: dict[str, Any] = {
        "kind": "lake", "asset": asset, "columns": {}, "indirect": [],
        "description": description or f"the lake's Parquet files <lake>/{dataset.lake_path}",
    }  # fmt: skip
    for col in dataset.lake_columns():
        inputs = (
            [Edge(f"{asset}.{col.csv_column}", col.how, col.expression)] if col.csv_column else []
        )
        constant = col.expression if col.csv_column is None else None
        lake["columns"][col.name] = _column(col.type, "", inputs, constant)
    return landing, lake


def compute(settings: Settings, manifest: dict[str, Any]) -> dict[str, Any]:
    """The whole graph as JSON-able data (what the cache holds)."""
    tables: dict[str, dict[str, Any]] = {}
    gaps: list[dict[str, str]] = []
    sources: dict[str, dict[str, str]] = {}
    csv_by_asset = datasets.by_asset(settings.market_codes)

    for node in manifest.get("sources", {}).values():
        key = column_lineage.source_key(node["source_name"], node["name"])
        meta = {**(node.get("meta") or {}), **((node.get("config") or {}).get("meta") or {})}
        asset = str(meta.get("daybreak_asset") or "")
        location = (node.get("config") or {}).get("external_location") or ""
        lake: dict[str, Any] = {
            "kind": "lake", "asset": asset, "columns": {}, "indirect": [],
            "description": (f"the lake's Parquet files read by dbt source {key}: "
                            + location.removeprefix("read_parquet('").removesuffix("')")
                            .replace("/daybreak/lake/", "<lake>/")),
        }  # fmt: skip
        if asset in csv_by_asset:
            tables[asset], lake = _csv_tables(asset, csv_by_asset[asset], lake["description"])
        elif asset == workbook.ASSET:
            tables[asset] = {
                "kind": "landing", "asset": asset, "indirect": [],
                "description": "Finance's budget workbook (SharePoint or the landing zone)",
                "columns": {c: _column("", d) for c, d in workbook.WORKBOOK_COLUMNS.items()},
            }  # fmt: skip
            for field in workbook.SCHEMA:
                inputs = [Edge(f"{asset}.{c}", how, expr)
                          for c, how, expr in workbook.LINEAGE.get(field.name, [])]  # fmt: skip
                lake["columns"][field.name] = _column(str(field.type), "", inputs)
                if not inputs:
                    gaps.append({"table": key, "column": field.name,
                                 "why": "workbook.LINEAGE does not declare it"})  # fmt: skip
            lake["indirect"] = [_edge(Edge(f"{asset}.{c}", "joined"))
                                for c in workbook.LINEAGE_JOINED_ON]  # fmt: skip
        else:  # its columns as dbt declares them (if it does), traced no further
            for column, info in (node.get("columns") or {}).items():
                lake["columns"][column] = _column(str(info.get("data_type") or ""))
            gaps.append({"table": key, "column": "*", "why": (
                f"its asset {asset or '(no meta.daybreak_asset)'} declares no landing columns "
                "(daybreak/ingest/datasets.py by_asset)")})  # fmt: skip
        for column, info in (node.get("columns") or {}).items():
            if column in lake["columns"] and info.get("description"):
                lake["columns"][column]["description"] = info["description"]
        tables[key] = lake
        sources[key] = {c: v["type"] for c, v in lake["columns"].items()}
    for asset, dataset in csv_by_asset.items():  # synced, read by no dbt model (yet)
        if asset not in tables:
            tables[asset], tables[f"lake.{asset}"] = _csv_tables(asset, dataset, "")

    dialect = "spark" if manifest.get("metadata", {}).get("adapter_type") == "spark" else "duckdb"
    models = column_lineage.model_lineage(manifest, sources, dialect, _warehouse_types(settings))
    described = {n["name"]: n for n in manifest.get("nodes", {}).values()
                 if n.get("resource_type") == "model"}  # fmt: skip
    for name, found in models.items():
        docs = described.get(name, {}).get("columns") or {}
        columns: dict[str, Any] = {}
        for column in [*found.columns, *found.constants, *found.gaps]:
            if column == "*":
                continue
            columns[column] = _column(
                "", (docs.get(column) or {}).get("description", ""),
                found.columns.get(column), found.constants.get(column),
            )  # fmt: skip
        tables[name] = {
            "kind": "model", "asset": name, "columns": columns,
            "description": described.get(name, {}).get("description", ""),
            "indirect": [_edge(e) for e in found.indirect],
        }  # fmt: skip
        gaps += [{"table": name, "column": c, "why": why} for c, why in found.gaps.items()]

    for export in settings.exports:
        for table in export.tables:
            name = export.name if len(export.tables) == 1 else f"{export.name}.{table}"
            if name in tables:  # named like a model or a sync: the export's asset is unique
                name = export.asset if len(export.tables) == 1 else f"{export.asset}.{table}"
            if name in tables:
                gaps.append(
                    {
                        "table": name,
                        "column": "*",
                        "why": f"extract {export.name} is named like another table",
                    }
                )
                continue
            upstream = tables.get(table)
            entry: dict[str, Any] = {
                "kind": "extract", "asset": export.asset, "columns": {}, "indirect": [],
                "description": f"Hyper extract {export.name}.hyper, table Extract.{table}",
            }  # fmt: skip
            if upstream is None or upstream["kind"] != "model":
                gaps.append({"table": name, "column": "*",
                             "why": f"table {table} is no dbt model of the project"})  # fmt: skip
            else:
                for column, info in upstream["columns"].items():
                    entry["columns"][column] = _column(
                        info["type"], info["description"], [Edge(f"{table}.{column}", "copied")]
                    )
            tables[name] = entry
    return {
        "format": FORMAT,
        "computed_at": clock.now().isoformat(timespec="seconds"),
        "dialect": dialect,
        "tables": tables,
        "gaps": gaps,
    }


class ColumnGraph:
    """The cached column lineage, and the questions asked of it."""

    def __init__(self, data: dict[str, Any], types: dict[str, dict[str, str]] | None = None):
        self.data = data
        self.tables: dict[str, dict[str, Any]] = data["tables"]
        self._by_length = sorted(self.tables, key=len, reverse=True)
        self.gaps: list[dict[str, str]] = data.get("gaps", [])
        for table, columns in (types or {}).items():
            known = self.tables.get(table)
            if known is not None and known["kind"] == "model":
                folded = {c.lower(): c for c in known["columns"]}  # DuckDB's names ignore case
                for column, kind in columns.items():
                    if column.lower() in folded:
                        known["columns"][folded[column.lower()]]["type"] = kind
        for export in self.tables.values():  # an extract's field has its table's type
            if export["kind"] == "extract":
                for info in export["columns"].values():
                    source = self.column_info(info["inputs"][0]["source"]) if info["inputs"] else {}
                    info["type"] = info["type"] or source.get("type", "")
        self._downstream: dict[str, list[dict[str, str]]] = {}
        for table, entry in self.tables.items():
            for column, info in entry["columns"].items():
                for edge in info["inputs"]:
                    self._downstream.setdefault(edge["source"], []).append(
                        {**edge, "source": f"{table}.{column}"}
                    )

    # -- names ------------------------------------------------------------------------------

    def split(self, name: str) -> tuple[str, str]:
        """NAME.COLUMN -> (NAME, COLUMN) for a column the graph knows; the export's asset name
        may stand for its extract. Raises UnknownNameError naming what is there instead."""
        if not isinstance(name, str) or "." not in name.strip(".") or len(name) > 500:
            raise ColumnLineageError(
                f"{name!r}: expected NAME.COLUMN, e.g. executive_daily_sales.net_sales_gbp"
            )
        for known in self._by_length:
            if (
                name.startswith(known + ".")
                and name[len(known) + 1 :] in (self.tables[known]["columns"])
            ):
                return known, name[len(known) + 1 :]
        table, _, column = name.rpartition(".")
        if table not in self.tables:
            extracts = [t for t, e in self.tables.items()
                        if e["kind"] == "extract" and e["asset"] == table]  # fmt: skip
            if len(extracts) == 1:
                table = extracts[0]
            else:
                near = sorted(t for t in self.tables if t.split(".")[0] == table.split(".")[0])
                raise UnknownNameError(
                    f"no table {table!r} in the column lineage"
                    + (f" (did you mean {', '.join(near)}?)" if near else
                       f"; tables: {', '.join(sorted(self.tables))}")
                )  # fmt: skip
        folded = {c.lower(): c for c in self.tables[table]["columns"]}
        column = column if column in self.tables[table]["columns"] else (
            folded.get(column.lower(), column))  # fmt: skip
        if column not in self.tables[table]["columns"]:
            raise UnknownNameError(
                f"{table} has no column {column!r}; its columns: "
                + ", ".join(self.tables[table]["columns"])
            )
        return table, column

    def parts(self, name: str) -> tuple[str, str]:
        """NAME.COLUMN -> (NAME, COLUMN), by the longest table name it starts with (a table or a
        column may have a dot in its name); no check that the column exists."""
        for known in self._by_length:
            if name.startswith(known + "."):
                return known, name[len(known) + 1 :]
        table, _, column = name.rpartition(".")
        return table, column

    def column_info(self, name: str) -> dict[str, Any]:
        table, column = self.parts(name)
        return dict(self.tables.get(table, {}).get("columns", {}).get(column, {}))

    def kind(self, name: str) -> str:
        return str(self.tables.get(self.parts(name)[0], {}).get("kind", ""))

    # -- questions --------------------------------------------------------------------------

    def inputs(self, name: str) -> list[dict[str, str]]:
        return list(self.column_info(name).get("inputs", []))

    def outputs(self, name: str) -> list[dict[str, str]]:
        return list(self._downstream.get(name, []))

    def _walk(self, start: str, step: Any) -> list[str]:
        seen, order, queue = {start}, [], deque([start])
        while queue:
            current = queue.popleft()
            for edge in step(current):
                if edge["source"] not in seen:
                    seen.add(edge["source"])
                    order.append(edge["source"])
                    queue.append(edge["source"])
        return order

    def upstream(self, name: str) -> dict[str, Any]:
        """Everything `name` is made from, to the landing columns and constants."""
        table, column = self.split(name)
        start = f"{table}.{column}"
        reached = self._walk(start, self.inputs)
        chain = [start, *reached]
        constants = {c: self.column_info(c)["constant"] for c in chain
                     if self.column_info(c).get("constant") is not None}  # fmt: skip
        return {
            "column": start,
            "direction": "upstream",
            "landing": sorted(c for c in reached if self.kind(c) == "landing"),
            "constants": constants,
            "indirect": self._indirect_along(chain),
            "gaps": self._gaps_along(chain),
            "columns": {c: self._describe(c) for c in chain},
        }

    def downstream(self, name: str) -> dict[str, Any]:
        """Every column and extract field `name` reaches, and the models it filters or joins."""
        table, column = self.split(name)
        start = f"{table}.{column}"
        reached = self._walk(start, self.outputs)
        chain = [start, *reached]
        indirect = []
        for other, entry in self.tables.items():
            for edge in entry.get("indirect", []):
                if edge["source"] in chain:
                    indirect.append({"table": other, "how": edge["how"], "on": edge["source"]})
        return {
            "column": start,
            "direction": "downstream",
            "extract_fields": sorted(c for c in reached if self.kind(c) == "extract"),
            "model_columns": sorted(c for c in reached if self.kind(c) == "model"),
            "indirect": indirect,
            "columns": {c: self._describe(c) for c in chain},
        }

    def _describe(self, name: str) -> dict[str, Any]:
        info = self.column_info(name)
        table = self.parts(name)[0]
        return {
            "kind": self.kind(name),
            "asset": self.tables[table]["asset"],
            "type": info.get("type", ""),
            "description": info.get("description", ""),
            "inputs": info.get("inputs", []),
            **({"constant": info["constant"]} if info.get("constant") is not None else {}),
        }

    def _indirect_along(self, chain: list[str]) -> list[dict[str, str]]:
        tables = dict.fromkeys(self.parts(c)[0] for c in chain)
        return [{"table": t, "how": e["how"], "on": e["source"]}
                for t in tables for e in self.tables[t].get("indirect", [])]  # fmt: skip

    def _gaps_along(self, chain: list[str]) -> list[dict[str, str]]:
        tables = {self.parts(c)[0] for c in chain}
        return [g for g in self.gaps
                if f"{g['table']}.{g['column']}" in chain
                or (g["column"] == "*" and g["table"] in tables)]  # fmt: skip

    def columns_of(self, asset: str) -> list[tuple[str, dict[str, Any]]]:
        """The tables an asset owns (a sync: landing and lake; a model; an export's extract)."""
        return [(t, e) for t, e in self.tables.items() if e["asset"] == asset]

    def untraced(self, kinds: tuple[str, ...] = ("model", "extract")) -> list[dict[str, str]]:
        """The columns of `kinds` that reach neither a landing column nor a constant."""
        found = []
        for table, entry in self.tables.items():
            if entry["kind"] not in kinds:
                continue
            for column in entry["columns"]:
                up = self.upstream(f"{table}.{column}")
                if not up["landing"] and not up["constants"]:
                    found.append({"column": f"{table}.{column}",
                                  "why": "; ".join(g["why"] for g in up["gaps"])
                                  or "no input column reaches a landing file"})  # fmt: skip
        return found

    # -- OpenLineage ------------------------------------------------------------------------

    def openlineage(self, answer: dict[str, Any]) -> dict[str, Any]:
        """An answer in the shape of OpenLineage's column-lineage facet: per dataset, per
        field, its inputFields with their transformations (`how` kept beside)."""
        datasets_out: dict[str, Any] = {}
        for name, info in answer["columns"].items():
            table, column = self.parts(name)
            entry = datasets_out.setdefault(table, {
                "namespace": NAMESPACE, "name": table, "kind": info["kind"],
                "asset": info["asset"], "facets": {"columnLineage": {"fields": {}}},
            })  # fmt: skip
            fields = entry["facets"]["columnLineage"]["fields"]
            fields[column] = {"type": info["type"], "inputFields": [
                {"namespace": NAMESPACE, "name": self.parts(edge["source"])[0],
                 "field": self.parts(edge["source"])[1],
                 "transformations": [_transformation(edge)]}
                for edge in info["inputs"]
            ]}  # fmt: skip
            if "constant" in info:
                fields[column]["constant"] = info["constant"]
        for item in answer.get("indirect", []):
            entry = datasets_out.get(item["table"])
            if entry is not None:
                entry["facets"]["columnLineage"].setdefault("dataset", []).append({
                    "namespace": NAMESPACE, "name": self.parts(item["on"])[0],
                    "field": self.parts(item["on"])[1],
                    "transformations": [_transformation({"how": item["how"]})],
                })  # fmt: skip
        return {**{k: v for k, v in answer.items() if k != "columns"},
                "datasets": list(datasets_out.values())}  # fmt: skip


def _transformation(edge: dict[str, str]) -> dict[str, Any]:
    kind, subtype = _OPENLINEAGE.get(edge["how"], ("DIRECT", "TRANSFORMATION"))
    return {"type": kind, "subtype": subtype, "description": edge.get("expression", ""),
            "masking": False, "how": edge["how"]}  # fmt: skip
