"""The stream tee, the injected-usage filter and ``include_usage`` injection.

The tee hands mitmproxy back a chunk of whole events without copying it for the parser
when the events are *quiet* (``parser.quiet``: they carry nothing the parser reads). Two
guarantees make that safe, and both are tested here:

- a quiet event really carries nothing for the parser: leaving it out changes nothing;
- a tee that skips quiet chunks gives the client the same bytes, and the row the same
  ``Usage``, as feeding every byte to the parser -- and it does skip them.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_usage.parsers import FORMATS, StreamParser
from llm_usage.parsers.usage import Usage
from llm_usage.proxy.decoding import make_decoder
from llm_usage.proxy.include_usage import UsageChunkFilter, inject_include_usage
from llm_usage.proxy.tee import StreamTee
from tests.support.fixture_cases import Case, params

LINE_STREAMS = params(streamed=True, framing=("sse", "ndjson"))
SKIPPING = ("openai", "anthropic", "ollama")
"""The formats whose parsers skip quiet events (Gemini reads every chunk: a running total)."""


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

    def quiet(self, events: bytes) -> bool:
        return self.inner.quiet(events)

    @property
    def settled(self) -> bool:
        return self.inner.settled

    def feed(self, chunk: bytes) -> None:
        self.fed += len(chunk)
        self.inner.feed(chunk)

    def finish(self) -> Usage:
        return self.inner.finish()


def through_tee(parser: StreamParser, chunks: Iterable[bytes], chunk_filter: UsageChunkFilter | None = None):
    """(client bytes, Usage) of a stream sent through a tee chunk by chunk, as mitmproxy does."""
    tee = StreamTee(parser, chunk_filter=chunk_filter)
    sent = []
    for chunk in [*chunks, b""]:
        out = tee(chunk)
        sent.append(out if isinstance(out, bytes) else b"".join(out))
    return b"".join(sent), tee.finish()


def filtered(chunks: Iterable[bytes]) -> bytes:
    """What the filter alone makes of the chunks: the reference for the client's bytes."""
    f = UsageChunkFilter()
    return b"".join(f(c) for c in chunks) + f.flush()


def chunkings(body: bytes, end: bytes) -> Iterator[tuple[str, list[bytes]]]:
    events = events_of(body, end)
    yield "one event per chunk", events
    yield "two events per chunk", [b"".join(events[i : i + 2]) for i in range(0, len(events), 2)]
    yield "events split in the middle", [p for e in events for p in (e[: len(e) // 2], e[len(e) // 2 :]) if p]


def reading_everything(parser: StreamParser) -> StreamParser:
    """The same parser, made to find no event quiet: the reference that skips nothing."""

    class Reference(type(parser)):  # type: ignore[misc]
        @staticmethod
        def quiet(events: bytes) -> bool:
            return False

    return Reference("text/event-stream")


def parsed(parser: StreamParser, events: Iterable[bytes]) -> Usage:
    for event in events:
        parser.feed(event)
    return parser.finish()


# ---------------------------------------------------------------------------------------------
# A quiet event carries nothing the parser reads


@pytest.mark.parametrize("case", LINE_STREAMS)
def test_leaving_out_the_quiet_events_of_real_streams_changes_nothing(case: Case) -> None:
    """Every event that is quiet where it stands (the parser settled before it) can be left
    out, all of them at once, and the parser ends with the usage of a parser that skips
    nothing at all."""
    events = events_of(case.body, event_end(case))
    parser = case.stream_parser()
    kept = []
    for event in events:
        if not (event.endswith(event_end(case)) and parser.settled and parser.quiet(event)):
            kept.append(event)
        parser.feed(event)
    assert case.feed(kept) == parsed(reading_everything(case.stream_parser()), events)
    if case.fmt.name not in SKIPPING:
        assert len(kept) == len(events)


FRAGMENTS = [
    b'"usage"', b'"usage":null', b":", b" ", b"\n", b"data:", b"data: ", b"{", b"}", b"null", b",",
    b'"error"', b'"type"', b'"response.completed"', b'"response.failed"', b'"response.output_text.delta"',
    b"message_start", b"message_delta", b"event: error", b"event:error", b'"done"', b":false", b":true",
    b'"done":false', b'"done":true', b"x", b'"', b'"model"', b'"m"', b"0", b"1",
]  # fmt: skip
OPENINGS = {
    "openai": b'data: {"model":"gpt-4o","choices":[{"delta":{"content":"a"}}]}\n\n',
    "anthropic": b'event: message_start\ndata: {"type":"message_start","message":{"model":"c","usage":'
    b'{"input_tokens":3,"output_tokens":1}}}\n\n',
    "ollama": b'{"model":"llama3","message":{"content":"a"},"done":false}\n',
}
ENDINGS = {
    "openai": b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\ndata: [DONE]\n\n',
    "anthropic": b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":4}}\n\n',
    "ollama": b'{"model":"llama3","done":true,"prompt_eval_count":3,"eval_count":4}\n',
}


@pytest.mark.parametrize("fmt", SKIPPING)
@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(FRAGMENTS), max_size=14))
def test_a_made_up_quiet_event_changes_nothing(fmt: str, parts: list[bytes]) -> None:
    parser = FORMATS[fmt].stream_parser("text/event-stream")
    parser.feed(OPENINGS[fmt])
    end = parser.event_end
    assert end is not None and parser.settled
    prefix = b"" if fmt == "ollama" else b"data: "
    event = prefix + b"".join(parts).replace(end, b" ") + end
    if parser.quiet(event):
        reference = parsed(reading_everything(parser), [OPENINGS[fmt], event, ENDINGS[fmt]])
        assert parsed(FORMATS[fmt].stream_parser(""), [OPENINGS[fmt], ENDINGS[fmt]]) == reference, event


@pytest.mark.parametrize(
    ("fmt", "events", "is_quiet"),
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
        ("gemini", b'data: {"candidates":[]}\n\n', False),
    ],
)
def test_quiet_examples(fmt: str, events: bytes, is_quiet: bool) -> None:
    parser = FORMATS[fmt].stream_parser("text/event-stream")
    parser.feed(OPENINGS.get(fmt, b""))  # settled: the model is known
    assert parser.quiet(events) is is_quiet


