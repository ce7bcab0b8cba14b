"""From a finished call's record to its row and line: pure, tested directly."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llm_usage.accounting.account import account
from llm_usage.accounting.line import summary_line
from llm_usage.accounting.pricing import Priced, Pricer
from llm_usage.accounting.record import CallRecord
from llm_usage.accounting.row import COLUMNS, build_row
from llm_usage.config.providers import load_providers
from llm_usage.parsers import FORMATS
from llm_usage.parsers.usage import Usage

PROVIDERS = load_providers("", {"llm_usage_ollama_base_url": "http://localhost:11434"})


def record(**changes: object) -> CallRecord:
    fields: dict[str, object] = {
        "provider": PROVIDERS["anthropic"],
        "wire_format": FORMATS["anthropic"],
        "path": "/v1/messages",
        "method": "POST",
        "client": "Cline",
        "started_at": 1_764_000_000.0,
        "ended_at": 1_764_000_001.5,
        "status_code": 200,
    }
    return CallRecord(**{**fields, **changes})  # type: ignore[arg-type]


def test_row_has_every_column_and_a_readable_line() -> None:
    usage = Usage(
        model="claude-sonnet-4-5",
        input_tokens=1512,
        output_tokens=6,
        cache_read_tokens=1100,
        cache_write_tokens=400,
        status="complete",
    )
    streamed = record(stream_usage=usage, first_byte_at=1_764_000_000.25)
    priced = Priced(Decimal("0.001941"), "genai-prices 0.2.3", Decimal("0.00267"))
    row = build_row(streamed, usage, priced, "complete", None)
    assert tuple(row) == COLUMNS
    assert row["timestamp"] == 1_764_000_000.0  # Unix seconds (2025-11-24T16:00:00Z), as in the seed's table
    assert (row["duration_ms"], row["ttft_ms"], row["total_tokens"], row["streaming"]) == (1500.0, 250.0, 1518, 1)
    line = summary_line(row)
    assert line == (
        "anthropic  claude-sonnet-4-5  in 1,512 (cached 1,100) (cache write 400) out 6  $0.001941  "
        "1500 ms (first byte 250 ms)"
    )
    unpriced = summary_line({**row, "cost_usd": None, "error": "overloaded", "status_code": 529})
    assert "unpriced" in unpriced and "ERROR HTTP 529: overloaded" in unpriced


def test_account_parses_a_compressed_body_and_prices_it() -> None:
    body = b'{"model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":1000,"output_tokens":100}}'
    row, line = account(
        record(
            body=gzip.compress(body),
            response_headers=((b"Content-Type", b"application/json"), (b"Content-Encoding", b"gzip")),
        ),
        Pricer({}, {}),
    )
    assert (row["model"], row["input_tokens"], row["output_tokens"], row["usage_status"]) == (
        "claude-sonnet-4-5-20250929",
        1000,
        100,
        "complete",
    )
    assert row["cost_usd"] == 0.0045 and row["cost_source"] and row["cost_source"].startswith("genai-prices")
    assert line == summary_line(row)


def test_account_takes_the_requested_model_when_the_response_names_none() -> None:
    row, _ = account(
        record(body=b'{"usage":{"input_tokens":1,"output_tokens":1}}', request_body=b'{"model":"claude-x"}'),
        Pricer({}, {}),
    )
    assert (row["model"], row["cost_usd"], row["cost_source"]) == ("claude-x", None, None)  # unpriced, never $0


def test_account_of_a_failed_call_keeps_the_providers_message_without_secrets() -> None:
    body = b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-SECRET123"}}'
    sent = record(status_code=401, body=body, request_headers=((b"X-Api-Key", b"sk-ant-SECRET123"),))
    row, line = account(sent, Pricer({}, {}))
    assert row["error"] == "invalid x-api-key [redacted]" and "SECRET" not in line
    assert row["usage_status"] is None


def test_account_never_raises() -> None:
    """A bug in accounting becomes a row that says so: the call is still counted."""
    broken = record(wire_format=None)  # no parser to call: an AttributeError inside
    row, line = account(broken, Pricer({}, {}))
    assert row["provider"] == "anthropic" and row["error"]
    assert row["error"].startswith("llm-usage could not account for this call: AttributeError")
    assert "ERROR llm-usage could not account" in line


def test_the_secrets_of_a_request_are_its_credentials_and_query_values() -> None:
    sent = record(
        request_headers=(
            (b"Authorization", b"Bearer sk-proj-abc123"),
            (b"x-goog-api-key", b"AIzaKEY"),
            (b"User-Agent", b"curl/8"),
        ),
        request_target="/v1beta/models/m:generateContent?key=AIzaQUERY&alt=sse",
    )
    assert sent.secrets() == ("AIzaQUERY", "sse", "Bearer sk-proj-abc123", "sk-proj-abc123", "AIzaKEY")
    protocols = b"realtime, openai-insecure-api-key.sk-proj-xyz789"
    browser = record(request_headers=((b"Sec-WebSocket-Protocol", protocols),))
    assert browser.secrets() == ("sk-proj-xyz789",)  # a browser's key, sent as a WebSocket subprotocol


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="x"), min_size=8, max_size=60
    ),
    before=st.integers(min_value=0, max_value=600),
    form=st.sampled_from(["raw", "url", "url-plus", "base64"]),
    where=st.sampled_from(["header", "query"]),
)
def test_no_form_of_a_secret_survives_in_the_row(secret: str, before: int, form: str, where: str) -> None:
    """A provider's error page echoes a credential or a query value back, in any encoding,
    anywhere -- across the 500-character cut too: neither it nor its head reaches the row."""
    import base64
    from urllib.parse import quote, quote_plus, urlencode

    shown = {"raw": secret, "url": quote(secret, safe=""), "url-plus": quote_plus(secret, safe=""),
             "base64": base64.b64encode(secret.encode()).decode()}[form]  # fmt: skip
    assume("x" not in shown)  # the filler below is x's
    body = json.dumps({"error": {"message": "x" * before + shown + "!"}}).encode()
    headers = ((b"X-Api-Key", secret.encode()),) if where == "header" else ()
    target = "/v1/chat/completions" + ("?" + urlencode({"key": secret}) if where == "query" else "")
    row, line = account(record(status_code=400, body=body, request_headers=headers, request_target=target),
                        Pricer({}, {}))  # fmt: skip
    assert row["error"] == ("x" * before + "[redacted]!")[:500]
    assert shown not in line
