"""`runner.py lineage`: the asset graph drawn by the bundled Graphviz, coloured by last status."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from daybreak.assets import catalogue
from daybreak.assets.dbt_models import MODEL_KIND
from daybreak.config import load_settings
from daybreak.ingest import demo
from tests.conftest import ROOT, run_runner, write_config

SVG = "{http://www.w3.org/2000/svg}"


def shipped_config(folder: Path) -> Path:
    """The repository's daybreak.toml (jobs, exports, freshness) with its data in `folder`."""
    text = (ROOT / "daybreak.toml").read_text(encoding="utf-8")
    text = text.replace('dbt_project = "dbt"', f'dbt_project = "{(ROOT / "dbt").as_posix()}"')
    path = folder / "daybreak.toml"
    path.write_text(text, encoding="utf-8")
    return path


def drawn(svg: Path) -> tuple[dict[str, str], set[str]]:
    """Asset nodes (name -> status class) and cluster titles of a lineage SVG."""
    root = ET.parse(svg).getroot()
    nodes, clusters = {}, set()
    for g in root.iter(f"{SVG}g"):
        classes = (g.get("class") or "").split()
        if "asset" in classes:
            nodes[(g.get("id") or "").removeprefix("asset-")] = classes[-1]
        elif "cluster" in classes:
            title = g.find(f"{SVG}title")
            text = [t.text for t in g.iter(f"{SVG}text")]
            clusters.add(text[0] if text else (title.text if title is not None else ""))
    return nodes, clusters


def test_the_daily_sales_flow_picture_has_every_asset_from_azure_to_tableau(
    tmp_path: Path,
) -> None:
    config = shipped_config(tmp_path)
    out = tmp_path / "flow.svg"
    done = run_runner("lineage", "--job", "daily_sales_flow", "-o", str(out), config=config)
    assert done.returncode == 0, done.stderr
    nodes, clusters = drawn(out)

    settings = load_settings(config, environ={})
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    job = settings.jobs["daily_sales_flow"]
    runs = set(catalogue.with_upstream(assets, catalogue.select(assets, job.select)))
    models = {name for name, a in assets.items() if a.tags.get("kind") == MODEL_KIND}
    assert set(nodes) == runs | models  # what the job runs, and every model its build makes
    assert {"uk_orders_azure", "stg_uk_orders", "qi_executive_daily_sales",
            "tableau_executive_daily_sales", "warehouse_backup"} <= set(nodes)  # fmt: skip
    assert clusters == {assets[name].group for name in nodes}
    assert set(nodes.values()) == {"never"}  # nothing has run in this folder


@pytest.mark.system_clock  # compares with a runner.py process
def test_nodes_are_coloured_by_their_last_status(tmp_path: Path) -> None:
    config = write_config(tmp_path, days=2, rows=5)
    settings = load_settings(config, environ={})
    demo.generate(settings)
    run_runner("materialize", "uk_new_names", config=config, check=True)
    bad = settings.paths.landing / "UK/raw_data/reference/products_sku/products_sku.csv"
    bad.write_text("sku;name\n1;2\n")
    assert run_runner("materialize", "uk_products_sku", config=config).returncode == 1

    out = tmp_path / "all.svg"
    run_runner("lineage", "-o", str(out), config=config, check=True)
    nodes, _ = drawn(out)
    assert nodes["uk_new_names"] == "success"
    assert nodes["uk_products_sku"] == "failed"
    assert nodes["uk_orders_azure"] == "never"
    text = out.read_text()
    assert "#fad2cf" in text and "#d1f2d9" in text  # red and green fills


def test_one_asset_with_its_downstream_and_a_png(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "stg.svg"
    run_runner("lineage", "--asset", "stg_uk_orders", "--downstream", "-o", str(out),
               config=config, check=True)  # fmt: skip
    nodes, _ = drawn(out)
    assert {"stg_uk_orders", "int_orders_summary_daily", "qi_executive_daily_sales"} <= set(nodes)
    assert "de_orders_azure" not in nodes and "uk_orders_azure" not in nodes

    png = tmp_path / "up.png"
    run_runner("lineage", "--asset", "stg_uk_orders", "--upstream", "-o", str(png),
               config=config, check=True)  # fmt: skip
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.pdf"], "expected a .svg or .png file"),
        (["--upstream"], "--upstream and --downstream go with --asset"),
        (["--job", "nightly"], "unknown job 'nightly'"),
        (["--asset", "nope"], "unknown asset 'nope'"),
    ],
)
def test_bad_arguments_say_what_is_wrong(tmp_path: Path, args: list[str], message: str) -> None:
    config = write_config(tmp_path)
    done = run_runner("lineage", *args, config=config)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not list(tmp_path.glob("*.pdf"))
