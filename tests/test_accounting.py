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
from llm_usage.accounting.secrets import request_secrets
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


def test_the_secrets_of_a_request() -> None:
    """Query values, credentials, cookies, a key subprotocol, secret-named body fields."""
    body = json.dumps({
        "model": "m", "max_tokens": 100, "provider": {"api_key": "sk-or-BYOK-123456"}, "clientSecret": 'cs"live\\9',
        "messages": [{"role": "user", "content": "a token is not a key: tokenizer"}], "session_token": "short",
    }).encode()  # fmt: skip
    headers = (
        (b"Authorization", b"Bearer sk-proj-abc123"),
        (b"x-goog-api-key", b"AIzaKEY123"),
        (b"Cookie", b"session=abcdefgh12345; theme=dark"),
        (b"User-Agent", b"curl/8"),
    )
    target = "/v1beta/models/m:generateContent?key=AIzaQUERY1&alt=sse"
    assert request_secrets(target, headers, body) == (
        "AIzaQUERY1", "Bearer sk-proj-abc123", "sk-proj-abc123", "AIzaKEY123", "abcdefgh12345",
        "sk-or-BYOK-123456", 'cs"live\\9',
    )  # fmt: skip
    form = b"grant_type=client_credentials&client_secret=s3cr3t%2Fvalue"
    assert request_secrets("/", (), form, "application/x-www-form-urlencoded") == (
        "client_credentials", "s3cr3t/value"
    )  # fmt: skip
    protocols = b"realtime, openai-insecure-api-key.sk-proj-xyz789"
    assert request_secrets("/", ((b"Sec-WebSocket-Protocol", protocols),)) == ("sk-proj-xyz789",)


def test_a_100_mb_body_is_scanned_for_secrets_without_being_parsed() -> None:
    filler = json.dumps({"role": "user", "content": "x" * 1000 + '\\" "key": "not-a-field"'})
    body = ('{"messages": [' + ",".join([filler] * 100_000) + '], "api_key": "sk-late-secret-42"}').encode()
    assert len(body) > 100_000_000
    assert request_secrets("/", (), body) == ("sk-late-secret-42",)


def _echo(form: str, secret: str) -> str:
    import base64
    from urllib.parse import quote, quote_plus

    data = secret.encode()
    return {
        "raw": secret,
        "url": quote(secret, safe=""),
        "url-plus": quote_plus(secret, safe=""),
        "base64": base64.b64encode(data).decode(),
        "base64url": base64.urlsafe_b64encode(data).decode(),
        "basic": base64.b64encode(b"user:" + data).decode(),  # inside a longer encoded text
    }[form]


def _request_with(where: str, secret: str) -> dict[str, object]:
    from urllib.parse import urlencode

    target, headers, body = "/v1/chat/completions", (), b""
    if where == "header":
        headers = ((b"X-Api-Key", secret.encode()),)
    elif where == "bearer":
        headers = ((b"Authorization", b"Bearer " + secret.encode()),)
    elif where == "cookie":
        headers = ((b"Cookie", b"a=b; sid=" + secret.encode()),)
    elif where == "query":
        target += "?" + urlencode({"key": secret})
    elif where == "body":
        body = json.dumps({"model": "m", "provider": {"order": ["x"], "apiKey": secret}}).encode()
    elif where == "form":
        body, headers = urlencode({"client_secret": secret}).encode(), ((b"Content-Type", _FORM_TYPE),)
    elif where == "subprotocol":
        headers = ((b"Sec-WebSocket-Protocol", b"realtime, openai-insecure-api-key." + secret.encode()),)
    return {"request_target": target, "request_headers": headers, "request_body": body}


_FORM_TYPE = b"application/x-www-form-urlencoded"


@settings(max_examples=400, deadline=None)
@given(
    secret=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="x,"), min_size=8, max_size=60
    ),
    before=st.integers(min_value=0, max_value=600),
    form=st.sampled_from(["raw", "url", "url-plus", "base64", "base64url", "basic"]),
    where=st.sampled_from(["header", "bearer", "cookie", "query", "body", "form", "subprotocol"]),
)
def test_no_form_of_a_secret_survives_in_the_row(secret: str, before: int, form: str, where: str) -> None:
    """A provider's error page echoes a credential, cookie, query value or body field back,
    in any encoding, anywhere -- across the 500-character cut too: neither it nor its head
    reaches the row or the line."""
    assume(secret == secret.strip() and ";" not in secret and "=" not in secret[:1])  # a cookie value as sent
    assume(secret not in "HTTP 400: [redacted]!")
    shown = _echo(form, secret)
    assume("x" not in shown)  # the filler below is x's
    body = json.dumps({"error": {"message": "x" * before + shown + "!"}}).encode()
    sent = record(status_code=400, body=body, **_request_with(where, secret))
    row, line = account(sent, Pricer({}, {}))
    if form == "basic":  # only the characters that encode "user:" (and a partial one) are left
        rest = row["error"].replace("x", "").replace("[redacted]", "").replace("!", "")
        if "[" in rest and "[redacted]".startswith(rest[rest.rfind("[") :]):
            rest = rest[: rest.rfind("[")]  # "[redacted]" cut at 500 characters
        assert "[redacted]" in row["error"] or len(row["error"]) == 500
        assert len(rest) <= 10, row["error"]  # 7 for "user:", a partial character, "=" padding
    else:
        assert row["error"] == ("x" * before + "[redacted]!")[:500]
    said = line.split("ERROR", 1)[1]  # the error's part of the line (the rest is the line's own words)
    assert shown not in said and secret not in said


def test_a_usage_that_cannot_be_true_makes_an_invalid_unpriced_row_that_says_why(caplog) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"model": "claude-sonnet-4-5", "usage": {"input_tokens": -40, "output_tokens": 12}}).encode()
    sent = record(body=body, response_headers=((b"content-type", b"application/json"),))
    with caplog.at_level("WARNING"):
        row, line = account(sent, Pricer({}, {}))
    assert row["usage_status"] == "invalid" and row["cost_usd"] is None and row["output_tokens"] == 12
    assert row["error"] == "the provider's usage cannot be true, so it is not trusted or priced: input_tokens = -40"
    assert "input_tokens = -40" in caplog.text and "ERROR" in line
