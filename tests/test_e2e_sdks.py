"""The real SDKs, pointed at a real mitmdump with the addon, against the local mock.

Every wire format, streamed and not; each call must produce exactly one correct row.
"""

from __future__ import annotations

import time

import anthropic
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from tests.support.harness import Proxy
from tests.support.mock_upstream import MockUpstream

KEY = "sk-test-e2e-0123456789"


def last_upstream_request(upstream: MockUpstream) -> dict[str, object]:
    return upstream.requests[-1]


def test_openai_chat_non_streamed(proxy: Proxy, upstream: MockUpstream, new_rows) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello from the mock upstream!"
    [row] = new_rows(1)
    assert isinstance(row["timestamp"], float) and abs(row["timestamp"] - time.time()) < 60  # Unix seconds
    assert row["provider"] == "openai"
    assert row["model"] == "gpt-4o-mini-2024-07-18"  # the served model, not the requested one
    assert row["endpoint"] == "/v1/chat/completions"
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (53, 6, 59)
    assert row["cache_read_tokens"] == 0 and row["reasoning_tokens"] == 0
    assert row["streaming"] == 0 and row["status_code"] == 200 and row["error"] is None
    assert row["usage_status"] == "complete"
    assert row["client"] == "OpenAI Python SDK"
    # gpt-4o-mini: $0.15 / $0.60 per million tokens (genai-prices)
    assert row["cost_source"].startswith("genai-prices ")
    assert row["cost_usd"] == pytest.approx((53 * 0.15 + 6 * 0.60) / 1e6)
    assert last_upstream_request(upstream)["headers"]["authorization"] == f"Bearer {KEY}"


def test_a_usage_that_cannot_be_true_is_flagged_not_trusted(proxy: Proxy, new_rows) -> None:
    """A provider (or a gateway in between) reports a negative count, 1e30 tokens and a
    negative cost: the client gets the answer as sent, the row is 'invalid' and says which
    fields, nothing is priced from it, a warning is printed, and no total goes negative."""
    hostile = '{"prompt_tokens": -5, "completion_tokens": 1e30, "cost": -1000.5}'
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, default_headers={"X-Mock-Usage": hostile})
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.usage is not None and reply.usage.prompt_tokens == -5  # forwarded untouched
    [row] = new_rows(1)
    assert row["usage_status"] == "invalid" and row["cost_usd"] is None and row["cost_source"] is None
    assert "prompt_tokens = -5" in row["error"] and "completion_tokens = 1e+30" in row["error"]
    assert "cost = -1000.5" in row["error"]
    assert row["input_tokens"] is None or row["input_tokens"] >= 0
    assert proxy.printed("cannot be true, so it is not trusted or priced: prompt_tokens = -5")
    totals = proxy.query("SELECT min(cost_usd) AS low, min(input_tokens) AS fewest FROM requests")[0]
    assert (totals["low"] or 0) >= 0 and (totals["fewest"] or 0) >= 0


def test_openai_chat_streamed_gets_usage_injected_and_hidden(proxy: Proxy, upstream: MockUpstream, new_rows) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    assert all(chunk.usage is None for chunk in chunks)  # the client did not ask for usage
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the mock upstream!"
    sent = last_upstream_request(upstream)
    assert '"include_usage":true' in str(sent["body"])
    [row] = new_rows(1)
    assert row["streaming"] == 1 and row["usage_status"] == "complete"
    assert (row["input_tokens"], row["output_tokens"]) == (53, 6)
    assert row["ttft_ms"] is not None and 0 <= row["ttft_ms"] <= row["duration_ms"]


def test_openai_stream_with_client_usage_keeps_it(proxy: Proxy, new_rows) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 53
    [row] = new_rows(1)
    assert (row["input_tokens"], row["output_tokens"]) == (53, 6)


def test_client_view_of_injected_stream_is_byte_identical(proxy: Proxy, upstream: MockUpstream) -> None:
    body = {"model": "gpt-4o-mini", "messages": [], "stream": True}
    direct = httpx.post(f"{upstream.url}/v1/chat/completions", json=body).content
    through = httpx.post(f"{proxy.url}/openai/v1/chat/completions", json=body).content
    assert b'"usage"' not in direct
    assert through == direct


def test_injection_survives_gzip(proxy: Proxy, upstream: MockUpstream, new_rows) -> None:
    body = {"model": "gpt-4o-mini", "messages": [], "stream": True}
    direct = httpx.post(f"{upstream.url}/v1/chat/completions", json=body).content
    through = httpx.post(
        f"{proxy.url}/openai/v1/chat/completions", json=body, headers={"X-Mock-Encoding": "gzip"}
    ).content  # httpx decodes whatever arrives
    assert through == direct
    [row] = new_rows(1)
    assert row["input_tokens"] == 53 and row["usage_status"] == "complete"


