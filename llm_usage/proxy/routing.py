"""Routing: ``/<provider>/<rest>?<query>`` -> ``<base_url>/<rest>?<query>``.

Method, headers (the client's own credentials included) and body pass unchanged; only
the target and Host change, the dashboard's own session cookie is removed, and
``stream_options.include_usage`` may be added to a streamed chat request (see
``include_usage.py``). Unknown slugs get a 404 listing the providers and are never
forwarded. Upstream TLS is verified by mitmproxy (``ssl_insecure`` stays off).

The forwarded host always comes from ``providers.yaml``, never from the request, so no
request target can reach another host. On top of that a path is refused (400) when a
segment could be re-interpreted on the way: dot segments (``..``, ``%2e%2e``), encoded
slashes or backslashes, or control characters.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mitmproxy import http
from mitmproxy.net.http import url

from ..accounting.keys import fingerprint
from ..accounting.record import CallRecord
from ..accounting.row import billed_request
from ..config.budgets import Budget
from ..config.providers import RESERVED_SLUGS, Provider
from ..parsers import WireFormat, wire_format
from ..web.access import SESSION_COOKIE
from .attribution import HEADERS as ATTRIBUTION_HEADERS
from .attribution import NOBODY, PROJECT_HEADER, Attribution, ProjectError, attribution, credential, project_name
from .clients import CLIENT_HEADERS, client_family
from .headers import header_values
from .https_proxy import on_reverse_listener, provider_path
from .include_usage import inject_include_usage
from .refusals import error_response
from .subscriptions import SUBSCRIPTION_HEADERS, refusal, subscription_of

if TYPE_CHECKING:
    from .settings import Settings

logger = logging.getLogger(__name__)

_ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c|00)", re.IGNORECASE)
_SUSPICIOUS = re.compile(r"(?:^|/)\.\.?(?:/|$)|[\\\x00-\x1f\x7f]")
"""Dot segments, backslashes, control characters -- checked again after percent-decoding."""


class RouteError(ValueError):
    """A request target the proxy refuses to forward."""


@dataclass(frozen=True, slots=True)
class Route:
    slug: str
    path: str
    """Upstream path, starting with ``/`` (without the query)."""
    query: str
    """Query string including its leading ``?``, or empty."""
    project: str | None = None
    """From a ``/@<project>/`` first segment, which is not forwarded."""


def parse_route(target: str) -> Route:
    """``/openai/v1/chat/completions?x=1`` -> Route("openai", "/v1/chat/completions", "?x=1");
    ``/@webshop/openai/v1/...`` -> the same, for project ``webshop``."""
    path, sep, query = target.partition("?")
    project = None
    if path.startswith("/@"):
        name, slash, rest = path[2:].partition("/")
        try:
            project = project_name(name, "the '/@<project>/' prefix")
        except ProjectError as exc:
            raise RouteError(str(exc)) from None
        if not slash or rest.startswith("@"):
            raise RouteError("the '/@<project>/' prefix (one) must be followed by '/<provider>/'")
        path = "/" + rest
    if not path.startswith("/") or path.startswith("//"):
        raise RouteError("the path must start with a single '/<provider>/'")
    if "%" in path:
        if _ENCODED_SEPARATOR.search(path):
            raise RouteError("encoded '/', '\\' or NUL in the path")
        decoded = unquote(path)
    else:
        decoded = path
    slug, _, rest = path[1:].partition("/")
    if _SUSPICIOUS.search(decoded):
        raise RouteError("dot segments, backslashes or control characters in the path")
    return Route(slug=slug, path="/" + rest, query=sep + query, project=project)


@dataclass(frozen=True, slots=True)
class RoutedCall:
    """What routing decided about a call; the capture keeps it until the call ends."""

    provider: Provider
    format: WireFormat
    path: str
    """Upstream path without the query: the row's ``endpoint`` (never the query string)."""
    client: str | None
    """The calling tool's family (``clients.py``), read from the request's headers."""
    injected_usage: bool = False
    who: Attribution = NOBODY
    """Session, subagent and project (``attribution.py``)."""
    key_id: str | None = None

    def budget_facts(self) -> dict[str, str | None]:
        """What a budget's scope is matched against, as far as the request says
        (``budgets/tracker.py``; the model is added where a budget needs it)."""
        return {"provider": self.provider.slug, "client": self.client, "project": self.who.project, "key": self.key_id}

    def record(self, flow: http.HTTPFlow, **facts: Any) -> CallRecord:
        """A ``CallRecord`` of this call: where it went and who made it from the route and
        the flow's request and response, how it went (times, usage, ...) from ``facts``."""
        request, response = flow.request, flow.response
        return CallRecord(
            provider=self.provider,
            wire_format=self.format,
            path=self.path,
            method=request.method,
            client=self.client,
            status_code=response.status_code if response is not None else None,
            response_headers=response.headers.fields if response is not None else (),
            request_headers=request.headers.fields,
            request_target=request.path,
            session_id=self.who.session_id,
            subagent=self.who.subagent,
            project=self.who.project,
            key_id=self.key_id,
            **facts,
        )


def json_response(status: int, payload: dict[str, object]) -> http.Response:
    return http.Response.make(
        status,
        json.dumps(payload).encode(),
        {"content-type": "application/json", "cache-control": "no-store"},
    )


