"""A local stand-in for Entra ID's token endpoint, Microsoft Graph and SharePoint's download host.

It speaks the real protocol over HTTPS (a self-signed certificate made per test) so that the real
msal and requests clients run unchanged: OpenID discovery, the client-credentials token POST,
`/sites/{host}:{path}`, `/sites/{id}/drive`, `/drives/{id}/root:/{path}:/content` answering 302 to
a second server (another host name: `localhost` instead of `127.0.0.1`). Failures are scripted per
route, and every request is recorded.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import urllib.parse
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "daybreak test stand-in")])
    # Valid for any day the suite may run on (the TLS client checks it against the machine's
    # clock, shifted or not), so the certificate never depends on today.
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2049, 12, 31, tzinfo=dt.UTC))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "standin-cert.pem", folder / "standin-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Recorded:
    method: str
    route: str
    path: str
    authorization: str | None


@dataclass
class GraphStandIn:
    """State shared by the two servers; tests read `requests` and set `script` and `files`."""

    tenant: str = "contoso-tenant-id"
    client_id: str = "11111111-2222-3333-4444-555555555555"
    client_secret: str = "stand-in-client-secret-value"
    site_hostname: str = "contoso.sharepoint.com"
    site_path: str = "/sites/Finance"
    files: dict[str, bytes] = field(default_factory=dict)
    forbidden: bool = False
    # route -> list of (status, headers) answered, in order, before the route answers normally.
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""
    download_url: str = ""
    _tokens: set[str] = field(default_factory=set)
    _downloads: dict[str, bytes] = field(default_factory=dict)
    _servers: list[ThreadingHTTPServer] = field(default_factory=list)

    site_id = "contoso.sharepoint.com,7d9a6b44-0000-4c1e-9d6b-5a1f0e2c3b4a,0c3a2e1d-0000-4b8a"
    drive_id = "b!standinDriveId-0000"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    def count(self, route: str) -> int:
        return sum(1 for r in self.requests if r.route == route)

    def start(self, cert: Path, key: Path) -> GraphStandIn:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        for role in ("graph", "download"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, role))
            server.socket = context.wrap_socket(server.socket, server_side=True)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        self.base_url = f"https://127.0.0.1:{self._servers[0].server_address[1]}"
        # Another host name for the same machine: requests must not forward the token there.
        self.download_url = f"https://localhost:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def _handler(state: GraphStandIn, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            data = (
                b""
                if body is None
                else (body if isinstance(body, bytes) else json.dumps(body).encode())
            )
            self.send_response(status)
            ctype = "application/octet-stream" if isinstance(body, bytes) else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _graph_error(self, status: int, code: str, message: str) -> None:
            self._send(status, {"error": {"code": code, "message": message}})

        def _route(self) -> tuple[str, dict[str, str]]:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            t = f"/{state.tenant}"
            if role == "download":
                return "download", {"key": path.rsplit("/", 1)[-1]}
            if path.endswith("/v2.0/.well-known/openid-configuration"):
                return "discovery", {"tenant": path.split("/")[1]}
            if path.endswith("/oauth2/v2.0/token"):
                return "token", {"tenant": path.split("/")[1]}
            if path.startswith("/v1.0/sites/") and path.endswith("/drive"):
                return "drive", {"site": path[len("/v1.0/sites/") : -len("/drive")]}
            if path.startswith("/v1.0/sites/"):
                return "site", {"site": path[len("/v1.0/sites/") :]}
            if path.startswith("/v1.0/drives/") and path.endswith(":/content"):
                drive, _, rest = path[len("/v1.0/drives/") :].partition("/root:/")
                return "content", {"drive": drive, "file": rest[: -len(":/content")]}
            return "unknown", {"tenant": t}

        def _scripted(self, route: str) -> bool:
            if state.script.get(route):
                status, headers = state.script[route].pop(0)
                self._graph_error_or_plain(status, headers)
                return True
            return False

        def _graph_error_or_plain(self, status: int, headers: dict[str, str]) -> None:
            body = {"error": {"code": "scripted", "message": f"scripted {status}"}}
            self._send(status, body, headers)

        def do_GET(self) -> None:
            route, params = self._route()
            state.requests.append(
                Recorded("GET", route, self.path, self.headers.get("Authorization"))
            )
            if self._scripted(route):
                return
            if route == "discovery":
                if params["tenant"] != state.tenant:
                    self._send(
                        400,
                        {
                            "error": "invalid_tenant",
                            "error_description": (
                                f"AADSTS90002: Tenant '{params['tenant']}' not found."
                            ),
                        },
                    )
                    return
                base = f"{state.base_url}/{state.tenant}"
                self._send(
                    200,
                    {
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "issuer": f"{base}/v2.0",
                        "jwks_uri": f"{base}/discovery/v2.0/keys",
                        "response_types_supported": ["code", "id_token", "token"],
                    },
                )
                return
            if route == "download":
                data = state._downloads.get(params["key"])
                self._send(200, data) if data is not None else self._send(404, b"gone")
                return
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in state._tokens:
                self._graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
                return
            if state.forbidden:
                self._graph_error(
                    403, "accessDenied", "Either scp or roles claim need to be present"
                )
                return
            if route == "site":
                if params["site"] != f"{state.site_hostname}:{state.site_path}":
                    self._graph_error(404, "itemNotFound", "Requested site could not be found")
                    return
                self._send(200, {"id": state.site_id, "name": "Finance"})
            elif route == "drive":
                if params["site"] != state.site_id:
                    self._graph_error(404, "itemNotFound", "site not found")
                    return
                self._send(200, {"id": state.drive_id, "driveType": "documentLibrary"})
            elif route == "content":
                data = state.files.get(params["file"])
                if params["drive"] != state.drive_id or data is None:
                    self._graph_error(404, "itemNotFound", "The resource could not be found.")
                    return
                key = uuid.uuid4().hex
                state._downloads[key] = data
                location = f"{state.download_url}/download/{key}?tempauth=signed"
                self._send(302, None, {"Location": location})
            else:
                self._graph_error(400, "BadRequest", f"unsupported path {self.path}")

        def do_POST(self) -> None:
            route, _ = self._route()
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            state.requests.append(Recorded("POST", route, self.path, None))
            if self._scripted(route):
                return
            if route != "token":
                self._send(404, {"error": "not_found"})
                return
            client_id = form.get("client_id", [""])[0]
            if form.get("grant_type") != ["client_credentials"]:
                self._send(400, {"error": "unsupported_grant_type"})
            elif client_id != state.client_id:
                self._send(
                    400,
                    {
                        "error": "unauthorized_client",
                        "error_description": (
                            f"AADSTS700016: Application with identifier '{client_id}' "
                            f"was not found in the directory '{state.tenant}'."
                        ),
                    },
                )
            elif form.get("client_secret") != [state.client_secret]:
                self._send(
                    401,
                    {
                        "error": "invalid_client",
                        "error_description": (
                            "AADSTS7000215: Invalid client secret provided. Ensure the "
                            "secret being sent in the request is the client secret value."
                        ),
                    },
                )
            elif form.get("scope") != ["https://graph.microsoft.com/.default"]:
                self._send(400, {"error": "invalid_scope"})
            else:
                token = f"standin-token-{uuid.uuid4().hex}"
                state._tokens.add(token)
                self._send(
                    200,
                    {
                        "token_type": "Bearer",
                        "expires_in": 3599,
                        "ext_expires_in": 3599,
                        "access_token": token,
                    },
                )

    return Handler
