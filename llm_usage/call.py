"""Per-flow facts the router learns and the recorder needs, kept in ``flow.metadata``."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Provider
from .parsers import WireFormat
from .streaming import StreamTee

CALL_KEY = "llm_usage.call"


@dataclass(slots=True)
class Call:
    provider: Provider
    format: WireFormat
    path: str
    """Upstream path without the query: the row's ``endpoint`` (never the query string)."""
    client: str | None = None
    """The calling tool's family (``clients.py``), read from the request's headers."""
    request_encoding: str = ""
    injected_usage: bool = False
    content_type: str = ""
    content_encoding: str = ""
    response_seen: object = None
    """The response whose headers ``content_type``/``content_encoding`` were read from
    (once, in ``responseheaders``)."""
    tee: StreamTee | None = None
    logged: bool = False
