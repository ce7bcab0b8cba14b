"""``CallRecord``: what the proxy saw of one finished call, as immutable plain data.

It is taken on mitmproxy's event loop from the flow (``proxy/capture.py``) without parsing
anything; everything costly -- decoding and parsing the body, pricing, formatting --
happens in ``account``, on the writer thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ..config.providers import Provider
from ..parsers import WireFormat
from ..parsers.usage import Usage
from ..proxy.headers import Fields, header_value

_KEY_PROTOCOL = "openai-insecure-api-key."
CREDENTIAL_HEADERS = frozenset((b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key", b"proxy-authorization"))


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

    def secrets(self) -> tuple[str, ...]:
        """Every query value and credential the request carried: removed from any error
        text before it is stored or printed, since a provider's error page may echo them."""
        query = urlsplit(self.request_target).query
        found = [value for _name, value in parse_qsl(query, keep_blank_values=True)]
        for name, value in self.request_headers:
            key = name.lower()
            if key in CREDENTIAL_HEADERS:
                text = value.decode("utf-8", "surrogateescape")
                found += [text, text.partition(" ")[2]]  # "Bearer <token>" and the token alone
            elif key == b"sec-websocket-protocol":
                # A browser cannot set headers on a WebSocket, so OpenAI's Realtime API takes
                # the key as a subprotocol: "openai-insecure-api-key.<key>".
                text = value.decode("utf-8", "surrogateescape")
                protocols = (p.strip() for p in text.split(","))
                found += [p.removeprefix(_KEY_PROTOCOL) for p in protocols if p.startswith(_KEY_PROTOCOL)]
        return tuple(s for s in found if s)
