"""One parser per wire format, chosen through a table -- never an if/elif on providers.

Parsers are pure: bytes in, a ``Usage`` out; no flows, no database, no logging.
``wire_format(default, path)`` picks the format a call actually spoke: several providers
serve more than one (Ollama, Moonshot, Z.ai and MiniMax offer an Anthropic-compatible
``/v1/messages`` next to their OpenAI-compatible API; Gemini offers ``/v1beta/openai/``;
ollama.com serves both ``/v1/*`` and the native ``/api/*``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from . import anthropic, gemini, ollama, openai
from .json_values import top_level_values
from .usage import Usage


class StreamParser(Protocol):
    """An incremental parser of one stream: ``feed`` any pieces, ``finish`` once.

    ``quiet`` is the one definition of the events it skips: once it is ``settled``, whole
    events that are quiet are left unframed by its framer and uncopied by the stream tee
    (``proxy/tee.py``), which is most of a stream.
    """

    @property
    def event_end(self) -> bytes | None:
        """What ends an event (SSE ``b"\\n\\n"``, NDJSON ``b"\\n"``); None: no event is skipped."""
        ...

    @property
    def settled(self) -> bool:
        """Has it read what it needs from the stream's opening events (the model)? Until
        then no event is skipped, and the tee hands it every chunk at once."""
        ...

    def quiet(self, events: bytes) -> bool:
        """True only if these whole events carry nothing this parser reads, so that
        leaving them out changes nothing (the tests hold it to that). Cheap (a few
        ``rfind``s: it runs for every chunk of a stream) and conservative."""
        ...

    def feed(self, chunk: bytes) -> None: ...
    def finish(self) -> Usage: ...


class SocketParser(StreamParser, Protocol):
    """A stream parser that also reads a WebSocket's messages, one event each."""

    @property
    def ended(self) -> bool:
        """Has the call's final event arrived?"""
        ...

    def feed_event(self, data: bytes) -> None: ...


_MODEL = frozenset((b"model",))


@dataclass(frozen=True, slots=True)
class WireFormat:
    name: str
    parse_response: Callable[[bytes], Usage]
    stream_parser: Callable[[str], StreamParser]
    requested_model: Callable[[str, dict[str, Any]], str | None]
    """The model the client asked for (body or URL): the row's model when the response names none."""
    socket_paths: re.Pattern[str] | None = None
    """Paths whose WebSocket carries calls, one per client request message, read by a
    ``SocketParser`` from ``stream_parser`` (``proxy/sockets.py``)."""

    def model_requested_in(self, path: str, body: bytes) -> str | None:
        """``requested_model`` of a request body as it came (only its top-level ``model``
        is read: a large body is not parsed whole, ``json_values.top_level_values``)."""
        return (
            self.requested_model(path, top_level_values(body, _MODEL) or {}) if body else self.requested_model(path, {})
        )


FORMATS: dict[str, WireFormat] = {
    "openai": WireFormat(
        "openai",
        openai.parse_response,
        openai.StreamParser,
        openai.requested_model,
        # The Responses API's WebSocket mode: https://developers.openai.com/api/docs/guides/websocket-mode
        socket_paths=re.compile(r"/responses$"),
    ),
    "anthropic": WireFormat("anthropic", anthropic.parse_response, anthropic.StreamParser, anthropic.requested_model),
    "gemini": WireFormat("gemini", gemini.parse_response, gemini.StreamParser, gemini.requested_model),
    "ollama": WireFormat("ollama", ollama.parse_response, ollama.StreamParser, ollama.requested_model),
}

# First match wins; a path matching none is parsed by the provider's own format.
ENDPOINT_FORMATS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/v1/messages$|:(?:stream)?[Rr]awPredict$"), "anthropic"),
    (re.compile(r":(?:stream)?[Gg]enerateContent$"), "gemini"),
    (re.compile(r"^/api/(?:chat|generate|embed|embeddings)$"), "ollama"),
    (re.compile(r"/(?:chat/completions|completions|embeddings|responses)$"), "openai"),
)


@lru_cache(maxsize=4096)
def wire_format(default: str, path: str) -> WireFormat:
    """The format of the call to ``path`` (query already removed). Cached: a client calls
    the same few endpoints over and over."""
    for pattern, name in ENDPOINT_FORMATS:
        if pattern.search(path):
            return FORMATS[name]
    return FORMATS[default]


_STREAM_CONTENT_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl")
_GEMINI_ARRAY_STREAM = re.compile(r":streamGenerateContent$")


def is_streamed(content_type: str, path: str) -> bool:
    """Is this response a stream? Decided from the response, not the request's flag:
    SSE, NDJSON (Ollama streams when ``stream`` is absent), or Gemini's JSON-array
    ``streamGenerateContent`` (``application/json``)."""
    ct = content_type.lower()
    if any(kind in ct for kind in _STREAM_CONTENT_TYPES):
        return True
    return "json" in ct and bool(_GEMINI_ARRAY_STREAM.search(path))


def parse_whole(fmt: WireFormat, body: bytes, content_type: str) -> Usage:
    """A complete body: a stream read at once goes through the stream parser."""
    if any(kind in content_type.lower() for kind in _STREAM_CONTENT_TYPES):
        parser = fmt.stream_parser(content_type)
        parser.feed(body)
        return parser.finish()
    return fmt.parse_response(body)


__all__ = [
    "FORMATS",
    "SocketParser",
    "StreamParser",
    "Usage",
    "WireFormat",
    "is_streamed",
    "parse_whole",
    "wire_format",
]
