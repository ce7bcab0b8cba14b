"""Read several headers of a message in one pass over its raw fields.

Why: every ``Headers.get`` on mitmproxy's multidict lower-cases and compares every field
of the message, and the proxy needs several headers of every request and response on
the event loop, where each microsecond is taken from every client's throughput. The
result matches ``Headers.get``: names are case-insensitive, repeated fields are joined
with ``", "``, values are decoded as mitmproxy decodes them (UTF-8, surrogateescape).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mitmproxy import http


def header_values(fields: Iterable[tuple[bytes, bytes]], names: frozenset[bytes]) -> dict[bytes, str]:
    """The wanted headers (lower-case byte names) that are present, by name."""
    found: dict[bytes, bytes] = {}
    for name, value in fields:
        key = name.lower()
        if key in names:
            found[key] = found[key] + b", " + value if key in found else value
    return {key: value.decode("utf-8", "surrogateescape") for key, value in found.items()}


CREDENTIAL_HEADERS = frozenset((b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key", b"proxy-authorization"))


def request_secrets(request: http.Request) -> tuple[str, ...]:
    """Every query value and credential the request carries as it goes upstream (after
    every addon had its turn: one may set the real key): removed from any error text
    before it is stored or printed, since a provider's error page may echo them."""
    found = [value for _name, value in request.query.items(multi=True)] if b"?" in request.data.path else []
    for value in header_values(request.headers.fields, CREDENTIAL_HEADERS).values():
        found += [value, value.partition(" ")[2]]  # "Bearer <token>" and the token alone
    return tuple(s for s in found if s)
