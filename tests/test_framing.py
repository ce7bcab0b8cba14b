"""The incremental framers: whole events out of bytes cut anywhere.

SSE per https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation,
NDJSON (Ollama), and the JSON array Gemini streams without ``alt=sse``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_usage.parsers.framing import JSONArrayFramer, LineSplitter, NDJSONFramer, SSEFramer

Framer = SSEFramer | NDJSONFramer | JSONArrayFramer


def run(make: Callable[[], Framer], chunks: Iterable[bytes]) -> tuple[list[Any], int]:
    framer = make()
    out: list[Any] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    out += framer.flush()
    return out, framer.dropped


def every_split(body: bytes) -> Iterable[list[bytes]]:
    """The body whole, cut in two at every position, and byte by byte."""
    yield [body]
    for i in range(len(body) + 1):
        yield [body[:i], body[i:]]
    yield [body[i : i + 1] for i in range(len(body))]


def assert_split_invariant(make: Callable[[], Framer], body: bytes, expected: list[Any], dropped: int = 0) -> None:
    for chunks in every_split(body):
        got, got_dropped = run(make, chunks)
        assert got == expected, [len(c) for c in chunks]
        assert got_dropped == dropped, [len(c) for c in chunks]


# ---------------------------------------------------------------------------------------------
# SSE


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'data: {"a":1}\n\n', [(b"", b'{"a":1}')]),
        # comments (OpenRouter keep-alives) are ignored, also inside an event
        (b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: x\n\n", [(b"", b"x")]),
        (b"data: a\n: comment in the middle\ndata: b\n\n", [(b"", b"a\nb")]),
        # event: names the event, and the name does not leak into the next one
        (b"event: message_start\ndata: {}\n\ndata: next\n\n", [(b"message_start", b"{}"), (b"", b"next")]),
        (b"event:ping\ndata:{}\n\n", [(b"ping", b"{}")]),
        # an event with a name but no data is not dispatched, and its name is forgotten
        (b"event: ping\n\ndata: x\n\n", [(b"", b"x")]),
        # multi-line data joins with \n
        (b"data: line one\ndata: line two\ndata: three\n\n", [(b"", b"line one\nline two\nthree")]),
        # only ONE leading space is stripped; no space is fine too
        (b"data:x\n\ndata:  y\n\n", [(b"", b"x"), (b"", b" y")]),
        # id:, retry: and unknown fields are ignored
        (b"id: 7\nretry: 3000\nfoo: bar\ndata: z\n\n", [(b"", b"z")]),
        # blank lines alone dispatch nothing
        (b"\n\n\ndata: q\n\n\n\n", [(b"", b"q")]),
        # no trailing blank line: the last event still comes out at flush
        (b"data: a\n\ndata: b", [(b"", b"a"), (b"", b"b")]),
        (b"data: a\n\nevent: last\ndata: b\n", [(b"", b"a"), (b"last", b"b")]),
        # \r\n and \r-only line endings
        (b"event: e\r\ndata: x\r\n\r\ndata: y\r\n\r\n", [(b"e", b"x"), (b"", b"y")]),
        (b"event: e\rdata: x\r\rdata: y\rdata: z\r\r", [(b"e", b"x"), (b"", b"y\nz")]),
        (b"data: a\r\n\ndata: b\n\r\n", [(b"", b"a"), (b"", b"b")]),
        # multibyte text
        ('data: {"t":"你好 🌍"}\n\n'.encode(), [(b"", '{"t":"你好 🌍"}'.encode())]),
        (b"data: [DONE]\n\n", [(b"", b"[DONE]")]),
    ],
)
def test_sse_events(body: bytes, expected: list[tuple[bytes, bytes]]) -> None:
    assert_split_invariant(SSEFramer, body, expected)


def test_sse_cr_then_lf_in_the_next_chunk_is_one_line_break() -> None:
    framer = SSEFramer()
    assert framer.feed(b"event: e\r") == []
    assert framer.feed(b"\ndata: a\r") == []
    assert framer.feed(b"\ndata: b\r") == []
    assert framer.feed(b"\n\r") == [(b"e", b"a\nb")]
    assert framer.feed(b"\ndata: c\r\n\r\n") == [(b"", b"c")]
    assert framer.flush() == []


def test_sse_flush_resets() -> None:
    framer = SSEFramer()
    framer.feed(b"data: a")
    assert framer.flush() == [(b"", b"a")]
    assert framer.flush() == []


LONG = b"x" * 200


@pytest.mark.parametrize(
    "body",
    [
        b"data: " + LONG + b"\n\n" + b'data: {"ok":1}\n\n',
        b": " + LONG + b"\n\n" + b'data: {"ok":1}\n\n',  # an over-long comment
        b"event: big\ndata: " + LONG + b"\n\n" + b'data: {"ok":1}\n\n',
        b"data: " + LONG + b"\r\n\r\n" + b'data: {"ok":1}\r\n\r\n',
        b"data: " + LONG + b"\r\r" + b'data: {"ok":1}\r\r',
    ],
    ids=["data", "comment", "named", "crlf", "cr"],
)
def test_sse_over_long_line_is_dropped_and_counted(body: bytes) -> None:
    """With max_bytes=64 the 200-byte line is skipped (counted once), however the bytes arrive; the
    event after it still parses. (A comment's size only counts when it must be buffered.)"""
    for chunks in every_split(body):
        events, dropped = run(lambda: SSEFramer(max_bytes=64), chunks)
        assert events == [(b"", b'{"ok":1}')], [len(c) for c in chunks]
        if not body.startswith(b":"):
            assert dropped == 1, [len(c) for c in chunks]


def test_sse_over_long_multi_line_event_is_dropped_whole() -> None:
    """An event whose data lines together exceed max_bytes is skipped as a whole: no tail of it
    may come out as if it were an event of its own."""
    line = b"data: " + b"y" * 40 + b"\n"
    body = line * 3 + b"data: tail\n\n" + b'data: {"ok":1}\n\n'
    events, dropped = run(lambda: SSEFramer(max_bytes=64), [body])
    assert events == [(b"", b'{"ok":1}')]
    assert dropped == 1


# ---------------------------------------------------------------------------------------------
# Lines


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a\nb\n", [b"a", b"b"]),
        (b"a\r\nb\r\n", [b"a", b"b"]),
        (b"a\rb\r", [b"a", b"b"]),
        (b"a\r\n\r\nb", [b"a", b"", b"b"]),
        (b"a\n\rb", [b"a", b"", b"b"]),
        (b"\r\n", [b""]),
    ],
)
def test_line_splitter(body: bytes, expected: list[bytes]) -> None:
    for chunks in every_split(body):
        splitter = LineSplitter()
        lines: list[bytes] = []
        for chunk in chunks:
            lines += splitter.feed(chunk)
        lines += splitter.flush()
        assert lines == expected, [len(c) for c in chunks]


