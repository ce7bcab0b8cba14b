"""Streams through a real mitmdump: encodings, cut-short streams, recorded traffic replayed."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.fixture_cases import TOKEN_FIELDS
from tests.support.harness import Proxy
from tests.support.mock_upstream import MockUpstream

ANTHROPIC_BODY = {"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": True, "messages": []}


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "zstd"])
def test_encoded_stream_reaches_client_untouched_and_is_parsed(
    proxy: Proxy, upstream: MockUpstream, new_rows, encoding: str
) -> None:
    headers = {"X-Mock-Encoding": encoding}
    url_path = "/v1/messages"
    with httpx.stream("POST", f"{upstream.url}{url_path}", json=ANTHROPIC_BODY, headers=headers) as direct:
        direct_raw = b"".join(direct.iter_raw())
    with httpx.stream("POST", f"{proxy.url}/anthropic{url_path}", json=ANTHROPIC_BODY, headers=headers) as through:
        assert through.headers["content-encoding"] == encoding
        through_raw = b"".join(through.iter_raw())
    assert through_raw == direct_raw  # still encoded, byte for byte
    [row] = new_rows(1)
    assert row["streaming"] == 1 and row["usage_status"] == "complete"
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (1512, 6, 1100)


LONG = 400
CHAT = {"model": "gpt-4o-mini", "messages": [], "stream": True}


@pytest.mark.parametrize(
    ("upstream_path", "slug", "body", "output_tokens"),
    [
        ("/v1/chat/completions", "openai", CHAT, LONG),  # the proxy injects include_usage
        ("/v1/chat/completions", "openai", {**CHAT, "stream_options": {"include_usage": True}}, LONG),
        ("/v1/responses", "openai", {"model": "gpt-5", "input": "hi", "stream": True}, 64 + LONG),
        ("/v1/messages", "anthropic", ANTHROPIC_BODY, LONG),
        ("/api/chat", "ollama", {"model": "llama3.2", "messages": [], "stream": True}, LONG),
    ],
    ids=["openai-injected", "openai-asked", "openai-responses", "anthropic", "ollama"],
)
def test_long_stream_reaches_client_unchanged_and_is_counted(
    proxy: Proxy, upstream: MockUpstream, new_rows, upstream_path: str, slug: str, body: dict, output_tokens: int
) -> None:
    """Hundreds of events, one per chunk, through the real proxy: past the first few, the
    tee's fast path carries them (tests/test_quiet_path.py shows it is taken); nothing the
    client receives or the row counts may differ."""
    headers = {"X-Mock-Events": str(LONG)}
    direct = httpx.post(f"{upstream.url}{upstream_path}", json=body, headers=headers).content
    through = httpx.post(f"{proxy.url}/{slug}{upstream_path}", json=body, headers=headers).content
    assert through == direct
    [row] = new_rows(1)
    assert row["streaming"] == 1 and row["usage_status"] == "complete" and row["error"] is None
    assert row["output_tokens"] == output_tokens and row["input_tokens"] > 0


def _raw_request(port: int, path: str, body: dict[str, object], headers: dict[str, str]) -> socket.socket:
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(payload)}\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.encode() + payload)
    return sock


def test_client_disconnect_mid_stream_logs_a_partial_row(proxy: Proxy, new_rows) -> None:
    sock = _raw_request(
        proxy.port, "/anthropic/v1/messages", ANTHROPIC_BODY, {"X-Mock-Pace-Ms": "200", "X-Mock-Events": "30"}
    )
    received = b""
    while b"content_block_delta" not in received:
        received += sock.recv(65536)
    sock.close()  # the client goes away with the stream half done
    [row] = new_rows(1)
    assert row["streaming"] == 1 and row["usage_status"] == "partial"
    assert row["input_tokens"] == 1512  # known from message_start
    assert row["cache_read_tokens"] == 1100
    assert row["error"]
    assert row["cost_usd"] is not None  # the spend that did happen is counted


def _read_cut_stream(url: str, body: dict[str, object], headers: dict[str, str]) -> None:
    """Read a stream the upstream resets part-way: the client sees the cut as an error."""
    with httpx.stream("POST", url, json=body, headers=headers) as response:
        with pytest.raises(httpx.HTTPError):
            b"".join(response.iter_raw())


def test_upstream_reset_mid_stream_logs_a_partial_row(proxy: Proxy, new_rows) -> None:
    _read_cut_stream(f"{proxy.url}/anthropic/v1/messages", ANTHROPIC_BODY, {"X-Mock-Cut-After": "4"})
    [row] = new_rows(1)
    assert row["usage_status"] == "partial" and row["input_tokens"] == 1512
    assert row["error"]


def test_openai_stream_cut_before_usage_is_partial_with_no_counts(proxy: Proxy, new_rows) -> None:
    body = {"model": "gpt-4o-mini", "messages": [], "stream": True}
    _read_cut_stream(f"{proxy.url}/openai/v1/chat/completions", body, {"X-Mock-Cut-After": "3"})
    [row] = new_rows(1)
    assert row["usage_status"] == "partial" and row["input_tokens"] is None and row["cost_usd"] is None
    assert row["model"] == "gpt-4o-mini-2024-07-18"


def test_stream_without_usage_is_missing_not_zero(proxy: Proxy, new_rows) -> None:
    """A provider where injection is off (Gemini's OpenAI-compatible API) and no usage comes."""
    body = {"model": "gemini-2.5-flash", "messages": [], "stream": True}
    httpx.post(f"{proxy.url}/gemini/v1beta/openai/chat/completions", json=body)
    [row] = new_rows(1)
    assert row["usage_status"] == "missing"
    assert row["input_tokens"] is None and row["cost_usd"] is None and row["error"] is None


def test_paced_stream_arrives_paced(proxy: Proxy) -> None:
    """Chunks are forwarded as they arrive, not buffered to the end."""
    arrivals = []
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{proxy.url}/anthropic/v1/messages",
        json=ANTHROPIC_BODY,
        headers={"X-Mock-Pace-Ms": "100", "X-Mock-Events": "4"},
    ) as response:
        for _ in response.iter_raw():
            arrivals.append(time.monotonic() - started)
    assert arrivals[0] < 0.5 and arrivals[-1] > 0.5


