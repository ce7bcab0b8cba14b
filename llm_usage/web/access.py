"""The access token of the proxy's own pages (``llm_usage_stats_token``).

With a token set, the API and the dashboard need it, as ``Authorization: Bearer <token>``,
``X-LLM-Usage-Token: <token>``, a ``?token=`` parameter, or the session cookie that
``/dashboard?token=<token>`` sets (its value is an HMAC of the token, not the token).
Comparisons are constant-time; the token is never logged, and it is removed from the
flow (path, headers) before mitmproxy prints or shows it.
"""

from __future__ import annotations

import hashlib
import hmac

from mitmproxy import http

SESSION_COOKIE = "llm_usage_session"
"""The dashboard's session cookie; the router never forwards it to a provider."""
COOKIE_MAX_AGE = 30 * 24 * 3600
_CREDENTIAL_HEADERS = ("authorization", "x-llm-usage-token", "cookie")

Credential = tuple[str, str]
"""``("token", value)`` or ``("session", cookie value)``."""


def session_value(token: str) -> str:
    """The cookie's value: derived from the token, so the cookie does not carry the token itself."""
    return hmac.new(token.encode(), b"llm-usage dashboard session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


def take_credentials(flow: http.HTTPFlow, given_token: str | None) -> list[Credential]:
    """What the request offers as proof (``given_token``: its ``?token=``, which the caller
    has already taken out of the path). The credential headers and cookies are removed
    from the flow as they are read, so mitmproxy never prints or shows them."""
    headers = flow.request.headers
    offered: list[Credential] = []
    if given_token is not None:
        offered.append(("token", given_token))
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        offered.append(("token", auth[7:].strip()))
    if "x-llm-usage-token" in headers:
        offered.append(("token", headers["x-llm-usage-token"].strip()))
    cookie = flow.request.cookies.get(SESSION_COOKIE)
    if cookie:
        offered.append(("session", cookie))
    for name in _CREDENTIAL_HEADERS:
        if name in headers:
            del headers[name]
    return offered


def authorized(token: str, offered: list[Credential]) -> bool:
    """No token set: everyone. Otherwise one of the offered credentials must match (each
    compared in constant time)."""
    if not token:
        return True
    ok = False
    for kind, value in offered:
        ok |= _same(value, token if kind == "token" else session_value(token))
    return ok


def login_cookie(token: str) -> str:
    return f"{SESSION_COOKIE}={session_value(token)}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax"