# ---------------------------------------------------------------------------------------------
# NDJSON

OLLAMA_LINES = [
    {"model": "llama3.2", "message": {"role": "assistant", "content": "Hi"}, "done": False},
    {"model": "llama3.2", "message": {"role": "assistant", "content": " 你好 🦙"}, "done": False},
    {
        "model": "llama3.2",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "prompt_eval_count": 26,
        "eval_count": 2,
    },
]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_ndjson_lines(eol: bytes) -> None:
    encoded = [json.dumps(obj, ensure_ascii=False).encode() for obj in OLLAMA_LINES]
    body = eol.join(encoded) + eol
    assert_split_invariant(NDJSONFramer, body, encoded)


def test_ndjson_skips_blank_lines_and_flushes_the_last_line() -> None:
    body = b'\n{"a":1}\n\n   \n{"b":2}\r\n\r\n{"c":3}'
    assert_split_invariant(NDJSONFramer, body, [b'{"a":1}', b'{"b":2}', b'{"c":3}'])


def test_ndjson_over_long_line_is_dropped_and_counted() -> None:
    """max_bytes=64: the 200-byte line is skipped and counted once however the bytes arrive --
    the same outcome whether it came in one chunk or many."""
    body = b'{"a":1}\n{"big":"' + LONG + b'"}\n{"b":2}\n'
    assert_split_invariant(lambda: NDJSONFramer(max_bytes=64), body, [b'{"a":1}', b'{"b":2}'], dropped=1)


# ---------------------------------------------------------------------------------------------
# JSON array (Gemini streamGenerateContent)

TRICKY_ELEMENTS: list[Any] = [
    {"candidates": [{"content": {"parts": [{"text": "braces { } and brackets [ ] ]]} {{["}]}}]},
    {"text": 'escaped "quotes" and \\"backslash-quote\\" and a lone \\'},
    {"text": "ends in a backslash\\"},
    {"text": "\\\\"},
    {"text": "", "nested": [[1, [2, {"k": "]"}]], {"a": {"b": {"c": []}}}]},
    {"text": 'CJK 例如 and emoji 🎉 \u2028 and "\\u escapes" \\u005d'},
    {"usageMetadata": {"promptTokenCount": 22, "candidatesTokenCount": 61, "totalTokenCount": 83}},
]


def gemini_array(elements: list[Any], indent: int | None, separator: str) -> bytes:
    return ("[" + separator.join(json.dumps(e, indent=indent, ensure_ascii=False) for e in elements) + "\n]").encode()


@pytest.mark.parametrize(
    ("indent", "separator"),
    [(2, "\n,\r\n"), (None, ","), (None, ", "), (2, "\n,\n")],
    ids=["gemini", "compact", "spaced", "lf"],
)
def test_json_array_elements_at_every_split(indent: int | None, separator: str) -> None:
    body = gemini_array(TRICKY_ELEMENTS, indent, separator)
    for chunks in every_split(body):
        elements, dropped = run(JSONArrayFramer, chunks)
        assert [json.loads(e) for e in elements] == TRICKY_ELEMENTS, [len(c) for c in chunks]
        assert dropped == 0


