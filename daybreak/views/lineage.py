"""The asset graph as a picture: Azure to Tableau, grouped by group, coloured by last status.

`python runner.py lineage [--job J | --asset A [--upstream] [--downstream]] [-o FILE]` writes SVG
or PNG (by the file's extension); the status page embeds the same SVG. The graph is daybreak's
asset catalogue (dbt models included), written as Graphviz DOT and laid out by `dot`: the
`graphviz-pure` binary that daybreak's locked dependencies install into the virtualenv (a
self-contained port of Graphviz, so no system package is needed), else a `dot` on PATH.

Colours: success (last attempt succeeded and the asset is fresh), stale (last success too old
for its freshness policy), behind (fresh, but an upstream failed or has newer files since it was
built), failed (last attempt failed or was skipped), never (no attempt yet).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from daybreak.assets import catalogue
from daybreak.assets.dbt_models import MODEL_KIND
from daybreak.config import Settings
from daybreak.errors import UnknownNameError, UsageError
from daybreak.runner.history import History
from daybreak.views.status import asset_states

COLOURS = {  # fill, border
    "success": ("#d1f2d9", "#1e8e3e"),
    "stale": ("#fdecc8", "#b06000"),
    "behind": ("#fff3bf", "#b08800"),
    "failed": ("#fad2cf", "#c5221f"),
    "never": ("#eceff1", "#80868b"),
}
FORMATS = (".svg", ".png")
LEGEND = (
    "\\ngreen: success   yellow: fresh but behind   amber: stale   red: failed   grey: never run"
)


class LineageError(UsageError):
    """Bad arguments, or no renderer."""


def choose(
    assets: dict[str, catalogue.Asset],
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
            raise UnknownNameError(
                f"unknown job {job!r} (jobs: {', '.join(settings.jobs) or 'none configured'})"
            )
        selected = catalogue.select(assets, settings.jobs[job].select)
        return catalogue.with_upstream(assets, selected)
    if asset is not None:
        if asset not in assets:
            raise UnknownNameError(f"unknown asset {asset!r} (see `runner.py assets`)")
        chosen = {asset}
        if upstream or not downstream:  # one asset alone says little: default to its upstream
            chosen |= set(catalogue.with_upstream(assets, [asset]))
        if downstream:
            chosen |= set(catalogue.downstream_of(assets, [asset]))
        return [a for a in assets if a in chosen]
    return list(assets)


def to_dot(
    assets: dict[str, catalogue.Asset],
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
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    names = chosen or list(assets)
    states = asset_states(settings, History(settings.state), assets, names)
    return render(to_dot(assets, names, states, title or "daybreak assets"), "svg").decode()
