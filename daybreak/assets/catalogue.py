"""The asset graph: a Hamilton driver over dataflows/, and the asset catalogue read off it.

An asset is a node with a `group` tag. Other nodes (resources, config, inputs) are plumbing: an
asset's upstream assets are found by walking through them. Nothing here is kept in a second list.
The graph is dataflows/ (the only place that imports it), one node per dbt model (generated from
dbt's manifest) and one per `[[exports]]` entry (generated from the config).
"""

from __future__ import annotations

import graphlib
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hamilton import driver

from daybreak.assets.dbt_models import DBT_BUILD_KIND, MODEL_KIND, dbt_module
from daybreak.assets.exports import export_module
from daybreak.assets.tags import GROUP, KIND
from daybreak.config import Settings
from daybreak.errors import ConfigError, UnknownNameError
from daybreak.warehouse.dbt_project import DbtProject


def dataflow_modules(names: list[str] | None = None) -> list[ModuleType]:
    """The hand-written Hamilton modules of the graph, in stage order: daybreak's dataflows/, or
    the modules `[graph] dataflows` names."""
    if names:
        try:
            return [importlib.import_module(name) for name in names]
        except ImportError as exc:
            raise ConfigError(f"graph.dataflows: cannot import {exc.name!r}: {exc}") from None
    from dataflows import budget, ingestion, maintenance, resources, transform

    return [resources, ingestion, budget, transform, maintenance]


def hamilton_config(settings: Settings) -> dict[str, Any]:
    """Config Hamilton resolves the graph with (which variants, which markets)."""
    return {
        "source_backend": settings.source.backend,
        "budget_source": settings.budget.source,
        "markets": settings.market_codes,
        # @resolve, which expands per-market assets from config, needs this.
        "hamilton.enable_power_user_mode": True,
    }


def build_driver(settings: Settings) -> driver.Driver:
    """A Hamilton driver over every dataflow plus the dbt models, configured for `settings`."""
    config = hamilton_config(settings)
    modules = dataflow_modules(settings.graph.dataflows)
    taken = _defined(_driver(modules, config))
    models = dbt_module(DbtProject(settings).graph_manifest(), settings.market_codes, taken)
    modules.append(models)
    taken |= _defined(_driver(modules, config))
    modules.append(export_module(settings.exports, taken))
    return _driver(modules, config)


def _driver(modules: list[ModuleType], config: dict[str, Any]) -> driver.Driver:
    return driver.Builder().with_modules(*modules).with_config(config).build()


def _defined(dr: driver.Driver) -> set[str]:
    """The nodes the modules define (not the inputs they ask for, such as a dbt model that a
    dataflow names before the dbt module joins the graph)."""
    return {n.name for n in dr.list_available_variables() if not n.is_external_input}


@dataclass(frozen=True)
class Asset:
    """One asset as users see it in jobs, logs, `runner.py assets` and the UI."""

    name: str
    group: str
    upstream: tuple[str, ...]
    description: str
    tags: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "upstream": list(self.upstream),
            "description": self.description,
            "tags": self.tags,
        }


def catalogue(dr: driver.Driver) -> dict[str, Asset]:
    """Every asset in the graph with its nearest upstream assets, in dependency order."""
    nodes = {n.name: n for n in dr.list_available_variables()}

    def upstream_assets(name: str, seen: set[str]) -> set[str]:
        found: set[str] = set()
        for dep in nodes[name].required_dependencies | nodes[name].optional_dependencies:
            if dep in seen or dep not in nodes:
                continue
            seen.add(dep)
            if GROUP in nodes[dep].tags:
                found.add(dep)
            else:
                found |= upstream_assets(dep, seen)
        return found

    assets = {}
    for name, n in nodes.items():
        if GROUP not in n.tags:
            continue
        assets[name] = Asset(
            name=name,
            group=str(n.tags[GROUP]),
            upstream=tuple(sorted(upstream_assets(name, set()))),
            description=(n.documentation or "").strip(),
            tags={k: str(v) for k, v in n.tags.items() if k not in ("module", GROUP)},
        )
    order = graphlib.TopologicalSorter({a.name: a.upstream for a in assets.values()})
    return {name: assets[name] for name in order.static_order()}


def select(assets: dict[str, Asset], names: list[str]) -> list[str]:
    """Asset or group names -> the asset names they mean, in dependency order.

    A dbt build asset (kind dbt_build, such as build_daily_sales_models) means the dbt models it
    collects too, so that selecting it builds them all, whether or not they are fresh.
    """
    groups: dict[str, list[str]] = {}
    for asset in assets.values():
        groups.setdefault(asset.group, []).append(asset.name)
    chosen: set[str] = set()
    for name in names:
        if name in assets:
            chosen.add(name)
        elif name in groups:
            chosen.update(groups[name])
        else:
            raise UnknownNameError(
                f"unknown asset or group {name!r} (assets: {', '.join(assets)}; "
                f"groups: {', '.join(sorted(groups))})"
            )
    for name in [n for n in chosen if assets[n].tags.get(KIND) == DBT_BUILD_KIND]:
        chosen |= set(models_built_by(assets, name))
    return [a for a in assets if a in chosen]


def models_built_by(assets: dict[str, Asset], name: str) -> list[str]:
    """The dbt models a dbt build asset collects: its upstream models and theirs."""
    found: set[str] = set()
    stack = [up for up in assets[name].upstream if assets[up].tags.get(KIND) == MODEL_KIND]
    while stack:
        model = stack.pop()
        if model not in found:
            found.add(model)
            stack += [u for u in assets[model].upstream if assets[u].tags.get(KIND) == MODEL_KIND]
    return [a for a in assets if a in found]


def downstream_of(assets: dict[str, Asset], names: list[str]) -> list[str]:
    """`names` plus every asset that depends on them, in dependency order."""
    below = set(names)
    for candidate in assets:  # dependency order: one pass reaches everything below
        if any(up in below for up in assets[candidate].upstream):
            below.add(candidate)
    return [a for a in assets if a in below]


def with_upstream(assets: dict[str, Asset], names: list[str]) -> list[str]:
    """`names` plus every asset they depend on, in dependency order."""
    needed: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack.extend(assets[name].upstream)
    return [a for a in assets if a in needed]
