"""The stream callable: forward every chunk as it arrives, tee a decoded copy to a parser.

mitmproxy calls it with each raw chunk (still content-encoded) and finally with ``b""``;
whatever it returns is sent on. It must never raise into mitmproxy's core and never
block: a decoding or parsing failure switches parsing off for that stream (and is
reported on the row), the client's bytes keep flowing.

Beware: returning ``b""`` for a mid-stream chunk makes mitmproxy send an empty HTTP/1.1
chunk -- the chunked-encoding terminator -- which would end the client's stream. "Send
nothing" is an empty list.

This runs once per chunk of every stream, and a fast stream is a chunk per event: every
operation here shows in the proxy's events per second (see ``forward``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .decoding import Decoder
from .injection import NULL_USAGE_MEMBER, UsageChunkFilter
from .parsers import StreamParser
from .usage import Usage

_NOTHING: list[bytes] = []
PARSE_BATCH_BYTES = 64 * 1024
"""Decoded bytes are handed to the parser in batches: mitmproxy delivers fast streams in
small pieces, and the per-call overhead of parsing each would cost more than the parsing."""


class StreamTee:
    """Give mitmproxy ``tee.stream_callable``: a bound method, about 35 ns cheaper per chunk
    for mitmproxy to call than the instance itself (which works too: the unit tests call it).
    """

    __slots__ = (
        "_batch",
        "_clock",
        "_decoder",
        "_event_end",
        "_filter",
        "_forward_decoded",
        "_parser",
        "_quiet",
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
        # Quiet events can skip the tee only where the chunk is what the parser would read.
        self._event_end = parser.event_end if decoder is None else None
        self._quiet: Callable[[bytes], bool] | None = None  # set while a quiet chunk may skip the tee

    @property
    def stream_callable(self) -> Callable[[bytes], bytes | list[bytes]]:
        return self.forward if self._filter is None else self.forward_filtered

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        return self.stream_callable(chunk)

    def forward(self, chunk: bytes) -> bytes | list[bytes]:
        """The client's bytes for ``chunk``.

        The fast path: once the parser has what it needs from the stream's start, and the
        bytes so far end at an event boundary, a chunk of whole events that carry nothing
        the parser reads (``parser.quiet``: the content deltas, nearly all of a stream) is
        not copied to the parser at all. Skipping whole events leaves the parser exactly
        where it would have been, so the usage is the same; the tests compare both paths.
        (One thing differs, by design: an over-long line in a skipped chunk is not counted
        in the "over-long line(s) skipped" warning, which is about lines the parser needed.)
        """
        quiet = self._quiet
        if quiet is not None and chunk.endswith(self._event_end) and quiet(chunk):  # type: ignore[arg-type]
            return chunk
        return self._forward_and_tee(chunk)

    def forward_filtered(self, chunk: bytes) -> bytes | list[bytes]:
        """``forward`` for an OpenAI chat stream whose usage the proxy asked for.

        Its fast path is the filter's common case and the OpenAI parser's ``quiet`` rolled
        into three C calls, written out here because this is the hottest code of the
        proxy: every chunk of every such stream, where a Python call costs as much as a
        scan of the chunk. Whole events with their ``"usage":null`` removed, and then no
        ``"usage"`` nor ``"error"`` left, are content only: the filter would send exactly
        that, and the parser would read none of it. (``quiet``'s third mark, the Responses
        API's ``"response.``, has no place in a chat stream; ``include_usage`` is only
        added to chat and legacy completions.)
        """
        if self._quiet is not None and chunk.endswith(b"\n\n"):
            out = chunk.replace(NULL_USAGE_MEMBER, b"")
            if out.rfind(b'"usage"') < 0 and out.rfind(b'"error"') < 0:
                return out
        return self._forward_and_tee(chunk)

    def _forward_and_tee(self, chunk: bytes) -> bytes | list[bytes]:
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
        out = decoded if self._forward_decoded else chunk
        if self._filter is not None:
            out = self._filter.apply(out)
        parser = self._parser
        if parser is not None and decoded:
            batch = self._batch
            batch += decoded  # copied now, while the chunk is still in the CPU's cache
            if len(batch) >= PARSE_BATCH_BYTES:
                self._feed_batch()
            if self._event_end is not None:
                self._arm_quiet(parser, decoded)  # after the filter: its state counts too
        return out if out else _NOTHING

    def _arm_quiet(self, parser: StreamParser, decoded: bytes) -> None:
        """Let the next chunk take the fast path if it can: the parser has read the
        stream's opening events, and this chunk ended at an event boundary, for the parser
        and for the filter alike."""
        if not parser.settled:
            self._feed_batch()  # the stream's first events (the model): read them now
            if not parser.settled:
                self._quiet = None
                return
        at_boundary = decoded.endswith(self._event_end)  # type: ignore[arg-type]
        if at_boundary and self._filter is not None:
            at_boundary = self._filter.idle
        self._quiet = parser.quiet if at_boundary and self._parser is parser else None

    def _end(self) -> bytes | list[bytes]:
        self._quiet = None
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
        self._quiet = None

    def finish(self) -> Usage:
        """The usage seen so far (whole, or up to where the stream was cut)."""
        self._quiet = None
        self._feed_batch()
        parser, self._parser = self._parser, None
        if parser is None:
            return Usage(error=self.parse_error)
        try:
            return parser.finish()
        except Exception as exc:  # noqa: BLE001
            self._fail(f"usage parser failed: {type(exc).__name__}: {exc}")
            return Usage(error=self.parse_error)