def test_openai_legacy_completions_and_embeddings(proxy: Proxy, new_rows) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY)
    client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", stream=True))
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    legacy, legacy_stream, embed = new_rows(3)
    assert legacy["endpoint"] == "/v1/completions" and (legacy["input_tokens"], legacy["output_tokens"]) == (53, 6)
    assert legacy_stream["streaming"] == 1 and legacy_stream["input_tokens"] == 53
    assert embed["endpoint"] == "/v1/embeddings"
    assert (embed["input_tokens"], embed["output_tokens"]) == (8, 0)
    assert embed["cost_usd"] == pytest.approx(8 * 0.02 / 1e6)


def test_openai_responses_api(proxy: Proxy, new_rows) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY)
    client.responses.create(model="gpt-5", input="hi")
    events = list(client.responses.create(model="gpt-5", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    whole, streamed = new_rows(2)
    for row in (whole, streamed):
        assert row["model"] == "gpt-5-2025-08-07"
        assert (row["input_tokens"], row["output_tokens"]) == (1200, 70)
        assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (1024, 64)
        assert row["cost_usd"] is not None and row["cost_usd"] > 0  # never $0 for a streamed Responses call
        assert row["cache_savings_usd"] > 0
    assert streamed["streaming"] == 1 and streamed["usage_status"] == "complete"


def test_anthropic_messages(proxy: Proxy, upstream: MockUpstream, new_rows) -> None:
    client = anthropic.Anthropic(base_url=f"{proxy.url}/anthropic", api_key=KEY)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert stream.get_final_text() == "Hello from the mock upstream!"
    sent = last_upstream_request(upstream)["headers"]
    assert KEY in (sent.get("x-api-key"), sent.get("authorization", "").removeprefix("Bearer "))
    whole, streamed = new_rows(2)
    for row in (whole, streamed):
        assert row["model"] == "claude-sonnet-4-5-20250929"
        # input = 12 uncached + 400 cache write + 1100 cache read
        assert (row["input_tokens"], row["output_tokens"]) == (1512, 6)
        assert (row["cache_write_tokens"], row["cache_read_tokens"]) == (400, 1100)
        assert row["reasoning_tokens"] is None
        # claude-sonnet-4-5: $3 in, $15 out, $3.75 cache write, $0.30 cache read per million
        assert row["cost_usd"] == pytest.approx((12 * 3 + 400 * 3.75 + 1100 * 0.30 + 6 * 15) / 1e6)
    assert streamed["streaming"] == 1 and streamed["client"] == "Anthropic Python SDK"


def test_anthropic_format_on_an_openai_format_provider(proxy: Proxy, new_rows) -> None:
    """Moonshot (and Z.ai, MiniMax, Ollama) serve an Anthropic-compatible /v1/messages."""
    client = anthropic.Anthropic(base_url=f"{proxy.url}/moonshot/anthropic", api_key=KEY)
    client.messages.create(model="kimi-k2.5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    [row] = new_rows(1)
    assert row["provider"] == "moonshot" and row["endpoint"] == "/anthropic/v1/messages"
    assert (row["input_tokens"], row["cache_read_tokens"]) == (1512, 1100)


def test_gemini(proxy: Proxy, upstream: MockUpstream, new_rows) -> None:
    client = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=f"{proxy.url}/gemini"))
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert reply.text == "Hello from the mock upstream!"
    assert "".join(c.text or "" for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert last_upstream_request(upstream)["headers"]["x-goog-api-key"] == KEY
    whole, streamed = new_rows(2)
    for row in (whole, streamed):
        assert row["model"] == "gemini-2.5-flash"
        # output = candidates (6) + thoughts (20); input includes the 32 cached tokens
        assert (row["input_tokens"], row["output_tokens"]) == (40, 26)
        assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (32, 20)
        assert row["cost_source"].startswith("genai-prices")
    assert streamed["streaming"] == 1 and streamed["endpoint"].endswith(":streamGenerateContent")


def test_gemini_json_array_stream_with_query_key(proxy: Proxy, new_rows) -> None:
    url = f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?key={KEY}"
    with httpx.stream("POST", url, json={"contents": []}) as response:
        body = b"".join(response.iter_raw())
    assert body.startswith(b"[") and body.rstrip().endswith(b"]")
    [row] = new_rows(1)
    assert row["streaming"] == 1 and (row["input_tokens"], row["output_tokens"]) == (40, 26)
    assert row["endpoint"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"  # no query string


def test_ollama_native_and_openai_compatible(proxy: Proxy, new_rows) -> None:
    client = ollama.Client(host=f"{proxy.url}/ollama")
    client.chat(model="llama3", messages=[{"role": "user", "content": "hi"}])
    list(client.chat(model="llama3", messages=[{"role": "user", "content": "hi"}], stream=True))
    client.generate(model="llama3", prompt="hi")
    client.embed(model="nomic-embed-text", input="hi")
    oa = openai.OpenAI(base_url=f"{proxy.url}/ollama/v1", api_key="ollama")
    oa.chat.completions.create(model="qwen3:0.6b", messages=[{"role": "user", "content": "hi"}])
    chat, chat_stream, generate, embed, compat = new_rows(5)
    assert (chat["input_tokens"], chat["output_tokens"], chat["streaming"]) == (26, 6, 0)
    assert (chat_stream["input_tokens"], chat_stream["output_tokens"], chat_stream["streaming"]) == (26, 6, 1)
    assert generate["endpoint"] == "/api/generate" and generate["input_tokens"] == 26
    assert (embed["input_tokens"], embed["output_tokens"]) == (6, 0)
    assert compat["endpoint"] == "/v1/chat/completions" and compat["input_tokens"] == 53
    for row in (chat, chat_stream, generate, embed, compat):
        assert row["provider"] == "ollama"
        assert row["cost_usd"] == 0 and row["cost_source"] == "pricing.yaml"  # local: really free
        assert row["client"] in ("Ollama Python SDK", "OpenAI Python SDK")


def test_ollama_native_streams_when_stream_is_absent(proxy: Proxy, new_rows) -> None:
    httpx.post(f"{proxy.url}/ollama/api/chat", json={"model": "llama3", "messages": []})
    [row] = new_rows(1)
    assert row["streaming"] == 1 and row["usage_status"] == "complete" and row["output_tokens"] == 6


def test_upstream_error_is_a_row_with_the_providers_message(proxy: Proxy, new_rows) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[], extra_headers={"X-Mock-Status": "400"})
    claude = anthropic.Anthropic(base_url=f"{proxy.url}/anthropic", api_key=KEY, max_retries=0)
    with pytest.raises(anthropic.APIStatusError):
        claude.messages.create(
            model="claude-opus-4-6", max_tokens=5, messages=[], extra_headers={"X-Mock-Status": "529"}
        )
    oa_row, claude_row = new_rows(2)
    assert oa_row["status_code"] == 400 and oa_row["error"] == "mock error 400 for model gpt-4o-mini"
    assert oa_row["model"] == "gpt-4o-mini"  # the requested model
    assert oa_row["input_tokens"] is None and oa_row["cost_usd"] is None
    assert claude_row["status_code"] == 529 and "mock error 529" in claude_row["error"]


def test_a_request_that_owes_no_usage_is_not_a_failed_call(proxy: Proxy, new_rows) -> None:
    """Claude Code's pre-connect at start, as captured from it (tests/fixtures/clients/
    claude-anthropic.json): ``HEAD <base URL>``, answered 404 upstream."""
    summary = f"{proxy.url}/stats/summary?days=1"
    errors_before = httpx.get(summary).json()["totals"]["error_requests"]
    headers = {"User-Agent": "Bun/1.4.0", "Accept": "*/*"}
    assert httpx.head(f"{proxy.url}/anthropic", headers=headers).status_code == 404
    [row] = new_rows(1)
    assert (row["method"], row["endpoint"], row["status_code"]) == ("HEAD", "/", 404)
    assert row["usage_status"] == "none" and row["error"] is None and row["client"] == "Bun"
    totals = httpx.get(summary).json()["totals"]
    assert totals["error_requests"] == errors_before and totals["no_usage_requests"] >= 1
    assert proxy.printed("llm-usage: anthropic  HEAD /  HTTP 404  ") and proxy.printed("ms  owes no usage")


def test_unreachable_upstream_is_a_row(proxy: Proxy, new_rows) -> None:
    response = httpx.post(f"{proxy.url}/deadend/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    assert response.status_code == 502
    [row] = new_rows(1)
    assert row["provider"] == "deadend" and row["model"] == "gpt-4o-mini"
    assert row["status_code"] is None or row["status_code"] == 502
    assert row["error"] and "connect" in row["error"].lower()
    assert row["cost_usd"] is None


def test_unknown_provider_and_reserved_paths_are_not_forwarded(proxy: Proxy, upstream: MockUpstream) -> None:
    before = len(upstream.requests)
    response = httpx.get(f"{proxy.url}/nope/v1/models")
    assert response.status_code == 404
    payload = response.json()
    assert "nope" in payload["error"] and "openai" in payload["providers"] and "fx-openai" in payload["providers"]
    assert len(upstream.requests) == before


def test_each_call_prints_one_readable_line(proxy: Proxy, new_rows) -> None:
    httpx.post(f"{proxy.url}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    httpx.post(f"{proxy.url}/openai/v1/chat/completions", json={"model": "no-such-model", "messages": []})
    new_rows(2)
    output = proxy.output().splitlines()
    priced = [line for line in output if "llm-usage: openai  gpt-4o-mini-2024-07-18  in 53 out 6  $0.0000" in line]
    assert priced and priced[-1].endswith(" ms")
    assert any("llm-usage: openai  no-such-model-2024-07-18  in 53 out 6  unpriced" in line for line in output)
