"""The one readable line per call, for mitmdump's output and mitmweb's flow comment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _tokens(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def summary_line(row: Mapping[str, Any]) -> str:
    """``openai gpt-4o-mini  in 1,234 (cached 1,000) out 56 (reasoning 20)  $0.000412  812 ms``

    Built from the row alone: it never holds a header, a body or a query string.
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
