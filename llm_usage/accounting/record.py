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
    content_type: str = ""
    content_encoding: str = ""
    request_body: bytes = b""
    """The request body as received: the requested model, when the response names none."""
    request_encoding: str = ""
    secrets: tuple[str, ...] = ()
    """The request's credentials and query values: never written, only removed from error text."""

    @property
    def streamed(self) -> bool:
        return self.stream_usage is not None
