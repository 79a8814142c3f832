"""DuckDB -> Hyper -> Tableau Server: real Hyper files, real TSC against a REST stand-in."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from daybreak.assets import catalogue
from daybreak.config import Settings, load_settings
from daybreak.runner.materialize import AssetResult, RunContext, materialize, run_inputs
from exports.duckdb_to_tableau_server import ExportError, export_extract, main
from tests.conftest import ROOT, write_config
from tests.tableau_standin import TableauStandIn

TYPED = """
CREATE TABLE typed (
    id INTEGER, big BIGINT, small SMALLINT, amount DECIMAL(12, 2), ratio DOUBLE,
    label VARCHAR, day DATE, "at" TIMESTAMP, flag BOOLEAN
);
INSERT INTO typed VALUES
    (1, 9000000000, 7, 1234.50, 0.25, 'Zoë Müller — 東京', DATE '2026-02-28',
     TIMESTAMP '2026-02-28 23:59:58', true),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (3, -1, -7, -0.01, 1e300, '', DATE '1999-12-31', TIMESTAMP '2000-01-01 00:00:00', false);
CREATE TABLE other AS SELECT range AS n, 'row ' || range AS label FROM range(1000);
"""


def make_settings(folder: Path, extra: str = "", env: dict[str, str] | None = None) -> Settings:
    settings = load_settings(write_config(folder, extra), environ=env or {})
    settings.paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.paths.warehouse))
    con.execute(TYPED)
    con.close()
    return settings


def read_hyper(path: Path, table: str) -> tuple[list[tuple[str, str]], list[list[object]]]:
    from tableauhyperapi import Connection, HyperProcess, TableName, Telemetry

    with (
        HyperProcess(Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU) as hyper,
        Connection(hyper.endpoint, path) as connection,
    ):
        name = TableName("Extract", table)
        definition = connection.catalog.get_table_definition(name)
        columns = [(c.name.unescaped, str(c.type)) for c in definition.columns]
        rows = connection.execute_list_query(f"SELECT * FROM {name} ORDER BY 1")
    return columns, rows


def warehouse_digest(settings: Settings) -> str:
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY 1"
        ).fetchall()
        sums = [
            con.execute(f'SELECT count(*), sum(hash(t)) FROM "{n}" t').fetchall() for (n,) in tables
        ]
    finally:
        con.close()
    return hashlib.sha256(repr((tables, sums)).encode()).hexdigest()


def test_hyper_file_holds_every_type_row_and_null_faithfully(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    report = export_extract(settings, ["typed", "other"], "typed_extract")
    assert report.rows == {"typed": 3, "other": 1000}
    assert report.datasource_id is None and report.published == "not published"
    columns, rows = read_hyper(Path(report.hyper), "typed")
    assert columns == [
        ("id", "INT"), ("big", "BIG_INT"), ("small", "SMALL_INT"),
        ("amount", "NUMERIC(12, 2)"), ("ratio", "DOUBLE"), ("label", "TEXT"),
        ("day", "DATE"), ("at", "TIMESTAMP"), ("flag", "BOOL"),
    ]  # fmt: skip
    first, nulls, last = rows
    assert first[:6] == [1, 9000000000, 7, Decimal("1234.50"), 0.25, "Zoë Müller — 東京"]
    assert first[6].to_date() == dt.date(2026, 2, 28)
    assert first[7].to_datetime() == dt.datetime(2026, 2, 28, 23, 59, 58)
    assert first[8] is True
    assert nulls == [2, None, None, None, None, None, None, None, None]
    assert last[3] == Decimal("-0.01") and last[4] == 1e300 and last[5] == "" and last[8] is False
    assert read_hyper(Path(report.hyper), "other")[1][999] == [999, "row 999"]
    backups = list((settings.paths.exports / "backups").glob("typed_extract__*.hyper"))
    assert [p.read_bytes() for p in backups] == [Path(report.hyper).read_bytes()]


def test_wide_decimals_use_hyper_file_format_3(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    con = duckdb.connect(str(settings.paths.warehouse))
    con.execute("CREATE TABLE wide AS SELECT sum(amount) AS total FROM typed")  # DECIMAL(38,2)
    con.close()
    report = export_extract(settings, ["wide"], "wide")
    columns, rows = read_hyper(Path(report.hyper), "wide")
    assert columns == [("total", "NUMERIC(38, 2)")] and rows == [[Decimal("1234.49")]]


def test_narrow_types_and_zones_load_as_their_hyper_columns(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    con = duckdb.connect(str(settings.paths.warehouse))
    con.execute("SET TimeZone = 'Asia/Tokyo'")
    con.execute("""CREATE TABLE narrow AS SELECT 1 AS id, (-7)::TINYINT AS tiny, 0.5::FLOAT AS f,
        TIME '23:59:58' AS t, TIMESTAMPTZ '2026-03-29 01:30:00+00' AS at_utc
        UNION ALL SELECT 2, NULL, NULL, NULL, NULL""")
    con.execute("CREATE TABLE nothing (n INTEGER)")
    con.close()
    report = export_extract(settings, ["narrow", "nothing"], "narrow")
    assert report.rows == {"narrow": 2, "nothing": 0}
    columns, rows = read_hyper(Path(report.hyper), "narrow")
    assert [t for _, t in columns] == ["INT", "SMALL_INT", "DOUBLE", "TIME", "TIMESTAMP_TZ"]
    assert rows[0][1:3] == [-7, 0.5] and str(rows[0][3]) == "23:59:58"
    assert rows[0][4].to_datetime() == dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
    assert rows[1] == [2, None, None, None, None]
    assert read_hyper(Path(report.hyper), "nothing") == ([("n", "INT")], [])


def test_rows_stream_through_many_arrow_files_and_a_failed_read_keeps_the_extract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exports.duckdb_to_tableau_server as export

    monkeypatch.setattr(export, "CHUNK_ROWS", 250)
    monkeypatch.setattr(export, "BATCH_ROWS", 100)
    monkeypatch.setattr(export, "FIRST_CHUNK_ROWS", 100)  # files of 100, 200, 250, 250... rows
    settings = make_settings(tmp_path)
    # What a killed export left (an old staging folder) goes; a live one of the same name stays.
    killed, live = (
        settings.paths.exports / ".stream.killed",
        settings.paths.exports / ".stream.live",
    )
    for folder in (killed, live):
        folder.mkdir(parents=True)
        (folder / "other.00000.arrow").write_bytes(b"half")
    # File ages are the file system's clock, as the sweep reads them: two hours before the live
    # folder was made, so the test holds on any day.
    two_hours_ago = live.stat().st_mtime - 7200
    os.utime(killed, (two_hours_ago, two_hours_ago))
    report = export_extract(settings, ["other", "typed"], "stream")
    assert not killed.exists() and live.exists()
    shutil.rmtree(live)
    assert report.rows == {"other": 1000, "typed": 3}
    _, rows = read_hyper(Path(report.hyper), "other")
    assert rows == [[n, f"row {n}"] for n in range(1000)]
    before = Path(report.hyper).read_bytes()
    # A row DuckDB cannot produce, after a few files went to Hyper: the read step fails, named.
    con = duckdb.connect(str(settings.paths.warehouse))
    con.execute("DROP TABLE other")
    con.execute("CREATE VIEW other AS SELECT CASE WHEN range = 900 THEN "
                "error('row 900 is bad') ELSE range END AS n, 'row ' || range AS label "
                "FROM range(1000)")  # fmt: skip
    con.close()
    with pytest.raises(ExportError) as caught:
        export_extract(settings, ["other", "typed"], "stream")
    assert caught.value.exit_code == 4 and "row 900 is bad" in str(caught.value)
    assert Path(report.hyper).read_bytes() == before
    assert not list(settings.paths.exports.glob(".*"))  # no temporary files left
    assert not [t for t in threading.enumerate() if t.name.startswith("export-read")]


@pytest.mark.parametrize(
    "tables", [["x; drop table typed"], ['"typed"'], ["typed", "nope"], ["main.typed"], ["typed--"]]
)
def test_hostile_or_unknown_tables_are_refused_before_any_sql(
    tmp_path: Path, tables: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path)
    before = warehouse_digest(settings)
    code = main(["--tables", *tables, "--name", "x", "--config", str(settings.config_path)])
    assert code == 3
    err = capsys.readouterr().err
    assert err.startswith("error: tables: ") and err.count("\n") == 1
    assert warehouse_digest(settings) == before
    assert not (settings.paths.exports / "x.hyper").exists()


def test_keep_rotates_backups_and_a_failed_build_keeps_the_previous_extract(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    for _ in range(4):
        export_extract(settings, ["other"], "other", keep=2)
    hyper = settings.paths.exports / "other.hyper"
    assert len(list((settings.paths.exports / "backups").glob("other__*.hyper"))) == 2
    before = hyper.read_bytes()
    con = duckdb.connect(str(settings.paths.warehouse))
    con.execute("CREATE OR REPLACE TABLE other AS SELECT [1, 2] AS not_for_hyper")
    con.close()
    with pytest.raises(ExportError) as caught:
        export_extract(settings, ["other"], "other")
    assert caught.value.exit_code == 5 and "not_for_hyper" in str(caught.value)
    assert hyper.read_bytes() == before
    assert not list(settings.paths.exports.glob(".*"))  # no temporary files left


def test_script_help_documents_every_flag_and_runs_with_any_python(tmp_path: Path) -> None:
    script = str(ROOT / "exports" / "duckdb_to_tableau_server.py")
    help_text = subprocess.run(
        [sys.executable, "-S", script, "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    for flag in (
        "--tables",
        "--name",
        "--no-publish",
        "--project",
        "--backup-dir",
        "--keep",
        "--config",
    ):
        assert flag in help_text
    assert "exit codes" in help_text
    settings = make_settings(tmp_path)
    proc = subprocess.run(
        [sys.executable, script, "--tables", "other", "--name", "cli", "--backup-dir",
         str(tmp_path / "elsewhere"), "--config", str(settings.config_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "cli.hyper: other 1,000 rows" in proc.stdout and "not published" in proc.stdout
    assert len(list((tmp_path / "elsewhere").glob("cli__*.hyper"))) == 1


# -- publishing -------------------------------------------------------------------------------


@pytest.fixture
def tableau() -> Iterator[TableauStandIn]:
    server = TableauStandIn().start()
    yield server
    server.stop()


def tableau_settings(
    folder: Path, server: TableauStandIn, *, auth: str = "token", **env: str
) -> Settings:
    extra = f"""
