"""Column lineage for people: the text `runner.py lineage --column / --downstream` prints, and
the picture of one column's path (the CLI's -o FILE, the status page's /columns/NAME.COLUMN).

The graph and its questions are daybreak/assets/columns.py; this module only shows answers.
Plain ASCII throughout: a Windows console in a legacy code page prints it as it is.
"""

from __future__ import annotations

from typing import Any

from daybreak.assets.columns import ColumnGraph
from daybreak.warehouse.column_lineage import RANK

KIND_LABEL = {"landing": "landing file", "lake": "lake", "model": "dbt model",
              "extract": "Tableau extract"}  # fmt: skip
_FILL = {"landing": "#e8f0fe", "lake": "#e6f4ea", "model": "#fef7e0", "extract": "#fce8e6"}
_SHOWN_CHARS = 110


def _short(text: str, limit: int = _SHOWN_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _how(edge: dict[str, str]) -> str:
    """How, and where the input enters: the innermost step of each path (--json has all)."""
    expression = edge.get("expression", "")
    if not expression:
        return edge["how"]
    entries: dict[str, None] = {}
    for path in expression.split(" | "):
        how, _, steps = path.partition(": ")
        if how in RANK and steps:  # ways that differ (a UNION's branches): each way's own step
            entries[f"{how}: {steps.partition(' <- ')[0]}"] = None
        else:
            entries[path.rpartition(" <- ")[2]] = None
    return f"{edge['how']}: {_short(' | '.join(entries))}"


def upstream_text(graph: ColumnGraph, answer: dict[str, Any]) -> str:
    """The chain from a column back to the landing columns, one input per line, each column
    traced once (a second mention says so)."""
    start = answer["column"]
    info = answer["columns"][start]
    lines = [f"{start}  ({KIND_LABEL[info['kind']]} {info['asset']}"
             + (f", {info['type']}" if info["type"] else "") + ")"]  # fmt: skip
    shown: set[str] = {start}

    def walk(name: str, depth: int) -> None:
        for edge in answer["columns"][name]["inputs"]:
            source = edge["source"]
            pad = "   " * depth
            again = source in shown
            tail = "  (traced above)" if again and answer["columns"][source]["inputs"] else ""
            lines.append(f"{pad}<- {source}  [{_how(edge)}]{tail}")
            if not again:
                shown.add(source)
                walk(source, depth + 1)

    walk(start, 1)
    if info["kind"] == "landing":
        lines.append("   a column of the files as they land: nothing is upstream of it "
                     f"(--downstream {start} shows what uses it)")  # fmt: skip
    lines.append("")
    landing = answer["landing"]
    lines.append(f"landing columns ({len(landing)}): " + (", ".join(landing) or "none"))
    constants = answer["constants"]
    if constants:
        lines.append("constants:")
        lines += [f"  {c} = {_short(v)}" for c, v in constants.items()]
    by_table: dict[str, dict[str, list[str]]] = {}
    for item in answer["indirect"]:
        by_table.setdefault(item["table"], {}).setdefault(item["how"], []).append(item["on"])
    if by_table:
        lines.append("rows chosen by (filtered / joined on), per table on the way:")
        for table, hows in by_table.items():
            said = "; ".join(f"{how} on {', '.join(cols)}" for how, cols in sorted(hows.items()))
            lines.append(f"  {table}: {_short(said, 400)}")
    gaps = answer["gaps"]
    lines.append("gaps: " + ("none" if not gaps else ""))
    lines += [f"  {g['table']}.{g['column']}: {g['why']}" for g in gaps]
    return "\n".join(lines) + "\n"


def downstream_text(graph: ColumnGraph, answer: dict[str, Any]) -> str:
    """What a column reaches (impact analysis), grouped by kind, each with how it is used."""
    start = answer["column"]
    lines = [f"{start} reaches:"]
    reached = [c for c in answer["columns"] if c != start]
    for kind in ("lake", "model", "extract"):
        names = [c for c in reached if answer["columns"][c]["kind"] == kind]
        if not names:
            continue
        lines.append(f"  {KIND_LABEL[kind]} columns ({len(names)}):")
        for name in names:
            ins = [e for e in answer["columns"][name]["inputs"] if e["source"] in answer["columns"]]
            via = ", ".join(f"{e['source']} {e['how']}" for e in ins)
            lines.append(f"    {name}  (from {via})")
    if not reached:
        lines.append("  nothing: no model column or extract field uses it")
    if answer["indirect"]:
        lines.append("  and chooses the rows of (a change to it changes which rows they hold):")
        for item in answer["indirect"]:
            lines.append(f"    {item['table']}  ({item['how']} on {item['on']})")
    fields = answer["extract_fields"]
    lines.append(f"extract fields it reaches ({len(fields)}): " + (", ".join(fields) or "none"))
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def path_dot(graph: ColumnGraph, name: str) -> str:
    """Graphviz DOT of one column's path: everything upstream and downstream of it, one cluster
    per table, edges labelled with how."""
    up, down = graph.upstream(name), graph.downstream(name)
    start = up["column"]
    columns = {**up["columns"], **down["columns"]}
    tables: dict[str, list[str]] = {}
    for column in columns:
        tables.setdefault(graph.parts(column)[0], []).append(column)
    title = f"column lineage of {start}"
    lines = [
        f"digraph {_q(title)} {{",
        f"  graph [rankdir=LR, fontname=Helvetica, fontsize=11, label={_q(title)}, labelloc=t,"
        " nodesep=0.15, ranksep=0.7];",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=9];',
        '  edge [color="#5f6368", arrowsize=0.5, fontname=Helvetica, fontsize=8];',
    ]
    for i, (table, names) in enumerate(tables.items()):
        kind = columns[names[0]]["kind"]
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_q(f'{table} ({KIND_LABEL[kind]})')}; style=rounded; "
                     'color="#9aa0a6";')  # fmt: skip
        for column in names:
            bold = ", penwidth=2.5" if column == start else ""
            tip = columns[column].get("description") or column
            lines.append(
                f"    {_q(column)} [label={_q(graph.parts(column)[1])}, "
                f"fillcolor={_q(_FILL[kind])}, tooltip={_q(_short(tip, 200))}, "
                f"id={_q('column_' + column)}{bold}];"
            )
        lines.append("  }")
    for column, info in columns.items():
        for edge in info["inputs"]:
            if edge["source"] in columns:
                tip = _short(edge.get("expression", "") or edge["how"], 300)
                lines.append(f"  {_q(edge['source'])} -> {_q(column)} "
                             f"[label={_q(edge['how'])}, tooltip={_q(tip)}];")  # fmt: skip
    lines.append("}")
    return "\n".join(lines) + "\n"


def asset_docs(graph: ColumnGraph) -> dict[str, str]:
    """Per asset, its tables' columns and what each comes from, as plain text: what the
    Hamilton UI mirror adds to each node's documentation (the UI shows it on the node)."""
    docs: dict[str, list[str]] = {}
    for table, entry in graph.tables.items():
        lines = docs.setdefault(entry["asset"], [])
        lines.append(f"{table} ({KIND_LABEL[entry['kind']]}):")
        for column, info in entry["columns"].items():
            made = ", ".join(f"{e['source']} ({e['how']})" for e in info["inputs"])
            if "constant" in info:
                made = f"constant {_short(info['constant'], 80)}"
            lines.append(f"  {column}" + (f" <- {made}" if made else ""))
    head = "Columns (runner.py lineage --column NAME.COLUMN traces one):"
    return {asset: "\n".join([head, *lines]) for asset, lines in docs.items()}
