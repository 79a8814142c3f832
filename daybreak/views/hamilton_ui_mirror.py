"""Every run in the Hamilton UI: one DAG per job, one task per asset, errors and reports attached.

daybreak's own run history stays the record; the UI is a mirror fed from it:
- At a run's start the run is created in the UI (RUNNING) under a DAG template named after the job,
  whose nodes are the whole asset graph (so the UI shows the run with its lineage). The project
  is created on first use.
- Each asset attempt, as it is recorded in the history, is sent as a task update: status, start
  and end, the redacted error and traceback, and (capture = "report") the report the history
  keeps: counts, files, dbt results. Assets return reports, never data frames, so no rows of
  customer data ever leave; capture = "none" sends status and timing only.
- At the end the run's status is sent and the run is marked sent in the history.
- If the UI is down or slow, every call has a short timeout; the first failure logs one warning and
  stops tracking for that run, which stays unsent. Unsent runs (from the last week) are sent
  later: when a tracked run next reaches the UI, and when `make ui` starts it.

This talks to the UI's REST API with requests (the same calls hamilton_sdk's HamiltonTracker
makes) rather than through HamiltonTracker: that one calls the server with no timeout in its
constructor, starts two threads per instance that live until the process ends, and sees a
Hamilton execution, while a daybreak run is many executions plus dbt builds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from typing import Any

import requests
from hamilton import driver as h_driver

from daybreak import clock
from daybreak.config import Settings, TrackingConfig
from daybreak.runner.history import History, RunRecord

log = logging.getLogger(__name__)

API = "/api/v1"
CATCH_UP_DAYS = 7
CATCH_UP_LIMIT = 50

_TASK_STATUS = {
    "success": "SUCCESS",
    "fresh": "SUCCESS",
    "running": "RUNNING",
    "retrying": "RUNNING",
}


def task_status(status: str) -> str:
    """daybreak's attempt or run status -> the UI's (RUNNING, SUCCESS, FAILURE)."""
    return _TASK_STATUS.get(status, "FAILURE")


class TrackingError(Exception):
    """The UI could not be reached, answered an error, or too slowly."""


class HamiltonUiClient:
    """The few calls of the Hamilton UI's API that a run needs, each with a timeout."""

    def __init__(self, config: TrackingConfig, api_key: str | None = None) -> None:
        assert config.url is not None  # resolved by load_settings
        self.base = config.url + API
        self.timeout = config.timeout_seconds
        self.session = requests.Session()
        self.session.headers.update({"x-api-user": config.username, "x-api-key": api_key or ""})

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(
                method, self.base + path, timeout=self.timeout, **kwargs
            )
        except requests.Timeout:
            raise TrackingError(f"{method} {path}: no answer within {self.timeout:g} s") from None
        except requests.ConnectionError:
            raise TrackingError(f"{method} {path}: cannot connect") from None
        except requests.RequestException as exc:
            raise TrackingError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise TrackingError(
                f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}"
            )
        return response.json() if response.content else None

    def close(self) -> None:
        self.session.close()

    def ping(self) -> None:
        self._call("GET", "/phone_home")

    def project_id(self, name: str, username: str) -> int:
        """The id of the project called `name`, created (writable by `username`) if missing."""
        for project in self._call("GET", "/projects", params={"limit": 1000}):
            if project["name"] == name:
                return int(project["id"])
        created = self._call(
            "POST",
            "/projects",
            json={
                "name": name,
                "description": "daybreak runs: one DAG per job",
                "tags": {"source": "daybreak"},
                # Without the user listed here the project is invisible to it.
                "visibility": {
                    "user_ids_visible": [],
                    "team_ids_visible": [],
                    "team_ids_writable": [],
                    "user_ids_writable": [username],
                },
                "attributes": [],
            },
        )
        log.info("created project %r in the Hamilton UI (id %s)", name, created["id"])
        return int(created["id"])

    def dag_template(
        self, project_id: int, name: str, dr: h_driver.Driver,
        columns: tuple[str, dict[str, str]] | None = None,
    ) -> int:  # fmt: skip
        """The DAG template for this graph and job (registered if the UI has none like it).
        `columns` (the column lineage's key, and per asset the text of its columns) is added to
        each node's documentation; a new lineage is a new template."""
        from hamilton_sdk import driver as sdk

        graph = dr.graph
        modules = list(dr.graph_modules)
        vcs = sdk._derive_version_control_info(sdk._get_modules_hash(modules))
        dag_hash = sdk.hash_dag(graph)
        if columns is not None:
            dag_hash = hashlib.sha256(f"{dag_hash}|{columns[0]}".encode()).hexdigest()
        code_hash = sdk.hash_dag_modules(graph, modules)
        found = self._call(
            "GET",
            "/dag_templates/exists/",
            params={
                "dag_hash": dag_hash,
                "code_hash": code_hash,
                "dag_name": name,
                "project_id": project_id,
            },
        )
        if found is not None:
            return int(found["id"])
        payload = {
            "name": name,
            "template_type": "HAMILTON",
            "config": _json_safe(graph.config),
            "dag_hash": dag_hash,
            "tags": {"job": name},
            "nodes": _json_safe(
                _with_columns(sdk._extract_node_templates_from_function_graph(graph), columns)
            ),
            "code_artifacts": sdk.extract_code_artifacts_from_function_graph(
                graph, vcs, vcs.local_repo_base_path
            ),
            "code_log": {"files": sdk._slurp_code(graph, vcs.local_repo_base_path)},
            "code_hash": code_hash,
            "code_version_info_type": "git",
            "code_version_info": {
                "git_hash": vcs.commit_hash,
                "git_repo": vcs.repository,
                "git_branch": vcs.branch,
            },
            "code_version_info_schema": 1,
        }
        created = self._call("POST", "/dag_templates", params={"project_id": project_id},
                             json=payload)  # fmt: skip
        return int(created["id"])

    def start_run(
        self, template_id: int, started_at: str, tags: dict[str, str], outputs: list[str]
    ) -> int:
        created = self._call(
            "POST",
            "/dag_runs",
            params={"dag_template_id": template_id},
            json={
                "run_start_time": started_at,
                "tags": tags,
                "inputs": {},
                "outputs": outputs,
                "run_status": "RUNNING",
            },
        )
        return int(created["id"])

    def update(self, dag_run_id: int, attributes: list[dict], tasks: list[dict]) -> None:
        self._call(
            "PUT",
            "/dag_runs_bulk",
            params={"dag_run_id": dag_run_id},
            json={"attributes": attributes, "task_updates": tasks},
        )

    def end_run(self, dag_run_id: int, status: str, ended_at: str) -> None:
        self._call(
            "PUT",
            f"/dag_runs/{dag_run_id}/",
            json={"run_status": status, "run_end_time": ended_at},
        )


