"""Turning a finished call into a database row and a readable line -- pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .pricing import Priced
from .usage import Usage

_COST_PLACES = Decimal("1e-12")


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the proxy observed about one call, besides its usage."""

    provider: str
    endpoint: str
    method: str
    started_at: float
    ended_at: float
    streaming: bool
    status_code: int | None
    error: str | None
    first_byte_at: float | None = None
    client: str | None = None


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value.quantize(_COST_PLACES))


NO_USAGE_ENDPOINTS = re.compile(r"/count_tokens$|:countTokens$|/models(?:/[^/]+)?$")
"""Calls that never report usage (token counting, model lists): no usage is due."""


def row_usage_status(
    parsed: str,
    *,
    has_counts: bool,
    method: str,
    path: str,
    status_code: int | None,
    failed: bool,
    streamed: bool,
) -> str | None:
    """``usage_status`` for the row: what the parser saw, corrected by how the call ended.

    A stream that ended in an error was cut short, whatever the last usage said (Gemini
    repeats a running total in every chunk). A call that failed without any usage, or
    that never owes usage, gets NULL rather than "missing"."""
    if failed and streamed:
        return "partial"
    if has_counts:
        return parsed
    if failed or (status_code or 0) >= 400 or method != "POST" or NO_USAGE_ENDPOINTS.search(path):
        return None
    return "missing"


def redact(text: str | None, secrets: list[str]) -> str | None:
    """An error message with the request's secrets taken out: a gateway's error page may
    echo the URL (a Gemini ``?key=``) or a header back."""
    if not text:
        return text
    for secret in secrets:
        if len(secret) >= 8 and secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def clean_text(value: str | None) -> str | None:
    """Text that SQLite and a terminal can take: a lone surrogate (a client's string cut
    inside an emoji) is replaced, not allowed to make the row unwritable."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def build_row(facts: CallFacts, usage: Usage, priced: Priced, usage_status: str | None) -> dict[str, Any]:
    return {
        "timestamp": iso_utc(facts.started_at),
        "provider": facts.provider,
        "model": clean_text(usage.model),
        "endpoint": facts.endpoint,
        "method": facts.method,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cost_usd": _money(priced.cost_usd),
        "duration_ms": round((facts.ended_at - facts.started_at) * 1000, 3),
        "streaming": int(facts.streaming),
        "status_code": facts.status_code,
        "error": clean_text(facts.error),
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "ttft_ms": (
            round((facts.first_byte_at - facts.started_at) * 1000, 3)
            if facts.streaming and facts.first_byte_at is not None
            else None
        ),
        "cost_source": priced.source if priced.cost_usd is not None else None,
        "usage_status": usage_status,
        "client": facts.client,
        "cache_savings_usd": _money(priced.cache_savings_usd),
    }


def _tokens(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def summary_line(row: dict[str, Any]) -> str:
    """One readable line per call, for mitmdump's output and mitmweb's flow comment.

    ``openai gpt-4o-mini  in 1,234 (cached 1,000) out 56 (reasoning 20)  $0.000412  812 ms``
    """
    parts = [row["provider"], row["model"] or "(unknown model)"]
    tokens = f"in {_tokens(row['input_tokens'])}"
    if row["cache_read_tokens"]:
        tokens += f" (cached {row['cache_read_tokens']:,})"
    if row["cache_write_tokens"]:
        tokens += f" (cache write {row['cache_write_tokens']:,})"
    tokens += f" out {_tokens(row['output_tokens'])}"
    if row["reasoning_tokens"]:
        tokens += f" (reasoning {row['reasoning_tokens']:,})"
    parts.append(tokens)
    cost = row["cost_usd"]
    parts.append("unpriced" if cost is None else f"${cost:.6f}")
    timing = f"{row['duration_ms']:.0f} ms"
    if row["ttft_ms"] is not None:
        timing += f" (first byte {row['ttft_ms']:.0f} ms)"
    parts.append(timing)
    if row["usage_status"] in ("partial", "missing") and not row["error"]:
        parts.append(f"usage {row['usage_status']}")
    if row["error"]:
        status = f"HTTP {row['status_code']}: " if row["status_code"] else ""
        parts.append(f"ERROR {status}{row['error'][:160]}")
    return "  ".join(parts)
