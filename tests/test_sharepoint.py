"""The SharePoint path end to end: real msal and requests against a local HTTPS stand-in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from daybreak.config import load_settings
from daybreak.errors import TransientError
from daybreak.ingest import demo
from daybreak.ingest.sharepoint import GraphClient, GraphLocation, SharePointError
from tests.conftest import run_runner, write_config
from tests.graph_standin import GraphStandIn, make_certificate

FILE = "Budget/Daily Sales Budget.xlsx"


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStandIn]:
    cert, key = make_certificate(tmp_path)
    # These machines point requests at the system CA bundle; trust the stand-in's certificate.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(cert))
    standin = GraphStandIn(files={FILE: b"PK\x03\x04 pretend workbook bytes"}).start(cert, key)
    yield standin
    standin.stop()


def client(
    graph: GraphStandIn,
    *,
    secret: str | None = None,
    sleeps: list[float] | None = None,
    attempts: int = 4,
) -> GraphClient:
    return GraphClient(
        tenant_id=graph.tenant,
        client_id=graph.client_id,
        client_secret=secret or graph.client_secret,
        authority_host=graph.base_url,
        graph_url=graph.graph_url,
        max_attempts=attempts,
        backoff_seconds=0.5,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
    )


def location(graph: GraphStandIn, file: str = FILE) -> GraphLocation:
    return GraphLocation(graph.site_hostname, graph.site_path, file)


def test_download_follows_graph_and_redirects_to_another_host_without_the_token(
    graph: GraphStandIn, tmp_path: Path
) -> None:
    dest = tmp_path / "out.xlsx"
    size = client(graph).download(location(graph), dest)
    assert dest.read_bytes() == graph.files[FILE] and size == len(graph.files[FILE])
    assert [r.route for r in graph.requests] == [
        "discovery",
        "token",
        "site",
        "drive",
        "content",
        "download",
    ]
    graph_calls = [r for r in graph.requests if r.route in ("site", "drive", "content")]
    assert all(r.authorization and r.authorization.startswith("Bearer ") for r in graph_calls)
    (download,) = [r for r in graph.requests if r.route == "download"]
    assert download.authorization is None  # requests dropped it on the cross-host redirect
    assert "%20" in graph_calls[-1].path  # the space in the file name is encoded


def test_token_is_reused_across_calls_and_clients(graph: GraphStandIn, tmp_path: Path) -> None:
    client(graph).download(location(graph), tmp_path / "a.xlsx")
    client(graph).download(location(graph), tmp_path / "b.xlsx")
    assert graph.count("token") == 1
    assert graph.count("content") == 2


def test_throttling_honours_retry_after_then_succeeds(graph: GraphStandIn, tmp_path: Path) -> None:
    graph.script["site"] = [(429, {"Retry-After": "3"})]
    graph.script["content"] = [(503, {}), (502, {})]
    sleeps: list[float] = []
    client(graph, sleeps=sleeps).download(location(graph), tmp_path / "out.xlsx")
    assert sleeps == [3.0, 0.5, 1.0]  # Retry-After, then exponential backoff
    assert (tmp_path / "out.xlsx").read_bytes() == graph.files[FILE]


def test_server_errors_beyond_the_attempts_are_transient(
    graph: GraphStandIn, tmp_path: Path
) -> None:
    graph.script["drive"] = [(503, {})] * 5
    with pytest.raises(TransientError, match=r"HTTP 503\) after 3 attempts"):
        client(graph, attempts=3).download(location(graph), tmp_path / "out.xlsx")


def test_wrong_secret_fails_at_once_naming_the_variable_not_the_value(
    graph: GraphStandIn, tmp_path: Path
) -> None:
    wrong = "definitely-not-the-right-secret"
    with pytest.raises(SharePointError) as caught:
        client(graph, secret=wrong).download(location(graph), tmp_path / "out.xlsx")
    message = str(caught.value)
    assert "invalid_client" in message and "SHAREPOINT_CLIENT_SECRET" in message
    assert wrong not in message and graph.client_secret not in message
    assert graph.count("token") == 1  # not retried
    assert graph.count("site") == 0


def test_token_graph_does_not_accept_is_a_401_that_fails_at_once(
    graph: GraphStandIn, tmp_path: Path
) -> None:
    graph.script["site"] = [(401, {})]
    with pytest.raises(SharePointError, match=r"HTTP 401.*SHAREPOINT_TENANT_ID"):
        client(graph).download(location(graph), tmp_path / "out.xlsx")
    assert graph.count("site") == 1


def test_missing_permission_says_which(graph: GraphStandIn, tmp_path: Path) -> None:
    graph.forbidden = True
    with pytest.raises(SharePointError, match=r"HTTP 403 accessDenied.*Sites\.Read\.All"):
        client(graph).download(location(graph), tmp_path / "out.xlsx")


def test_wrong_path_is_a_404_naming_the_file(graph: GraphStandIn, tmp_path: Path) -> None:
    with pytest.raises(SharePointError) as caught:
        client(graph).download(location(graph, "Budget/Old.xlsx"), tmp_path / "out.xlsx")
    assert "file 'Budget/Old.xlsx'" in str(caught.value) and "HTTP 404 itemNotFound" in str(
        caught.value
    )
    wrong_site = GraphLocation(graph.site_hostname, "/sites/Marketing", FILE)
    with pytest.raises(
        SharePointError, match=r"site contoso\.sharepoint\.com:/sites/Marketing: HTTP 404"
    ):
        client(graph).download(wrong_site, tmp_path / "out.xlsx")


@pytest.mark.system_clock  # compares with a runner.py process
def test_asset_from_sharepoint_gives_the_same_rows_as_local(
    graph: GraphStandIn, tmp_path: Path
) -> None:
    local_config = write_config(tmp_path / "local")
    local = load_settings(local_config, environ={})
    demo.generate(local, days=40, end=dt.date(2026, 3, 31))
    workbook = local.paths.landing / "sharepoint" / FILE
    graph.files[FILE] = workbook.read_bytes()

    remote_config = write_config(
        tmp_path / "remote",
        f"""
[budget]
source = "sharepoint"
file = "{FILE}"
[budget.sharepoint]
site_hostname = "{graph.site_hostname}"
site_path = "{graph.site_path}"
authority_host = "{graph.base_url}"
graph_url = "{graph.graph_url}"
""",
    )
    env = {
        "SHAREPOINT_TENANT_ID": graph.tenant,
        "SHAREPOINT_CLIENT_ID": graph.client_id,
        "SHAREPOINT_CLIENT_SECRET": graph.client_secret,
    }
    outputs = []
    for config in (local_config, remote_config):
        proc = run_runner(
            "materialize", "daily_sales_budget_exchange_ingest", config=config, env=env
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Budget year: 2026, rows: 1,460" in proc.stderr
        assert graph.client_secret not in proc.stdout + proc.stderr
        outputs.append(
            pq.read_table(config.parent / "lake" / "budget" / "daily_sales_budget_exchange.parquet")
        )
    assert "from SharePoint contoso.sharepoint.com" in proc.stdout
    assert outputs[0].equals(outputs[1])
    kept = list((tmp_path / "remote" / "state" / "downloads" / "budget").glob("*__*.xlsx"))
    assert len(kept) == 1 and kept[0].read_bytes() == graph.files[FILE]
