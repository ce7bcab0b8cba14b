"""Incremental framers: raw (decoded) stream bytes in, whole events out.

Chunks may split an event anywhere: mid-line, mid-UTF-8 character, between ``\\r`` and
``\\n``. Framers work on bytes (JSON is parsed from bytes, so a split character is never
decoded half) and keep only the unfinished tail. Memory is bounded: a line or element
longer than ``max_bytes`` is dropped from parsing (never from the client's bytes) and
counted in ``dropped`` so the caller can warn.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
"""Longest SSE line / NDJSON line / JSON-array element parsed. The largest legitimate
events are OpenAI Responses API ``response.completed`` events, which repeat the whole
output; 4 MiB holds about a million tokens of text."""


Quiet = Callable[[bytes], bool]
"""A parser's ``quiet``: whether whole events carry nothing it reads."""


def skippable_span(chunk: bytes, end_mark: bytes, quiet: Quiet | None) -> tuple[int, int] | None:
    """``(start, end)`` of a run of whole quiet events (or lines) in ``chunk``, or None.

    The run starts just after the first ``end_mark`` and ends just after the last one, so
    framing ``chunk[:start]`` completes whatever event an earlier chunk began, and
    ``chunk[end:]`` begins the next: the framer's state is the same as if it had seen
    every byte. Chunks with a ``\r`` (CRLF or CR line ends) are always framed in full.
    """
    if quiet is None or b"\r" in chunk:
        return None
    first = chunk.find(end_mark)
    last = chunk.rfind(end_mark)
    if first < 0 or first == last:
        return None
    start, end = first + len(end_mark), last + len(end_mark)
    return (start, end) if quiet(chunk[start:end]) else None


class LineSplitter:
    """Splits a byte stream into lines on ``\\n``, ``\\r\\n`` or ``\\r`` (as SSE allows)."""

    __slots__ = ("_buf", "_dropping", "_skip_lf", "dropped", "max_bytes")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._buf = b""
        self._skip_lf = False
        self._dropping = False
        self.max_bytes = max_bytes
        self.dropped = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        data = self._buf + chunk if self._buf else chunk
        if b"\r" in data:
            # A trailing \r ends its line; a \n at the start of the next chunk is its pair.
            self._skip_lf = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        tail = lines.pop()
        if self._dropping and lines:
            # The first complete "line" is the end of an over-long one being skipped.
            lines.pop(0)
            self._dropping = False
        if lines and len(data) > self.max_bytes:  # only then can a complete line be too long
            kept = [line for line in lines if len(line) <= self.max_bytes]
            self.dropped += len(lines) - len(kept)
            lines = kept
        if len(tail) > self.max_bytes:
            self.dropped += 1
            self._dropping = True
            tail = b""
        elif self._dropping:
            tail = b""
        self._buf = tail
        return lines

    def flush(self) -> list[bytes]:
        """The last line of a stream that did not end with a newline."""
        tail, self._buf = self._buf, b""
        return [tail] if tail and not self._dropping else []


class SSEFramer:
    """Server-sent events per the WHATWG spec: ``(event name, data)`` per blank line.

    https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
    Comment lines (``: OPENROUTER PROCESSING``) and ``id:``/``retry:`` are ignored.
    """

    __slots__ = ("_data", "_event", "_lines", "_oversize", "_size")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._lines = LineSplitter(max_bytes)
        self._event = b""
        self._data: list[bytes] = []
        self._size = 0
        self._oversize = False  # the current event grew too long: skip it to its end

    @property
    def dropped(self) -> int:
        return self._lines.dropped

    def feed(self, chunk: bytes, quiet: Quiet | None = None) -> list[tuple[bytes, bytes]]:
        """The events the chunk completes.

        ``quiet``: the complete events between the chunk's first and last event ends are
        framed only if they are not quiet. A parser that reads only rare events (the usage
        at the end of an OpenAI stream) then skips the bulk of a stream at C speed instead
        of framing every event in Python; see ``skippable_span``.
        """
        span = skippable_span(chunk, b"\n\n", quiet)
        if span is None:
            return list(self._events(self._lines.feed(chunk)))
        start, end = span
        return [*self._events(self._lines.feed(chunk[:start])), *self._events(self._lines.feed(chunk[end:]))]

    def flush(self) -> list[tuple[bytes, bytes]]:
        events = list(self._events(self._lines.flush()))
        if self._data and not self._oversize:  # a stream that ended without the final blank line
            events.append((self._event, b"\n".join(self._data)))
        self._event, self._data, self._size, self._oversize = b"", [], 0, False
        return events

    def _events(self, lines: list[bytes]) -> Iterator[tuple[bytes, bytes]]:
        for line in lines:
            if not line:
                if self._data and not self._oversize:
                    yield self._event, b"\n".join(self._data)
                self._event, self._data, self._size, self._oversize = b"", [], 0, False
                continue
            if line[:5] == b"data:":
                if self._oversize:
                    continue
                value = line[6:] if line[5:6] == b" " else line[5:]
                self._size += len(value)
                if self._size > self._lines.max_bytes:
                    self._lines.dropped += 1
                    self._data, self._size, self._oversize = [], 0, True
                    continue
                self._data.append(value)
            elif line[:6] == b"event:":
                self._event = line[6:].strip()
            # ":" comments, "id:", "retry:" and unknown fields are ignored.


