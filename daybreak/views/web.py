"""The status page's web server: Starlette on uvicorn, in a daemon thread of the runner.

Reading (GET; HEAD too):
- `/`                     the status page (daybreak.views.status_page); reloads itself
- `/api/status`           the same data as JSON: exactly `runner.py status --json`
- `/lineage.svg`          the asset graph coloured by last status
- `/columns/NAME.COLUMN`  one column's lineage: the picture of its path, what makes it, what
                          it reaches (`/api/columns/NAME.COLUMN`: the same as JSON)
- `/runs/<id>`            a run as it goes; `/runs/<id>/log` its log; `/api/runs/<id>` as JSON
- `/assets/<name>`        one asset's page; `/api/assets/<name>` as JSON
- `/confirm/<action>`     the confirmation of a button (changes nothing); `/login` the sign-in

Acting (POST only, each the same code path as the CLI: daybreak.runner.actions):
- `/actions/run` (job, full), `/actions/materialize` (assets: comma-separated asset or group
  names, full), `/actions/rerun` (run_id), `/actions/backfill` (job, start, end, chunk_days),
  `/actions/cancel` (run_id); form-encoded or JSON, at most 8 KiB.
  A browser is sent to the run's page (303); a script (JSON body or `Accept: application/json`)
  gets 202 with `{"run_id": ..., "url": ...}`. `/login` and `/logout` are POSTs too.

Who may do what (docs/ARCHITECTURE.md, "The page's access rules"):
- It binds [web] host, 127.0.0.1 by default. Any other address needs DAYBREAK_WEB_TOKEN (16
  characters or more); without it the runner refuses to start and says why.
- With no token (loopback only), anyone on this desktop may read and act. With a token, acting
  always needs it: `Authorization: Bearer TOKEN` (scripts), or the session cookie `/login` sets
  (HttpOnly, SameSite=Strict, signed with a key of this process, 12 h). Reading needs it too
  unless [web] public_read = true.
- Every request's Host header must be one of this machine's names (localhost, 127.0.0.1, its
  host name and addresses, the bound address, [web] names): a DNS-rebinding page cannot act or
  read. A POST with an Origin (or Sec-Fetch-Site) from another site is refused.
- Every POST from a browser carries a one-time CSRF token: minted for each confirmation page
  (an HMAC of a nonce, its expiry and the session), accepted once, within an hour. A request
  authenticated by the bearer token needs none: a browser cannot send that header across sites.
- Every action is recorded in the history with its origin "page (client address)" and outcome,
  refused ones included (an action over GET, a bad token, a replayed CSRF token, a bad body).
- Responses: no caching, nosniff, no framing (clickjacking), a Content-Security-Policy with no
  script, no referrer beyond the page itself.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from daybreak.assets.columns import ColumnLineageUnavailable
from daybreak.errors import ConfigError, UnknownNameError, UnknownRunError, UsageError
from daybreak.logs import redact
from daybreak.runner import actions
from daybreak.runner.actions import Launcher, Refused
from daybreak.runner.backfill import MAX_DAYS, chunk_days
from daybreak.runner.history import History
from daybreak.views.status import asset_page
from daybreak.views.status_page import ASSET, RUN_ID, StatusSite

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024  # an action's fields are a few short strings
MIN_TOKEN_CHARS = 16
CSRF_SECONDS = 3600
SESSION_SECONDS = 12 * 3600
SESSION_COOKIE = "daybreak_session"
USED_NONCES = 50_000  # replay memory; each entry is forgotten once its token has expired
LOGIN_FAILURES = 5  # a client address gets this many wrong tokens a minute, then 429
MAX_SESSIONS = 1000  # signed-in browsers at once
REFUSALS_RECORDED = 30  # refused requests recorded per client address a minute
BODY_SECONDS = 10  # a body that takes longer to arrive is refused (408)
JOB = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,100}")
ASSETS = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,100}(,[A-Za-z_][A-Za-z0-9_]{0,100}){0,19}")
ACTIONS = ("run", "materialize", "rerun", "backfill", "cancel")
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make a browser send Origin: null
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' "
    "data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class Denied(Exception):
    """A request refused: its HTTP status and the reason said back (and recorded, unless
    `recorded`: daybreak.runner.actions did already)."""

    def __init__(self, status: int, reason: str, *, recorded: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.recorded = recorded


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_names(bound: str, extra: list[str]) -> set[str]:
    """The names this page answers to (the Host header, without its port)."""
    names = {"localhost", "127.0.0.1", "::1", *(n.lower() for n in extra)}
    if bound not in ("0.0.0.0", "::", ""):
        names.add(bound.lower().strip("[]"))
    if not is_loopback(bound):  # served to the LAN: this machine's own names and addresses
        hostname = socket.gethostname()
        names |= {hostname.lower(), socket.getfqdn().lower()}
        try:
            for info in socket.getaddrinfo(hostname, None):
                names.add(str(info[4][0]).lower())
        except OSError:
            pass
    return names


class Access:
    """Tokens, sessions, CSRF tokens and Host names: the page's access rules."""

    def __init__(self, token: str | None, bound: str, public_read: bool, names: list[str]) -> None:
        if not is_loopback(bound) and not token:
            raise ConfigError(
                f"[web] host = {bound!r} serves the page beyond this machine, which needs a token:"
                ' set DAYBREAK_WEB_TOKEN in .env (16 characters or more; e.g. python -c "import '
                'secrets; print(secrets.token_urlsafe(24))"), or set [web] host = "127.0.0.1"'
            )
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"DAYBREAK_WEB_TOKEN is {len(token)} characters; give at least {MIN_TOKEN_CHARS}"
            )
        self.token = token
        self.public_read = public_read
        self.names = host_names(bound, names)
        self._key = secrets.token_bytes(32)  # sessions and CSRF tokens end with the process
        self._used: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._sessions: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._failures: dict[str, collections.deque[float]] = {}
        self._refusals: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    # -- Host and origin -------------------------------------------------------------------

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host = host_header.lower()
        if host.startswith("["):  # [::1]:8250
            host = host[1 : host.find("]")] if "]" in host else host
        elif host.count(":") == 1:
            host = host.rsplit(":", 1)[0]
        return host in self.names

    def same_site(self, request: Request) -> None:
        """A POST from another site (its Origin, or the browser's Sec-Fetch-Site) is refused."""
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Denied(403, "cross-site request refused (Sec-Fetch-Site)")
        origin = request.headers.get("origin")
        if origin is None:
            return
        parsed = urllib.parse.urlsplit(origin)
        if origin == "null" or not self.host_allowed(parsed.netloc) or (
            parsed.netloc.lower() != (request.headers.get("host") or "").lower()
        ):  # fmt: skip
            raise Denied(403, f"cross-site request refused (Origin {origin[:80]})")

    # -- who -------------------------------------------------------------------------------

    def _sign(self, text: str) -> bytes:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest().encode()

    def verify_token(self, given: str, client: str) -> bool:
        """A token given at /login or as a bearer: compared in constant time; an address that
        gave LOGIN_FAILURES wrong ones within a minute is refused (429) for the rest of it."""
        now = time.monotonic()
        with self._lock:  # checked and counted at once: parallel guesses count too
            recent = self._failures.get(client)
            if recent is not None and len(recent) == LOGIN_FAILURES and now - recent[0] < 60:
                raise Denied(429, "too many wrong tokens from this address; wait a minute")
            good = self.token is not None and hmac.compare_digest(
                given.encode("utf-8", "replace"), self.token.encode()
            )
            if not good:
                if recent is None:
                    if len(self._failures) >= 1000:  # bounded: forget the oldest address
                        self._failures.pop(next(iter(self._failures)))
                    recent = self._failures[client] = collections.deque(maxlen=LOGIN_FAILURES)
                recent.append(now)
        return good

    def bearer(self, request: Request) -> bool:
        """Whether the request carries the right token itself (a script); a wrong one counts
        as a failed sign-in of its address."""
        given = request.headers.get("authorization", "")
        if self.token is None or not given.lower().startswith("bearer "):
            return False
        return self.verify_token(given[7:].strip(), _client(request))

    def session(self, request: Request) -> str | None:
        """The request's live session (signed by this process, not expired, not signed out)."""
        value = request.cookies.get(SESSION_COOKIE, "")
        parts = value.split(".")
        if len(parts) != 3 or not _digits(parts[1]):
            return None
        sid, expiry, signature = parts
        if int(expiry) < time.time() or not hmac.compare_digest(
            signature.encode("utf-8", "replace"), self._sign(f"session|{sid}|{expiry}")
        ):
            return None
        with self._lock:
            return value if sid in self._sessions else None

    def new_session(self) -> str:
        sid = secrets.token_urlsafe(16)
        expiry = str(int(time.time()) + SESSION_SECONDS)
        with self._lock:
            now = time.time()
            for old in [k for k, v in self._sessions.items() if v < now]:
                del self._sessions[old]
            while len(self._sessions) >= MAX_SESSIONS:  # bounded: the oldest signs in again
                self._sessions.popitem(last=False)
            self._sessions[sid] = float(expiry)
        return f"{sid}.{expiry}.{self._sign(f'session|{sid}|{expiry}').decode()}"

    def end_session(self, request: Request) -> None:
        value = self.session(request)
        if value is not None:
            with self._lock:
                self._sessions.pop(value.split(".")[0], None)

    def signed_in(self, request: Request) -> bool:
        return self.token is None or self.session(request) is not None or self.bearer(request)

    def may_read(self, request: Request) -> bool:
        return self.token is None or self.public_read or self.signed_in(request)

    # -- CSRF -----------------------------------------------------------------------------

    def _binding(self, request: Request) -> str:
        return self.session(request) or "-"

    def csrf_token(self, request: Request) -> str:
        nonce = secrets.token_urlsafe(16)
        expiry = str(int(time.time()) + CSRF_SECONDS)
        signed = self._sign(f"csrf|{nonce}|{expiry}|{self._binding(request)}").decode()
        return f"{nonce}.{expiry}.{signed}"

    def spend_csrf(self, request: Request, token: str | None) -> None:
        """Accept a CSRF token once: signed by this process for this session, not expired, and
        never seen before."""
        if not token:
            raise Denied(403, "missing CSRF token: act from the page's confirmation")
        parts = token.split(".")
        if len(parts) != 3 or not _digits(parts[1]):
            raise Denied(403, "malformed CSRF token")
        nonce, expiry, signature = parts
        expected = self._sign(f"csrf|{nonce}|{expiry}|{self._binding(request)}")
        if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected):
            raise Denied(403, "CSRF token not valid for this session (sign in again and retry)")
        now = time.time()
        if int(expiry) < now:
            raise Denied(403, "CSRF token expired: reload the page and retry")
        with self._lock:
            while self._used and next(iter(self._used.values())) < now:
                self._used.popitem(last=False)
            if nonce in self._used:
                raise Denied(403, "CSRF token already used: reload the page to act again")
            if len(self._used) >= USED_NONCES:  # never forget a live one: refuse instead
                raise Denied(503, "too many actions within the hour; try again later")
            self._used[nonce] = float(expiry)

    def may_record(self, client: str) -> bool:
        """Whether a refusal from this address is still recorded (at most REFUSALS_RECORDED a
        minute each: a flood of bad requests cannot fill the history)."""
        now = time.monotonic()
        with self._lock:
            recent = self._refusals.get(client)
            if recent is None:
                if len(self._refusals) >= 1000:
                    self._refusals.pop(next(iter(self._refusals)))
                recent = self._refusals[client] = collections.deque(maxlen=REFUSALS_RECORDED)
            if len(recent) == REFUSALS_RECORDED and now - recent[0] < 60:
                return False
            recent.append(now)
            return True


