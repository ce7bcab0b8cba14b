"""OpenTelemetry export: the pure row -> GenAI semantic conventions mapping, the endpoint
option, and the exporter against a local OTLP receiver in-process (milliseconds each;
the real mitmdump is in test_e2e_otlp.py)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from typing import Any

import pytest
from mitmproxy import exceptions

from llm_usage.proxy.addon import LlmUsage
from llm_usage.telemetry import semconv
from tests.support.harness import ROOT, free_port
from tests.support.otlp_receiver import OtlpReceiver, Silent

Addon = tuple[LlmUsage, Any]
KEY_ID = "kf-7d41c09a"
SECRET = "sk-proj-telemetry-0123456789"


def row(**changes: Any) -> dict[str, Any]:
    """A complete row (``accounting/row.py``'s columns) of a streamed Anthropic call."""
    base: dict[str, Any] = {
        "timestamp": 1_790_000_000.25, "provider": "anthropic", "model": "claude-sonnet-4-5",
        "endpoint": "/v1/messages", "method": "POST", "input_tokens": 1512, "output_tokens": 6,
        "total_tokens": 1518, "cost_usd": 0.001956, "duration_ms": 812.0, "streaming": 1, "status_code": 200,
        "error": None, "cache_read_tokens": 1100, "cache_write_tokens": 400, "reasoning_tokens": None,
        "ttft_ms": 240.0, "cost_source": "genai-prices", "usage_status": "complete", "client": "Claude Code",
        "cache_savings_usd": 0.003, "transport": "http", "service_tier": None, "cost_breakdown": '{"parts":{}}',
        "session_id": "5d2962ec-09a0-46e5-ac68", "subagent": "Explore", "project": "webshop", "key_id": KEY_ID,
    }  # fmt: skip
    base.update(changes)
    return base


# ---------------------------------------------------------------- the mapping


@pytest.mark.parametrize(
    ("endpoint", "operation"),
    [
        ("/v1/chat/completions", "chat"),
        ("/v1beta/openai/chat/completions", "chat"),
        ("/api/paas/v4/chat/completions", "chat"),
        ("/v1/responses", "chat"),
        ("/v1/messages", "chat"),
        ("/anthropic/v1/messages", "chat"),
        ("/v1/projects/p/locations/l/publishers/anthropic/models/claude:streamRawPredict", "chat"),
        ("/api/chat", "chat"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", "generate_content"),
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "generate_content"),
        ("/v1/embeddings", "embeddings"),
        ("/api/embed", "embeddings"),
        ("/api/embeddings", "embeddings"),
        ("/v1beta/models/text-embedding-004:embedContent", "embeddings"),
        ("/v1beta/models/text-embedding-004:batchEmbedContents", "embeddings"),
        ("/v1/completions", "text_completion"),
        ("/api/generate", "text_completion"),
        ("/v1/images/generations", "other"),
        ("/v1/audio/speech", "other"),
    ],
)
def test_the_operation_name_comes_from_the_endpoint(endpoint: str, operation: str) -> None:
    assert semconv.operation_name(endpoint) == operation


@pytest.mark.parametrize(
    ("slug", "name"),
    [("openai", "openai"), ("anthropic", "anthropic"), ("gemini", "gcp.gemini"), ("openrouter", "openrouter"),
     ("moonshot", "moonshot"), ("ollama-cloud", "ollama-cloud"), ("mistral", "mistral_ai"), ("xai", "x_ai"),
     ("groq", "groq")],
)  # fmt: skip
def test_provider_slugs_map_to_the_well_known_names(slug: str, name: str) -> None:
    assert semconv.provider_name(slug) == name


def test_a_streamed_call_as_a_span() -> None:
    assert semconv.span_name(row()) == "chat claude-sonnet-4-5"
    assert semconv.span_attributes(row()) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": 1512,
        "gen_ai.usage.output_tokens": 6,
        "gen_ai.usage.cache_read.input_tokens": 1100,
        "gen_ai.usage.cache_creation.input_tokens": 400,
        "gen_ai.conversation.id": "5d2962ec-09a0-46e5-ac68",
        "gen_ai.request.stream": True,
        "gen_ai.response.time_to_first_chunk": 0.24,
        "llm_usage.cost_usd": 0.001956,
        "llm_usage.client": "Claude Code",
        "llm_usage.project": "webshop",
    }


