"""The latest rate-limit state each provider reported, per provider and key.

Noted on the writer thread from each response's headers (``parsers/rate_limits.py``:
numbers and times only); read by ``/stats/limits`` and the dashboard. Kept in memory: the
next response after a restart reports it again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from ..parsers.rate_limits import Fields, rate_limits


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


class RateLimitBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str | None], dict[str, Any]] = {}

    def note(self, provider: str, key_id: str | None, headers: Fields, at: float | None = None) -> None:
        now = time.time() if at is None else at
        windows, retry_after = rate_limits(headers, now)
        if not windows and retry_after is None:
            return
        entry = {
            "provider": provider,
            "key_id": key_id,
            "seen_at": _iso(now),
            "retry_after_until": _iso(retry_after),
            "windows": [{**asdict(w), "resets_at": _iso(w.resets_at)} for w in windows],
        }
        with self._lock:
            self._latest[(provider, key_id)] = entry

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._latest.values())
        return sorted(entries, key=lambda e: (e["provider"], e["key_id"] or ""))
