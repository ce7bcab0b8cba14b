"""Read-only database access for the stats API, off mitmproxy's event loop.

A query on the event loop would stall every proxied call while it runs, so each one runs
on a small thread pool; every worker thread keeps its own read-only connection
(``file:...?mode=ro``; a query reads one consistent state, and a write waits for it, or
sets its rows aside, see ``store/writer.py``).
Before the first request is logged the file does not exist: queries then run against an
empty in-memory database with the same schema, so every endpoint answers with zeros.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sqlite_utils import Database

from ..store.schema import migrate

T = TypeVar("T")
BUSY_TIMEOUT_SECONDS = 5.0


def open_read_only(path: str | Path) -> sqlite3.Connection:
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only = 1")
    return conn


def empty_database() -> sqlite3.Connection:
    """An in-memory database with the current schema and no rows."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    migrate(Database(conn))
    return conn


class StatsReader:
    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-usage-stats")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []

    async def run(self, path: str, query: Callable[[sqlite3.Connection | None], T]) -> T:
        """``query(connection)`` on a worker thread; the connection is ``None`` when the
        database file does not exist yet (``query`` may then use ``empty()``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, path, query)

    def _call(self, path: str, query: Callable[[sqlite3.Connection | None], T]) -> T:
        return query(self._connection(path))

    def empty(self) -> sqlite3.Connection:
        conn = getattr(self._local, "empty", None)
        if conn is None:
            conn = self._local.empty = self._track(empty_database())
        return conn

    def _connection(self, path: str) -> sqlite3.Connection | None:
        if not path or not Path(path).is_file():
            return None
        cached: dict[str, sqlite3.Connection] = self._local.__dict__.setdefault("by_path", {})
        conn = cached.get(path)
        if conn is None:
            conn = cached[path] = self._track(open_read_only(path))
        return conn

    def _track(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        with self._lock:
            self._all.append(conn)
        return conn

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
