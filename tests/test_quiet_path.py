"""The tee's fast path: whole events a parser would skip are never copied to it.

``StreamTee.forward`` (and ``forward_filtered``, for streams whose usage the proxy asked
for) hand the client a chunk of whole events straight back when the parser's ``quiet``
says it holds nothing to read. Two guarantees make that safe, and both are tested here:

- ``quiet`` says yes only where the parser's own pattern of what it reads finds nothing;
- a tee taking the fast path gives the client the same bytes, and the row the same
  ``Usage``, as feeding every byte to the parser -- and it does take it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_usage.injection import UsageChunkFilter
from llm_usage.parsers import FORMATS, StreamParser, anthropic, ollama, openai
from llm_usage.streaming import StreamTee
from llm_usage.usage import Usage
from tests.fixture_cases import Case, params

READS = {
    "openai": openai._ANYTHING_TO_READ_RAW,
    "anthropic": anthropic._EVENTS_TO_READ,
    "ollama": ollama._LINES_TO_READ,
}
"""Each parser's own pattern of the events it reads (the framers' ``keep=``)."""

LINE_STREAMS = params(streamed=True, framing=("sse", "ndjson"))


def events_of(body: bytes, end: bytes) -> list[bytes]:
    """The body cut after every ``end`` (whole events, each with its end); a tail kept as is."""
    parts = re.findall(rb".*?" + re.escape(end) + rb"|.+$", body, flags=re.DOTALL)
    assert b"".join(parts) == body
    return parts


def event_end(case: Case) -> bytes:
    return b"\n\n" if case.framing == "sse" else b"\n"


class CountingParser:
    """A real parser that also counts the bytes the tee hands it."""

    def __init__(self, inner: StreamParser) -> None:
        self.inner = inner
        self.event_end = inner.event_end
        self.fed = 0

    @property
    def settled(self) -> bool:
        return self.inner.settled

    def quiet(self, events: bytes) -> bool:
        return self.inner.quiet(events)

    def feed(self, chunk: bytes) -> None:
        self.fed += len(chunk)
        self.inner.feed(chunk)

    def finish(self) -> Usage:
        return self.inner.finish()


def through_tee(parser: StreamParser, chunks: Iterable[bytes], chunk_filter: UsageChunkFilter | None = None):
    """(client bytes, Usage) of a stream sent through a tee chunk by chunk, as mitmproxy does."""
    tee = StreamTee(parser, chunk_filter=chunk_filter)
    send = tee.stream_callable
    sent = []
    for chunk in [*chunks, b""]:
        out = send(chunk)
        sent.append(out if isinstance(out, bytes) else b"".join(out))
    return b"".join(sent), tee.finish()


def filtered(chunks: Iterable[bytes]) -> bytes:
    """What the filter alone makes of the chunks: the reference for the client's bytes."""
    f = UsageChunkFilter()
    return b"".join(f.apply(c) for c in chunks) + f.flush()


