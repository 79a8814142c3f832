"""Column lineage of the dbt models: which input columns make each model column, and how.

Read from dbt's compiled SQL (a compile against an empty in-memory DuckDB, so every incremental
model compiles to its whole-table form: `DbtProject.lineage_manifest`) with sqlglot's `lineage`,
the library dbt's own ecosystem uses for this (dagster-dbt, SQLMesh); daybreak adds the sources'
columns (declared where the lake files are written), the classification of each step and the
gaps. Each model's output columns are known from its SQL, so `SELECT *` of an upstream model
expands without a warehouse. The rest of the chain (landing files, extracts) is joined on in
daybreak/assets/columns.py.

An edge says how its output column comes from its input column, the strongest step on the way:
copied < renamed < cast < computed < aggregated; columns a model filters on (WHERE) or joins on
(JOIN ... ON / USING) are the model's indirect inputs. A column with no input column is a
constant (its expression is kept); a column sqlglot cannot trace is a gap, named with why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

RANK = {"copied": 0, "renamed": 1, "cast": 2, "computed": 3, "aggregated": 4}
_EXPRESSION_CHARS = 400


@dataclass(frozen=True)
class Edge:
    """One input of a column: `source` is NAME.COLUMN; `how` one of RANK's, or filtered /
    joined for a model's indirect inputs; `expression` the SQL steps on the way (outermost
    first), empty for a plain copy."""

    source: str
    how: str
    expression: str = ""


@dataclass
class ModelColumns:
    """One model's columns: their inputs, constants and gaps, and the model's indirect inputs."""

    name: str
    columns: dict[str, list[Edge]] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)  # column -> its expression
    gaps: dict[str, str] = field(default_factory=dict)  # column ('*' the model) -> why
    indirect: list[Edge] = field(default_factory=list)


def source_key(source_name: str, table: str) -> str:
    """A lake table's lineage name: its dbt source (`azure_orders.uk`)."""
    return f"{source_name}.{table}"


def _placeholder(key: str) -> str:
    return "daybreak_src__" + re.sub(r"\W", "_", key)


def _relations(manifest: dict[str, Any], quote: str = '"') -> dict[str, str]:
    """Compiled relation text -> the identifier the parsed SQL uses for it (a model's name
    quoted, so its case survives; a source's placeholder, lower case)."""
    found: dict[str, str] = {}
    for node in manifest.get("sources", {}).values():
        key = source_key(node["source_name"], node["name"])
        if node.get("relation_name"):
            found[node["relation_name"]] = _placeholder(key)
        location = (node.get("config") or {}).get("external_location") or ""
        path = location.removeprefix("read_parquet('").removesuffix("')")
        if path:  # the Spark flavour of the project reads the files as parquet.`path`
            found[f"parquet.`{path}`"] = _placeholder(key)
    for node in _models(manifest).values():
        if node.get("relation_name"):
            found[node["relation_name"]] = f"{quote}{node['name']}{quote}"
    return found


def _models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: n for k, n in manifest.get("nodes", {}).items() if n["resource_type"] == "model"}