def test_metric_attributes_are_bounded() -> None:
    """No session, key, subagent, tokens or cost: a label set per call would grow without end."""
    assert semconv.metric_attributes(row()) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "llm_usage.client": "Claude Code",
        "llm_usage.project": "webshop",
    }
    bare = row(model=None, client=None, project=None, provider="gemini", endpoint="/v1beta/models/x:generateContent")
    assert semconv.metric_attributes(bare) == {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
    }
    assert semconv.span_name(bare) == "generate_content"


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({}, None),
        ({"status_code": 429, "error": "Rate limit reached"}, "429"),
        ({"status_code": 500, "error": None}, "500"),
        ({"status_code": None, "error": "Connection refused", "usage_status": None}, "no_response"),
        ({"error": "the proxy stopped before the call completed", "usage_status": "partial"}, "incomplete_response"),
        ({"error": "the provider's usage cannot be true", "usage_status": "invalid"}, "invalid_usage"),
        ({"error": "unreadable response body (not JSON)", "usage_status": "missing"}, "_OTHER"),
        ({"usage_status": "missing"}, None),  # a usage due but not sent: not a failure
        ({"status_code": 404, "usage_status": "none", "method": "HEAD"}, None),  # not an operation at all
    ],
)
def test_error_type_is_a_class_never_the_text(changes: dict[str, Any], kind: str | None) -> None:
    failed = row(**changes)
    assert semconv.error_type(failed) == kind
    attributes = semconv.span_attributes(failed)
    assert attributes.get("error.type") == kind
    assert not failed["error"] or all(failed["error"] not in str(v) for v in attributes.values())


def test_rows_that_are_not_operations_or_not_trusted_report_no_tokens() -> None:
    assert not semconv.is_operation(row(usage_status="none", endpoint="/v1/models", method="GET"))
    assert semconv.token_counts(row(usage_status="none")) == {}
    untrusted = row(usage_status="invalid", input_tokens=-5, error="cannot be true", cost_usd=None)
    assert semconv.token_counts(untrusted) == {}
    assert not any(key.startswith("gen_ai.usage.") for key in semconv.span_attributes(untrusted))
    embedding = row(output_tokens=None, input_tokens=8, endpoint="/v1/embeddings", streaming=0, ttft_ms=None)
    assert semconv.token_counts(embedding) == {"input": 8}
    assert "gen_ai.request.stream" not in semconv.span_attributes(embedding)


def test_no_credential_key_or_error_text_in_any_attribute() -> None:
    leaky = row(error=f"Incorrect API key provided: {SECRET}", status_code=401, endpoint="/v1/messages")
    values = [*semconv.span_attributes(leaky).values(), *semconv.metric_attributes(leaky).values()]
    assert not any(text in str(value) for value in values for text in (SECRET, KEY_ID, "Incorrect"))
    assert not any("key" in name or "subagent" in name for name in semconv.span_attributes(leaky))


