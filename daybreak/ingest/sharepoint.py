"""Download a file from SharePoint through Microsoft Graph, signed in as an app (msal).

Calls, in order: an app-only token from Entra ID (client credentials; msal caches it for its
lifetime, and the msal app is kept per process so a long-lived runner reuses it), then
`GET /sites/{hostname}:/{site-path}` for the site id, `GET /sites/{id}/drive` for its document
library, and `GET /drives/{id}/root:/{path}:/content`, which redirects to a pre-authenticated
download URL on another host (requests drops the Authorization header on that hop).

429 (honouring Retry-After) and 5xx and connection errors are retried with exponential backoff;
401, 403 and 404 fail at once with a message that says what to fix. No secret is ever put in a
message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import hashlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msal
import requests

from daybreak import clock
from daybreak.errors import TransientError, backoff_seconds

log = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_TIMEOUT = (10, 120)  # connect, read


class SharePointError(Exception):
    """SharePoint or Entra ID refused the request; retrying will not help until config changes."""


@dataclass(frozen=True)
class GraphLocation:
    """Where the file is: the site (hostname and path) and the path inside its default drive."""

    site_hostname: str
    site_path: str
    file_path: str

    @property
    def site(self) -> str:
        return f"{self.site_hostname}:{self.site_path}"


_apps: dict[tuple[str, str, str], msal.ConfidentialClientApplication] = {}
_apps_lock = threading.Lock()


def _app(authority: str, client_id: str, secret: str) -> msal.ConfidentialClientApplication:
    # One msal app per credential per process: its token cache is what makes reuse work.
    key = (authority, client_id, hashlib.sha256(secret.encode()).hexdigest())
    with _apps_lock:
        if key not in _apps:
            try:
                _apps[key] = msal.ConfidentialClientApplication(
                    client_id,
                    client_credential=secret,
                    authority=authority,
                    instance_discovery=False,
                )
            except requests.RequestException as exc:
                raise TransientError(
                    f"cannot reach the sign-in endpoint {authority}: {exc}"
                ) from exc
            except ValueError as exc:
                raise SharePointError(
                    f"sign-in authority {authority} was refused: {exc} "
                    "(check SHAREPOINT_TENANT_ID and sharepoint.authority_host)"
                ) from None
        return _apps[key]


class GraphClient:
    """Microsoft Graph, signed in with an app registration's client id and secret."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority_host: str = "https://login.microsoftonline.com",
        graph_url: str = "https://graph.microsoft.com/v1.0",
        max_attempts: int = 5,
        backoff_seconds: float = 2.0,
        max_wait_seconds: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        self.authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self.graph_url = graph_url.rstrip("/")
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self._session = requests.Session()

    def _token(self) -> str:
        app = _app(self.authority, self.client_id, self._secret)
        try:
            result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        except requests.RequestException as exc:
            raise TransientError(
                f"cannot reach the sign-in endpoint {self.authority}: {exc}"
            ) from exc
        if "access_token" in result:
            return str(result["access_token"])
        raise SharePointError(self._explain_sign_in(result))

    def _explain_sign_in(self, result: dict[str, Any]) -> str:
        error = result.get("error", "unknown_error")
        description = str(result.get("error_description", "")).splitlines()[0:1]
        detail = f"{error}: {description[0]}" if description else error
        if error == "invalid_client":
            hint = (
                f"check SHAREPOINT_CLIENT_SECRET for app (client id) {self.client_id}: it is "
                "wrong, expired, or belongs to another app registration"
            )
        elif error in ("unauthorized_client", "invalid_request") or "AADSTS700016" in detail:
            hint = (
                f"check SHAREPOINT_CLIENT_ID ({self.client_id}) and SHAREPOINT_TENANT_ID "
                f"({self.tenant_id}): the app is not registered in that tenant"
            )
        elif "AADSTS90002" in detail:
            hint = f"check SHAREPOINT_TENANT_ID ({self.tenant_id}): no such tenant"
        else:
            hint = "check SHAREPOINT_TENANT_ID, SHAREPOINT_CLIENT_ID and SHAREPOINT_CLIENT_SECRET"
        return f"SharePoint sign-in failed ({detail}); {hint}"

    def _wait(self, attempt: int, response: requests.Response | None) -> float:
        retry_after = response.headers.get("Retry-After") if response is not None else None
        seconds = backoff_seconds(self.backoff_seconds, attempt)
        if retry_after:  # seconds, or an HTTP date
            try:
                seconds = float(retry_after)
            except ValueError:
                with contextlib.suppress(TypeError, ValueError):  # unreadable: our own backoff
                    parsed = email.utils.parsedate_to_datetime(retry_after)
                    if parsed.tzinfo is None:
                        parsed = parsed.replace(tzinfo=dt.UTC)
                    seconds = (parsed - clock.now()).total_seconds()
        return max(0.0, min(seconds, self.max_wait_seconds))

    def _get(self, url: str, what: str, *, stream: bool = False) -> requests.Response:
        for attempt in range(1, self.max_attempts + 1):
            headers = {"Authorization": f"Bearer {self._token()}"}
            response: requests.Response | None = None
            try:
                response = self._session.get(url, headers=headers, stream=stream, timeout=_TIMEOUT)
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code != 429 and response.status_code < 500:
                    raise SharePointError(self._explain_refusal(response, what))
                problem = f"HTTP {response.status_code}"
                response.close()
            wait = self._wait(attempt, response)
            if attempt == self.max_attempts:  # the asset's retry policy takes it from here
                asked = response is not None and "Retry-After" in response.headers
                raise TransientError(
                    f"Graph kept failing for {what} ({problem}) after {attempt} attempts",
                    retry_after=wait if asked else None,
                )
            log.warning("Graph %s for %s; retry %d in %.1f s", problem, what, attempt, wait)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _explain_refusal(self, response: requests.Response, what: str) -> str:
        code = ""
        with contextlib.suppress(ValueError):  # not every refusal has a JSON body
            code = response.json().get("error", {}).get("code", "")
        status = f"HTTP {response.status_code}" + (f" {code}" if code else "")
        if response.status_code == 401:
            hint = (
                "Graph did not accept the app's token: check SHAREPOINT_TENANT_ID and "
                "SHAREPOINT_CLIENT_ID, and that the app registration is enabled"
            )
        elif response.status_code == 403:
            hint = (
                f"app {self.client_id} lacks permission: grant the Microsoft Graph application "
                "permission Sites.Read.All (or Sites.Selected with read access to this site) "
                "and give admin consent"
            )
        elif response.status_code == 404:
            hint = "not found: check sharepoint.site_hostname, sharepoint.site_path and budget.file"
        else:
            hint = "Graph refused the request"
        return f"{what}: {status}; {hint}"

    def download(self, location: GraphLocation, dest: Path) -> int:
        """Stream the file at `location` into `dest`; return its size in bytes."""
        quote = urllib.parse.quote
        site_path = "/" + location.site_path.strip("/")
        site = self._get(
            f"{self.graph_url}/sites/{quote(location.site_hostname)}:{quote(site_path)}",
            f"site {location.site_hostname}:{site_path}",
        ).json()
        drive = self._get(
            f"{self.graph_url}/sites/{quote(site['id'], safe='')}/drive",
            f"document library of site {location.site_hostname}:{site_path}",
        ).json()
        file_path = quote(location.file_path.strip("/"))
        size = 0
        with (
            self._get(
                f"{self.graph_url}/drives/{quote(drive['id'], safe='')}/root:/{file_path}:/content",
                f"file {location.file_path!r} on site {location.site_hostname}:{site_path}",
                stream=True,
            ) as response,
            dest.open("wb") as out,
        ):
            try:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    out.write(chunk)
                    size += len(chunk)
            except requests.RequestException as exc:
                raise TransientError(
                    f"download of {location.file_path!r} broke off after {size} bytes: "
                    f"{type(exc).__name__}"
                ) from exc
        return size
