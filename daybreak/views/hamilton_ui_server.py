"""Start the Hamilton UI (apache-hamilton-ui) on loopback, its SQLite store in daybreak's state.

`hamilton ui` binds 0.0.0.0 and keeps its store in ~/.hamilton; daybreak starts the same Django
app the same way (migrations, then the dev server serving the bundled page) but bound to the
configured host (127.0.0.1 by default) and with its store in `<state>/hamilton-ui`, so the UI's
data sits beside the run history it mirrors. Nothing here needs the internet.

Usage: `make ui`, or `python runner.py ui [--port N]`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from daybreak.config import Settings

log = logging.getLogger(__name__)

SETTINGS = "--settings=server.settings_mini"


def serve(base_dir: Path, host: str, port: int) -> None:
    """Migrate the UI's store, then serve it until interrupted (blocks)."""
    import hamilton_ui
    from django.core.management import execute_from_command_line

    (base_dir / "blobs").mkdir(parents=True, exist_ok=True)
    (base_dir / "db").mkdir(parents=True, exist_ok=True)
    os.environ["HAMILTON_BASE_DIR"] = str(base_dir)
    os.environ.setdefault("HAMILTON_TELEMETRY_ENABLED", "false")
    sys.path.insert(0, hamilton_ui.__path__[0])  # the Django project's top-level packages
    execute_from_command_line(["manage.py", "migrate", "--verbosity", "0", SETTINGS])
    log.info("Hamilton UI on http://%s:%d (store: %s)", host, port, base_dir)
    execute_from_command_line(
        # --insecure: the dev server serves the bundled static page itself (DEBUG is off for it);
        # --noreload: no file watcher forking a second process.
        ["manage.py", "runserver", SETTINGS, f"{host}:{port}", "--insecure", "--noreload"]
    )


def send_runs_when_up(settings: Settings, port: int, wait_seconds: float = 120.0) -> None:
    """Once the UI answers, send it the recent runs it has not seen (made while it was down)."""
    from daybreak.views import hamilton_ui_mirror

    if settings.tracking is None:
        log.info("no [tracking] in %s: runs are not sent to the UI", settings.config_path)
        return
    url = f"http://{settings.ui.host}:{port}"
    if settings.tracking.url != url:
        log.info("[tracking] url is %s, not this UI (%s): no runs sent", settings.tracking.url, url)
        return
    client = hamilton_ui_mirror.HamiltonUiClient(
        settings.tracking, settings.secrets.hamilton_api_key_value
    )
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            client.ping()
            break
        except hamilton_ui_mirror.TrackingError:
            if time.monotonic() > deadline:
                log.warning("the Hamilton UI did not answer on %s in %.0f s", url, wait_seconds)
                return
            time.sleep(0.5)
        finally:
            client.close()
    try:
        sent = hamilton_ui_mirror.catch_up(settings)
    except Exception as exc:  # the UI still serves; the runs go next time
        log.warning("could not send earlier runs to the Hamilton UI: %s", exc)
        return
    log.info("Hamilton UI ready on %s (%d earlier run(s) sent)", url, sent)
