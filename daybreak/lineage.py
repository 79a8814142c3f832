"""The asset graph as a picture: Azure to Tableau, grouped by group, coloured by last status.

`python runner.py lineage [--job J | --asset A [--upstream] [--downstream]] [-o FILE]` writes SVG
or PNG (by the file's extension); the status page embeds the same SVG. The graph is daybreak's
asset catalogue (dbt models included), written as Graphviz DOT and laid out by `dot`: the
`graphviz-pure` binary that daybreak's locked dependencies install into the virtualenv (a
self-contained port of Graphviz, so no system package is needed), else a `dot` on PATH.

Colours: success (last attempt succeeded and the asset is fresh), stale (last success too old
for its freshness policy), failed (last attempt failed or was skipped), never (no attempt yet).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from daybreak import graph
from daybreak.alerts import freshness
from daybreak.config import Settings
from daybreak.dbt_assets import MODEL_KIND
from daybreak.history import History
from daybreak.lake import atomic_path

COLOURS = {  # fill, border
    "success": ("#d1f2d9", "#1e8e3e"),
    "stale": ("#fdecc8", "#b06000"),
    "failed": ("#fad2cf", "#c5221f"),
    "never": ("#eceff1", "#80868b"),
}
FORMATS = (".svg", ".png")
LEGEND = "\\ngreen: success   amber: stale   red: failed   grey: never run"


class LineageError(Exception):
    """Bad arguments, or no renderer."""


def asset_status(settings: Settings, assets: Iterable[str]) -> dict[str, dict[str, str | None]]:
    """Per asset: status (success | stale | failed | never), last success, last error."""
    history = History(settings.paths.state)
    names = list(assets)
    last = history.last_attempts()
    states = {f.asset: f for f in freshness(settings, history, assets=names)}
    found: dict[str, dict[str, str | None]] = {}
    for name in names:
        attempt = last.get(name)
        fresh = states.get(name)
        if attempt is None:
            status = "never"
        elif attempt["status"] not in ("success", "fresh"):
            status = "failed"
        elif fresh is not None and fresh.state != "fresh":
            status = "stale"
        else:
            status = "success"
        found[name] = {
            "status": status,
            "last_success": fresh.last_success if fresh else None,
            "error": (attempt or {}).get("error") if status == "failed" else None,
        }
    return found


def choose(
    assets: dict[str, graph.Asset],
    settings: Settings,
    *,
    job: str | None = None,
    asset: str | None = None,
    upstream: bool = False,
    downstream: bool = False,
) -> list[str]:
    """Which assets to draw: all, a job's (with what it needs), or one asset and its neighbours."""
    if job is not None:
        if job not in settings.jobs:
            raise graph.SelectionError(
                f"unknown job {job!r} (jobs: {', '.join(settings.jobs) or 'none configured'})"
            )
        chosen = set(graph.with_upstream(assets, graph.select(assets, settings.jobs[job].select)))
        for name in list(chosen):  # the models a dbt-build asset builds belong to the job too
            chosen |= set(built_by(assets, name))
        return [a for a in assets if a in chosen]
    if asset is not None:
        if asset not in assets:
            raise graph.SelectionError(f"unknown asset {asset!r} (see `runner.py assets`)")
        chosen = {asset}
        if upstream or not downstream:  # one asset alone says little: default to its upstream
            chosen |= set(graph.with_upstream(assets, [asset]))
        if downstream:
            chosen |= set(downstream_of(assets, asset))
        return [a for a in assets if a in chosen]
    return list(assets)


def built_by(assets: dict[str, graph.Asset], name: str) -> list[str]:
    """The dbt models an asset builds, from its dbt_select tag ("+model" = with its upstream)."""
    found: set[str] = set()
    for selector in assets[name].tags.get("dbt_select", "").split():
        model = selector.lstrip("+")
        if model in assets:
            found |= set(graph.with_upstream(assets, [model])) if selector[0] == "+" else {model}
    return [a for a in assets if a in found and assets[a].tags.get("kind") == MODEL_KIND]


