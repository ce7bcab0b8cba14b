"""Table-driven parser tests over recorded (../shared/fixtures) and own (tests/fixtures) exchanges.

Each exchange's ``expected`` is the contract (CONTRACT.md): input includes cached tokens, output
includes reasoning, total = input + output. Streams must give the same ``Usage`` however the
bytes are cut: at any byte, in many pieces, with other line endings, and after content decoding.
"""

from __future__ import annotations

import gzip
import itertools
import json
import random
import zlib
from collections.abc import Callable, Iterator, Sequence

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_usage.parsers import FORMATS, is_streamed, parse_whole, wire_format
from llm_usage.parsers.usage import Usage
from llm_usage.proxy.decoding import make_decoder
from tests.support.fixture_cases import OWN_CASES, TOKEN_FIELDS, Case, assert_matches_expected, params

# ---------------------------------------------------------------------------------------------
# Whole bodies against `expected`


@pytest.mark.parametrize("case", params(streamed=False))
def test_json_response_matches_expected(case: Case) -> None:
    assert_matches_expected(case, case.parse())


@pytest.mark.parametrize("case", params(streamed=True))
def test_stream_read_whole_matches_expected(case: Case) -> None:
    assert_matches_expected(case, case.parse())


@pytest.mark.parametrize("case", params())
def test_parse_whole_agrees_with_the_parser(case: Case) -> None:
    """`parse_whole` (a body read at once, chosen by content type) gives the same numbers."""
    usage = parse_whole(case.fmt, case.body, case.content_type)
    expected = case.expected
    assert {f: getattr(usage, f) for f in TOKEN_FIELDS} == {f: expected[f] for f in TOKEN_FIELDS}
    assert case.row_model(usage) == expected["model"]


def test_own_fixtures_cover_every_format_and_framing() -> None:
    """A clone without ../shared still exercises every parser and every stream framing."""
    seen = {(case.fmt.name, case.framing) for case in OWN_CASES}
    for name in FORMATS:
        assert (name, "json") in seen, name
    assert {"sse", "ndjson", "json-array"} <= {framing for _, framing in seen}
    assert {("openai", "sse"), ("anthropic", "sse"), ("gemini", "sse"), ("gemini", "json-array")} <= seen
    assert ("ollama", "ndjson") in seen


# ---------------------------------------------------------------------------------------------
# Streams cut anywhere

STREAMED = params(streamed=True)
LINE_FRAMED = params(streamed=True, framing=("sse", "ndjson"))
ALL_POSITIONS_UP_TO = 4096
"""Bodies up to this size are split at every byte; longer ones densely around every line break,
structural byte and multibyte character, plus a stride."""


