"""The `azure` source backend against a real Azurite: the same sync, over HTTP, with real ETags."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from azure.storage.blob import ContainerClient

from dataflows import resources
from daybreak.assets import catalogue
from daybreak.config import Settings, load_settings
from daybreak.ingest import datasets, demo
from daybreak.ingest.sync import SyncFailed, sync_dataset
from daybreak.runner.materialize import materialize, run_inputs
from tests.conftest import (
    AZURITE_API_VERSION,
    DEMO_END,
    DEV_ACCOUNT_KEY,
    RUN_DATE,
    azure_connection,
    run_runner,
    write_config,
)

pytestmark = pytest.mark.azurite
UK = datasets.orders("UK")


def azure_settings(folder: Path, connection: str, container: str) -> Settings:
    source = (
        '\n[source]\nbackend = "azure"\n[source.azure]\n'
        f'container = "{container}"\napi_version = "{AZURITE_API_VERSION}"\n'
    )
    config = write_config(folder, source)
    return load_settings(config, environ={"AZURE_STORAGE_CONNECTION_STRING": connection})


def upload_tree(landing: Path, client: ContainerClient) -> int:
    count = 0
    for path in sorted(landing.rglob("*.csv")):
        with path.open("rb") as data:
            client.upload_blob(path.relative_to(landing).as_posix(), data, overwrite=True)
        count += 1
    return count


@pytest.fixture
def local_and_azure(
    tmp_path: Path, azurite: tuple[str, str]
) -> tuple[Settings, Settings, ContainerClient]:
    """The same demo files in a local landing folder and in an Azurite container."""
    connection, container = azurite
    local = load_settings(write_config(tmp_path / "local"), environ={})
    demo.generate(local, end=DEMO_END)
    client = ContainerClient.from_connection_string(
        connection, container, api_version=AZURITE_API_VERSION
    )
    # 40 days x 4 markets of orders, 2 reference files, 1 SCV snapshot.
    assert upload_tree(local.paths.landing, client) == 4 * 40 + 2 + 1
    return local, azure_settings(tmp_path / "azure", connection, container), client


AZURE_GROUPS = ["azure_ingestion_orders", "azure_ingestion_reference"]


def run_all(settings: Settings) -> dict[str, object]:
    dr = catalogue.build_driver(settings)
    assets = catalogue.catalogue(dr)
    inputs = {"settings": settings, **run_inputs(run_date=RUN_DATE)}
    results = materialize(dr, assets, catalogue.select(assets, AZURE_GROUPS), inputs)
    assert [r.error for r in results if r.status != "success"] == []
    return {r.name: r.value for r in results}


def sync_uk(settings: Settings):
    ctx = resources.sync_context(
        settings,
        resources.landing_source__azure(settings),
        resources.sync_state(settings),
        RUN_DATE,
        False,
    )
    return sync_dataset(ctx, "uk_orders_azure", UK, market="UK", days_back=30)


def lake_count(settings: Settings, where: str = "true") -> int:
    glob = settings.paths.lake / "orders" / "market=UK" / "**" / "*.parquet"
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}') WHERE {where}").fetchall()[0][0]


def test_azure_and_local_backends_give_the_same_lake(local_and_azure) -> None:
    local, azure, _ = local_and_azure
    local_reports = run_all(local)
    azure_reports = run_all(azure)
    for name, report in local_reports.items():
        assert azure_reports[name].rows_loaded == report.rows_loaded, name
        assert azure_reports[name].files_synced == report.files_synced, name
    assert azure_reports["uk_orders_azure"].source.startswith("Azure container")
    # Only the sync time differs by construction; every value, blob name included, must not.
    lineage = "EXCLUDE (synced_at)"
    queries = {
        "orders": f"SELECT * {lineage} FROM read_parquet('{{}}/orders/**/*.parquet')",
        "products": f"SELECT * {lineage} FROM '{{}}/reference/uk_products_sku/*.parquet'",
        "names": f"SELECT * {lineage} FROM '{{}}/reference/uk_new_names/*.parquet'",
    }
    for name, query in queries.items():
        fingerprint = "SELECT count(*), sum(hash(t)) FROM ({}) t"
        left = duckdb.sql(fingerprint.format(query.format(local.paths.lake))).fetchall()
        right = duckdb.sql(fingerprint.format(query.format(azure.paths.lake))).fetchall()
        assert left == right, name


def test_incremental_resync_changed_and_deleted_blobs(local_and_azure) -> None:
    _, azure, client = local_and_azure
    assert sync_uk(azure).files_synced == 40
    assert sync_uk(azure).files_synced == 0  # same ETags: nothing to do

    changed_day = DEMO_END - dt.timedelta(days=1)
    changed = f"{UK.prefix}2026/ingest_orders_{changed_day:%Y%m%d}.csv"
    lines = client.download_blob(changed).readall().decode().splitlines()
    client.upload_blob(changed, ("\n".join(lines[:4]) + "\n").encode(), overwrite=True)
    deleted_day = DEMO_END - dt.timedelta(days=5)
    deleted = f"{UK.prefix}2026/ingest_orders_{deleted_day:%Y%m%d}.csv"
    client.delete_blob(deleted)

    report = sync_uk(azure)
    assert (report.files_synced, report.rows_loaded) == (1, 3)
    assert report.deleted == [deleted]
    assert lake_count(azure, f"file_date = DATE '{changed_day}'") == 3  # replaced, not added
    assert lake_count(azure, f"file_date = DATE '{deleted_day}'") == 0
    assert lake_count(azure) == 38 * 25 + 3


def test_hostile_blob_name_is_rejected_and_the_rest_sync(local_and_azure) -> None:
    _, azure, client = local_and_azure
    # Azurite stores backslashes as slashes, so this lists as '.../2026/../../../evil.csv'.
    client.upload_blob(UK.prefix + "2026\\..\\..\\..\\..\\..\\..\\evil.csv", b"x,y\n1,2\n")
    listed = [b.name for b in client.list_blobs(name_starts_with=UK.prefix) if "evil" in b.name]
    assert listed and ".." in listed[0]
    with pytest.raises(SyncFailed) as caught:
        sync_uk(azure)
    assert "'..' segment" in str(caught.value) and "evil.csv" in str(caught.value)
    assert caught.value.report.files_synced == 40
    root = azure.paths.lake.parent
    assert not list(root.rglob("evil*"))


def test_runner_against_azurite_counts_rows_and_never_prints_the_key(local_and_azure) -> None:
    _, azure, _ = local_and_azure
    env = {"AZURE_STORAGE_CONNECTION_STRING": _connection(azure)}
    proc = run_runner("materialize", *AZURE_GROUPS, config=azure.config_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "backfill: 1,000 rows from 40 files" in proc.stdout
    assert DEV_ACCOUNT_KEY not in proc.stdout + proc.stderr

    # A wrong container fails the assets with the server's answer, still without the key.
    config = azure.config_path
    config.write_text(config.read_text().replace('container = "qi-', 'container = "missing-'))
    broken = run_runner("materialize", "uk_orders_azure", config=config, env=env)
    assert broken.returncode == 1
    assert "ContainerNotFound" in broken.stdout + broken.stderr
    assert DEV_ACCOUNT_KEY not in broken.stdout + broken.stderr


def _connection(settings: Settings) -> str:
    secret = settings.secrets.azure_connection_string
    assert secret is not None
    return secret.get_secret_value()


def test_the_sdk_does_not_retry_on_its_own_so_the_asset_policy_is_the_one_layer(
    tmp_path: Path,
) -> None:
    """Against a server that drops every connection, one listing is one connection (azure-core
    would otherwise retry it for about 80 s), and the error is one the asset policy retries."""
    import socket
    import threading

    from daybreak.errors import is_transient
    from daybreak.ingest.sources import AzureSource

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    connections = []

    def drop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            connections.append(conn)
            conn.close()

    threading.Thread(target=drop, daemon=True).start()
    port = server.getsockname()[1]
    connection = azure_connection(f"http://127.0.0.1:{port}/devstoreaccount1")
    config = write_config(
        tmp_path, '\n[source]\nbackend = "azure"\n[source.azure]\ncontainer = "qi"\n'
    )
    settings = load_settings(config, environ={"AZURE_STORAGE_CONNECTION_STRING": connection})
    try:
        with pytest.raises(Exception) as caught:
            list(AzureSource(settings).list("UK/"))
    finally:
        server.close()
    assert is_transient(caught.value), repr(caught.value)
    assert len(connections) == 1