def _in_order(models: dict[str, dict[str, Any]]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(key: str) -> None:
        if state.get(key):
            return
        state[key] = 1
        for parent in models[key].get("depends_on", {}).get("nodes", []):
            if parent in models:
                visit(parent)
        order.append(key)

    for key in sorted(models):
        visit(key)
    return order


def model_lineage(
    manifest: dict[str, Any], sources: dict[str, dict[str, str]], dialect: str = "duckdb",
    built: dict[str, dict[str, str]] | None = None,
) -> dict[str, ModelColumns]:  # fmt: skip
    """Every model's column lineage, in dependency order. `sources` maps each dbt source
    (`source_key`) to its columns and types; `dialect` is the SQL's (duckdb or spark); `built`
    the models' columns in the warehouse, for SQL compiled as an incremental build, which reads
    the model's own table (`{{ this }}`): that read is no input of the model."""
    relations = _relations(manifest, "`" if dialect == "spark" else '"')
    # Longest first: a relation whose text contains another's is replaced whole.
    ordered = sorted(relations.items(), key=lambda kv: -len(kv[0]))
    # Identifier -> lineage name, by lower case: DuckDB's and Spark's names ignore case, and
    # sqlglot writes them lower case (quoted ones too).
    names = {_placeholder(k).lower(): k for k in sources}
    # A source with no known columns is left out: sqlglot refuses a table without columns, for
    # every query. Its readers' columns are then gaps naming it.
    schema: dict[str, dict[str, str]] = {_placeholder(k): dict(v) for k, v in sources.items() if v}
    models = _models(manifest)
    result: dict[str, ModelColumns] = {}
    for key in _in_order(models):
        node = models[key]
        name = node["name"]
        sql = node.get("compiled_code") or ""
        for text, ident in ordered:
            sql = sql.replace(text, ident)
        found = ModelColumns(name)
        own = (built or {}).get(name)
        if own and name not in schema:  # its own table, as an incremental build reads it
            schema[name] = dict(own)
        if not sql.strip():
            found.gaps["*"] = "dbt compiled no SQL for it"
        else:
            try:
                _trace(sql, schema, names, dialect, found)
            except Exception as exc:  # sqlglot's errors and its assertions alike: a named gap
                found.gaps["*"] = f"sqlglot could not trace its SQL: {_plain(exc)}"
        result[name] = found
        names[name.lower()] = name
        declared = [*found.columns, *found.constants, *(c for c in found.gaps if c != "*")]
        if declared:  # a model sqlglot could not read stays unknown: its readers' gap says so
            schema[name] = {c: "UNKNOWN" for c in declared}
    return result


def _trace(
    sql: str, schema: dict[str, dict[str, str]], names: dict[str, str], dialect: str,
    found: ModelColumns,
) -> None:  # fmt: skip
    import sqlglot
    from sqlglot import exp
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope
    from sqlglot.schema import ensure_schema

    ensured = ensure_schema(cast(dict[str, object], schema), dialect=dialect)
    tree = qualify(
        sqlglot.parse_one(sql, dialect=dialect), dialect=dialect, schema=ensured,
        validate_qualify_columns=False, identify=False,
    )  # fmt: skip
    scope = build_scope(tree)
    if scope is None:
        raise ValueError("the model's SQL is not a query")
    for union in tree.find_all(exp.SetOperation):
        if union.args.get("by_name"):  # sqlglot's lineage would pair its columns by position
            raise ValueError("UNION BY NAME: sqlglot pairs its columns by position")
    outputs = [s.alias_or_name for s in cast(Any, scope.expression).selects]
    for twice in sorted({n for n in outputs if outputs.count(n) > 1}):
        found.gaps[twice] = (f"{twice} is named more than once in the select (the warehouse "
                             f"renames the second {twice}_1): rename one")  # fmt: skip
    nodes = lineage(None, tree, schema=ensured, dialect=dialect, scope=scope, copy=False)
    for column, root in nodes.items():
        if column in found.gaps:
            continue
        paths: dict[str, dict[str, str]] = {}  # input column -> {steps: how}
        unresolved: list[str] = []
        constants: list[str] = []
        for source, how, steps in _paths(root, dialect, exp):
            text = " <- ".join(steps)
            if source is None:
                (constants if how == "constant" else unresolved).append(text or column)
                continue
            table, _, source_column = source.partition(".")
            if table.lower() == found.name.lower():
                continue  # its own rows, read back by an incremental build: not an input
            if table.lower() not in names:
                unresolved.append(f"{source} (a table that is no model or source)")
                continue
            paths.setdefault(f"{names[table.lower()]}.{source_column}", {})[text] = how
        edges = [_merge(source, ways) for source, ways in sorted(paths.items())]
        lost = ", ".join(sorted(set(unresolved)))
        if edges:
            found.columns[column] = edges
            if unresolved:  # traced in part: what is missing is said, not dropped
                found.gaps[column] = f"traced in part: no input column found for {lost}"
        elif unresolved:
            found.gaps[column] = f"no input column found for {lost}"
        else:
            found.constants[column] = " | ".join(sorted(set(constants))) or column
    found.indirect = _indirect(scope, ensured, names, dialect)


def _plain(exc: Exception) -> str:
    """An error as one line of plain text (sqlglot underlines with terminal escapes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(exc).__name__}: {exc}")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= _EXPRESSION_CHARS else text[: _EXPRESSION_CHARS - 3] + "..."


def _sql(expression: Any, dialect: str, exp: Any) -> str:
    inner = expression.this if isinstance(expression, exp.Alias) else expression
    text = " ".join(inner.sql(dialect=dialect).split())
    return text if len(text) <= _EXPRESSION_CHARS else text[: _EXPRESSION_CHARS - 3] + "..."


def _step(node: Any, dialect: str, exp: Any) -> tuple[str, str]:
    """How one select expression makes its column from the columns in it."""
    expression = node.expression
    if isinstance(node.source, exp.SetOperation):  # UNION ALL: each branch is its own step
        return "copied", ""
    name = expression.alias_or_name
    inner = expression.this if isinstance(expression, exp.Alias) else expression
    if isinstance(inner, exp.Star):
        return "copied", ""
    if isinstance(inner, exp.Column):
        return ("copied" if inner.name == name else "renamed"), ""
    text = _sql(expression, dialect, exp)
    if isinstance(inner, (exp.Cast, exp.TryCast)) and isinstance(inner.this, exp.Column):
        return "cast", text
    if inner.find(exp.Window) is None and inner.find(exp.AggFunc) is not None:
        return "aggregated", text
    return "computed", text


def _merge(source: str, ways: dict[str, str]) -> Edge:
    """One edge from the paths to one input: the strongest how; each way's steps, with its
    how when the ways differ (a UNION branch copies what another aggregates)."""
    how = max(ways.values(), key=lambda h: RANK[h])
    texts = [t for t in sorted(ways) if t]
    if len(set(ways.values())) > 1:
        texts = [f"{ways[t]}: {t}" if t else ways[t] for t in sorted(ways)]
    return Edge(source, how, " | ".join(texts))


def _paths(root: Any, dialect: str, exp: Any) -> Iterator[tuple[str | None, str, list[str]]]:
    """(table.column, how, steps) for every path from `root` to a table column; a path that
    ends in no column is (None, "constant", steps), one that ends in a column sqlglot could not
    place (None, how, steps)."""
    stack: list[tuple[Any, str, list[str], frozenset[int]]] = [(root, "copied", [], frozenset())]
    while stack:
        node, how, steps, seen = stack.pop()
        if isinstance(node.expression, exp.Table):
            yield _leaf(node, dialect, exp), how, steps
            continue
        step, text = _step(node, dialect, exp)
        if RANK[step] > RANK[how]:
            how = step
        if not node.downstream:
            inner = node.expression
            inner = inner.this if isinstance(inner, exp.Alias) else inner
            text = text or _sql(node.expression, dialect, exp)
            steps = [*steps, text] if text not in steps else steps
            # A column sqlglot could not place comes back as itself or as a placeholder.
            columns = any(True for _ in inner.find_all(exp.Column, exp.Placeholder))
            yield None, how if columns else "constant", steps
            continue
        if text and text not in steps:
            steps = [*steps, text]
        for child in node.downstream:
            if id(child) not in seen:  # a cycle would be sqlglot's bug; never loop on it
                stack.append((child, how, steps, seen | {id(node)}))


def _leaf(node: Any, dialect: str, exp: Any) -> str:
    """A lineage leaf as TABLE.COLUMN, the column as named (quotes off, dots and case kept);
    a table qualified by a database or schema is none of the project's (those are rewritten
    to bare names), so it keeps its qualifier and matches nothing."""
    table = node.source
    qualifier = ".".join(p for p in (table.catalog, table.db) if p)
    name = f"{qualifier}/{table.name}" if qualifier else table.name
    try:
        column = exp.to_column(node.name, dialect=dialect).name
    except Exception:  # a name sqlglot wrote but cannot read back: keep its last part
        column = node.name.rpartition(".")[2]
    return f"{name}.{column}"


def _indirect(scope: Any, ensured: Any, names: dict[str, str], dialect: str) -> list[Edge]:
    """The input columns the model filters on or joins on, in any of its CTEs or subqueries."""
    from sqlglot import exp
    from sqlglot.lineage import to_node
    from sqlglot.optimizer.scope import Scope

    found: dict[tuple[str, str], Edge] = {}
    for inner in scope.traverse():
        select = inner.expression
        if not isinstance(select, exp.Select):
            continue
        conditions: list[tuple[str, Any]] = []
        for clause in ("where", "having", "qualify"):
            if select.args.get(clause) is not None:
                conditions.append(("filtered", select.args[clause]))
        for join in select.args.get("joins") or []:
            if join.args.get("on") is not None:
                conditions.append(("joined", join.args["on"]))
        for how, condition in conditions:
            for column in condition.find_all(exp.Column):
                source = inner.sources.get(column.table)
                leaves: list[str] = []
                if isinstance(source, exp.Table):
                    if not (source.catalog or source.db):
                        leaves.append(f"{source.name}.{column.name}")
                elif isinstance(source, Scope):
                    try:
                        node = to_node(column.name, scope=source, dialect=dialect, schema=ensured)
                    except Exception:  # a column of a subquery sqlglot cannot follow: skip it
                        continue
                    leaves += [
                        _leaf(n, dialect, exp)
                        for n in node.walk()
                        if isinstance(n.expression, exp.Table)
                    ]
                for leaf in leaves:
                    table, _, name = leaf.partition(".")
                    if table.lower() in names:
                        edge = Edge(f"{names[table.lower()]}.{name}", how)
                        found.setdefault((edge.source, how), edge)
    return sorted(found.values(), key=lambda e: (e.how, e.source))
