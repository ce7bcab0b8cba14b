"""The one readable line per call, for mitmdump's output and mitmweb's flow comment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _tokens(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def summary_line(row: Mapping[str, Any]) -> str:
    """``openai gpt-4o-mini  in 1,234 (cached 1,000) out 56 (reasoning 20)  $0.000412  812 ms``

    A request that owes no usage says what it was instead:
    ``anthropic  HEAD /  HTTP 404  3 ms  owes no usage``.
    Built from the row alone: it never holds a header, a body or a query string.
    """
    if row["usage_status"] == "none":
        return _no_usage_line(row)
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
    if row["transport"] == "websocket":
        parts.append("via WebSocket")
    if row["usage_status"] in ("partial", "missing") and not row["error"]:
        parts.append(f"usage {row['usage_status']}")
    if row["error"]:
        status = f"HTTP {row['status_code']}: " if (row["status_code"] or 0) >= 400 else ""
        parts.append(f"ERROR {status}{row['error'][:160]}")
    return "  ".join(parts)


def _no_usage_line(row: Mapping[str, Any]) -> str:
    status = f"HTTP {row['status_code']}" if row["status_code"] else "no response"
    parts = [
        row["provider"],
        f"{row['method']} {row['endpoint']}",
        status,
        f"{row['duration_ms']:.0f} ms",
        "owes no usage",
    ]
    if row["error"]:
        parts.append(f"({row['error'][:160]})")
    return "  ".join(parts)
