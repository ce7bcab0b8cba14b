"""``stream_options.include_usage`` for OpenAI-format streaming requests that lack it.

Without it OpenAI and most OpenAI-compatible servers send no usage at all in a stream
(https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options),
so the call could never be priced. When the proxy adds it, OpenAI also adds
``"usage": null`` to every chunk and one extra ``choices: []`` chunk with the usage; the
``UsageChunkFilter`` removes both from what the client receives, so the client sees the
stream it asked for.
"""

from __future__ import annotations

import json
import re

from ..parsers.json_values import top_level_spans, top_level_values
from ..parsers.openai import USAGE_OBJECT

_INJECTABLE_PATH = re.compile(r"/(?:chat/completions|completions)$")
_STREAM_OPTIONS_MEMBER = b'"stream_options":{"include_usage":true},'
_STREAM_KEYS = frozenset((b"stream", b"stream_options"))


def inject_include_usage(path: str, body: bytes) -> bytes | None:
    """The request body with ``include_usage`` turned on, or ``None`` to leave it unchanged
    (not a streaming chat/completions call, not JSON, or usage already requested).
    A client that set ``include_usage: false`` gets it turned on too: the filter below hides
    the result, so it still sees the stream it asked for, and the call can be priced.

    Every other byte stays as the client wrote it (numbers, escapes, key order, spaces),
    and the body is copied once, into the new one (a coding tool's can be 100 MB)."""
    if not _INJECTABLE_PATH.search(path) or b'"stream"' not in body:
        return None
    members = top_level_values(body, _STREAM_KEYS)
    if members is None or members.get("stream") is not True:
        return None
    view = memoryview(body)
    if "stream_options" not in members:  # the usual case: add the key at the front
        start = len(body) - len(body.lstrip()) + 1
        return b"".join((view[:start], _STREAM_OPTIONS_MEMBER, view[start:]))
    options = members["stream_options"]
    if options is None:
        options = {}
    if not isinstance(options, dict) or options.get("include_usage") is True:
        return None
    spans = top_level_spans(body, frozenset((b"stream_options",)))
    if spans is None:
        return None
    first, last = spans["stream_options"]
    replaced = json.dumps({**options, "include_usage": True}, separators=(",", ":")).encode("ascii")
    return b"".join((view[:first], replaced, view[last:]))


NULL_USAGE_MEMBER = b',"usage":null'
"""What ``include_usage`` adds to every OpenAI chunk, as OpenAI writes it (compact JSON)."""
_EVENT_END = re.compile(rb"\r?\n\r?\n")
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_NULL_USAGE_FIELD = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,')


def _last_event_end(buf: bytes, start: int) -> int:
    """Index just past the last blank line (``\n\n`` or ``\r\n\r\n``) at or after ``start``."""
    lf = buf.rfind(b"\n\n", start)
    crlf = buf.rfind(b"\r\n\r\n", start)
    return max(lf + 2 if lf >= 0 else -1, crlf + 4 if crlf >= 0 else -1)


class UsageChunkFilter:
    """Drops the usage-only chunk and the ``"usage": null`` fields the injection caused.

    Works on whole SSE events (a partial event is held until it completes -- an SSE
    client cannot act on half an event anyway), a run of complete events at a time: most
    runs need a search or two and one substitution. Memory is bounded: a tail longer than
    ``max_bytes`` is passed through unfiltered.
    """

    __slots__ = ("_buf", "_scanned", "max_bytes")

    def __init__(self, max_bytes: int = 4 * 1024 * 1024) -> None:
        self._buf = b""
        self._scanned = 0  # bytes of _buf already searched for an event end
        self.max_bytes = max_bytes

    def __call__(self, data: bytes) -> bytes:
        """The bytes to send on for ``data`` (``b""``: nothing yet, or nothing at all)."""
        if not self._buf and data.endswith(b"\n\n"):  # whole events: nearly every chunk
            return self._filter(data)
        buf = self._buf + data if self._buf else data
        end = _last_event_end(buf, max(self._scanned - 3, 0))
        if end < 0:
            if len(buf) > self.max_bytes:
                self._buf, self._scanned = b"", 0
                return buf
            self._buf, self._scanned = buf, len(buf)
            return b""
        self._buf = buf[end:]
        self._scanned = len(self._buf)
        return self._filter(buf[:end])

    def flush(self) -> bytes:
        tail, self._buf, self._scanned = self._buf, b"", 0
        return self._filter(tail) if tail else b""

    @staticmethod
    def _filter(events: bytes) -> bytes:
        # rfind, not ``in``: OpenAI's "usage" sits at the end of a chunk, where CPython's
        # rfind finds it in about 0.08 us and ``in`` takes 0.6 us (2-core development
        # machine); this runs for every event of an injected stream.
        if events.rfind(b'"usage"') < 0:
            return events
        events = events.replace(NULL_USAGE_MEMBER, b"")  # OpenAI's compact JSON: the common case
        if events.rfind(b'"usage"') < 0:
            return events
        if not _EMPTY_CHOICES.search(events):
            return _NULL_USAGE_FIELD.sub(b"", events)
        out = []
        start = 0
        for match in _EVENT_END.finditer(events):
            out.append(UsageChunkFilter._filter_event(events[start : match.end()]))
            start = match.end()
        out.append(UsageChunkFilter._filter_event(events[start:]))
        return b"".join(out)

    @staticmethod
    def _filter_event(event: bytes) -> bytes:
        if b'"usage"' not in event:
            return event
        if _EMPTY_CHOICES.search(event) and USAGE_OBJECT.search(event):
            return b""
        return _NULL_USAGE_FIELD.sub(b"", event)
