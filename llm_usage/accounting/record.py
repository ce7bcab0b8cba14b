"""``CallRecord``: what the proxy saw of one finished call, as immutable plain data.

It is taken on mitmproxy's event loop from the flow (``proxy/capture.py``) without parsing
anything; everything costly -- decoding and parsing the body, pricing, formatting --
happens in ``account``, on the writer thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.providers import Provider
from ..parsers import WireFormat
from ..parsers.usage import Usage
from ..proxy.headers import Fields, header_value


@dataclass(frozen=True, slots=True)
class CallRecord:
    provider: Provider
    wire_format: WireFormat
    path: str
    """Upstream path without the query (the row's ``endpoint``)."""
    method: str
    client: str | None
    started_at: float
    ended_at: float
    status_code: int | None
    failure: str | None = None
    """mitmproxy's error when the call did not complete (upstream unreachable, reset, ...)."""
    stream_usage: Usage | None = None
    """For a streamed response: what its parser saw; None for a buffered one."""
    stream_error: str | None = None
    first_byte_at: float | None = None
    body: bytes = b""
    """A buffered response's body as received (still content-encoded)."""
    response_headers: Fields = ()
    request_body: bytes = b""
    """The request body as received: the requested model, when the response names none."""
    request_headers: Fields = ()
    """As the request went upstream (after every addon had its turn: one may set the real
    key). Held only until the row is built; the row never holds a header."""
    request_target: str = ""
    """The upstream path with its query, as sent."""
    transport: str = "http"
    """``http``, or ``websocket`` for a call made on a socket (``proxy/sockets.py``)."""
    session_id: str | None = None
    subagent: str | None = None
    project: str | None = None
    key_id: str | None = None
    """Who the call was for (``proxy/attribution.py``); the key only as its fingerprint."""

    @property
    def streamed(self) -> bool:
        return self.stream_usage is not None

    @property
    def content_type(self) -> str:
        return header_value(self.response_headers, b"content-type")

    @property
    def content_encoding(self) -> str:
        return header_value(self.response_headers, b"content-encoding")

    @property
    def request_encoding(self) -> str:
        return header_value(self.request_headers, b"content-encoding")

    @property
    def request_content_type(self) -> str:
        return header_value(self.request_headers, b"content-type")
