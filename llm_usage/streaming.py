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

from .decoding import Decoder
from .injection import UsageChunkFilter
from .parsers import StreamParser
from .usage import Usage

_NOTHING: list[bytes] = []
PARSE_BATCH_BYTES = 64 * 1024
"""Decoded bytes are handed to the parser in batches: mitmproxy delivers fast streams in
small pieces, and the per-call overhead of parsing each would cost more than the parsing."""


class StreamTee:
    __slots__ = (
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
        self.first_byte_at: float | None = None
        self.parse_error: str | None = None
        self._batch = bytearray()

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        if not chunk:
            return self._end()
        if self.first_byte_at is None:
            self.first_byte_at = self._clock()
        decoded = chunk
        if self._decoder is not None:
            try:
                decoded = self._decoder(chunk)
            except Exception as exc:  # noqa: BLE001 - never raise into mitmproxy's core
                self._fail(f"could not decode the stream: {exc}")
                self._decoder = None
                if self._forward_decoded:  # headers already say identity; nothing better to send
                    self._forward_decoded = False
                decoded = b""
        if self._parser is not None and decoded:
            batch = self._batch
            batch += decoded  # copied now, while the chunk is still in the CPU's cache
            if len(batch) >= PARSE_BATCH_BYTES:
                self._feed_batch()
        out = decoded if self._forward_decoded else chunk
        if self._filter is not None:
            out = self._filter(out)
        return out if out else _NOTHING

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
                self._fail(f"usage parser failed: {type(exc).__name__}: {exc}")

    def _fail(self, message: str) -> None:
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
            self._fail(f"usage parser failed: {type(exc).__name__}: {exc}")
            return Usage(error=self.parse_error)