[tableau]
server_url = "{server.url}"
project = "Commercial"
backoff_seconds = 0.01
max_attempts = 3
"""
    secrets = (
        {"TABLEAU_TOKEN_NAME": server.token_name, "TABLEAU_TOKEN_SECRET": server.token_secret}
        if auth == "token"
        else {"TABLEAU_USERNAME": server.username, "TABLEAU_PASSWORD": server.password}
    )
    return make_settings(folder, extra, {**secrets, **env})


@pytest.mark.parametrize("auth", ["token", "password"])
def test_publish_in_one_request(tmp_path: Path, tableau: TableauStandIn, auth: str) -> None:
    settings = tableau_settings(tmp_path, tableau, auth=auth)
    report = export_extract(settings, ["typed"], "daily_sales_summary")
    assert report.datasource_id and report.datasource_id.startswith("ds-")
    (published,) = tableau.published
    assert published.data == Path(report.hyper).read_bytes()
    assert (published.name, published.project_id, published.chunked, published.overwrite) == (
        "daily_sales_summary", "p-commercial", False, True)  # fmt: skip
    assert tableau.sign_ins == [auth]
    # TSC signs in, then asks the server's REST version (use_server_version), then works.
    assert tableau.routes() == ["signin", "serverinfo", "projects", "publish", "signout"]


def test_large_extract_is_published_in_chunks(
    tmp_path: Path, tableau: TableauStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSC_FILESIZE_LIMIT_MB", "1")
    monkeypatch.setenv("TSC_CHUNK_SIZE_MB", "1")
    settings = tableau_settings(tmp_path, tableau)
    con = duckdb.connect(str(settings.paths.warehouse))
    con.execute(
        "CREATE TABLE big AS SELECT range AS n, md5(range::VARCHAR) AS h FROM range(120000)"
    )
    con.close()
    report = export_extract(settings, ["big"], "big")
    assert report.bytes > 2 * 1024 * 1024
    (published,) = tableau.published
    assert published.chunked and published.data == Path(report.hyper).read_bytes()
    assert tableau.routes().count("upload_append") == -(-report.bytes // (1024 * 1024))


def _assert_local_outputs_intact(settings: Settings, name: str) -> None:
    hyper = settings.paths.exports / f"{name}.hyper"
    backups = list((settings.paths.exports / "backups").glob(f"{name}__*.hyper"))
    assert hyper.exists() and len(backups) == 1 and backups[0].read_bytes() == hyper.read_bytes()


def test_sign_in_refused(tmp_path: Path, tableau: TableauStandIn) -> None:
    settings = tableau_settings(tmp_path, tableau, TABLEAU_TOKEN_SECRET="wrong-secret")
    with pytest.raises(ExportError) as caught:
        export_extract(settings, ["typed"], "refused")
    assert caught.value.exit_code == 7
    assert "sign-in refused (401001" in str(caught.value) and "TABLEAU_TOKEN_SECRET" in str(
        caught.value
    )
    assert "wrong-secret" not in str(caught.value)
    _assert_local_outputs_intact(settings, "refused")


def test_unknown_project(tmp_path: Path, tableau: TableauStandIn) -> None:
    settings = tableau_settings(tmp_path, tableau)
    with pytest.raises(ExportError, match="project 'Marketing' not found"):
        export_extract(settings, ["typed"], "lost", project="Marketing")
    tableau.script["projects"] = [404]
    with pytest.raises(ExportError, match=r"refused a request \(404000"):
        export_extract(settings, ["typed"], "lost")
    assert not tableau.published
    assert (settings.paths.exports / "lost.hyper").exists()
    assert len(list((settings.paths.exports / "backups").glob("lost__*.hyper"))) == 2


def test_server_error_on_publish_is_retried_then_succeeds_or_fails_clearly(
    tmp_path: Path, tableau: TableauStandIn
) -> None:
    settings = tableau_settings(tmp_path, tableau)
    tableau.script["publish"] = [500, 500]
    report = export_extract(settings, ["typed"], "flaky")
    assert report.datasource_id and tableau.routes().count("publish") == 3
    tableau.script["publish"] = [500, 500, 500]
    with pytest.raises(ExportError) as caught:
        export_extract(settings, ["typed"], "flaky", keep=1)
    assert caught.value.exit_code == 7
    assert "publishing flaky to project 'Commercial' failed (500" in str(caught.value)
    assert "after 3 attempt(s)" in str(caught.value)
    _assert_local_outputs_intact(settings, "flaky")  # this run's extract and its backup
    assert tableau.routes()[-1] == "signout"


# -- assets -----------------------------------------------------------------------------------


EXPORTS = """
[[exports]]
asset = "typed_tableau_export"
name = "typed_extract"
tables = ["typed", "other"]

