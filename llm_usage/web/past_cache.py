"""Sums over the past, kept between requests: yesterday's hours do not change.

A year's stats read tens of thousands of rollup rows (a row per hour and provider, model,
client, project and key), which takes this machine 200 ms or more, and the dashboard asks
again every 30 s. The hours before today (UTC) are the same at every ask unless rows are
written into them -- a call that started before midnight and ended after it, the pending
file copied in late (``store/spill.py``), an import -- or rows are deleted or changed. So
those sums are kept, and used again while:

- no row newer than the kept ones (by ``rowid``) starts before today, and
- ``requests_revision`` (bumped by the rollups' triggers on every delete or update) is
  what it was.

Checking that costs two index lookups and a scan of the rows written since (seconds' worth).
Today's hours and the partial hours at a window's edges are always read afresh.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

DAY = 86400
MAX_ENTRIES = 256

Rows = list[tuple[Any, ...]]


def today_start(now: float | None = None) -> int:
    """Where the kept past ends: the start of the current UTC day, in Unix seconds."""
    return int((time.time() if now is None else now) // DAY * DAY)


def database_state(conn: Any) -> tuple[str, int, int]:
    """Which database, its newest row and how often its past was changed (deletes, updates,
    rebuilds: ``requests_revision``): equal states, equal rows."""
    database = conn.execute("PRAGMA database_list").fetchone()[2]
    newest = conn.execute("SELECT coalesce(max(rowid), 0) FROM requests").fetchone()[0]
    revision = conn.execute("SELECT coalesce(max(n), 0) FROM requests_revision").fetchone()[0]
    return database, newest, revision


class PastCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[int, int, Rows]] = OrderedDict()
        """key -> (max rowid when computed, revision, rows)."""

    def rows(self, conn: Any, key: tuple[Any, ...], frozen_end: int, compute: Callable[[], Rows]) -> Rows:
        """``compute()``'s rows for ``key`` (a query over hours before ``frozen_end`` only),
        from the cache while the past it read is unchanged."""
        database, newest, revision = database_state(conn)
        key = (database, frozen_end, *key)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is not None and entry[1] == revision and entry[0] <= newest:  # (fewer rows: another file)
            kept_newest, _, rows = entry
            if kept_newest == newest:
                return rows
            late = conn.execute(
                "SELECT 1 FROM requests WHERE rowid > ? AND timestamp < ? LIMIT 1", [kept_newest, frozen_end]
            ).fetchone()
            if late is None:
                with self._lock:
                    self._entries[key] = (newest, revision, rows)  # the rows since are all in today
                return rows
        rows = compute()
        with self._lock:
            self._entries[key] = (newest, revision, rows)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        return rows

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


PAST = PastCache()
