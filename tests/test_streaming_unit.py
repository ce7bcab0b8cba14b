"""StreamTee, the injected-usage filter, routes and rows: pure pieces, tested directly."""

from __future__ import annotations

import gzip
import json

import pytest

from llm_usage.decoding import make_decoder
from llm_usage.injection import UsageChunkFilter, inject_include_usage
from llm_usage.parsers import FORMATS
from llm_usage.pricing import Priced
from llm_usage.records import CallFacts, build_row, summary_line
from llm_usage.routes import RouteError, parse_route
from llm_usage.schema import ROW_COLUMNS
from llm_usage.streaming import StreamTee
from llm_usage.usage import Usage

SSE = (
    b'data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
    b'data: {"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)


class ExplodingParser:
    event_end = None  # no fast path: every chunk is fed to it
    settled = False

    @staticmethod
    def quiet(events: bytes) -> bool:
        raise AssertionError("not asked: event_end is None")

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


@pytest.mark.parametrize(
    ("target", "slug", "path", "query"),
    [
        ("/openai/v1/chat/completions", "openai", "/v1/chat/completions", ""),
        (
            "/gemini/v1beta/models/x:generateContent?key=k&alt=sse",
            "gemini",
            "/v1beta/models/x:generateContent",
            "?key=k&alt=sse",
        ),
        ("/ollama", "ollama", "/", ""),
        ("/openai@evil.example/x", "openai@evil.example", "/x", ""),  # an unknown slug: 404 later
    ],
)
def test_parse_route(target: str, slug: str, path: str, query: str) -> None:
    route = parse_route(target)
    assert (route.slug, route.path, route.query) == (slug, path, query)


@pytest.mark.parametrize(
    "target",
    [
        "/openai/../x",
        "/openai/./x",
        "/openai/%2E%2e/x",
        "/openai/a%2fb",
        "//h/x",
        "/openai/a%5cb",
        "/openai/a\\b",
        "/openai/%0a",
        "relative",
    ],
)
def test_parse_route_refuses_hostile_targets(target: str) -> None:
    with pytest.raises(RouteError):
        parse_route(target)


def test_row_has_every_column_and_a_readable_line() -> None:
    facts = CallFacts(
        provider="anthropic",
        endpoint="/v1/messages",
        method="POST",
        started_at=1_764_000_000.0,
        ended_at=1_764_000_001.5,
        streaming=True,
        status_code=200,
        error=None,
        first_byte_at=1_764_000_000.25,
        client="Cline",
    )
    usage = Usage(
        model="claude-sonnet-4-5",
        input_tokens=1512,
        output_tokens=6,
        cache_read_tokens=1100,
        cache_write_tokens=400,
        status="complete",
    )
    from decimal import Decimal

    row = build_row(facts, usage, Priced(Decimal("0.001941"), "genai-prices 0.2.3", Decimal("0.00267")), "complete")
    assert tuple(row) == ROW_COLUMNS
    assert row["timestamp"] == "2025-11-24T16:00:00.000+00:00"
    assert (row["duration_ms"], row["ttft_ms"], row["total_tokens"]) == (1500.0, 250.0, 1518)
    line = summary_line(row)
    assert line == (
        "anthropic  claude-sonnet-4-5  in 1,512 (cached 1,100) (cache write 400) out 6  $0.001941  "
        "1500 ms (first byte 250 ms)"
    )
    unpriced = summary_line({**row, "cost_usd": None, "error": "overloaded", "status_code": 529})
    assert "unpriced" in unpriced and "ERROR HTTP 529: overloaded" in unpriced