def split_positions(body: bytes, framing: str, all_up_to: int = ALL_POSITIONS_UP_TO) -> list[int]:
    n = len(body)
    if n <= all_up_to:
        return list(range(n + 1))
    marks = set(range(0, n + 1, max(1, n // 256))) | {0, 1, 2, n - 2, n - 1, n}
    special = b"\r\n{}[]" if framing == "json-array" else b"\r\n"
    for i, byte in enumerate(body):
        if byte in special or byte >= 0x80:
            marks.update(range(max(0, i - 1), min(n, i + 2) + 1))
    return sorted(marks)


def pieces(body: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def with_line_ending(case: Case, eol: str) -> bytes:
    text = str(case.data["response"]["body_text"]).replace("\r\n", "\n")
    return text.replace("\n", eol).encode()


@pytest.mark.parametrize("case", STREAMED)
def test_split_in_two_at_every_position(case: Case) -> None:
    body = case.body
    whole = case.feed([body])
    for i in split_positions(body, case.framing):
        assert case.feed([body[:i], body[i:]]) == whole, f"split at byte {i}"


@pytest.mark.parametrize("eol", ["\r\n", "\r"], ids=["crlf", "cr"])
@pytest.mark.parametrize("case", LINE_FRAMED)
def test_split_in_two_with_other_line_endings(case: Case, eol: str) -> None:
    """SSE and NDJSON lines may end in \\r\\n or \\r: a cut between \\r and \\n must not double a line."""
    whole = case.feed([case.body])
    body = with_line_ending(case, eol)
    assert eol.encode() in body
    assert case.feed([body]) == whole
    # the line breaks are what changed: every byte of small bodies, every line break of longer ones
    for i in split_positions(body, case.framing, all_up_to=1024):
        assert case.feed([body[:i], body[i:]]) == whole, f"split at byte {i}"


@pytest.mark.parametrize("case", STREAMED)
def test_byte_by_byte(case: Case) -> None:
    body = case.body
    assert case.feed(body[i : i + 1] for i in range(len(body))) == case.feed([body])


@pytest.mark.parametrize("case", STREAMED)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_random_multiway_splits(case: Case, data: st.DataObject) -> None:
    body = case.body
    cuts = data.draw(st.lists(st.integers(0, len(body)), min_size=1, max_size=40), label="cuts")
    assert case.feed(pieces(body, cuts)) == case.feed([body])


@pytest.mark.parametrize("case", LINE_FRAMED)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_random_multiway_splits_crlf(case: Case, data: st.DataObject) -> None:
    body = with_line_ending(case, "\r\n")
    cuts = data.draw(st.lists(st.integers(0, len(body)), min_size=1, max_size=40), label="cuts")
    assert case.feed(pieces(body, cuts)) == case.feed([case.body])


# ---------------------------------------------------------------------------------------------
# Content-encoded streams: the parser's copy is decoded chunk by chunk

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # RFC 9110 "deflate" = zlib-wrapped
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


def random_chunkings(data: bytes, seed: str) -> Iterator[list[bytes]]:
    rng = random.Random(seed)
    yield [data[i : i + 1] for i in range(len(data))]
    for top in (7, 64, max(2, len(data) // 3)):
        for _ in range(2):
            cuts, pos = [], 0
            while True:
                pos += rng.randint(1, top)
                if pos >= len(data):
                    break
                cuts.append(pos)
            yield pieces(data, cuts)


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
@pytest.mark.parametrize("case", STREAMED)
def test_encoded_stream_decoded_chunk_by_chunk(case: Case, encoding: str) -> None:
    whole = case.feed([case.body])
    encoded = ENCODERS[encoding](case.body)
    for chunks in random_chunkings(encoded, f"{case.id}/{encoding}"):
        decode = make_decoder(encoding)
        assert decode is not None
        parser = case.stream_parser()
        for chunk in chunks:
            parser.feed(decode(chunk))
        assert parser.finish() == whole, f"{len(chunks)} chunks"


# ---------------------------------------------------------------------------------------------
# Cuts inside a UTF-8 character

UTF8_CASES = [case for case in OWN_CASES if case.streamed and any(b >= 0x80 for b in case.body)]
UTF8_STREAMS = [pytest.param(case, id=case.id) for case in UTF8_CASES]


def inside_a_character(body: bytes) -> list[int]:
    """Positions between two bytes of one multibyte character (before a continuation byte)."""
    return [i for i in range(1, len(body)) if 0x80 <= body[i] < 0xC0]


def test_own_streams_include_multibyte_text_in_every_framing() -> None:
    assert {"sse", "ndjson", "json-array"} <= {case.framing for case in UTF8_CASES}
    four_byte = [case for case in UTF8_CASES if any(b >= 0xF0 for b in case.body)]
    assert four_byte, "no emoji (4-byte UTF-8) in the own stream fixtures"


@pytest.mark.parametrize("case", UTF8_STREAMS)
def test_split_inside_a_utf8_character(case: Case) -> None:
    body = case.body
    positions = inside_a_character(body)
    assert positions
    for i in positions:
        usage = case.feed([body[:i], body[i:]])
        assert_matches_expected(case, usage)
    # every character cut at once: all its bytes in separate chunks
    assert_matches_expected(case, case.feed(pieces(body, positions)))


# ---------------------------------------------------------------------------------------------
# Streams that end early: partial / missing / complete


def own(name: str) -> Case:
    return next(case for case in OWN_CASES if case.name == name)


def test_anthropic_stream_cut_after_message_start_is_partial() -> None:
    usage = own("anthropic-messages-stream-cut.json").parse()
    assert usage.status == "partial"
    assert usage.input_tokens == 1837
    assert usage.model == "claude-sonnet-4-5-20250929"


def test_openai_stream_without_usage_is_missing() -> None:
    usage = own("openai-chat-stream-no-usage.json").parse()
    assert usage.status == "missing"
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (None, None, None)
    assert usage.model == "gpt-4o-2024-08-06"


def event_prefixes(body: bytes, separator: bytes) -> Iterator[tuple[int, bytes]]:
    """(number of whole events, body up to and including them) for every event boundary."""
    count, pos = 0, 0
    while True:
        yield count, body[:pos]
        nxt = body.find(separator, pos)
        if nxt < 0:
            return
        pos = nxt + len(separator)
        count += 1


@pytest.mark.parametrize(
    ("name", "separator", "start_event", "final_event", "partial_input"),
    [
        # Anthropic: counts known from message_start (partial), final at message_delta.
        ("anthropic-messages-stream-legacy.json", b"\n\n", "message_start", "message_delta", 2073),
        ("anthropic-messages-stream-thinking.json", b"\n\n", "message_start", "message_delta", 1946),
        # OpenAI / Ollama: nothing until the one usage-bearing chunk.
        ("openai-chat-stream-include-usage.json", b"\n\n", None, '"usage":{', None),
        ("deepseek-chat-stream-usage-then-null.json", b"\n\n", None, '"usage":{', None),
        ("openai-responses-stream.json", b"\n\n", None, "response.completed", None),
        ("ollama-chat-stream.json", b"\n", None, '"done":true', None),
        ("ollama-generate-stream.json", b"\n", None, '"done":true', None),
    ],
)
def test_stream_prefixes_report_how_far_they_got(
    name: str, separator: bytes, start_event: str | None, final_event: str, partial_input: int | None
) -> None:
    """A stream cut after any whole event: missing before any usage, partial once the input is known
    (Anthropic), complete once the final usage arrived -- and then equal to the whole stream's."""
    case = own(name)
    whole = case.parse()
    assert whole.status == "complete"
    for _count, prefix in event_prefixes(case.body, separator):
        usage = case.feed([prefix])
        if final_event.encode() in prefix:
            assert usage == whole
        elif start_event is not None and start_event.encode() in prefix:
            assert usage.status == "partial"
            assert usage.input_tokens == partial_input
            assert usage.cache_read_tokens == whole.cache_read_tokens
            assert usage.cache_write_tokens == whole.cache_write_tokens
        else:
            assert usage.status == "missing"
            assert usage.input_tokens is None and usage.output_tokens is None


def test_an_empty_stream_is_missing() -> None:
    for name, fmt in FORMATS.items():
        for ct in ("text/event-stream", "application/x-ndjson", "application/json"):
            usage = fmt.stream_parser(ct).finish()
            assert usage == Usage(), (name, ct)


# ---------------------------------------------------------------------------------------------
# Which parser, and is it a stream?


@pytest.mark.parametrize(
    ("default", "path", "expected"),
    [
        ("openai", "/v1/messages", "anthropic"),  # Moonshot/Z.ai/MiniMax Anthropic-compatible endpoint
        ("openai", "/anthropic/v1/messages", "anthropic"),
        ("openai", "/api/anthropic/v1/messages", "anthropic"),
        ("ollama", "/v1/messages", "anthropic"),
        ("anthropic", "/v1/messages", "anthropic"),
        (
            "anthropic",
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-x@1:rawPredict",
            "anthropic",
        ),
        (
            "gemini",
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-x@1:streamRawPredict",
            "anthropic",
        ),
        ("openai", "/v1beta/models/x:generateContent", "gemini"),
        ("gemini", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "gemini"),
        (
            "gemini",
            "/v1beta1/projects/p/locations/global/publishers/google/models/gemini-2.0-flash:generateContent",
            "gemini",
        ),
        ("openai", "/api/chat", "ollama"),
        ("ollama", "/api/chat", "ollama"),
        ("ollama", "/api/generate", "ollama"),
        ("ollama", "/api/embed", "ollama"),
        ("ollama", "/api/embeddings", "ollama"),
        ("openai", "/api/v1/chat/completions", "openai"),  # OpenRouter
        ("openai", "/api/v1/responses", "openai"),
        ("openai", "/api/paas/v4/chat/completions", "openai"),  # Z.ai
        ("ollama", "/v1/chat/completions", "openai"),
        ("ollama", "/v1/embeddings", "openai"),
        ("gemini", "/v1beta/openai/chat/completions", "openai"),
        ("openai", "/openai/deployments/gpt-4o/chat/completions", "openai"),  # Azure
        ("openai", "/v1/completions", "openai"),
        ("openai", "/v1/responses", "openai"),
        ("openai", "/chat/completions", "openai"),  # DeepSeek, no /v1
        # unknown paths: the provider's own format
        ("openai", "/v1/models", "openai"),
        ("anthropic", "/v1/models", "anthropic"),
        ("gemini", "/v1beta/models", "gemini"),
        ("ollama", "/api/tags", "ollama"),
        ("anthropic", "/v1/messages/count_tokens", "anthropic"),
        ("ollama", "/", "ollama"),
    ],
)
def test_wire_format(default: str, path: str, expected: str) -> None:
    fmt = wire_format(default, path)
    assert fmt.name == expected
    assert fmt is FORMATS[expected]


@pytest.mark.parametrize(
    ("content_type", "path", "expected"),
    [
        ("text/event-stream", "/v1/chat/completions", True),
        ("text/event-stream; charset=utf-8", "/v1/messages", True),
        ("text/event-stream;charset=UTF-8", "/api/paas/v4/chat/completions", True),
        ("Text/Event-Stream", "/v1/responses", True),
        ("application/x-ndjson", "/api/chat", True),
        ("application/x-ndjson; charset=utf-8", "/api/generate", True),
        ("application/json; charset=UTF-8", "/v1beta/models/gemini-2.0-flash:streamGenerateContent", True),
        ("application/json", "/v1beta1/projects/p/locations/l/publishers/google/models/m:streamGenerateContent", True),
        ("text/event-stream", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", True),
        ("application/json", "/v1beta/models/gemini-2.5-flash:generateContent", False),
        ("application/json", "/v1/chat/completions", False),
        ("application/json; charset=utf-8", "/api/chat", False),  # Ollama with stream: false
        ("text/html", "/v1beta/models/gemini-2.0-flash:streamGenerateContent", False),  # an HTML error page
        ("application/octet-stream", "/responses", False),
        ("", "/api/chat", False),
        ("", "/v1/chat/completions", False),
    ],
)
def test_is_streamed(content_type: str, path: str, expected: bool) -> None:
    assert is_streamed(content_type, path) is expected


@pytest.mark.parametrize(
    ("fmt", "path", "body", "expected"),
    [
        ("openai", "/v1/chat/completions", {"model": "gpt-4o"}, "gpt-4o"),
        ("openai", "/v1/chat/completions", {}, None),
        ("openai", "/v1/chat/completions", {"model": ""}, None),
        ("anthropic", "/v1/messages", {"model": "claude-opus-4-1"}, "claude-opus-4-1"),
        (
            "anthropic",
            "/v1/projects/p/locations/l/publishers/anthropic/models/claude-3-7-sonnet@20250219:rawPredict",
            {"anthropic_version": "vertex-2023-10-16"},
            "claude-3-7-sonnet@20250219",
        ),
        ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", {}, "gemini-2.5-flash"),
        (
            "gemini",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            {"model": "models/other"},
            "gemini-2.5-flash",
        ),
        ("gemini", "/v1beta/cachedContents", {"model": "models/gemini-2.5-pro"}, "gemini-2.5-pro"),
        ("ollama", "/api/chat", {"model": "llama3.2:3b"}, "llama3.2:3b"),
    ],
)
def test_requested_model(fmt: str, path: str, body: dict[str, object], expected: str | None) -> None:
    assert FORMATS[fmt].requested_model(path, body) == expected


_CROSS_CHECKED = [c for c in OWN_CASES if "details" in c.expected and not c.streamed]


@pytest.mark.parametrize("case", _CROSS_CHECKED, ids=lambda c: c.id)
def test_billed_dimensions_agree_with_genai_prices_extract_usage(case: Case) -> None:
    """genai-prices reads the same responses for its own use (``extract_usage``): where it
    reads a dimension, our parser must read the same count. (It does not count the
    Responses API's tool-call items; those are ours alone.)"""
    import json

    import genai_prices

    provider = {"anthropic": "anthropic", "openai": "openai", "gemini": "google"}[case.data["provider_format"]]
    flavor = "responses" if case.path.endswith("/responses") else "chat" if provider == "openai" else "default"
    theirs = genai_prices.extract_usage(json.loads(case.body), provider_id=provider, api_flavor=flavor).usage
    ours = case.parse()
    for key, value in theirs._reported_values().items():
        if key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            assert getattr(ours, key) == value, key
        elif "_text_" not in key and "reasoning" not in key:  # text is the default price; reasoning is output
            assert dict(ours.details).get(key) == value, key


def test_odd_json_types_in_gemini_details_lose_nothing() -> None:
    from llm_usage.parsers import gemini

    meta = {"promptTokenCount": 10, "candidatesTokenCount": 2, "promptTokensDetails": 5,
            "candidatesTokensDetails": [7, {"modality": 3}], "serviceTier": ["flex"]}  # fmt: skip
    body = json.dumps({"usageMetadata": meta, "modelVersion": "g"}).encode()
    usage = gemini.parse_response(body)
    assert (usage.input_tokens, usage.output_tokens, usage.details, usage.service_tier) == (10, 2, (), None)


def test_a_negative_provider_cost_is_not_trusted() -> None:
    from llm_usage.parsers import openai

    body = json.dumps({"model": "m", "usage": {"prompt_tokens": 10, "completion_tokens": 2, "cost": -1000.5}}).encode()
    usage = openai.parse_response(body)
    assert usage.provider_cost_usd is None and usage.input_tokens == 10
    assert usage.implausible == ("cost = -1000.5",)  # the row is 'invalid' and not priced (test_accounting)


IMPLAUSIBLE = [
    ("openai", {"model": "m", "usage": {"prompt_tokens": 10, "completion_tokens": -2}}, "completion_tokens = -2"),
    ("openai", {"model": "m", "usage": {"input_tokens": 2**70, "output_tokens": 1}},
     "input_tokens = 1180591620717411303424"),
    ("openai", {"model": "m", "usage": {"prompt_tokens": "12", "completion_tokens": 1}}, 'prompt_tokens = "12"'),
    ("openai", {"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                        "prompt_tokens_details": {"cached_tokens": 0.5}}},
     "prompt_tokens_details.cached_tokens = 0.5"),
    ("anthropic", {"model": "c", "usage": {"input_tokens": 5, "output_tokens": 1e30}}, "output_tokens = 1e+30"),
    ("anthropic", {"model": "c", "usage": {"input_tokens": 5, "output_tokens": 1,
                                           "cache_read_input_tokens": -100}}, "cache_read_input_tokens = -100"),
    ("gemini", {"modelVersion": "g", "usageMetadata": {"promptTokenCount": -1, "candidatesTokenCount": 3}},
     "promptTokenCount = -1"),
    ("gemini", {"modelVersion": "g", "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 3,
                "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": -7}]}},
     "promptTokensDetails.0.tokenCount = -7"),
    ("ollama", {"model": "l", "done": True, "prompt_eval_count": -3, "eval_count": 4}, "prompt_eval_count = -3"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "document", "problem"), IMPLAUSIBLE)
def test_counts_that_cannot_be_true_are_named_not_taken(name: str, document: dict, problem: str) -> None:  # type: ignore[type-arg]
    from llm_usage.parsers import FORMATS

    usage = FORMATS[name].parse_response(json.dumps(document).encode())
    assert problem in usage.implausible
    counts = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.reasoning_tokens)
    assert all(n is None or 0 <= n < 10**9 for n in counts)


def test_plausible_usage_has_nothing_implausible() -> None:
    from llm_usage.parsers import FORMATS

    body = {"model": "m", "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0, "is_byok": False,
                                    "prompt_tokens_details": {"cached_tokens": None}}}  # fmt: skip
    assert FORMATS["openai"].parse_response(json.dumps(body).encode()).implausible == ()
