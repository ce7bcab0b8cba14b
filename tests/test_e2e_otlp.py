"""OpenTelemetry export through a real mitmdump: the real SDKs call the mock upstream, and a
local OTLP/HTTP receiver decodes what a collector would get -- the GenAI metrics and spans,
equal to the rows -- and never a credential. A collector that is down, or that never
answers, costs no call any time and no row."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from llm_usage.telemetry import semconv
from tests.support.harness import Proxy, free_port, providers_file
from tests.support.mock_upstream import MockUpstream
from tests.support.otlp_receiver import OtlpReceiver, Silent

KEY = "sk-proj-otlp-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-api03-otlp-0123456789"
GEMINI_KEY = "AIzaOtlpQueryKey0123456789"
COLLECTOR_TOKEN = "collector-token-0123"
CHAT = [{"role": "user", "content": "hi"}]
DEADEND = 'deadend: {base_url: "http://127.0.0.1:9", format: openai}\n'


def test_each_call_reaches_the_collector_as_genai_metrics_and_spans(tmp_path: Path, upstream: MockUpstream) -> None:
    receiver = OtlpReceiver()
    providers = providers_file(tmp_path, upstream.url, DEADEND)
    proxy = Proxy(
        tmp_path,
        ["--set", f"llm_usage_providers={providers}", "--set", f"llm_usage_otlp_endpoint={receiver.url}",
         "--set", "llm_usage_otlp_spans=true"],
        env={"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {COLLECTOR_TOKEN}"},
    )  # fmt: skip
    try:
        openai.OpenAI(
            base_url=f"{proxy.url}/openai/v1", api_key=KEY,
            default_headers={"x-session-id": "sess-otlp-1", "X-LLM-Usage-Project": "blog"},
        ).chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # fmt: skip
        with anthropic.Anthropic(
            base_url=f"{proxy.url}/anthropic", api_key=ANTHROPIC_KEY,
            default_headers={"X-Claude-Code-Session-Id": "5d2962ec-otlp"},
        ).messages.stream(model="claude-sonnet-4-5", max_tokens=10, messages=CHAT) as stream:  # fmt: skip
            stream.until_done()
        httpx.post(f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent?key={GEMINI_KEY}",
                   json={"contents": [{"parts": [{"text": "hi"}]}]})  # fmt: skip
        openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY).embeddings.create(
            model="text-embedding-3-small", input="hi"
        )
        limited = httpx.post(f"{proxy.url}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": CHAT},
                             headers={"Authorization": f"Bearer {KEY}", "X-Mock-Status": "429"})  # fmt: skip
        assert limited.status_code == 429
        dead = httpx.post(f"{proxy.url}/deadend/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": CHAT},
                          headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
        assert dead.status_code == 502
        httpx.get(f"{proxy.url}/openai/v1/models", headers={"Authorization": f"Bearer {KEY}"})  # owes no usage
        rows = proxy.rows_after(0, 7)
    finally:
        assert proxy.stop() == 0  # flushes the last metrics and spans to the collector
        receiver.close()
    calls = [r for r in rows if r["usage_status"] != "none"]
    assert len(calls) == 6
    by_endpoint = {(r["provider"], r["endpoint"], r["status_code"]): r for r in calls}

    # What arrived: protobuf bodies on the two OTLP/HTTP paths, with the collector's header.
    assert {r.path for r in receiver.received} == {"/v1/metrics", "/v1/traces"}
    assert all(r.headers["authorization"] == f"Bearer {COLLECTOR_TOKEN}" for r in receiver.received)
    assert all(r.headers["content-type"] == "application/x-protobuf" for r in receiver.received)
    everything = b"".join(r.body + repr(r.headers).encode() for r in receiver.received)
    for secret in (KEY, ANTHROPIC_KEY, GEMINI_KEY, "?key=", *(str(r["key_id"]) for r in rows if r["key_id"])):
        assert secret.encode() not in everything, secret
    for row in rows:
        assert not row["error"] or row["error"].encode() not in everything

    # Metrics: names, units, the semconv's buckets, and sums equal to the rows'.
    points = receiver.metrics()
    assert {(p.metric, p.unit) for p in points} == {
        ("gen_ai.client.token.usage", "{token}"),
        ("gen_ai.client.operation.duration", "s"),
        ("gen_ai.client.operation.time_to_first_chunk", "s"),
        ("llm_usage.cost", "USD"),
    }
    assert points[0].resource["service.name"] == "llm-usage"
    tokens = receiver.last_points(semconv.TOKEN_USAGE)
    assert {p.bounds for p in tokens} == {tuple(float(b) for b in semconv.TOKEN_BUCKETS)}
    for provider in ("openai", "anthropic", "gemini"):
        name = semconv.provider_name(provider)
        for kind, column in (("input", "input_tokens"), ("output", "output_tokens")):
            of = [p for p in tokens if p.attributes["gen_ai.provider.name"] == name]
            exported = sum(p.sum for p in of if p.attributes["gen_ai.token.type"] == kind)
            assert exported == sum(r[column] or 0 for r in calls if r["provider"] == provider), (provider, kind)
    embedding_row = by_endpoint[("openai", "/v1/embeddings", 200)]
    embedding = {p.attributes["gen_ai.token.type"]: p.sum for p in tokens
                 if p.attributes["gen_ai.operation.name"] == "embeddings"}  # fmt: skip
    assert embedding == {"input": embedding_row["input_tokens"], "output": embedding_row["output_tokens"]}
    durations = receiver.last_points(semconv.OPERATION_DURATION)
    assert sum(p.count for p in durations) == len(calls)  # the model list is not an operation
    assert {p.bounds for p in durations} == {semconv.DURATION_BUCKETS}
    assert sorted(p.attributes.get("error.type", "") for p in durations) == ["", "", "", "", "429", "no_response"]
    assert sum(p.sum for p in durations) == pytest.approx(sum(r["duration_ms"] for r in calls) / 1000)
    (first_chunk,) = receiver.last_points(semconv.TIME_TO_FIRST_CHUNK)
    assert first_chunk.attributes["gen_ai.provider.name"] == "anthropic" and first_chunk.count == 1
    cost = sum(p.sum for p in receiver.last_points(semconv.COST))
    assert cost == pytest.approx(sum(r["cost_usd"] or 0 for r in calls)) and cost > 0
    for point in points:
        assert not {"gen_ai.conversation.id", "llm_usage.cost_usd"} & set(point.attributes)

    # Spans: one per call, CLIENT, timed as the row, with the semconv's attributes.
    spans = {attributes["gen_ai.provider.name"] + " " + span.name: (span, attributes)
             for span, attributes, _ in receiver.spans()}  # fmt: skip
    assert len(receiver.spans()) == len(calls)
    chat_row = by_endpoint[("openai", "/v1/chat/completions", 200)]
    span, attributes = spans[f"openai chat {chat_row['model']}"]
    assert span.kind == 3 and span.status.code == 0  # SPAN_KIND_CLIENT, STATUS_CODE_UNSET
    assert span.start_time_unix_nano == int(chat_row["timestamp"] * 1e9)
    assert span.end_time_unix_nano == span.start_time_unix_nano + int(chat_row["duration_ms"] * 1e6)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": chat_row["model"],
        "gen_ai.usage.input_tokens": chat_row["input_tokens"],
        "gen_ai.usage.output_tokens": chat_row["output_tokens"],
        "gen_ai.usage.cache_read.input_tokens": chat_row["cache_read_tokens"],
        "gen_ai.usage.reasoning.output_tokens": chat_row["reasoning_tokens"],
        "gen_ai.conversation.id": "sess-otlp-1",
        "llm_usage.cost_usd": chat_row["cost_usd"],
        "llm_usage.client": "OpenAI Python SDK",
        "llm_usage.project": "blog",
    }
    claude_row = next(r for r in calls if r["provider"] == "anthropic")
    _, attributes = spans[f"anthropic chat {claude_row['model']}"]
    assert (attributes["gen_ai.usage.cache_read.input_tokens"], attributes["gen_ai.usage.cache_creation.input_tokens"],
            attributes["gen_ai.usage.input_tokens"]) == (1100, 400, claude_row["input_tokens"])  # fmt: skip
    assert attributes["gen_ai.conversation.id"] == "5d2962ec-otlp" and attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.time_to_first_chunk"] == pytest.approx(claude_row["ttft_ms"] / 1000)
    assert spans["gcp.gemini generate_content gemini-2.5-flash"][1]["gen_ai.operation.name"] == "generate_content"
    failed = [(a["error.type"], s.status.code) for s, a in spans.values() if "error.type" in a]
    assert sorted(failed) == [("429", 2), ("no_response", 2)]  # STATUS_CODE_ERROR
    assert all(not s.status.message for s, _ in spans.values())


@pytest.mark.parametrize("collector", ["closed port", "never answers"])
def test_an_unreachable_collector_never_slows_a_call_or_loses_a_row(
    tmp_path: Path, upstream: MockUpstream, collector: str
) -> None:
    silent = Silent()
    url = silent.url if collector == "never answers" else f"http://127.0.0.1:{free_port()}"
    providers = providers_file(tmp_path, upstream.url)
    proxy = Proxy(
        tmp_path,
        ["--set", f"llm_usage_providers={providers}", "--set", f"llm_usage_otlp_endpoint={url}",
         "--set", "llm_usage_otlp_spans=true"],
        env={"OTEL_METRIC_EXPORT_INTERVAL": "300", "OTEL_BSP_SCHEDULE_DELAY": "100"},  # exports while calls go on
    )  # fmt: skip
    try:
        client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, max_retries=0)

        def call(_: int) -> float:
            started = time.monotonic()
            client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
            return time.monotonic() - started

        call(0)  # the proxy's first call takes about a second with or without the export (warm-up)
        with ThreadPoolExecutor(4) as pool:
            took = list(pool.map(call, range(40)))
        assert max(took) < 1.0, took  # an export's retries alone take a second and more
        proxy.rows_after(0, 41)
        stopping = time.monotonic()
        assert proxy.stop() == 0
        assert time.monotonic() - stopping < 6.0  # the exporter gives up within CLOSE_TIMEOUT (3 s)
        assert len(proxy.query("select id from requests where usage_status = 'complete'")) == 41
    finally:
        proxy.stop()
        silent.close()
    output = proxy.output()
    assert "Failed to export" in output  # said, not hidden
    assert KEY not in output
