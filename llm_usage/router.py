"""Routing: ``/<provider>/<rest>?<query>`` -> ``<base_url>/<rest>?<query>``.

Method, headers (the client's own credentials included) and body pass unchanged; only
the target and Host change, the dashboard's own session cookie is removed, and
``stream_options.include_usage`` may be added to a streamed chat request (see
``injection.py``). Unknown slugs get a 404 listing the providers and are never forwarded.
Upstream TLS is verified by mitmproxy (``ssl_insecure`` stays off).
"""

from __future__ import annotations

import json
import logging

from mitmproxy import http
from mitmproxy.net.http import url

from .call import CALL_KEY, Call
from .clients import client_family
from .config import RESERVED_SLUGS, Provider
from .headers import header_values
from .injection import inject_include_usage
from .parsers import wire_format
from .routes import RouteError, parse_route
from .settings import Settings
from .web import COOKIE as SESSION_COOKIE

logger = logging.getLogger(__name__)


def json_response(status: int, payload: dict[str, object]) -> http.Response:
    return http.Response.make(
        status,
        json.dumps(payload).encode(),
        {"content-type": "application/json", "cache-control": "no-store"},
    )


def strip_session_cookie(request: http.Request) -> None:
    """The dashboard's own cookie (set for this origin) is never sent to a provider."""
    kept = [(name, value) for name, value in request.cookies.items(multi=True) if name != SESSION_COOKIE]
    if kept:
        request.cookies = kept  # type: ignore[assignment]
    else:
        del request.headers["cookie"]


_REQUEST_HEADERS = frozenset((b"cookie", b"user-agent", b"x-title", b"http-referer", b"content-encoding"))


def retarget(request: http.Request, provider: Provider, path: str) -> None:
    """Point the request at the provider: scheme, host, port, path, and Host once.

    Sets the fields under ``Request`` directly: its ``host`` and ``port`` setters each
    rewrite the Host header (a scan of every header) and ``host_header`` does it again;
    this is the same result with one rewrite. The authority (HTTP/2's ``:authority``,
    HTTP/1's absolute-form target) is updated as those setters would.
    """
    data = request.data
    data.scheme = provider.scheme.encode()
    data.host = provider.host
    data.port = provider.port
    data.path = path.encode("utf-8", "surrogateescape")
    hostport = url.hostport(provider.scheme, provider.host, provider.port)
    if data.authority:
        request.authority = hostport
    request.host_header = hostport


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:  # answered already (the proxy's own pages)
            return
        try:
            self._route(flow)
        except Exception:  # a bug here must not send the request on unrouted and unlogged
            logger.exception("llm-usage: could not route %s", flow.request.method)
            flow.metadata.pop(CALL_KEY, None)
            flow.response = json_response(502, {"error": "llm-usage could not route this request; see the proxy's log"})

    def _route(self, flow: http.HTTPFlow) -> None:
        try:
            route = parse_route(flow.request.path)
        except RouteError as exc:
            flow.response = json_response(400, {"error": f"refused: {exc}"})
            return
        if route.slug in RESERVED_SLUGS:
            return
        provider = self.settings.providers.get(route.slug)
        if provider is None:
            problem = f"unknown provider {route.slug!r}" if route.slug else "no provider in the path"
            flow.response = json_response(
                404,
                {
                    "error": f"{problem}: use http://<proxy>/<provider>/... (the dashboard is at /dashboard)",
                    "providers": sorted(self.settings.providers),
                },
            )
            return
        request = flow.request
        retarget(request, provider, provider.base_path + route.path + route.query)
        headers = header_values(request.headers.fields, _REQUEST_HEADERS)
        if SESSION_COOKIE in headers.get(b"cookie", ""):
            strip_session_cookie(request)
        fmt = wire_format(provider.format, route.path)
        call = Call(
            provider=provider,
            format=fmt,
            path=route.path,
            client=client_family(headers.get(b"user-agent"), headers.get(b"x-title"), headers.get(b"http-referer")),
            request_encoding=headers.get(b"content-encoding", ""),
        )
        if provider.inject_stream_usage and fmt.name == "openai":
            body = request.get_content(strict=False) if call.request_encoding else request.raw_content
            injected = inject_include_usage(route.path, body) if body else None
            if injected is not None:
                request.content = injected
                call.injected_usage = True
        flow.metadata[CALL_KEY] = call
