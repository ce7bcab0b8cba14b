"""The stream callable: forward every chunk as it arrives, tee a decoded copy to a parser.

mitmproxy calls it with each raw chunk (still content-encoded) and finally with ``b""``;
whatever it returns is sent on. It must never raise into mitmproxy's core and never
block: a decoding or parsing failure switches parsing off for that stream (and is
reported on the row), the client's bytes keep flowing.

Beware: returning ``b""`` for a mid-stream chunk makes mitmproxy send an empty HTTP/1.1
chunk -- the chunked-encoding terminator -- which would end the client's stream. "Send
nothing" is an empty list.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..parsers import StreamParser
from ..parsers.usage import Usage
from .decoding import Decoder
from .include_usage import UsageChunkFilter

_NOTHING: list[bytes] = []
PARSE_BATCH_BYTES = 64 * 1024
"""Decoded bytes are handed to the parser in batches: mitmproxy delivers a fast stream an
event at a time, and parsing each alone would cost more than the parsing itself."""


class StreamTee:
    """``tee(chunk)`` -> the bytes to send on; ``tee.finish()`` -> the usage seen.

    Quiet chunks -- whole events the parser would skip anyway (``parser.quiet``: the
    content deltas, nearly all of a stream) -- are not even copied for it, once it has read
    the stream's opening events and the bytes so far end at an event boundary. Skipping
    whole events leaves the parser where it would have been, so the usage is the same.
    """

    __slots__ = (
        "_at_boundary",
        "_batch",
        "_clock",
        "_decoder",
        "_filter",
        "_forward_decoded",
        "_parser",
        "first_byte_at",
        "parse_error",
    )

    def __init__(
        self,
        parser: StreamParser,
        decoder: Decoder | None = None,
        *,
        forward_decoded: bool = False,
        chunk_filter: UsageChunkFilter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._parser: StreamParser | None = parser
        self._decoder = decoder
        self._forward_decoded = forward_decoded
        self._filter = chunk_filter
        self._clock = clock
        self._batch = bytearray()
        self._at_boundary = True  # the bytes teed so far end where an event ends
        self.first_byte_at: float | None = None
        self.parse_error: str | None = None

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        """The bytes to send on for ``chunk``. This runs for every event of every stream
        (mitmproxy hands a fast stream over an event at a time), so it is one function."""
        if not chunk:
            return self._end()
        if self.first_byte_at is None:
            self.first_byte_at = self._clock()
        decoded = self._decode(chunk) if self._decoder is not None else chunk
        out = decoded if self._forward_decoded else chunk
        if self._filter is not None:
            out = self._filter(out)
        parser = self._parser
        if parser is not None and decoded:
            end = parser.event_end
            whole = end is not None and decoded.endswith(end)
            if not (whole and self._at_boundary and parser.settled and parser.quiet(decoded)):
                self._batch += decoded
                self._at_boundary = whole
                if not parser.settled or len(self._batch) >= PARSE_BATCH_BYTES:
                    self._feed_batch()  # the stream's opening events are read at once
        return out if out else _NOTHING

    def _decode(self, chunk: bytes) -> bytes:
        try:
            return self._decoder(chunk)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - never raise into mitmproxy's core
            self.fail(f"could not decode the stream: {exc}")
            self._decoder = None
            self._forward_decoded = False  # the headers already say identity; nothing better to send
            return b""

    def _end(self) -> bytes | list[bytes]:
        if self._filter is not None:
            tail = self._filter.flush()
            if tail:
                return tail
        return _NOTHING

    def _feed_batch(self) -> None:
        batch = bytes(self._batch)
        self._batch.clear()
        if self._parser is not None and batch:
            try:
                self._parser.feed(batch)
            except Exception as exc:  # noqa: BLE001 - never raise into mitmproxy's core
                self.fail(f"usage parser failed: {type(exc).__name__}: {exc}")

    def fail(self, message: str) -> None:
        """Stop parsing (the bytes keep flowing); the row will carry ``message``."""
        if self.parse_error is None:
            self.parse_error = message
        self._parser = None

    def finish(self) -> Usage:
        """The usage seen so far (whole, or up to where the stream was cut)."""
        self._feed_batch()
        parser, self._parser = self._parser, None
        if parser is None:
            return Usage(error=self.parse_error)
        try:
            return parser.finish()
        except Exception as exc:  # noqa: BLE001
            self.fail(f"usage parser failed: {type(exc).__name__}: {exc}")
            return Usage(error=self.parse_error)
