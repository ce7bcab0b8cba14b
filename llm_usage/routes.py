"""Parsing ``/<slug>/<rest>?<query>`` request targets -- pure, and strict about hostile paths.

The forwarded host always comes from ``providers.yaml``, never from the request, so no
request target can reach another host. On top of that a path is refused (400) when a
segment could be re-interpreted on the way: dot segments (``..``, ``%2e%2e``), encoded
slashes or backslashes, or control characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

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


def parse_route(target: str) -> Route:
    """``/openai/v1/chat/completions?x=1`` -> Route("openai", "/v1/chat/completions", "?x=1")."""
    path, sep, query = target.partition("?")
    if not path.startswith("/") or path.startswith("//"):
        raise RouteError("the path must start with a single '/<provider>/'")
    if "%" in path:
        if _ENCODED_SEPARATOR.search(path):
            raise RouteError("encoded '/', '\\' or NUL in the path")
        decoded = unquote(path)
    else:
        decoded = path
    slug, _, rest = path[1:].partition("/")
    rest = "/" + rest
    if _SUSPICIOUS.search(decoded):
        raise RouteError("dot segments, backslashes or control characters in the path")
    return Route(slug=slug, path=rest, query=sep + query)