def _with_columns(
    nodes: list[dict[str, Any]], columns: tuple[str, dict[str, str]] | None
) -> list[dict[str, Any]]:
    if columns is None:
        return nodes
    for node in nodes:
        text = columns[1].get(node["name"])
        if text:
            node["documentation"] = "\n\n".join(p for p in (node.get("documentation"), text) if p)
    return nodes


def column_docs(settings: Settings) -> tuple[str, dict[str, str]] | None:
    """The column lineage for the UI's node documentation; None (and the UI shows the asset
    graph only) when it cannot be computed."""
    from daybreak.assets import columns
    from daybreak.views.column_view import asset_docs

    try:
        graph = columns.load(settings)
    except columns.ColumnLineageUnavailable as exc:
        log.warning("the Hamilton UI gets no column lineage: %s", exc)
        return None
    return str(graph.data.get("key", "")), asset_docs(graph)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def attempt_update(attempt: dict[str, Any], capture: str) -> tuple[list[dict], dict]:
    """One recorded attempt (a history row) -> the UI's attributes and task update for it."""
    name = attempt["asset"]
    status = task_status(attempt["status"])
    task = {
        "node_template_name": name,
        "node_name": name,
        "realized_dependencies": [],
        "status": status,
        "start_time": attempt["started_at"],
        "end_time": attempt["ended_at"],
    }
    attributes = []
    if attempt["error"]:
        lines = (attempt["traceback"] or attempt["error"]).splitlines(keepends=True)
        attributes.append(
            {
                "node_name": name,
                "name": "stack_trace",
                "type": "error",
                "schema_version": 1,
                "value": {"stack_trace": lines},
                "attribute_role": "error",
            }
        )
    elif capture == "report" and attempt["report"]:
        report = json.loads(attempt["report"])
        value = report if isinstance(report, dict) else {"report": report}
        if attempt.get("worker"):  # [engine]: the Dask worker that ran it
            value = {**value, "worker": attempt["worker"]}
        attributes.append(
            {
                "node_name": name,
                "name": "result_summary",
                "type": "dict",
                "schema_version": 2,
                "value": {"type": "<class 'dict'>", "value": value},
                "attribute_role": "result_summary",
            }
        )
    return attributes, task