def test_recorded_traffic_replayed_through_the_proxy(proxy: Proxy, new_rows, shared_fixtures: Path) -> None:
    """Every recorded exchange, sent by the client as recorded and answered by the mock as
    the provider answered, must produce the row the fixture expects. Sent one after the
    other, so the rows come in the same order."""
    cases = [json.loads(path.read_text()) | {"name": path.stem} for path in sorted(shared_fixtures.glob("*.json"))]
    client = httpx.Client(timeout=30)
    for case in cases:
        request = case["request"]
        url = f"{proxy.url}/fx-{case['provider_format']}{request['path']}"
        if request.get("query"):
            url += "?" + request["query"]
        body = request.get("body")
        content = json.dumps(body).encode() if isinstance(body, (dict, list)) else (body or "").encode()
        headers = {"content-type": "application/json", "X-Mock-Fixture": case["name"]}
        with client.stream(request["method"], url, content=content, headers=headers) as response:
            b"".join(response.iter_raw())
            assert response.status_code == case["response"]["status"], case["name"]
    client.close()
    wrong = []
    for case, row in zip(cases, new_rows(len(cases)), strict=True):
        expected = case["expected"]
        got = {key: row[key] for key in ("model", *TOKEN_FIELDS)}
        want = {key: expected[key] for key in ("model", *TOKEN_FIELDS)}
        got["streaming"], want["streaming"] = bool(row["streaming"]), expected["streaming"]
        got["error"] = bool(row["error"]) and (row["status_code"] or 0) >= 400
        want["error"] = bool(expected.get("error"))
        if expected["cost"] is not None:
            got["cost"] = (row["cost_source"], round(row["cost_usd"], 12))
            want["cost"] = ("provider", round(expected["cost"], 12))
        if got != want:
            wrong.append(f"{case['name']}: {got} != {want}")
    assert not wrong, "\n".join(wrong)


def test_gemini_stream_cut_short_is_partial_not_complete(proxy: Proxy, new_rows) -> None:
    """Gemini repeats a running total in every chunk: a cut stream's last total is not final."""
    url = f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    _read_cut_stream(url, {}, {"X-Mock-Cut-After": "3"})
    [row] = new_rows(1)
    assert row["usage_status"] == "partial" and row["input_tokens"] == 40 and row["error"]
