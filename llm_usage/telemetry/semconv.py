"""A row in the terms of OpenTelemetry's GenAI semantic conventions: pure functions, no SDK.

The conventions (status: development) are https://opentelemetry.io/docs/specs/semconv/gen-ai/
-- spans: .../gen-ai/gen-ai-spans/, metrics: .../gen-ai/gen-ai-metrics/ -- as of
semantic-conventions v1.41, after which they moved to
https://github.com/open-telemetry/semantic-conventions-genai. Names, units and bucket
boundaries below are theirs; ``llm_usage.*`` are our own additions.

What a row gives and how it maps:

- ``gen_ai.operation.name`` from the endpoint (``OPERATIONS``), ``gen_ai.provider.name``
  from the provider slug (``PROVIDER_NAMES``: the conventions' well-known value where one
  applies, else the slug).
- ``gen_ai.request.model``: the row keeps one model, the provider's name for it when the
  response gives one, else the one asked for; the conventions' span name and metrics key
  on the request model, so that is where it goes. ``gen_ai.response.model`` is not set: a
  row cannot tell which of the two its model is.
- ``gen_ai.usage.*``: our counts have the conventions' meaning already (input includes
  cached tokens, output includes reasoning: ``parsers/usage.py``). A usage that cannot be
  true (``usage_status`` 'invalid') is not reported, as the conventions ask of counts an
  instrumentation cannot obtain.
- ``gen_ai.conversation.id``: the coding session (``proxy/attribution.py``).
- ``error.type`` (``error_type``): a low-cardinality class of the failure, never its text.

Never in any attribute: a credential, a body, a query string, the key fingerprint, the
error text. Metric attributes are bounded besides: no session id on them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

TOKEN_USAGE = "gen_ai.client.token.usage"
OPERATION_DURATION = "gen_ai.client.operation.duration"
TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
COST = "llm_usage.cost"
"""Our own counter: what the priced calls cost, in USD (the conventions have no cost)."""

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
"""``gen_ai.client.token.usage``'s explicit bucket boundaries, as the metrics page gives them."""
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""``gen_ai.client.operation.duration``'s (and ``time_to_first_chunk``'s), in seconds."""

PROVIDER_NAMES = {
    "gemini": "gcp.gemini",  # generativelanguage.googleapis.com, "also known as the AI Studio API"
    "mistral": "mistral_ai",
    "xai": "x_ai",
}
"""Slugs whose ``gen_ai.provider.name`` is a well-known value other than the slug itself
(``openai``, ``anthropic``, ``deepseek``, ``groq``, ... are the same). Every other slug --
``openrouter``, ``moonshot``, ``ollama``, a providers file's own -- is its own name."""

OPERATIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # OpenAI's Chat Completions and Responses (HTTP or WebSocket) are both "chat"
    # (the conventions' OpenAI page: openai.api.type tells them apart).
    (re.compile(r"/chat/completions$|/responses$|/v1/messages$|:(?:stream)?[Rr]awPredict$|/api/chat$"), "chat"),
    (re.compile(r":(?:stream)?[Gg]enerateContent$"), "generate_content"),
    (re.compile(r"/embeddings$|/api/embed(?:dings)?$|:(?:batchEmbedContents|embedContent)$"), "embeddings"),
    (re.compile(r"/completions$|/api/generate$"), "text_completion"),
)
"""The endpoint -> ``gen_ai.operation.name``, first match wins (as ``parsers.ENDPOINT_FORMATS``)."""
OTHER_OPERATION = "other"
"""Any other billed endpoint (images, audio, ...): a custom value, which the conventions
allow where no well-known one applies."""

ERROR_TYPES = {
    "no_response": "the call got no response (upstream unreachable, connection reset)",
    "incomplete_response": "a streamed response was cut short",
    "invalid_usage": "the provider's usage cannot be true, so it is not trusted",
    "_OTHER": "any other error the row records",
}
"""The ``error.type`` values besides an HTTP status code (``"429"``, ``"500"``), as the
conventions ask instrumentations to document them."""


