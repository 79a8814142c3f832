"""Alerts through apprise to a real local SMTP server and HTTP receiver; freshness deadlines."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from daybreak.clock import FixedClock
from daybreak.config import Settings, load_settings
from daybreak.ingest import demo
from daybreak.runner.alerts import Alerter
from daybreak.runner.execute import execute_run
from daybreak.runner.freshness import freshness
from daybreak.runner.history import History
from daybreak.runner.scheduler import Scheduler
from tests.conftest import write_config

pytestmark = pytest.mark.dates

EXTRA = """
[jobs.reference]
select = ["uk_products_sku"]
cron = "45 15 * * *"
timezone = "Europe/London"

[freshness.uk_products_sku]
deadline = "07:30"
timezone = "Europe/London"
"""


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Mailbox, list[dict[str, Any]]]]:
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    posted: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    urls = (
        f"mailto://127.0.0.1:{smtp.port}?from=daybreak@example.com&to=ops@example.com"
        f"&mode=insecure json://alert-user:webhook-s3cret@127.0.0.1:{http.server_address[1]}/alerts"
    )
    monkeypatch.setenv("DAYBREAK_ALERT_URLS", urls)
    yield mailbox, posted
    smtp.stop()
    http.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings(write_config(tmp_path, EXTRA, days=2, rows=5), environ={})
    demo.generate(settings)
    return settings


def reference_file(settings: Settings) -> Path:
    return settings.paths.landing / "UK/raw_data/reference/products_sku/products_sku.csv"


def test_failure_alerts_once_per_incident_and_recovery_once(
    settings: Settings, receivers: tuple[Mailbox, list[dict[str, Any]]]
) -> None:
    mailbox, posted = receivers
    good = reference_file(settings).read_bytes()
    reference_file(settings).write_text("sku;name\n1;2\n")
    first = execute_run(settings, ["uk_products_sku"], job="reference")
    assert first.status == "failed"
    assert len(mailbox.messages) == 1 and len(posted) == 1
    alert = posted[0]
    assert alert["title"] == "daybreak: reference failed"
    assert "uk_products_sku" in alert["message"] and "wrong delimiter" in alert["message"]
    assert first.run_id in alert["message"] and str(first.log_path) in alert["message"]
    assert "webhook-s3cret" not in json.dumps(posted) + "".join(mailbox.messages)
    assert "Subject: daybreak: reference failed" in mailbox.messages[0]

    assert execute_run(settings, ["uk_products_sku"], job="reference").status == "failed"
    assert len(posted) == 1  # the same incident: no second message

    reference_file(settings).write_bytes(good)
    assert execute_run(settings, ["uk_products_sku"], job="reference").status == "success"
    assert [p["title"] for p in posted] == [
        "daybreak: reference failed",
        "daybreak: reference recovered",
    ]
    assert execute_run(settings, ["uk_products_sku"], job="reference").status == "success"
    assert len(posted) == 2 and len(mailbox.messages) == 2


def test_a_missed_tick_alerts_once(
    settings: Settings, receivers: tuple[Mailbox, list[dict[str, Any]]], clock: FixedClock
) -> None:
    _, posted = receivers
    history = History(settings.state)
    history.record_tick("reference", dt.datetime(2026, 11, 20, 15, 45, tzinfo=dt.UTC), "ran")
    clock.set(dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC))
    Scheduler(settings, run_job=lambda *a, **k: None).start()
    titles = [p["title"] for p in posted]
    assert titles == [
        "daybreak: reference missed its 2026-11-21 15:45 UTC run",
        "daybreak: reference missed its 2026-11-22 15:45 UTC run",
    ]


def test_a_missed_freshness_deadline_alerts_once_and_status_says_stale(
    settings: Settings, receivers: tuple[Mailbox, list[dict[str, Any]]], clock: FixedClock
) -> None:
    _, posted = receivers
    history = History(settings.state)
    morning = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)  # after 07:30 London
    clock.set(morning)
    assert [f.state for f in freshness(settings, history)] == ["never"]

    scheduler = Scheduler(settings, run_job=lambda *a, **k: None)
    assert scheduler.check_freshness(clock.now()) == ["uk_products_sku"]
    assert scheduler.check_freshness(clock.now()) == ["uk_products_sku"]
    assert [p["title"] for p in posted] == ["daybreak: uk_products_sku is not current"]

    clock.set(morning.replace(hour=9))  # the success is stamped by the same clock
    run_id = history.start_run(["uk_products_sku"])
    history.finish_attempt(run_id, "uk_products_sku", 1, "success", seconds=0.1)
    (state,) = freshness(settings, history)
    assert state.state == "fresh"
    clock.set(morning + dt.timedelta(days=2))  # no success since: stale again, new deadline
    (state,) = freshness(settings, history)
    assert state.state == "stale"


def test_a_broken_alert_channel_never_fails_the_job(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYBREAK_ALERT_URLS", f"json://127.0.0.1:{free_port()}/nobody-listens")
    reference_file(settings).write_text("sku;name\n1;2\n")
    outcome = execute_run(settings, ["uk_products_sku"], job="reference")
    assert outcome.status == "failed"  # the job's own result, not the alert's
    sent = Alerter(settings.state, [f"json://127.0.0.1:{free_port()}/x"]).send("t", "b")
    assert sent is False