@pytest.mark.parametrize(
    ("value", "base"),
    [
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318"),
        ("http://127.0.0.1:4318/", "http://127.0.0.1:4318"),
        (" https://otel.example.com/otlp/ ", "https://otel.example.com/otlp"),
        ("http://[::1]:4318", "http://[::1]:4318"),
    ],
)
def test_an_endpoint_is_a_base_url(value: str, base: str) -> None:
    assert semconv.parse_endpoint(value) == base
    assert semconv.signal_url(base, "metrics") == f"{base}/v1/metrics"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ftp://collector:4318", "must be an http:// or https:// URL"),
        ("127.0.0.1:4318", "must be an http:// or https:// URL"),
        ("http://", "must be an http:// or https:// URL"),
        ("http://collector:port", "not a URL"),
        ("https://user:s3cretpw@collector:4318", "no credentials in the URL"),
        ("http://collector:4318/?token=s3cretpw", "no query or fragment"),
        ("http://collector:4318/v1/metrics", "without /v1/metrics or /v1/traces"),
        ("https://collector.example/otlp/v1/traces/", "without /v1/metrics or /v1/traces"),
    ],
)
def test_a_bad_endpoint_is_refused_without_repeating_it(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as refused:
        semconv.parse_endpoint(value)
    assert "s3cretpw" not in str(refused.value)


# ---------------------------------------------------------------- the options


def test_export_is_off_by_default_and_the_sdk_is_not_loaded() -> None:
    code = (
        "import sys; from mitmproxy.test import taddons; from llm_usage.proxy.addon import LlmUsage\n"
        "addon = LlmUsage()\n"
        "with taddons.context(addon) as tctx:\n"
        "    assert tctx.options.llm_usage_otlp_endpoint == '' and tctx.options.llm_usage_otlp_spans == 'false'\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_options_start_replace_and_stop_the_exporter(addon: Addon) -> None:
    proxy, tctx = addon
    assert proxy.settings.otlp is None
    receiver = OtlpReceiver()
    try:
        tctx.configure(proxy, llm_usage_otlp_endpoint=receiver.url + "/")
        first = proxy.settings.otlp
        assert first is not None and (first.endpoint, first.spans) == (receiver.url, False)
        tctx.configure(proxy, llm_usage_otlp_spans="true")
        second = proxy.settings.otlp
        assert second is not None and second is not first and second.spans
        with pytest.raises(exceptions.OptionsError, match=r"^llm_usage_otlp_endpoint: must be an http"):
            tctx.configure(proxy, llm_usage_otlp_endpoint="ftp://collector")
        assert tctx.options.llm_usage_otlp_endpoint == receiver.url + "/" and proxy.settings.otlp is second
        tctx.configure(proxy, llm_usage_otlp_endpoint="")
        assert proxy.settings.otlp is None
    finally:
        receiver.close()


# ---------------------------------------------------------------- the exporter, in-process


def test_rows_reach_a_receiver_as_metrics_and_spans() -> None:
    from llm_usage.telemetry.otlp import OtlpExport

    receiver = OtlpReceiver()
    try:
        export = OtlpExport(receiver.url, spans=True)
        export.note(row())
        export.note(row(status_code=429, error="Rate limit", input_tokens=None, output_tokens=None, cost_usd=None,
                        usage_status=None, streaming=0, ttft_ms=None))  # fmt: skip
        export.note(row(usage_status="none", endpoint="/v1/models", method="GET", model=None))
        export.close()
    finally:
        receiver.close()
    tokens = {p.attributes["gen_ai.token.type"]: (p.sum, p.count) for p in receiver.last_points(semconv.TOKEN_USAGE)}
    assert tokens == {"input": (1512, 1), "output": (6, 1)}
    durations = {p.attributes.get("error.type"): (p.sum, p.count, p.unit, p.bounds)
                 for p in receiver.last_points(semconv.OPERATION_DURATION)}  # fmt: skip
    assert durations == {
        None: (0.812, 1, "s", semconv.DURATION_BUCKETS),
        "429": (0.812, 1, "s", semconv.DURATION_BUCKETS),
    }
    (cost,) = receiver.last_points(semconv.COST)
    assert (cost.sum, cost.unit) == (pytest.approx(0.001956), "USD")
    spans = receiver.spans()
    assert [(s.name, s.kind, s.status.code) for s, _, _ in spans] == [("chat claude-sonnet-4-5", 3, 0),
                                                                       ("chat claude-sonnet-4-5", 3, 2)]  # fmt: skip
    first = spans[0][0]
    assert first.start_time_unix_nano == int(1_790_000_000.25 * 1e9)
    assert first.end_time_unix_nano - first.start_time_unix_nano == 812_000_000
    assert spans[1][1]["error.type"] == "429" and not spans[1][0].status.message
    assert spans[0][2]["service.name"] == "llm-usage"


def test_note_never_raises_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    from llm_usage.telemetry.otlp import OtlpExport

    export = OtlpExport(f"http://127.0.0.1:{free_port()}", spans=True)
    with caplog.at_level(logging.ERROR, logger="llm_usage.telemetry.otlp"):
        export.note({"provider": "openai"})  # not a row: a bug must not cost the row its write
        export.note({"provider": "openai"})
    assert [r.message for r in caplog.records].count(
        "llm-usage: a call could not be exported over OTLP (further failures are not logged)"
    ) == 1
    export.close(timeout=0.5)


@pytest.mark.parametrize("collector", ["closed port", "never answers"])
def test_close_is_bounded_whatever_the_collector_does(collector: str, caplog: pytest.LogCaptureFixture) -> None:
    from llm_usage.telemetry.otlp import OtlpExport

    silent = Silent()
    url = silent.url if collector == "never answers" else f"http://127.0.0.1:{free_port()}"
    try:
        export = OtlpExport(url, spans=True)
        started = time.monotonic()
        for _ in range(200):
            export.note(row())
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="llm_usage.telemetry.otlp"):
            export.close(timeout=1.0)
        assert time.monotonic() - started < 1.5
    finally:
        silent.close()