def parse_endpoint(value: str) -> str:
    """The OTLP/HTTP base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes it
    (https://opentelemetry.io/docs/specs/otel/protocol/exporter/): ``/v1/metrics`` and
    ``/v1/traces`` are appended. Without a trailing slash; ``ValueError`` saying what is
    wrong, never repeating the value (it could hold a secret)."""
    try:
        url = urlsplit(value.strip())
        url.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ValueError("not a URL; give the collector's base URL, e.g. http://127.0.0.1:4318") from None
    if "@" in url.netloc:
        raise ValueError("no credentials in the URL: a collector's auth header goes in OTEL_EXPORTER_OTLP_HEADERS")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:4318")
    if url.query or url.fragment:
        raise ValueError("a base URL has no query or fragment (/v1/metrics and /v1/traces are appended to it)")
    if re.search(r"/v1/(metrics|traces|logs)/?$", url.path):
        raise ValueError("give the collector's base URL, without /v1/metrics or /v1/traces: both are appended")
    return urlunsplit((url.scheme, url.netloc, url.path.rstrip("/"), "", ""))


def signal_url(base: str, signal: str) -> str:
    """``http://host:4318`` + ``metrics`` -> ``http://host:4318/v1/metrics``."""
    return f"{base}/v1/{signal}"


def is_operation(row: Mapping[str, Any]) -> bool:
    """A call that owed usage; a model list or a pre-connect (``usage_status`` 'none') is
    not a GenAI operation, and is neither timed nor counted (as ``web/metrics.py``)."""
    return row["usage_status"] != "none"


def provider_name(slug: str) -> str:
    return PROVIDER_NAMES.get(slug, slug)


def operation_name(endpoint: str) -> str:
    for pattern, name in OPERATIONS:
        if pattern.search(endpoint):
            return name
    return OTHER_OPERATION


def failed(row: Mapping[str, Any]) -> bool:
    """The stats' rule (``web/queries.py``, ``error_requests``): an error, or an HTTP error
    status, on a call that owed usage."""
    return is_operation(row) and (row["error"] is not None or (row["status_code"] or 0) >= 400)


def error_type(row: Mapping[str, Any]) -> str | None:
    """``error.type`` of a failed call: its HTTP status code, else one of ``ERROR_TYPES``."""
    if not failed(row):
        return None
    status = row["status_code"]
    if status is not None and status >= 400:
        return str(status)
    if row["usage_status"] == "invalid":
        return "invalid_usage"
    if status is None:
        return "no_response"
    if row["usage_status"] == "partial":
        return "incomplete_response"
    return "_OTHER"


def token_counts(row: Mapping[str, Any]) -> dict[str, int]:
    """``gen_ai.token.type`` -> count, for the counts the provider reported and that can be
    trusted."""
    if not is_operation(row) or row["usage_status"] == "invalid":
        return {}
    counts = {"input": row["input_tokens"], "output": row["output_tokens"]}
    return {kind: count for kind, count in counts.items() if count is not None}


def metric_attributes(row: Mapping[str, Any]) -> dict[str, str]:
    """The attributes every metric of the call carries: bounded ones only (no session, no
    key; past the SDK's cardinality limit, 2000 per metric, series fold into one overflow
    series)."""
    attributes = {
        "gen_ai.operation.name": operation_name(row["endpoint"]),
        "gen_ai.provider.name": provider_name(row["provider"]),
    }
    if row["model"]:
        attributes["gen_ai.request.model"] = row["model"]
    if row["client"]:
        attributes["llm_usage.client"] = row["client"]
    if row["project"]:
        attributes["llm_usage.project"] = row["project"]
    return attributes


def span_name(row: Mapping[str, Any]) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, the conventions' inference span name."""
    operation = operation_name(row["endpoint"])
    return f"{operation} {row['model']}" if row["model"] else operation


def span_attributes(row: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """Everything the call's span says: the metric attributes, the usage, the session,
    streaming and time to first chunk, ``error.type``, and what it cost."""
    attributes: dict[str, str | int | float | bool] = dict(metric_attributes(row))
    counts = token_counts(row)
    if counts:
        usage = {
            "gen_ai.usage.input_tokens": counts.get("input"),
            "gen_ai.usage.output_tokens": counts.get("output"),
            "gen_ai.usage.cache_read.input_tokens": row["cache_read_tokens"],
            "gen_ai.usage.cache_creation.input_tokens": row["cache_write_tokens"],
            "gen_ai.usage.reasoning.output_tokens": row["reasoning_tokens"],
        }
        attributes.update({key: count for key, count in usage.items() if count is not None})
    if row["session_id"]:
        attributes["gen_ai.conversation.id"] = row["session_id"]
    if row["streaming"]:
        attributes["gen_ai.request.stream"] = True  # "if and only if the request is streaming"
        if row["ttft_ms"] is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = row["ttft_ms"] / 1000
    kind = error_type(row)
    if kind is not None:
        attributes["error.type"] = kind
    if row["cost_usd"] is not None:
        attributes["llm_usage.cost_usd"] = row["cost_usd"]
    return attributes