def _digits(text: str) -> bool:
    """Plain ASCII digits, as many as a Unix time has (int() takes other digits too)."""
    return 0 < len(text) <= 12 and text.isascii() and text.isdigit()


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _body(request: Request) -> dict[str, str]:
    """The action's fields from a form-encoded or JSON body of at most MAX_BODY_BYTES."""
    length = request.headers.get("content-length")
    if length is not None and (not _digits(length) or int(length) > MAX_BODY_BYTES):
        raise Denied(413, f"body over {MAX_BODY_BYTES} bytes")
    data = b""
    try:
        with anyio.fail_after(BODY_SECONDS):  # a body trickled in byte by byte holds no slot
            async for chunk in request.stream():
                data += chunk
                if len(data) > MAX_BODY_BYTES:
                    raise Denied(413, f"body over {MAX_BODY_BYTES} bytes")
    except TimeoutError:
        raise Denied(408, f"the body took over {BODY_SECONDS} s to arrive") from None
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Denied(400, "body is not UTF-8") from None
    if kind == "application/json":
        try:
            parsed = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise Denied(400, f"body is not JSON: {exc}") from None
        if not isinstance(parsed, dict) or not all(
            isinstance(v, str | int | bool) for v in parsed.values()
        ):
            raise Denied(400, "body must be a JSON object of strings and numbers")
        fields = {str(k): str(v) for k, v in parsed.items()}
    elif kind in ("application/x-www-form-urlencoded", "") and (text or kind):
        try:
            pairs = urllib.parse.parse_qsl(text, strict_parsing=bool(text), max_num_fields=20)
        except ValueError as exc:
            raise Denied(400, f"malformed form body: {exc}") from None
        fields = dict(pairs)
    elif not text:
        fields = {}
    else:
        raise Denied(415, f"send application/x-www-form-urlencoded or JSON, not {kind[:60]}")
    if any(len(k) > 40 or len(v) > 200 for k, v in fields.items()):
        raise Denied(400, "a field is too long")
    return fields