def test_json_array_yields_elements_as_soon_as_they_close() -> None:
    framer = JSONArrayFramer()
    assert framer.feed(b'[{"a": "}"}') == [b'{"a": "}"}']
    assert framer.feed(b'\n,\r\n{"b": [') == []
    assert framer.feed(b"1]}\n]") == [b'{"b": [1]}']
    assert framer.flush() == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": {"code": 400, "message": "bad [x] {y} \\"z\\"", "status": "INVALID_ARGUMENT"}}',
        b'[{"error": {"code": 400, "message": "bad [x] {y} \\"z\\"", "status": "INVALID_ARGUMENT"}}]',
        b'  \r\n[\n  {"error": {"code": 400, "message": "bad [x] {y} \\"z\\"", "status": "INVALID_ARGUMENT"}}\n]\n',
    ],
    ids=["bare-object", "wrapped", "whitespace"],
)
def test_json_array_error_body(body: bytes) -> None:
    error = {"error": {"code": 400, "message": 'bad [x] {y} "z"', "status": "INVALID_ARGUMENT"}}
    for chunks in every_split(body):
        elements, _ = run(JSONArrayFramer, chunks)
        assert [json.loads(e) for e in elements] == [error], [len(c) for c in chunks]


def test_json_array_over_long_element_is_dropped_and_counted() -> None:
    body = b'[{"a": 1},\n{"big": "' + LONG + b'"},\n{"b": [2]}]'
    for chunks in every_split(body):
        elements, dropped = run(lambda: JSONArrayFramer(max_bytes=64), chunks)
        assert elements == [b'{"a": 1}', b'{"b": [2]}'], [len(c) for c in chunks]
        assert dropped == 1, [len(c) for c in chunks]


# ---------------------------------------------------------------------------------------------
# quiet=: whole runs of events that hold nothing a parser reads are skipped unframed

KEEP = re.compile(rb"usage|error")


def quiet(events: bytes) -> bool:
    """A parser that reads only events with "usage" or "error" in them."""
    return KEEP.search(events) is None


def _long_sse(eol: bytes = b"\n") -> bytes:
    events = []
    for i in range(60):
        events.append(b'data: {"delta":"word %d"}' % i)
        if i in (0, 17, 18, 41):
            events.append(b'event: message_delta\ndata: {"usage":{"n":%d}}' % i)
        if i == 30:
            events.append(b'data: {"error":"x"}\ndata: second line')
    return b"".join(e.replace(b"\n", eol) + eol + eol for e in events)


def _kept(events: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [e for e in events if KEEP.search(e[0] + b"\n" + e[1])]


def _subsequence(part: list[Any], whole: list[Any]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def _feed_keep(chunks: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
    framer = SSEFramer()
    out: list[tuple[bytes, bytes]] = []
    for chunk in chunks:
        out += framer.feed(chunk, quiet)
    return out + framer.flush()


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_sse_keep_yields_every_kept_event_whatever_the_split(eol: bytes, data: st.DataObject) -> None:
    body = _long_sse(eol)
    whole, _ = run(SSEFramer, [body])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12), label="cuts"))
    got = _feed_keep(body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True))
    assert _kept(got) == _kept(whole)
    assert _subsequence(got, whole)


def test_sse_keep_skips_chunks_of_events_it_finds_nothing_in() -> None:
    events = [b'data: {"usage":%d}\n\n' % i if i in (3, 97) else b'data: {"d":%d}\n\n' % i for i in range(100)]
    chunks = [b"".join(events[i : i + 10]) for i in range(0, len(events), 10)]
    whole, _ = run(SSEFramer, chunks)
    got = _feed_keep(chunks)
    assert _kept(got) == _kept(whole)
    assert len(got) < len(whole) // 2  # most content deltas were never framed


def test_sse_keep_resumes_an_event_an_earlier_chunk_began() -> None:
    framer = SSEFramer()
    assert framer.feed(b'data: {"usa', quiet) == []
    tail = b'ge":1}\n\n' + b'data: {"d":1}\n\n' * 5 + b'data: {"d":2}\n\ndata: {"usage":2}'
    assert framer.feed(tail, quiet) == [(b"", b'{"usage":1}')]
    assert framer.flush() == [(b"", b'{"usage":2}')]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_ndjson_keep_yields_every_kept_line_whatever_the_split(data: st.DataObject) -> None:
    lines = [b'{"i":%d}' % i if i % 23 else b'{"i":%d,"usage":1}' % i for i in range(100)]
    body = b"\n".join(lines) + b"\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10), label="cuts"))
    framer = NDJSONFramer()
    got: list[bytes] = []
    for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True):
        got += framer.feed(body[a:b], quiet)
    got += framer.flush()
    assert [x for x in got if KEEP.search(x)] == [x for x in lines if KEEP.search(x)]
    assert _subsequence(got, lines)