def downstream_of(assets: dict[str, graph.Asset], name: str) -> list[str]:
    below: set[str] = {name}
    for candidate in assets:  # dependency order: one pass reaches everything below
        if any(up in below for up in assets[candidate].upstream):
            below.add(candidate)
    return [a for a in assets if a in below]


def to_dot(
    assets: dict[str, graph.Asset],
    chosen: list[str],
    status: dict[str, dict[str, str | None]],
    title: str = "daybreak assets",
) -> str:
    """Graphviz DOT: one cluster per group, nodes coloured by status, edges upstream -> asset."""
    keep = set(chosen)
    groups: dict[str, list[str]] = {}
    for name in chosen:
        groups.setdefault(assets[name].group, []).append(name)
    q = _quote
    lines = [
        f"digraph {q(title)} {{",
        "  graph [rankdir=LR, fontname=Helvetica, fontsize=11, nodesep=0.25, ranksep=0.6,"
        f" label={q(title + LEGEND)}, labelloc=t, tooltip={q(title)}];",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=10,'
        " penwidth=1.4];",
        '  edge [color="#5f6368", arrowsize=0.6];',
    ]
    for i, (group, names) in enumerate(groups.items()):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(
            f'    label={q(group)}; style="rounded,dashed"; color="#9aa0a6"; fontcolor="#3c4043";'
        )
        for name in names:
            info = status.get(name, {"status": "never"})
            state = info.get("status") or "never"
            fill, border = COLOURS[state]
            kind = "dbt model" if assets[name].tags.get("kind") == MODEL_KIND else state
            label = f"{name}\\n{kind}" if kind != state else name
            tip = f"{name}: {state}"
            if info.get("last_success"):
                tip += f"; last success {info['last_success']}"
            if info.get("error"):
                tip += f"; {str(info['error']).splitlines()[0][:200]}"
            lines.append(
                f"    {q(name)} [label={q(label)}, fillcolor={q(fill)}, color={q(border)},"
                f" tooltip={q(tip)}, class={q('asset ' + state)}, id={q('asset-' + name)}];"
            )
        lines.append("  }")
    for name in chosen:
        for up in assets[name].upstream:
            if up in keep:
                lines.append(f"  {q(up)} -> {q(name)};")
        for selector in assets[name].tags.get("dbt_select", "").split():
            if selector.lstrip("+") in keep:  # a dbt build asset -> the model it builds up to
                lines.append(
                    f"  {q(name)} -> {q(selector.lstrip('+'))} "
                    '[style=dashed, label="builds", fontsize=9, fontname=Helvetica,'
                    " constraint=false];"
                )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    # DOT strings: escape backslash-quote only; keep "\n" line breaks we put in labels.
    return '"' + text.replace('"', '\\"') + '"'


def renderer() -> list[str]:
    """The dot command: graphviz-pure from this virtualenv, else `dot` on PATH."""
    here = Path(sys.executable).parent
    for candidate in (here / "graphviz-pure", here / "graphviz-pure.exe"):
        if candidate.exists():
            return [str(candidate)]
    found = shutil.which("graphviz-pure") or shutil.which("dot")
    if found:
        return [found]
    raise LineageError(
        "no Graphviz renderer: `make bootstrap` installs graphviz-pure into .venv on Linux "
        "x86-64; elsewhere install Graphviz so that `dot` is on PATH"
    )


def render(dot: str, fmt: str) -> bytes:
    """Lay out and draw DOT source as svg or png."""
    try:
        done = subprocess.run(
            [*renderer(), f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        raise LineageError("the Graphviz renderer took over 120 s") from None
    if done.returncode != 0:
        raise LineageError(f"the Graphviz renderer failed: {done.stderr.decode()[-500:]}")
    return done.stdout


def svg_for(settings: Settings, chosen: list[str] | None = None, title: str = "") -> str:
    """The SVG of the asset graph (or of `chosen`), coloured from the history."""
    assets = graph.catalogue(graph.build_driver(settings))
    names = chosen or list(assets)
    dot = to_dot(assets, names, asset_status(settings, names), title or "daybreak assets")
    return render(dot, "svg").decode()


def write(path: Path, data: bytes) -> None:
    """Write atomically: a reader never sees half a picture, an old one stays on failure."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