def _field(fields: dict[str, str], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = fields.get(name, "")
    if not pattern.fullmatch(value):
        raise Denied(400, f"{name}: give {what}" + (f", not {value[:60]!r}" if value else ""))
    return value


def _day(fields: dict[str, str], name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(fields.get(name, ""))
    except ValueError:
        raise Denied(400, f"{name}: give a day as YYYY-MM-DD") from None


def _chunk_days(fields: dict[str, str]) -> int:
    text = fields.get("chunk_days") or "7"
    if not _digits(text) or not 1 <= int(text) <= 366:
        raise Denied(400, "chunk_days: give 1 to 366")
    return int(text)


def _backfill_range(fields: dict[str, str]) -> tuple[str, dt.date, dt.date, int]:
    job = _field(fields, "job", JOB, "a job name")
    start, end = _day(fields, "start"), _day(fields, "end")
    if start > end:
        raise Denied(400, f"start {start} is after end {end}")
    if (end - start).days + 1 > MAX_DAYS:
        raise Denied(400, f"at most {MAX_DAYS} days a backfill")
    return job, start, end, _chunk_days(fields)


class WebApp:
    """The routes; one per runner process."""

    def __init__(self, site: StatusSite, access: Access, launcher: Launcher) -> None:
        self.site = site
        self.access = access
        self.launcher = launcher
        self.app = Starlette(routes=[
            *[Route(path, self._reading(endpoint, api=path.startswith("/api/")),
                    methods=["GET", "HEAD"])
              for path, endpoint in [
                  ("/", self.index), ("/api/status", self.api_status),
                  ("/lineage.svg", self.lineage), ("/runs/{run_id}", self.run_page),
                  ("/runs/{run_id}/log", self.run_log), ("/api/runs/{run_id}", self.api_run),
                  ("/assets/{name}", self.asset), ("/api/assets/{name}", self.api_asset),
                  ("/columns/{name}", self.column), ("/api/columns/{name}", self.api_column),
              ]],
            Route("/confirm/{action}", self.confirm, methods=["GET", "HEAD"]),
            Route("/login", self.login_form, methods=["GET", "HEAD"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/actions/{action}", self.act, methods=["POST"]),
            Route("/actions/{action}", self.act_not_post,
                  methods=["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        ])  # fmt: skip
        self.app.add_exception_handler(Denied, self._denied)
        self.app.add_exception_handler(Exception, self._crashed)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Host check first, for every request (DNS rebinding); then the routes."""
        if scope["type"] == "http":
            if "//" in scope["path"]:  # http://host:port//assets/x: as the old server took it
                scope = {**scope, "path": re.sub("/{2,}", "/", scope["path"])}
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            if not self.access.host_allowed(host):
                log.warning("status page: refused Host %r from %s", (host or "")[:80],
                            (scope.get("client") or ["?"])[0])  # fmt: skip
                if scope["path"].startswith("/actions/"):
                    await run_in_threadpool(
                        self._record, scope["path"], {}, (scope.get("client") or ["?"])[0],
                        f"refused 421: Host {(host or '')[:80]!r} is not this page's",
                    )  # fmt: skip
                response = PlainTextResponse(
                    "misdirected request: this Host is not one of the page's names "
                    "([web] names)\n", status_code=421, headers=HEADERS,
                )  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _denied(self, request: Request, exc: Exception) -> Response:
        """A refusal raised while reading (too many wrong tokens): said, never a 500."""
        assert isinstance(exc, Denied)
        return self._text(exc.reason + "\n", exc.status)

    async def _crashed(self, request: Request, exc: Exception) -> Response:
        log.error("status page: %s failed: %s", request.url.path, redact(str(exc)),
                  exc_info=exc)  # fmt: skip
        return PlainTextResponse("internal error: the runner's log says what\n", status_code=500,
                                 headers=HEADERS)  # fmt: skip

    @staticmethod
    def _text(text: str, status: int = 200, kind: str = "text/plain; charset=utf-8") -> Response:
        return Response(text, status_code=status, media_type=kind, headers=HEADERS)

    def _html(self, page: str, status: int = 200) -> Response:
        return HTMLResponse(page, status_code=status, headers=HEADERS)

    def _json(self, data: Any, status: int = 200) -> Response:
        return JSONResponse(data, status_code=status, headers=HEADERS)

    def _reading(
        self, endpoint: Callable[[Request], Response], *, api: bool = False
    ) -> Callable[[Request], Response]:
        """A reading route, behind the one read check: without leave to read, an API answers
        401 in JSON and a page with the sign-in form."""

        def guarded(request: Request) -> Response:
            if self.access.may_read(request):
                return endpoint(request)
            if api:
                return self._json({"error": "sign in: Authorization: Bearer TOKEN"}, 401)
            csrf = self.access.csrf_token(request)
            return self._html(self.site.page.render_login(csrf), 401)

        return guarded

    def _can_act(self, request: Request) -> bool:
        return self.access.signed_in(request)

    # -- reading ---------------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        return self._html(self.site.html(can_act=self._can_act(request)))

    def api_status(self, request: Request) -> Response:
        return self._text(
            json.dumps(self.site.status(self.site.settings), indent=2), kind="application/json"
        )

    def lineage(self, request: Request) -> Response:
        svg = self.site.svg()
        if svg is None:
            return self._text("lineage unavailable\n", 503)
        return self._text(svg, kind="image/svg+xml")

    def run_page(self, request: Request) -> Response:
        page = self.site.run_html(request.path_params["run_id"], can_act=self._can_act(request))
        return self._html(page) if page is not None else self._text("not found\n", 404)

    def api_run(self, request: Request) -> Response:
        data = self.site.run_data(request.path_params["run_id"])
        return self._json(data) if data is not None else self._json({"error": "not found"}, 404)

    def run_log(self, request: Request) -> Response:
        path = self.site.log_path(request.path_params["run_id"])
        if path is None:
            return self._text("not found\n", 404)
        if not path.exists():
            return self._text("(the log file was pruned)\n")
        return self._text(redact(path.read_text(encoding="utf-8", errors="replace")))

    def asset(self, request: Request) -> Response:
        page = self.site.asset_html(request.path_params["name"], can_act=self._can_act(request))
        return self._html(page) if page is not None else self._text("not found\n", 404)

    def api_asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not ASSET.fullmatch(name):
            return self._json({"error": "not found"}, 404)
        try:
            return self._json(asset_page(self.site.settings, name))
        except UnknownNameError:
            return self._json({"error": "not found"}, 404)

    def column(self, request: Request) -> Response:
        try:
            page = self.site.column_html(request.path_params["name"])
        except ColumnLineageUnavailable as exc:  # redacted; not computed again for a while
            return self._text(f"column lineage unavailable: {exc}\n", 503)
        return self._html(page) if page is not None else self._text("not found\n", 404)

    def api_column(self, request: Request) -> Response:
        try:
            data = self.site.column_data(request.path_params["name"])
        except ColumnLineageUnavailable as exc:
            return self._json({"error": f"column lineage unavailable: {exc}"}, 503)
        return self._json(data) if data is not None else self._json({"error": "not found"}, 404)

    def confirm(self, request: Request) -> Response:
        """What a button will do, and the POST that does it (this GET changes nothing)."""
        if not self.access.signed_in(request):
            return self._html(self.site.page.render_login(self.access.csrf_token(request)), 401)
        action, query = request.path_params["action"], dict(request.query_params)
        try:
            question, fields = self._question(action, query)
        except Denied as denied:
            return self._html(self.site.page.render_message("Cannot do that", denied.reason),
                              denied.status)  # fmt: skip
        csrf = self.access.csrf_token(request)
        full = action in ("run", "materialize")  # `--full` is a choice on the confirmation
        return self._html(
            self.site.page.render_confirm(action, question, fields, csrf, full_option=full)
        )

    def _question(self, action: str, query: dict[str, str]) -> tuple[str, dict[str, str]]:
        jobs = self.site.settings.jobs
        if action == "run":
            job = _field(query, "job", JOB, "a job name")
            if job not in jobs:
                raise Denied(404, f"unknown job {job!r}")
            return (f"Run {job} now? Its plan runs what is not up to date "
                    f"({', '.join(jobs[job].select)}).", {"job": job})  # fmt: skip
        if action == "materialize":
            names = _field(query, "assets", ASSETS, "asset or group names, comma-separated")
            return (f"Materialize {names.replace(',', ', ')} now, with what it needs upstream "
                    "that is not up to date?", {"assets": names})  # fmt: skip
        if action == "rerun":
            run_id = _field(query, "run_id", RUN_ID, "a run id")
            return (f"Rerun run {run_id} from its failure: what failed, was skipped or never "
                    "ran, and what depends on it?", {"run_id": run_id})  # fmt: skip
        if action == "backfill":
            job, start, end, days = _backfill_range(query)
            if job not in jobs:
                raise Denied(404, f"unknown job {job!r}")
            chunks = len(chunk_days(start, end, days))
            return (f"Backfill {job} from {start} to {end}: {(end - start).days + 1} day(s) in "
                    f"{chunks} chunk(s) of {days} day(s)? The same range given again resumes it.",
                    {"job": job, "start": start.isoformat(), "end": end.isoformat(),
                     "chunk_days": str(days)})  # fmt: skip
        if action == "cancel":
            run_id = _field(query, "run_id", RUN_ID, "a run id")
            return (f"Cancel run {run_id}? It stops at its next safe point (between assets, "
                    "between backfill chunks, or inside dbt); what it finished is kept.",
                    {"run_id": run_id})  # fmt: skip
        raise Denied(404, f"no action {action[:40]!r} ({', '.join(ACTIONS)})")

    def login_form(self, request: Request) -> Response:
        return self._html(self.site.page.render_login(self.access.csrf_token(request)))

    async def login(self, request: Request) -> Response:
        client = _client(request)
        try:
            self.access.same_site(request)
            fields = await _body(request)
            self.access.spend_csrf(request, fields.get("csrf"))
            if not self.access.verify_token(fields.get("token", ""), client):
                raise Denied(401, "wrong token")
        except Denied as denied:
            await run_in_threadpool(self._record, "login", {}, client,
                                    f"refused {denied.status}: {denied.reason}")  # fmt: skip
            csrf = self.access.csrf_token(request)
            return self._html(self.site.page.render_login(csrf, denied.reason), denied.status)
        await run_in_threadpool(self._record, "login", {}, client, "signed in")
        response = RedirectResponse("/", status_code=303, headers=HEADERS)
        response.set_cookie(SESSION_COOKIE, self.access.new_session(), max_age=SESSION_SECONDS,
                            httponly=True, samesite="strict", path="/")  # fmt: skip
        return response

    async def logout(self, request: Request) -> Response:
        """Sign out: the session ends here (this process forgets it), not only in the browser."""
        try:
            self.access.same_site(request)
        except Denied as denied:
            return self._text(denied.reason + "\n", denied.status)
        self.access.end_session(request)
        response = RedirectResponse("/", status_code=303, headers=HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- acting ----------------------------------------------------------------------------

    def _record(self, action: str, params: dict[str, Any], client: str, outcome: str,
                run_id: str | None = None) -> None:  # fmt: skip
        if outcome.startswith("refused") and not self.access.may_record(client):
            log.warning("status page: %s from %s %s (not recorded: too many)", action, client,
                        outcome[:200])  # fmt: skip
            return
        try:
            History(self.site.settings.state).record_action(
                action.rsplit("/", 1)[-1][:40], params, actions.page_origin(client), outcome,
                run_id,
            )  # fmt: skip
        except Exception as exc:  # the refusal still goes out
            log.warning("could not record the action: %s", exc)

    async def act_not_post(self, request: Request) -> Response:
        action = request.path_params["action"]
        await run_in_threadpool(
            self._record, action, {}, _client(request),
            f"refused 405: {request.method} does nothing; actions are POSTs",
        )  # fmt: skip
        return Response("405: actions are POSTs (with a CSRF token, or the bearer token)\n",
                        status_code=405, headers={**HEADERS, "Allow": "POST"})  # fmt: skip

    async def act(self, request: Request) -> Response:
        action, client = request.path_params["action"], _client(request)
        fields: dict[str, str] = {}
        try:
            if action not in ACTIONS:
                raise Denied(404, f"no action {action[:40]!r} ({', '.join(ACTIONS)})")
            self.access.same_site(request)
            bearer = self.access.bearer(request)
            if not bearer and not self.access.signed_in(request):
                raise Denied(401, "acting needs the token: sign in, or send Authorization: "
                                  "Bearer TOKEN")  # fmt: skip
            fields = await _body(request)
            if not bearer:  # a browser: the one-time token from the confirmation page
                self.access.spend_csrf(request, fields.get("csrf"))
            params = {k: v for k, v in fields.items() if k != "csrf"}
            run_id, message = await run_in_threadpool(self._do, action, params, client)
        except Denied as denied:
            if not denied.recorded:
                params = {k: v for k, v in fields.items() if k != "csrf"}
                await run_in_threadpool(self._record, action, params, client,
                                        f"refused {denied.status}: {denied.reason}")  # fmt: skip
            return self._answer(request, denied.status, {"error": denied.reason})
        url = f"/runs/{run_id}"
        if self._wants_json(request):
            return self._json({"run_id": run_id, "url": url, "message": message}, 202)
        return RedirectResponse(url, status_code=303, headers=HEADERS)

    def _do(self, action: str, params: dict[str, str], client: str) -> tuple[str, str]:
        """The action itself (recorded by daybreak.runner.actions); the run it concerns."""
        origin = actions.page_origin(client)
        try:
            full = params.get("full", "").lower() in ("true", "1", "on", "yes")
            if action == "run":
                job = _field(params, "job", JOB, "a job name")
                return self.launcher.run_job(job, origin, full=full), "started"
            if action == "materialize":
                names = _field(params, "assets", ASSETS, "asset or group names, comma-separated")
                return self.launcher.materialize(names.split(","), origin, full=full), "started"
            if action == "rerun":
                run_id = _field(params, "run_id", RUN_ID, "a run id")
                return self.launcher.rerun(run_id, origin), "started"
            if action == "backfill":
                job, start, end, days = _backfill_range(params)
                return self.launcher.backfill(job, start, end, origin, chunk_days=days), "started"
            run_id = _field(params, "run_id", RUN_ID, "a run id")
            done = actions.cancel(self.site.settings, run_id, origin)
            if done.outcome == "ended":
                raise Denied(409, done.message, recorded=True)
            return done.run.run_id, done.message
        except (UnknownNameError, UnknownRunError) as exc:  # recorded by runner.actions
            raise Denied(404, str(exc), recorded=True) from None
        except Refused as exc:
            raise Denied(409, str(exc), recorded=True) from None
        except UsageError as exc:
            raise Denied(400, str(exc), recorded=True) from None

    @staticmethod
    def _wants_json(request: Request) -> bool:
        kind = request.headers.get("content-type", "")
        accept = request.headers.get("accept", "")
        return "application/json" in kind or (
            "application/json" in accept and "text/html" not in accept
        ) or request.headers.get("authorization") is not None  # fmt: skip

    def _answer(self, request: Request, status: int, data: dict[str, str]) -> Response:
        if self._wants_json(request):
            return self._json(data, status)
        return self._html(self.site.page.render_message("Not done", data["error"]), status)


class StatusServer:
    """The page on uvicorn, in a daemon thread of the runner; `url` once bound."""

    def __init__(self, site: StatusSite, host: str, port: int,
                 launcher: Launcher | None = None) -> None:  # fmt: skip
        settings = site.settings
        token = settings.secrets.web_token
        self.access = Access(
            token.get_secret_value() if token else None, host, settings.web.public_read,
            settings.web.names,
        )  # fmt: skip
        self.launcher = launcher or Launcher(settings)
        self.web = WebApp(site, self.access, self.launcher)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.sock = socket.create_server((host, port), family=family, backlog=64)
        except OSError as exc:
            raise ConfigError(
                f"status page: cannot listen on {host}:{port} ({exc.strerror}); another runner? "
                "Set [web] port, or run with --no-web"
            ) from None
        config = uvicorn.Config(
            self.web, log_level="warning", access_log=False, lifespan="off",
            limit_concurrency=64, timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024,
            server_header=False,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="status-page",
            daemon=True,
        )  # fmt: skip

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host!s}:{port}/"

    def start(self) -> StatusServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        who = "token needed to act" if self.access.token else "no token: this desktop only"
        log.info("status page on %s (%s)", self.url, who)
        return self

    def stop(self, grace: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(grace)
        self.sock.close()
