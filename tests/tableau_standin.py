"""A local stand-in for Tableau Server's REST API, enough for tableauserverclient to publish.

It answers the calls TSC makes, with the XML shapes Tableau uses (`<tsResponse xmlns=
"http://tableau.com/api">`): serverInfo, sign-in (password or personal access token), projects
(paged), fileUploads (initiate, append chunks), datasource publish (single multipart/mixed
request, or with an uploadSessionId), sign-out. Every published file's bytes are kept, and
failures can be scripted per route.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NS = "http://tableau.com/api"
API_VERSION = "3.19"


def _response(inner: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><tsResponse xmlns="{NS}">{inner}</tsResponse>'.encode()


def _error(code: str, summary: str, detail: str) -> bytes:
    return _response(
        f'<error code="{code}"><summary>{summary}</summary><detail>{detail}</detail></error>'
    )


def _parts(content_type: str, body: bytes) -> dict[str, bytes]:
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    parts = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        parts[str(name)] = part.get_payload(decode=True) or b""
    return parts


@dataclass
class Published:
    name: str
    project_id: str
    data: bytes
    chunked: bool
    overwrite: bool


@dataclass
class TableauStandIn:
    """A server on 127.0.0.1; tests read `published`, `calls` and set `script`."""

    username: str = "analyst"
    password: str = "stand-in-password"
    token_name: str = "daybreak-pat"
    token_secret: str = "stand-in-pat-secret"
    site: str = ""
    projects: dict[str, str] = field(
        default_factory=lambda: {"p-commercial": "Commercial", "p-default": "Default"}
    )
    script: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    calls: list[tuple[str, str]] = field(default_factory=list)
    sign_ins: list[str] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)
    url: str = ""
    _uploads: dict[str, bytearray] = field(default_factory=dict)
    _tokens: set[str] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> TableauStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def routes(self) -> list[str]:
        return [route for _, route in self.calls]


def _handler(state: TableauStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> tuple[str, dict[str, str], dict[str, list[str]]]:
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query)
            path = parsed.path
            patterns = [
                ("serverinfo", r"/api/[\d.]+/serverInfo"),
                ("signin", r"/api/[\d.]+/auth/signin"),
                ("signout", r"/api/[\d.]+/auth/signout"),
                ("projects", r"/api/[\d.]+/sites/(?P<site>[^/]+)/projects"),
                ("upload_init", r"/api/[\d.]+/sites/(?P<site>[^/]+)/fileUploads/?"),
                (
                    "upload_append",
                    r"/api/[\d.]+/sites/(?P<site>[^/]+)/fileUploads/(?P<upload>[^/]+)",
                ),
                ("publish", r"/api/[\d.]+/sites/(?P<site>[^/]+)/datasources"),
            ]
            for route, pattern in patterns:
                if m := re.fullmatch(pattern, path):
                    return route, m.groupdict(), query
            return "unknown", {}, query

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _authorised(self) -> bool:
            if self.headers.get("X-Tableau-Auth") in state._tokens:
                return True
            self._send(
                401, _error("401002", "Unauthorized Access", "Invalid authentication credentials")
            )
            return False

        def _handle(self, method: str) -> None:
            route, params, query = self._route()
            body = self._body()
            state.calls.append((method, route))
            if state.script.get(route):
                status = state.script[route].pop(0)
                self._send(status, _error(f"{status}000", "Scripted failure", f"scripted {status}"))
                return
            getattr(self, f"_{route}")(params, query, body)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def _unknown(self, params: dict[str, str], query: Any, body: bytes) -> None:
            self._send(404, _error("404000", "Not Found", self.path))

        def _serverinfo(self, params: dict[str, str], query: Any, body: bytes) -> None:
            self._send(
                200,
                _response(
                    '<serverInfo><productVersion build="20231.23.0310.1045">2023.1.0</productVersion>'
                    f"<restApiVersion>{API_VERSION}</restApiVersion></serverInfo>"
                ),
            )

        def _signin(self, params: dict[str, str], query: Any, body: bytes) -> None:
            credentials = ET.fromstring(body).find("credentials")
            assert credentials is not None
            site = credentials.find("site")
            by_password = (credentials.get("name"), credentials.get("password")) == (
                state.username,
                state.password,
            )
            by_token = (
                credentials.get("personalAccessTokenName"),
                credentials.get("personalAccessTokenSecret"),
            ) == (state.token_name, state.token_secret)
            if (
                not (by_password or by_token)
                or site is None
                or site.get("contentUrl") != state.site
            ):
                self._send(
                    401, _error("401001", "Signin Error", "Error signing in to Tableau Server")
                )
                return
            state.sign_ins.append("token" if by_token else "password")
            token = uuid.uuid4().hex
            state._tokens.add(token)
            self._send(
                200,
                _response(
                    f'<credentials token="{token}"><site id="site-1" contentUrl="{state.site}"/>'
                    '<user id="user-1"/></credentials>'
                ),
            )

        def _signout(self, params: dict[str, str], query: Any, body: bytes) -> None:
            state._tokens.discard(self.headers.get("X-Tableau-Auth", ""))
            self._send(204)

        def _projects(
            self, params: dict[str, str], query: dict[str, list[str]], body: bytes
        ) -> None:
            if not self._authorised():
                return
            items = "".join(
                f'<project id="{pid}" name="{name}" description="" contentPermissions="ManagedByOwner"/>'
                for pid, name in state.projects.items()
            )
            total = len(state.projects)
            self._send(
                200,
                _response(
                    f'<pagination pageNumber="1" pageSize="100" totalAvailable="{total}"/>'
                    f"<projects>{items}</projects>"
                ),
            )

        def _upload_init(self, params: dict[str, str], query: Any, body: bytes) -> None:
            if not self._authorised():
                return
            upload = uuid.uuid4().hex
            state._uploads[upload] = bytearray()
            self._send(201, _response(f'<fileUpload uploadSessionId="{upload}" fileSize="0"/>'))

        def _upload_append(self, params: dict[str, str], query: Any, body: bytes) -> None:
            if not self._authorised():
                return
            parts = _parts(self.headers["Content-Type"], body)
            state._uploads[params["upload"]] += parts["tableau_file"]
            size = len(state._uploads[params["upload"]])
            self._send(
                200,
                _response(f'<fileUpload uploadSessionId="{params["upload"]}" fileSize="{size}"/>'),
            )

        def _publish(
            self, params: dict[str, str], query: dict[str, list[str]], body: bytes
        ) -> None:
            if not self._authorised():
                return
            parts = _parts(self.headers["Content-Type"], body)
            payload = ET.fromstring(parts["request_payload"])
            source = payload.find("datasource")
            assert source is not None
            project = source.find("project")
            assert project is not None and query.get("datasourceType") == ["hyper"]
            upload = query.get("uploadSessionId", [None])[0]
            data = bytes(state._uploads.pop(upload)) if upload else parts["tableau_datasource"]
            name, project_id = source.get("name", ""), project.get("id", "")
            state.published.append(
                Published(
                    name, project_id, data, upload is not None, query.get("overwrite") == ["true"]
                )
            )
            self._send(
                201,
                _response(
                    f'<datasource id="ds-{uuid.uuid4().hex[:8]}" name="{name}" contentUrl="{name}" '
                    'type="hyper" createdAt="2026-11-24T00:00:00Z" updatedAt="2026-11-24T00:00:00Z">'
                    f'<project id="{project_id}" name="{state.projects.get(project_id, "")}"/>'
                    '<owner id="user-1"/></datasource>'
                ),
            )

    return Handler