def chunkings(body: bytes, end: bytes) -> Iterator[tuple[str, list[bytes]]]:
    events = events_of(body, end)
    yield "one event per chunk", events
    yield "two events per chunk", [b"".join(events[i : i + 2]) for i in range(0, len(events), 2)]
    yield "events split in the middle", [p for e in events for p in (e[: len(e) // 2], e[len(e) // 2 :]) if p]


# ---------------------------------------------------------------------------------------------
# quiet() only says yes where the parser would read nothing


@pytest.mark.parametrize("case", LINE_STREAMS)
def test_quiet_never_hides_an_event_the_parser_reads(case: Case) -> None:
    reads = READS.get(case.fmt.name)
    parser = case.stream_parser()
    if reads is None:
        assert parser.event_end is None and not parser.quiet(case.body)
        return
    events = events_of(case.body, event_end(case))
    runs = events + [b"".join(events[i : i + 3]) for i in range(len(events))]
    for run in runs:
        if parser.quiet(run):
            assert reads.search(run) is None, run


FRAGMENTS = [
    b'"usage"', b'"usage":null', b":", b" ", b"\n", b"data:", b"data: ", b"{", b"}", b"null", b",",
    b'"error"', b'"type"', b'"response.completed"', b'"response.failed"', b'"response.output_text.delta"',
    b"message_start", b"message_delta", b"event: error", b"event:error", b'"done"', b":false", b":true",
    b'"done":false', b'"done":true', b"x", b'"',
]  # fmt: skip


@pytest.mark.parametrize("fmt", sorted(READS))
@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.sampled_from(FRAGMENTS), max_size=14))
def test_quiet_never_hides_what_the_parser_reads_in_made_up_events(fmt: str, parts: list[bytes]) -> None:
    parser = FORMATS[fmt].stream_parser("text/event-stream")
    end = parser.event_end
    assert end is not None
    events = b"data: " + b"".join(parts) + end
    if parser.quiet(events):
        assert READS[fmt].search(events) is None, events


@pytest.mark.parametrize(
    ("fmt", "events", "quiet"),
    [
        ("openai", b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n', True),
        ("openai", b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n', True),
        ("openai", b'data: {"choices":[],"usage":{"prompt_tokens":1}}\n\n', False),
        ("openai", b'data: {"choices":[],"usage": {"prompt_tokens":1}}\n\n', False),
        ("openai", b'data: {"usage":null}\n\ndata: {"usage":{"prompt_tokens":1}}\n\n', False),
        ("openai", b'data: {"x_groq":{"usage":{"prompt_tokens":1}},"usage":null}\n\n', False),
        ("openai", b'data: {"error":{"message":"overloaded"}}\n\n', False),
        ("openai", b'data: {"type":"response.completed","response":{}}\n\n', False),
        ("openai", b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta"}\n\n', True),
        ("openai", b'event: response.failed\ndata: {"type":"response.failed","response":{}}\n\n', False),
        ("openai", b'data: {"type":"response.created","response":{"usage":null}}\n\n', True),
        ("anthropic", b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n', True),
        ("anthropic", b'event: message_delta\ndata: {"type":"message_delta","usage":{}}\n\n', False),
        ("anthropic", b'event: error\ndata: {"type":"error"}\n\n', False),
        ("ollama", b'{"model":"m","message":{"content":"a"},"done":false}\n', True),
        ("ollama", b'{"model":"m","done":true,"eval_count":3}\n', False),
        ("ollama", b'{"model":"m","done": true}\n', False),
        ("ollama", b'{"error":"model not found"}\n', False),
    ],
)
def test_quiet_examples(fmt: str, events: bytes, quiet: bool) -> None:
    assert FORMATS[fmt].stream_parser("text/event-stream").quiet(events) is quiet


# ---------------------------------------------------------------------------------------------
# the fast path changes nothing the client or the row sees


@pytest.mark.parametrize("case", LINE_STREAMS)
def test_tee_fast_path_gives_the_same_bytes_and_usage(case: Case) -> None:
    whole = case.feed([case.body])
    for how, chunks in chunkings(case.body, event_end(case)):
        parser = CountingParser(case.stream_parser())
        sent, usage = through_tee(parser, chunks)
        assert sent == case.body, how
        assert usage == whole, how
        if how == "one event per chunk" and case.fmt.name in READS and len(chunks) >= 4:
            assert parser.fed < len(case.body), "no event took the fast path"
        if case.fmt.name == "openai" and case.framing == "sse":
            sent, usage = through_tee(case.stream_parser(), chunks, UsageChunkFilter())
            assert sent == filtered(chunks), how
            assert usage == whole, how


@pytest.mark.parametrize("case", LINE_STREAMS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_tee_fast_path_whatever_the_chunking(case: Case, data: st.DataObject) -> None:
    """Chunks of whole events, as upstreams send them, now and then cut anywhere: the fast
    path and the full path take turns, and nothing differs."""
    chunks: list[bytes] = []
    for event in events_of(case.body, event_end(case)):
        if chunks and data.draw(st.booleans(), label="join to the previous chunk"):
            chunks[-1] += event
        else:
            chunks.append(event)
        if data.draw(st.integers(0, 9), label="cut this one") == 0 and len(chunks[-1]) > 1:
            cut = data.draw(st.integers(1, len(chunks[-1]) - 1), label="at")
            chunks[-1:] = [chunks[-1][:cut], chunks[-1][cut:]]
    whole = case.feed([case.body])
    assert through_tee(case.stream_parser(), chunks) == (case.body, whole)
    if case.fmt.name == "openai" and case.framing == "sse":
        assert through_tee(case.stream_parser(), chunks, UsageChunkFilter()) == (filtered(chunks), whole)


def test_the_model_is_read_before_the_fast_path_begins() -> None:
    """Azure opens with a chunk whose model is "" (its content filter results): the model
    comes in the next chunk, and the usage chunk names none."""
    upstream = [
        b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}\n\n',
        *(b'data: {"model":"gpt-4o-2024-11-20","choices":[{"delta":{"content":"w"}}]}\n\n' for _ in range(20)),
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":20}}\n\n',
        b"data: [DONE]\n\n",
    ]
    for chunk_filter in (None, UsageChunkFilter()):
        parser = CountingParser(FORMATS["openai"].stream_parser("text/event-stream"))
        _, usage = through_tee(parser, upstream, chunk_filter)
        assert (usage.model, usage.input_tokens, usage.output_tokens) == ("gpt-4o-2024-11-20", 3, 20)
        assert parser.fed < len(b"".join(upstream)) // 2


CHAT_FRAGMENTS = [f for f in FRAGMENTS if b"response." not in f] + [b'"choices"', b"[", b"]", b'"delta"']


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.sampled_from(CHAT_FRAGMENTS), max_size=14))
def test_the_filtered_fast_path_never_hides_what_the_parser_reads(parts: list[bytes]) -> None:
    """``forward_filtered`` inlines its own quiet test, for chat streams (the only ones the
    proxy adds ``include_usage`` to): an event it sends on without the parser must hold
    nothing ``_ANYTHING_TO_READ_RAW`` finds, and must come out as the filter would send it."""
    parser = CountingParser(FORMATS["openai"].stream_parser("text/event-stream"))
    tee = StreamTee(parser, chunk_filter=UsageChunkFilter())
    tee.forward_filtered(b'data: {"model":"gpt-4o","choices":[],"usage":null}\n\n')
    fed = parser.fed
    event = b"data: {" + b"".join(parts) + b"}\n\n"
    out = tee.forward_filtered(event)
    tee.finish()  # hands the parser whatever the full path kept for it
    if parser.fed == fed:  # so this event took the fast path
        assert READS["openai"].search(event) is None, event
        assert out == UsageChunkFilter().apply(event), event


def chat_stream(words: int, *, include_usage: bool, obfuscation: bool = False) -> list[bytes]:
    """An OpenAI chat stream as the API sends it, one event per chunk."""

    def chunk(choices: list[object], **extra: object) -> bytes:
        body: dict[str, object] = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18"}
        body["choices"] = choices
        if include_usage:
            body["usage"] = None
        body.update(extra)
        if obfuscation:
            body["obfuscation"] = "k2Yy"
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    events = [chunk([{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]) for i in range(words)]
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if include_usage:
        events.append(chunk([], usage={"prompt_tokens": 12, "completion_tokens": words, "total_tokens": 12 + words}))
    return [*events, b"data: [DONE]\n\n"]


@pytest.mark.parametrize("obfuscation", [False, True], ids=["plain", "obfuscated"])
def test_injected_stream_takes_the_fast_path_and_the_client_sees_the_stream_it_asked_for(obfuscation: bool) -> None:
    upstream = chat_stream(500, include_usage=True, obfuscation=obfuscation)
    parser = CountingParser(FORMATS["openai"].stream_parser("text/event-stream"))
    sent, usage = through_tee(parser, upstream, UsageChunkFilter())
    assert sent == b"".join(chat_stream(500, include_usage=False, obfuscation=obfuscation))
    assert (usage.model, usage.input_tokens, usage.output_tokens, usage.status) == (
        "gpt-4o-mini-2024-07-18",
        12,
        500,
        "complete",
    )
    assert parser.fed < len(b"".join(upstream)) // 20  # the content deltas never reached the parser


def test_client_asked_stream_takes_the_fast_path() -> None:
    upstream = chat_stream(500, include_usage=True)
    parser = CountingParser(FORMATS["openai"].stream_parser("text/event-stream"))
    sent, usage = through_tee(parser, upstream)
    assert sent == b"".join(upstream)
    assert (usage.input_tokens, usage.output_tokens, usage.status) == (12, 500, "complete")
    assert parser.fed < len(sent) // 20


def test_a_mid_stream_error_is_read_even_after_the_fast_path() -> None:
    upstream = chat_stream(50, include_usage=True)
    error = b'data: {"id":"c1","model":"m","error":{"message":"Provider disconnected"},"usage":null}\n\n'
    sent, usage = through_tee(FORMATS["openai"].stream_parser(""), [*upstream[:40], error], UsageChunkFilter())
    assert usage.error == "Provider disconnected"
    assert sent.endswith(b'"error":{"message":"Provider disconnected"}}\n\n')


def test_the_fast_path_waits_for_an_event_boundary() -> None:
    """A chunk that ends mid-event leaves the next one to the full path, which completes it."""
    upstream = chat_stream(30, include_usage=True)
    body = b"".join(upstream)
    usage_at = body.index(b'"choices":[],"usage":{')
    chunks = [*upstream[:10], body[sum(map(len, upstream[:10])) : usage_at], body[usage_at:]]
    sent, usage = through_tee(FORMATS["openai"].stream_parser(""), chunks, UsageChunkFilter())
    assert sent == b"".join(chat_stream(30, include_usage=False))
    assert (usage.input_tokens, usage.output_tokens) == (12, 30)


def test_a_stream_that_names_no_model_still_takes_the_fast_path() -> None:
    """The parser gives up looking for the model after a few events, then skips like any other."""
    upstream = [e.replace(b',"model":"gpt-4o-mini-2024-07-18"', b"") for e in chat_stream(500, include_usage=True)]
    parser = CountingParser(FORMATS["openai"].stream_parser("text/event-stream"))
    sent, usage = through_tee(parser, upstream, UsageChunkFilter())
    assert sent == b"".join(chat_stream(500, include_usage=False)).replace(b',"model":"gpt-4o-mini-2024-07-18"', b"")
    assert (usage.model, usage.input_tokens, usage.output_tokens) == (None, 12, 500)
    assert parser.fed < len(b"".join(upstream)) // 20


def test_a_responses_api_stream_takes_the_fast_path_to_its_final_event() -> None:
    def event(kind: str, **body: object) -> bytes:
        return b"event: %s\ndata: %s\n\n" % (kind.encode(), json.dumps({"type": kind, **body}).encode())

    response = {"id": "resp_1", "model": "gpt-5-2025-08-07", "usage": None}
    final = {**response, "status": "completed", "usage": {"input_tokens": 9, "output_tokens": 300}}
    upstream = [
        event("response.created", response=response),
        *(event("response.output_text.delta", item_id="msg_1", delta=f"w{i} ") for i in range(300)),
        event("response.completed", response=final),
    ]
    parser = CountingParser(FORMATS["openai"].stream_parser("text/event-stream"))
    sent, usage = through_tee(parser, upstream)
    assert sent == b"".join(upstream)
    assert (usage.model, usage.input_tokens, usage.output_tokens, usage.status) == (
        "gpt-5-2025-08-07",
        9,
        300,
        "complete",
    )
    assert parser.fed < len(sent) // 20