[[exports]]
asset = "other_tableau_export"
name = "other extract"
tables = ["other"]
upstream = ["typed_tableau_export"]
"""


def test_exports_in_config_become_assets_that_call_the_same_function(tmp_path: Path) -> None:
    # As shipped: `[concurrency] dbt_duckdb = 1` makes the asset's own thread hold the warehouse
    # lock before the export starts, which the export's reading thread must never wait for.
    settings = make_settings(tmp_path, EXPORTS + "\n[concurrency]\ndbt_duckdb = 1\n")
    assert settings.concurrency == {"dbt_duckdb": 1}
    dr = catalogue.build_driver(settings)
    assets = catalogue.catalogue(dr)
    assert assets["typed_tableau_export"].group == "export"
    assert assets["typed_tableau_export"].tags["dbt_duckdb"] == "true"
    assert assets["other_tableau_export"].upstream == ("typed_tableau_export",)
    ctx = RunContext(concurrency=settings.concurrency, layout=settings.state)
    done: list[list[AssetResult]] = []
    # In a daemon thread: a deadlock fails the test instead of hanging the suite.
    run = threading.Thread(target=lambda: done.append(materialize(
        dr, assets, ["typed_tableau_export", "other_tableau_export"],
        {"settings": settings, **run_inputs()}, ctx,
    )), daemon=True)  # fmt: skip
    run.start()
    run.join(timeout=90)
    assert done, "the export assets never finished: a deadlock on the warehouse lock?"
    results = done[0]
    assert [r.status for r in results] == ["success", "success"], [r.error for r in results]
    report = results[0].value
    assert report.rows == {"typed": 3, "other": 1000} and report.published == "not published"
    assert set(report.seconds) == {"read", "hyper", "backup"}
    assert (settings.paths.exports / "other extract.hyper").exists()


def test_shipped_config_declares_both_daily_sales_exports() -> None:
    settings = load_settings(ROOT / "daybreak.toml", environ={})
    exports = {e.asset: e for e in settings.exports}
    assert exports["daily_sales_tableau_export"].tables == ["int_orders_summary_daily"]
    assert exports["daily_sales_tableau_export"].name == "daily_sales_summary"
    assert exports["tableau_executive_daily_sales"].tables == ["qi_executive_daily_sales"]
    assert all(e.upstream == ["build_daily_sales_models"] for e in exports.values())
    assert os.path.basename(str(settings.paths.exports)) == "exports"