def _latest_attempts(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for attempt in attempts:  # in recording order
        latest[attempt["asset"]] = attempt
    return list(latest.values())


class RunTracker:
    """Mirrors one run into the Hamilton UI. Never raises; warns once if the UI is unreachable.

    A daybreak.runner.execute.RunObserver: the CLI hands `RunTracker` to every run it starts.
    """

    def __init__(
        self,
        settings: Settings,
        history: History,
        dr: h_driver.Driver,
        run: RunRecord,
    ) -> None:
        assert settings.tracking is not None
        self.config = settings.tracking
        self.settings = settings
        self.history = history
        self.dr = dr
        self.run = run
        self.dag_run_id: int | None = None
        self.failed = False
        self._lock = threading.Lock()
        self.client = HamiltonUiClient(self.config, settings.secrets.hamilton_api_key_value)

    def _guard(self, what: str, call: Any) -> Any:
        if self.failed:
            return None
        try:
            return call()
        except Exception as exc:  # tracking must never fail a run
            self.failed = True
            log.warning(
                "Hamilton UI at %s: %s failed (%s); run %s goes on untracked and is sent to the UI "
                "when it is reachable again (`make ui` starts it)",
                self.config.url, what, exc, self.run.run_id,
            )  # fmt: skip
            return None

    def run_started(self) -> None:
        def go() -> None:
            self.client.ping()
            project = self.client.project_id(self.config.project, self.config.username)
            send_pending(self.settings, self.history, self.client, project, self.dr,
                         skip={self.run.run_id})  # fmt: skip
            template = self.client.dag_template(project, self.run.job or "materialize", self.dr,
                                                column_docs(self.settings))  # fmt: skip
            self.dag_run_id = self.client.start_run(
                template, self.run.started_at, run_tags(self.run), self.run.selection
            )

        self._guard("starting the run", go)

    def attempt_recorded(self, asset: str, attempt: int) -> None:
        """Send an attempt the history has just recorded."""
        if self.dag_run_id is None:
            return
        row = self.history.attempt(self.run.run_id, asset, attempt)
        if row is None:
            return
        attributes, task = attempt_update(row, self.config.capture)
        dag_run_id = self.dag_run_id
        with self._lock:  # assets finish in several threads
            self._guard(
                f"sending {asset}", lambda: self.client.update(dag_run_id, attributes, [task])
            )

    def run_finished(self, status: str) -> None:
        if self.dag_run_id is not None:
            dag_run_id = self.dag_run_id

            def go() -> None:
                ended = self.history.run(self.run.run_id)
                ended_at = (ended.ended_at if ended else None) or _now()
                self.client.end_run(dag_run_id, task_status(status), ended_at)
                self.history.mark_tracked(self.run.run_id, self.config.url or "", dag_run_id)

            self._guard("ending the run", go)
        self.client.close()


def run_tags(run: RunRecord) -> dict[str, str]:
    return {"run_id": run.run_id, "job": run.job or "(materialize)", "trigger": run.trigger}


def _now() -> str:
    return clock.now().isoformat(timespec="seconds")


def send_pending(
    settings: Settings,
    history: History,
    client: HamiltonUiClient,
    project_id: int,
    dr: h_driver.Driver,
    skip: set[str] = frozenset(),  # type: ignore[assignment]
) -> int:
    """Send finished runs of the last week that never reached this UI; how many were sent."""
    assert settings.tracking is not None
    since = clock.now() - dt.timedelta(days=CATCH_UP_DAYS)
    sent = 0
    templates: dict[str, int] = {}
    url = settings.tracking.url or ""
    docs: tuple[str, dict[str, str]] | None = None
    for run in history.untracked_runs(url, since, CATCH_UP_LIMIT):
        if run.run_id in skip:
            continue
        name = run.job or "materialize"
        if name not in templates:
            docs = docs or column_docs(settings)
            templates[name] = client.dag_template(project_id, name, dr, docs)
        dag_run_id = client.start_run(templates[name], run.started_at, run_tags(run),
                                      run.selection)  # fmt: skip
        attributes: list[dict] = []
        tasks: list[dict] = []
        for attempt in _latest_attempts(history.attempts(run.run_id)):
            attrs, task = attempt_update(attempt, settings.tracking.capture)
            attributes += attrs
            tasks.append(task)
        if tasks:
            client.update(dag_run_id, attributes, tasks)
        client.end_run(dag_run_id, task_status(run.status), run.ended_at or run.started_at)
        history.mark_tracked(run.run_id, url, dag_run_id)
        sent += 1
    if sent:
        log.info("sent %d earlier run(s) to the Hamilton UI", sent)
    return sent


def catch_up(settings: Settings) -> int:
    """Send every unsent recent run to the configured UI (used when `make ui` starts it)."""
    from daybreak.assets import catalogue

    if settings.tracking is None or not settings.tracking.enabled:
        return 0
    client = HamiltonUiClient(settings.tracking, settings.secrets.hamilton_api_key_value)
    try:
        project = client.project_id(settings.tracking.project, settings.tracking.username)
        dr = catalogue.build_driver(settings)
        return send_pending(settings, History(settings.state), client, project, dr)
    finally:
        client.close()