class NDJSONFramer:
    """Newline-delimited JSON (Ollama's native streaming): one JSON value per line."""

    __slots__ = ("_lines",)

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._lines = LineSplitter(max_bytes)

    @property
    def dropped(self) -> int:
        return self._lines.dropped

    def feed(self, chunk: bytes, quiet: Quiet | None = None) -> list[bytes]:
        """The lines the chunk completes; ``quiet`` as in ``SSEFramer.feed``."""
        span = skippable_span(chunk, b"\n", quiet)
        lines = (
            self._lines.feed(chunk)
            if span is None
            else self._lines.feed(chunk[: span[0]]) + self._lines.feed(chunk[span[1] :])
        )
        return [line for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        return [line for line in self._lines.flush() if line.strip()]


_STRUCTURAL = re.compile(rb'[\[\]{}"\\]')


class JSONArrayFramer:
    """Top-level objects of a JSON array that arrives in pieces (Gemini without ``alt=sse``).

    Gemini's default ``streamGenerateContent`` response is one JSON array sent element by
    element (``[{...}\\n,\\r\\n{...}\\n]``) with ``content-type: application/json``:
    https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent
    A bare top-level object (an error body) is yielded as one element too.
    """

    __slots__ = ("_base", "_depth", "_escape", "_in_string", "_oversize", "_parts", "_size", "dropped", "max_bytes")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._depth = 0
        self._base: int | None = None
        self._in_string = False
        self._escape = False
        self._parts: list[bytes] = []
        self._size = 0
        self._oversize = False
        self.max_bytes = max_bytes
        self.dropped = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = 0 if self._depth > (self._base or 0) else None  # inside an element already
        pos = 0
        if self._escape and chunk:
            self._escape = False
            pos = 1
        n = len(chunk)
        while pos < n:
            m = _STRUCTURAL.search(chunk, pos)
            if m is None:
                break
            i = m.start()
            c = chunk[i]
            pos = i + 1
            if self._in_string:
                if c == 0x5C:  # backslash: skip the escaped byte
                    if pos < n:
                        pos += 1
                    else:
                        self._escape = True
                elif c == 0x22:
                    self._in_string = False
                continue
            if c == 0x22:
                self._in_string = True
            elif c in (0x7B, 0x5B):  # { [
                if self._base is None:
                    self._base = 1 if c == 0x5B else 0
                if self._depth == self._base and c == 0x7B:
                    start = i
                    self._parts, self._size, self._oversize = [], 0, False
                self._depth += 1
            elif c in (0x7D, 0x5D):  # } ]
                self._depth -= 1
                if self._depth == self._base and c == 0x7D and start is not None:
                    self._append(chunk[start:pos])
                    if not self._oversize:
                        out.append(b"".join(self._parts))
                    self._parts, self._size, start = [], 0, None
        if start is not None:
            self._append(chunk[start:])
        return out

    def _append(self, piece: bytes) -> None:
        if self._oversize:
            return
        self._size += len(piece)
        if self._size > self.max_bytes:
            self._oversize = True
            self.dropped += 1
            self._parts = []
            return
        self._parts.append(piece)

    def flush(self) -> list[bytes]:
        return []