def test_nothing_is_quiet_before_the_model_is_known() -> None:
    parser = FORMATS["openai"].stream_parser("text/event-stream")
    tee = StreamTee(CountingParser(parser))
    event = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
    assert parser.quiet(event) and not parser.settled
    tee(event)
    assert tee._parser.fed == len(event)  # type: ignore[union-attr]  # not skipped: the model is still to come


# ---------------------------------------------------------------------------------------------
# Skipping quiet chunks changes nothing the client or the row sees


@pytest.mark.parametrize("case", LINE_STREAMS)
def test_tee_skipping_gives_the_same_bytes_and_usage(case: Case) -> None:
    whole = case.feed([case.body])
    for how, chunks in chunkings(case.body, event_end(case)):
        parser = CountingParser(case.stream_parser())
        sent, usage = through_tee(parser, chunks)
        assert sent == case.body, how
        assert usage == whole, how
        if how == "one event per chunk" and case.fmt.name in SKIPPING and len(chunks) >= 4:
            assert parser.fed < len(case.body), "no event was skipped"
        if case.fmt.name == "openai" and case.framing == "sse":
            sent, usage = through_tee(case.stream_parser(), chunks, UsageChunkFilter())
            assert sent == filtered(chunks), how
            assert usage == whole, how


@pytest.mark.parametrize("case", LINE_STREAMS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_tee_skipping_whatever_the_chunking(case: Case, data: st.DataObject) -> None:
    """Chunks of whole events, as upstreams send them, now and then cut anywhere: skipped
    and teed chunks take turns, and nothing differs."""
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


def test_the_model_is_read_before_the_skipping_begins() -> None:
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
def test_injected_stream_is_skipped_and_the_client_sees_the_stream_it_asked_for(obfuscation: bool) -> None:
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


def test_client_asked_stream_is_skipped() -> None:
    upstream = chat_stream(500, include_usage=True)
    parser = CountingParser(FORMATS["openai"].stream_parser("text/event-stream"))
    sent, usage = through_tee(parser, upstream)
    assert sent == b"".join(upstream)
    assert (usage.input_tokens, usage.output_tokens, usage.status) == (12, 500, "complete")
    assert parser.fed < len(sent) // 20


def test_a_mid_stream_error_is_read_even_after_skipping() -> None:
    upstream = chat_stream(50, include_usage=True)
    error = b'data: {"id":"c1","model":"m","error":{"message":"Provider disconnected"},"usage":null}\n\n'
    sent, usage = through_tee(FORMATS["openai"].stream_parser(""), [*upstream[:40], error], UsageChunkFilter())
    assert usage.error == "Provider disconnected"
    assert sent.endswith(b'"error":{"message":"Provider disconnected"}}\n\n')


def test_the_skipping_waits_for_an_event_boundary() -> None:
    """A chunk that ends mid-event leaves the next one to the full path, which completes it."""
    upstream = chat_stream(30, include_usage=True)
    body = b"".join(upstream)
    usage_at = body.index(b'"choices":[],"usage":{')
    chunks = [*upstream[:10], body[sum(map(len, upstream[:10])) : usage_at], body[usage_at:]]
    sent, usage = through_tee(FORMATS["openai"].stream_parser(""), chunks, UsageChunkFilter())
    assert sent == b"".join(chat_stream(30, include_usage=False))
    assert (usage.input_tokens, usage.output_tokens) == (12, 30)


def test_a_stream_that_names_no_model_still_is_skipped() -> None:
    """The parser gives up looking for the model after a few events, then skips like any other."""
    upstream = [e.replace(b',"model":"gpt-4o-mini-2024-07-18"', b"") for e in chat_stream(500, include_usage=True)]
    parser = CountingParser(FORMATS["openai"].stream_parser("text/event-stream"))
    sent, usage = through_tee(parser, upstream, UsageChunkFilter())
    assert sent == b"".join(chat_stream(500, include_usage=False)).replace(b',"model":"gpt-4o-mini-2024-07-18"', b"")
    assert (usage.model, usage.input_tokens, usage.output_tokens) == (None, 12, 500)
    assert parser.fed < len(b"".join(upstream)) // 20


def test_a_responses_api_stream_is_skipped_to_its_final_event() -> None:
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


# ---------------------------------------------------------------------------------------------
# The tee never breaks the client's stream


SSE = (
    b'data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
    b'data: {"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)


class ExplodingParser:
    event_end = None  # nothing skipped: every chunk is fed to it
    settled = True

    @staticmethod
    def quiet(events: bytes) -> bool:
        return False

    def feed(self, chunk: bytes) -> None:
        raise RuntimeError("boom")

    def finish(self) -> Usage:
        raise AssertionError("not reached")


def test_tee_forwards_raw_chunks_and_parses_a_decoded_copy() -> None:
    encoded = gzip.compress(SSE)
    tee = StreamTee(FORMATS["openai"].stream_parser("text/event-stream"), make_decoder("gzip"))
    forwarded = b"".join(
        bytes(out) if isinstance(out, bytes) else b"".join(out)
        for out in (tee(encoded[i : i + 5]) for i in range(0, len(encoded), 5))
    )
    assert forwarded == encoded
    usage = tee.finish()
    assert (usage.input_tokens, usage.output_tokens, usage.status) == (5, 2, "complete")
    assert tee.first_byte_at is not None


def test_tee_never_raises_and_reports_the_parser_failure() -> None:
    tee = StreamTee(ExplodingParser())
    assert tee(b"data: x\n\n") == b"data: x\n\n"  # the client's bytes keep flowing
    assert tee(b"more") == b"more"
    usage = tee.finish()
    assert usage.error and "boom" in usage.error and tee.parse_error


def test_tee_survives_an_undecodable_stream() -> None:
    tee = StreamTee(FORMATS["openai"].stream_parser(""), make_decoder("gzip"))
    assert tee(b"not gzip at all") == b"not gzip at all"
    assert tee.finish().error and "decode" in tee.parse_error  # type: ignore[operator]


def test_tee_sends_nothing_as_an_empty_list_never_an_empty_chunk() -> None:
    """b"" mid-stream would become the HTTP/1.1 chunked terminator and end the client's stream."""
    tee = StreamTee(FORMATS["openai"].stream_parser(""), chunk_filter=UsageChunkFilter())
    assert tee(b'data: {"choices":[],"usage"') == []  # held: the event is incomplete
    assert tee(b':{"prompt_tokens":1}}\n\n') == []  # dropped: the usage-only chunk
    assert tee(b"") == []


def test_usage_filter_removes_only_what_injection_added() -> None:
    f = UsageChunkFilter()
    out = b"".join(f(SSE[i : i + 3]) for i in range(0, len(SSE), 3)) + f.flush()
    assert out == (b'data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n')


def test_usage_filter_keeps_usage_attached_to_content() -> None:
    event = b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}\n\n'
    assert UsageChunkFilter()(event) == event


# ---------------------------------------------------------------------------------------------
# include_usage injection


@pytest.mark.parametrize(
    ("path", "body", "injected"),
    [
        ("/v1/chat/completions", {"model": "m", "stream": True}, {"include_usage": True}),
        ("/v1/completions", {"stream": True, "stream_options": {"x": 1}}, {"x": 1, "include_usage": True}),
        ("/v1/chat/completions", {"stream": True, "stream_options": {"include_usage": False}}, {"include_usage": True}),
        ("/v1/chat/completions", {"stream": True, "stream_options": {"include_usage": True}}, None),
        ("/v1/chat/completions", {"stream": False}, None),
        ("/v1/responses", {"stream": True}, None),
        ("/v1/embeddings", {"stream": True}, None),
    ],
)
def test_inject_include_usage(path: str, body: dict[str, object], injected: dict[str, object] | None) -> None:
    result = inject_include_usage(path, json.dumps(body).encode())
    if injected is None:
        assert result is None
    else:
        assert result is not None and json.loads(result)["stream_options"] == injected


def test_inject_leaves_non_json_alone() -> None:
    assert inject_include_usage("/v1/chat/completions", b'"stream": true, not json') is None
    assert inject_include_usage("/v1/chat/completions", b"\xff\xfe") is None


def test_injection_keeps_every_other_byte_as_the_client_wrote_it() -> None:
    body = b'{"stream": true, "stream_options" : {"x": 1.50, "include_usage": false} , "model":"caf\\u00e9"}'
    assert inject_include_usage("/v1/chat/completions", body) == (
        b'{"stream": true, "stream_options" : {"x":1.5,"include_usage":true} , "model":"caf\\u00e9"}'
    )


@pytest.mark.parametrize("options", [None, {"include_usage": False, "x": [1, {"y": "}"}]}])
def test_injection_into_a_100_mb_body_reads_two_keys_not_the_whole_tree(options: object) -> None:
    """Above ``LARGE_BODY`` the request is not parsed whole (that would take several times
    its size in memory): the top-level keys are found by a scan of its structure."""
    content = 'line of code with "quotes" and \\ escapes {not: json} ]\n' * 1_900_000
    fields: dict[str, object] = {"messages": [{"role": "user", "content": content}], "stream": True}
    if options is not None:
        fields["stream_options"] = options
    body = json.dumps(fields).encode()
    assert len(body) > 100_000_000
    result = inject_include_usage("/v1/chat/completions", body)
    assert result is not None and len(result) - len(body) < 64
    got = json.loads(result)
    assert got["stream_options"]["include_usage"] is True and got["messages"][0]["content"] == content


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    document=st.dictionaries(st.sampled_from(["model", "stream", "a", 'b"c', "stream_options"]), _JSON, max_size=5),
    indent=st.sampled_from([None, 0, 2]),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]),
)
def test_the_structure_scan_finds_what_json_loads_finds(document: dict, indent: int | None, separators) -> None:  # type: ignore[no-untyped-def,type-arg]
    from llm_usage.parsers.json_values import top_level_spans

    body = json.dumps(document, indent=indent, separators=separators).encode()
    wanted = frozenset((b"model", b"stream", b"stream_options"))
    spans = top_level_spans(body, wanted)
    assert spans is not None
    got = {key: json.loads(body[start:end]) for key, (start, end) in spans.items()}
    assert got == {key: value for key, value in document.items() if key.encode() in wanted}
    for broken in (body[:-1], body + b"x", b"[" + body + b"]", body.replace(b"{", b"", 1)):
        assert top_level_spans(broken, wanted) is None
