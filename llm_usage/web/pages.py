"""The proxy's own pages: ``/stats/...`` (JSON), ``/dashboard`` (HTML) and ``/healthz``.

``WebUI`` runs before the router: it answers every flow whose first path segment is
reserved (``stats``, ``dashboard``, ``healthz``) by setting ``flow.response``, so the
router leaves it alone and nothing is forwarded. Queries run on ``StatsReader``'s threads,
never on mitmproxy's event loop. The access token is ``access.py``'s; ``/healthz`` and the
static files (the dashboard's own code) are public.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

import jinja2
from mitmproxy import ctx, http
from prometheus_client import CONTENT_TYPE_LATEST

from ..config.files import TEMPLATES
from ..config.providers import RESERVED_SLUGS
from . import queries
from .access import authorized, login_cookie, take_credentials
from .endpoints import ENDPOINTS, Context, index
from .exports import SECRET_HEADER, ExportServer, parse_export
from .hosts import ALLOWED_HOSTS_OPTION, allowed_hosts, host_name
from .metrics import CallHistograms, render
from .params import ParamError, single_values
from .reader import StatsReader

logger = logging.getLogger(__name__)

TOKEN_OPTION = "llm_usage_stats_token"
WEB_KEY = "llm_usage.web"
"""``flow.metadata`` key (a plain ``True``) marking a flow the proxy answered itself."""
EXPORT_KEY = "llm_usage.export"
"""``flow.metadata`` key marking a ``/stats/export`` sent on to the export server, whose
response is streamed (``WebUI.responseheaders``)."""
STATIC = Path(__file__).resolve().parent / "static"
REFRESH_SECONDS = 30
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".LICENSE": "text/plain; charset=utf-8",
}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/healthz/?$"), "healthz"),
    (re.compile(r"^/stats/?$"), "stats_index"),
    (re.compile(rf"^/stats/(?P<endpoint>{'|'.join(map(re.escape, ENDPOINTS))})/?$"), "api"),
    (re.compile(r"^/dashboard/?$"), "dashboard"),
    (re.compile(r"^/metrics/?$"), "metrics"),
    (re.compile(r"^/stats/export/?$"), "export"),
    (re.compile(r"^/dashboard/static/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,80})$"), "static"),
]


class Reply(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]


def json_reply(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Reply(
        status,
        body,
        {"content-type": "application/json", "cache-control": "no-store", **SECURITY_HEADERS, **(headers or {})},
    )


def html_reply(status: int, body: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status,
        body.encode(),
        {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "content-security-policy": CSP,
            **SECURITY_HEADERS,
            **(headers or {}),
        },
    )


class WebUI:
    def __init__(self) -> None:
        self.reader = StatsReader()
        self.token = ""
        self.hosts = allowed_hosts("127.0.0.1", "")
        self.writer_problem: Callable[[], str | None] = lambda: None
        """Why rows cannot be written now (the row writer's word), for /healthz."""
        self.key_labels: Callable[[], dict[str, str]] = dict
        """Key fingerprint -> label (``llm_usage_key_labels``, read by the settings)."""
        self.limits: Callable[[], list[dict[str, Any]]] = list
        """The latest rate-limit state per provider and key (``proxy/limits.py``)."""
        self.histograms = CallHistograms()
        """Duration and time to first token of this process's calls (``/metrics``)."""
        self.budgets: Callable[[], dict[str, Any]] = dict
        """The budgets' state and recent alerts (``/stats/budgets``), ``{}`` without budgets."""
        self.exports = ExportServer(lambda: ctx.options.llm_usage_db)
        """Where ``/stats/export`` is streamed from (``exports.py``)."""
        self.static_files = self._load_static()
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
        )

    # ------------------------------------------------------------ lifecycle

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            ALLOWED_HOSTS_OPTION,
            str,
            "",
            "Extra Host names the dashboard and stats API answer for, comma-separated (besides "
            "localhost, the listen address and, when listening on all interfaces, this machine's "
            "names); any other Host gets 403 (a defence against DNS rebinding).",
        )
        loader.add_option(
            TOKEN_OPTION,
            str,
            "",
            "When set, the stats API and dashboard require this token (Authorization: Bearer, "
            "X-LLM-Usage-Token, or the cookie set by /dashboard?token=...).",
        )

    def configure(self, updated: set[str]) -> None:
        if updated & {ALLOWED_HOSTS_OPTION, "listen_host"}:
            self.hosts = allowed_hosts(ctx.options.listen_host, ctx.options.llm_usage_allowed_hosts)
        if TOKEN_OPTION in updated:
            self.token = ctx.options.llm_usage_stats_token
            if self.token:
                logger.info("llm-usage: the stats API and dashboard require the access token (%s)", TOKEN_OPTION)
        if updated & {TOKEN_OPTION, "listen_host"} and not self.token:
            if ctx.options.listen_host in ("", "0.0.0.0", "::"):
                logger.warning(
                    "llm-usage: the dashboard and stats API are open to anyone who can reach this port; "
                    "set %s or use --listen-host 127.0.0.1",
                    TOKEN_OPTION,
                )

    def done(self) -> None:
        self.reader.close()
        self.exports.close()

    # ------------------------------------------------------------ the hook

    def request(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        """Answers reserved paths; every other flow passes straight through.

        Deliberately not ``async def``: mitmproxy awaits what a hook returns only when it is
        awaitable, so proxied calls (nearly every flow) cost no coroutine at all; only the
        proxy's own pages get one.
        """
        if flow.response is not None:
            return None
        path, _, query = flow.request.path.partition("?")
        if path[1:].partition("/")[0] not in RESERVED_SLUGS:  # also safe for "*" (OPTIONS *) or ""
            return None
        flow.metadata[WEB_KEY] = True
        return self._respond(flow, path, query)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """An export's rows pass through as they come, never held whole; the export server's
        secret, sent, leaves the flow (mitmweb and saved flows keep what a flow holds)."""
        if flow.response is not None and flow.metadata.get(EXPORT_KEY):
            flow.response.stream = True
            flow.request.headers.pop(SECRET_HEADER, None)

    async def _respond(self, flow: http.HTTPFlow, path: str, query: str) -> None:
        try:
            reply = await self._answer(flow, path, query)
        except Exception:  # a reserved path must never fall through to the router
            logger.exception("llm-usage: %s failed", path)
            reply = json_reply(500, {"error": "internal error; see the proxy's log"})
        if reply is not None:
            flow.response = http.Response.make(reply.status, reply.body, reply.headers)

    async def _answer(self, flow: http.HTTPFlow, path: str, query: str) -> Reply | None:
        """The reply, or None for an export sent on to the export server."""
        if host_name(flow.request.host_header or "") not in self.hosts:
            hint = f"add it with --set {ALLOWED_HOSTS_OPTION}=<name>"
            return json_reply(403, {"error": f"this Host is not one the proxy answers for; {hint}"})
        pairs = parse_qsl(query, keep_blank_values=True)
        given_token = next((value for name, value in pairs if name == "token"), None)
        if given_token is not None:  # keep it out of mitmproxy's output and mitmweb
            pairs = [(name, value) for name, value in pairs if name != "token"]
            flow.request.path = path + ("?" + urlencode(pairs) if pairs else "")
        credentials = take_credentials(flow, given_token)
        for pattern, name in ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            if flow.request.method not in ("GET", "HEAD"):
                return json_reply(405, {"error": f"{flow.request.method} not allowed; use GET"}, {"allow": "GET, HEAD"})
            if name in ("healthz", "static"):
                return await getattr(self, name)(**match.groupdict())
            if not authorized(self.token, credentials):
                return self._locked(name, given_token is not None)
            if name == "dashboard" and given_token is not None and self.token:
                return self._login_redirect()
            if name == "api":
                return await self.api(match["endpoint"], pairs)
            if name == "export":
                return self.export(flow, pairs)
            return await getattr(self, name)()
        return json_reply(404, {"error": f"no such page: {path[:100]}", "endpoints": index()["endpoints"]})

    # ------------------------------------------------------------ access

    def _locked(self, view: str, tried: bool) -> Reply:
        message = "the access token was wrong" if tried else "this needs the access token (llm_usage_stats_token)"
        if view == "dashboard":
            page = self.templates.get_template("locked.html").render(message=message, static_url=self.static_url)
            return html_reply(401, page)
        return json_reply(401, {"error": message}, {"www-authenticate": 'Bearer realm="llm-usage"'})

    def _login_redirect(self) -> Reply:
        headers = {"location": "/dashboard", "set-cookie": login_cookie(self.token), "cache-control": "no-store"}
        return Reply(303, b"", headers)

    # ------------------------------------------------------------ views

    async def healthz(self) -> Reply:
        """Traffic flows either way; ``degraded``, with the reason, while rows cannot be written."""
        try:
            state = await self.reader.run(ctx.options.llm_usage_db, queries.health)
        except sqlite3.Error as exc:
            logger.error("llm-usage: /healthz cannot read the database: %s", exc)
            return json_reply(503, {"ok": False, "database": "unreadable"})
        problem = self.writer_problem()
        if problem:
            state = {**state, "ok": False, "status": "degraded", "reason": problem}
        return json_reply(200, state)

    async def metrics(self) -> Reply:
        """Prometheus' scrape (``metrics.py``): behind the token like the stats (Prometheus
        sends it as ``Authorization: Bearer``)."""
        try:
            body = await self.reader.run(
                ctx.options.llm_usage_db, lambda conn: render(conn or self.reader.empty(), self.histograms)
            )
        except sqlite3.Error as exc:
            logger.error("llm-usage: /metrics cannot read the database: %s", exc)
            return json_reply(503, {"error": "the database cannot be read right now; see the proxy's log"})
        return Reply(200, body, {"content-type": CONTENT_TYPE_LATEST, "cache-control": "no-store"})

    def export(self, flow: http.HTTPFlow, pairs: list[tuple[str, str]]) -> Reply | None:
        """``/stats/export``: checked here (a 400 names a bad parameter), then sent on to the
        loopback export server with only its secret, and streamed back (``exports.py``)."""
        try:
            form, values, _ = parse_export(pairs, datetime.now(UTC), self.key_labels())
        except ParamError as exc:
            return json_reply(400, {"error": str(exc)})
        host, port = self.exports.address
        secret = self.exports.secret.encode()
        request = flow.request
        request.scheme, request.host, request.port = "http", host, port
        request.path = "/export?" + urlencode({"format": form, **values})
        request.headers = http.Headers([(b"host", f"{host}:{port}".encode()), (SECRET_HEADER.encode(), secret)])
        flow.metadata[EXPORT_KEY] = True
        return None

    async def stats_index(self) -> Reply:
        return json_reply(200, index())

    async def api(self, name: str, pairs: list[tuple[str, str]]) -> Reply:
        endpoint = ENDPOINTS[name]
        try:
            context = Context(self.key_labels(), self.budgets, self.limits)
            query = endpoint.prepare(single_values(pairs, endpoint.params), datetime.now(UTC), context)
            payload = await self.reader.run(ctx.options.llm_usage_db, lambda conn: query(conn or self.reader.empty()))
        except ParamError as exc:
            return json_reply(400, {"error": str(exc)})
        except sqlite3.Error as exc:
            logger.error("llm-usage: %s cannot read the database: %s", endpoint.path, exc)
            return json_reply(503, {"error": "the database cannot be read right now; see the proxy's log"})
        return json_reply(200, payload)

    async def dashboard(self) -> Reply:
        page = self.templates.get_template("dashboard.html").render(
            static_url=self.static_url, refresh_seconds=REFRESH_SECONDS, token_required=bool(self.token)
        )
        return html_reply(200, page)

    async def static(self, name: str) -> Reply:
        entry = self.static_files.get(name)
        if entry is None:
            return json_reply(404, {"error": f"no such file: {name}"})
        body, content_type, _ = entry
        headers = {"content-type": content_type, "cache-control": "public, max-age=3600", **SECURITY_HEADERS}
        return Reply(200, body, headers)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _load_static() -> dict[str, tuple[bytes, str, str]]:
        files = {}
        for file in sorted(STATIC.iterdir()):
            content_type = CONTENT_TYPES.get(file.suffix) or CONTENT_TYPES.get("." + file.name.rsplit(".", 1)[-1])
            if file.is_file() and content_type:
                body = file.read_bytes()
                files[file.name] = (body, content_type, hashlib.sha256(body).hexdigest()[:12])
        return files

    def static_url(self, name: str) -> str:
        return f"/dashboard/static/{name}?v={self.static_files[name][2]}"