def over_budget(wire_format: str, budget: Budget, spent: Decimal, resets: datetime) -> http.Response:
    """``429`` in the client's error format, naming the budget, its spend and its reset. Told
    not to retry (``x-should-retry``, honoured by the OpenAI and Anthropic SDKs): a retry
    seconds later would be refused the same way."""
    message, wait = budget_message(budget, spent, resets)
    headers = {"retry-after": str(wait), "x-should-retry": "false"}
    return error_response(wire_format, 429, message, "budget_exceeded", headers)


def budget_message(budget: Budget, spent: Decimal, resets: datetime) -> tuple[str, int]:
    """What a refused call is told (naming the budget, its spend and its reset), and the
    seconds until the reset."""
    wait = max(int((resets - datetime.now(UTC)).total_seconds()) + 1, 1)
    message = (
        f"llm-usage budget {budget.name!r} is used up: ${spent:.2f} of ${budget.limit_usd:.2f} this "
        f"{budget.period}; it resets at {resets.isoformat(timespec='minutes')} (in {_duration(wait)}). "
        "The proxy refused this call and did not forward it."
    )
    return message, wait


def _duration(seconds: int) -> str:
    if seconds < 3600:
        return f"{max(seconds // 60, 1)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def strip_session_cookie(request: http.Request) -> None:
    """The dashboard's own cookie (set for this origin) is never sent to a provider."""
    kept = [(name, value) for name, value in request.cookies.items(multi=True) if name != SESSION_COOKIE]
    if kept:
        request.cookies = kept  # type: ignore[assignment]
    else:
        del request.headers["cookie"]


def retarget(request: http.Request, provider: Provider, path: str) -> None:
    """Point the request at the provider: scheme, host, port, path and Host (HTTP/2's
    ``:authority``), through mitmproxy's own setters."""
    request.scheme = provider.scheme
    request.host = provider.host
    request.port = provider.port
    request.path = path
    request.host_header = url.hostport(provider.scheme, provider.host, provider.port)


_REQUEST_HEADERS = frozenset(
    (b"cookie", b"content-encoding", *CLIENT_HEADERS, *SUBSCRIPTION_HEADERS, *ATTRIBUTION_HEADERS)
)


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def request(self, flow: http.HTTPFlow) -> RoutedCall | None:
        """Retarget the flow at its provider and say what the call is; or answer it
        (400, 404, 502) and return None."""
        try:
            return self._route(flow)
        except Exception:  # a bug here must not send the request on unrouted and unlogged
            logger.exception("llm-usage: could not route %s", flow.request.method)
            flow.response = json_response(502, {"error": "llm-usage could not route this request; see the proxy's log"})
            return None

    def _route(self, flow: http.HTTPFlow) -> RoutedCall | None:
        target: str | None = flow.request.path
        if not on_reverse_listener(flow):  # the HTTPS_PROXY listener: by the host the request was sent to
            target = provider_path(self.settings.provider_hosts, flow.request)
        if target is None:
            return None  # no provider's: passed on untouched, never recorded
        try:
            route = parse_route(target)
        except RouteError as exc:
            flow.response = json_response(400, {"error": f"refused: {exc}"})
            return None
        providers = self.settings.providers
        provider = providers.get(route.slug)
        if provider is None or route.slug in RESERVED_SLUGS:
            problem = f"unknown provider {route.slug!r}" if route.slug else "no provider in the path"
            flow.response = json_response(
                404,
                {
                    "error": f"{problem}: use http://<proxy>/<provider>/... (the dashboard is at /dashboard)",
                    "providers": sorted(providers),
                },
            )
            return None
        request = flow.request
        headers = header_values(request.headers.fields, _REQUEST_HEADERS)
        fmt = wire_format(provider.format, route.path)
        subscription = subscription_of(headers)
        if subscription is not None:
            flow.response = refusal(fmt.name, subscription, provider.slug)
            logger.warning(
                "llm-usage: refused %s /%s%s: it carries %s (API-key traffic only; not forwarded)",
                request.method, provider.slug, route.path, subscription,
            )  # fmt: skip
            return None
        try:
            who = attribution(headers, route.project)
        except ProjectError as exc:
            flow.response = json_response(400, {"error": f"refused: {exc}"})
            return None
        if PROJECT_HEADER in headers:
            del request.headers[PROJECT_HEADER.decode()]  # ours alone: never forwarded
        salt, key = self.settings.key_salt, credential(headers, route.query)
        key_id = fingerprint(salt, key) if salt is not None and key is not None else None
        client = client_family(headers, fmt.name)
        call = RoutedCall(provider, fmt, route.path, client, False, who, key_id)
        budgets = self.settings.budgets
        if budgets is not None and billed_request(fmt, request.method, route.path, request.headers.get("upgrade", "")):
            facts = call.budget_facts()
            if budgets.needs_model:
                facts["model"] = fmt.model_requested_in(route.path, request.get_content(strict=False) or b"")
            refused = budgets.refusal(facts)
            if refused is not None:
                flow.response = over_budget(fmt.name, *refused)
                logger.warning("llm-usage: refused %s /%s%s: budget %r reached (not forwarded)",
                               request.method, provider.slug, route.path, refused[0].name)  # fmt: skip
                return call  # answered here, never forwarded; its row says why
        retarget(request, provider, provider.base_path + route.path + route.query)
        if SESSION_COOKIE in headers.get(b"cookie", ""):
            strip_session_cookie(request)
        injected = False
        if provider.inject_stream_usage and fmt.name == "openai":
            body = request.get_content(strict=False) if headers.get(b"content-encoding") else request.raw_content
            new_body = inject_include_usage(route.path, body) if body else None
            if new_body is not None:
                request.content = new_body
                injected = True
        return replace(call, injected_usage=injected) if injected else call
