"""Rate-limit headers: how much of each window a key has left, and when it resets. Pure.

Only numbers and times are taken, never any other header value:

- OpenAI-style (OpenAI, Groq, OpenRouter, ...): ``x-ratelimit-limit-requests``,
  ``-remaining-requests``, ``-reset-requests`` (a duration, ``6m0s``, ``1.5s``, ``20ms``)
  and the same for ``-tokens`` (https://platform.openai.com/docs/guides/rate-limits).
- Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
  remaining,reset}`` (reset: RFC 3339), and the unified windows of newer accounts,
  ``anthropic-ratelimit-unified-<window>-utilization`` (0..1) and ``-reset`` (Unix seconds)
  (https://docs.anthropic.com/en/api/rate-limits).
- ``retry-after`` (seconds, or an HTTP date).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

Fields = tuple[tuple[bytes, bytes], ...]

_OPENAI = re.compile(rb"x-ratelimit-(limit|remaining|reset)-([a-z-]+)")
_ANTHROPIC = re.compile(rb"anthropic-ratelimit-(requests|tokens|input-tokens|output-tokens)-(limit|remaining|reset)")
_UNIFIED = re.compile(rb"anthropic-ratelimit-unified-([a-z0-9_]+)-(utilization|reset)")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
MAX_WINDOWS = 16


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    """``requests``, ``tokens``, ``input-tokens``, a unified window (``5h``, ``7d``), ..."""
    limit: float | None = None
    remaining: float | None = None
    used_share: float | None = None
    """Of the window already used: 1 - remaining / limit, or the provider's own utilization."""
    resets_at: float | None = None
    """Unix seconds."""


def _number(value: bytes) -> float | None:
    try:
        number = float(value.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None
    return number if number == number and abs(number) < 1e15 else None  # not NaN, not absurd


def _duration(value: bytes) -> float | None:
    """``6m0s`` -> 360.0 (seconds)."""
    text = value.decode("ascii", "replace").strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return _number(value)
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * factor[u] for n, u in parts)


def _instant(value: bytes) -> float | None:
    """An RFC 3339 time or Unix seconds -> Unix seconds."""
    number = _number(value)
    if number is not None:
        return number if number > 1e9 else None
    try:
        return datetime.fromisoformat(value.decode("ascii").strip().replace("Z", "+00:00")).timestamp()
    except (UnicodeDecodeError, ValueError):
        return None


def rate_limits(headers: Fields, now: float) -> tuple[tuple[Window, ...], float | None]:
    """The windows the headers report, and ``retry-after`` as a Unix time (or None)."""
    fields: dict[str, dict[str, float]] = {}
    retry_after = None
    for raw_name, value in headers:
        name = raw_name.lower()
        if match := _OPENAI.fullmatch(name):
            kind, window = match.group(1).decode(), match.group(2).decode()
            parsed = _duration(value) if kind == "reset" else _number(value)
            if parsed is not None:
                fields.setdefault(window, {})[kind] = now + parsed if kind == "reset" else parsed
        elif match := _ANTHROPIC.fullmatch(name):
            window, kind = match.group(1).decode(), match.group(2).decode()
            parsed = _instant(value) if kind == "reset" else _number(value)
            if parsed is not None:
                fields.setdefault(window, {})[kind] = parsed
        elif match := _UNIFIED.fullmatch(name):
            window, kind = "unified-" + match.group(1).decode(), match.group(2).decode()
            parsed = _instant(value) if kind == "reset" else _number(value)
            if parsed is not None:
                fields.setdefault(window, {})["utilization" if kind == "utilization" else "reset"] = parsed
        elif name == b"retry-after":
            seconds = _number(value)
            if seconds is not None and seconds >= 0:
                retry_after = now + seconds
            else:
                try:
                    retry_after = parsedate_to_datetime(value.decode("ascii")).timestamp()
                except (UnicodeDecodeError, ValueError, TypeError):
                    pass
    windows = []
    for window, values in list(fields.items())[:MAX_WINDOWS]:
        limit, remaining = values.get("limit"), values.get("remaining")
        used = values.get("utilization")
        if used is None and limit and remaining is not None:
            used = max(0.0, min(1.0, 1 - remaining / limit))
        windows.append(Window(window, limit, remaining, used, values.get("reset")))
    return tuple(windows), retry_after
