"""Rows are built and written to SQLite on a writer thread, never on mitmproxy's event loop.

mitmproxy sends the end of a response only after the ``response`` hook returns, so any
work there is latency every client pays; and a sqlite-utils ``Database`` is bound to the
thread that opened it. The proxy therefore only submits a job per finished call (it
builds the call's row: ``accounting.account``), and this thread runs what is queued in a
batch and writes the rows in one transaction. ``close`` (quit or reload) writes every
row submitted before it. A database failure is logged loudly and retried; the rows it
refused wait in a file beside it (``store/spill.py``) rather than in memory, so a kill or
a long outage loses none of them; it never reaches the user's traffic.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..accounting.keys import SALT_SETTING, database_salt
from ..accounting.row import COLUMNS, Row
from .schema import open_database
from .spill import Spill

logger = logging.getLogger(__name__)

BATCH_MAX = 2000
BATCH_WINDOW_SECONDS = 0.25
"""After a write, rows gather this long before the next one (a row that comes while the
writer is idle is written at once). Why so long: every write hands the GIL back and forth
with mitmproxy's event loop a dozen times (sqlite3 releases it around each call), and under
load those hand-overs, not the writing, were what the proxy lost. Measured with wrk at 16
connections on the 2-core development machine: 0.05 s gave addon/bare 0.84 calls/s and a
main-thread context switch every third call; 0.25 s gave 0.92 and one every tenth."""
RETRY_SECONDS = 2.0
BUSY_TIMEOUT_MS = 500
"""How long a write waits for a lock another connection holds (a long stats query, a
``sqlite3`` shell) before its rows go to the pending file: rows waiting in memory are the
ones a kill would lose."""
MAX_PENDING_ON_FAILURE = 100_000
"""Rows kept in memory while neither the database nor the pending file takes them; older
ones are dropped (and counted)."""

_STOP = object()
MAX_ROWS_PER_STATEMENT = 256
"""At most; fewer where the SQLite build allows fewer bound parameters per statement."""


@lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    """``INSERT ... VALUES (...), (...), ...`` for ``rows`` rows (cached, and sqlite3 keeps the
    prepared statement of each size too)."""
    one = "({})".format(", ".join("?" * len(COLUMNS)))
    columns = ", ".join(f"[{c}]" for c in COLUMNS)
    return f"INSERT INTO requests ({columns}) VALUES {', '.join([one] * rows)}"


def _rows_per_statement(conn: sqlite3.Connection) -> int:
    """Rows whose parameters fit this SQLite's limit (999 before 3.32) in one statement."""
    return max(min(MAX_ROWS_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS)), 1)


def insert_rows(db: Database, rows: list[dict[str, Any]]) -> None:
    """One transaction; one multi-row INSERT statement per batch (a few for a big one).

    Why: the sqlite3 module releases the GIL around every statement step and takes it back
    after, and under load mitmproxy's event loop holds the GIL nearly all the time, so each
    take is a hand-over that costs the loop a context switch; a statement per row made the
    writer thread cost the event loop as much CPU as its own work.

    Not ``Table.insert_all``: that would silently re-create a missing table with only the
    columns it sees; a broken database must fail loudly instead.
    """
    most = _rows_per_statement(db.conn)
    with db.conn:
        start = 0
        while start < len(rows):
            size = min(most, len(rows) - start)
            chunk = rows[start : start + size]
            db.conn.execute(_insert_sql(size), [row.get(c) for row in chunk for c in COLUMNS])
            start += size


def _insert_one(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    """A row from the pending file; one whose values the database refuses is dropped, loudly."""
    try:
        conn.execute(_insert_sql(1), [row.get(c) for c in COLUMNS])
    except Exception as exc:
        if _database_failure(exc):
            raise
        logger.error("llm-usage: dropped a pending row the database refused (%s): %r", exc, _describe(row))


Job = Callable[[], tuple[Row, str | None]]
"""Builds one row (and its readable line, or None) on the writer thread."""


class RowWriter:
    """Owns the database connection on its own thread.

    ``on_lines`` (if given) is called on the same thread with each batch's readable lines,
    so printing them costs the event loop nothing either.
    """

    def __init__(
        self, path: str | Path, on_lines: Callable[[list[str]], None] | None = None, key_salt: bytes | None = None
    ) -> None:
        self.path = str(path)
        self.key_salt = key_salt
        """The salt the proxy fingerprints keys with: given to a database made anew under it."""
        self.on_lines = on_lines
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="llm-usage-writer", daemon=True)
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self.problem: str | None = None
        """Why rows cannot be written right now (``/healthz`` says so); None while they can."""
        self.set_aside = 0
        """Rows in the pending file, not yet in the database."""
        self._spill = Spill(self.path)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue a row that ``job`` builds on this thread, with the batch it is written in.

        Why: building a row (parsing the body, pricing) on mitmproxy's event loop would
        delay every call; here it runs in a batch, off the loop. ``job`` must not raise
        (``accounting.account`` turns failures into error rows); if it does anyway, the
        error is logged and the writer goes on.
        """
        self._queue.put(job)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted row is in the database (or the timeout passes)."""
        done = threading.Event()
        self._queue.put(done)  # set by the thread once every row queued before it is written
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("llm-usage: the database writer did not finish within %.0fs; rows may be lost", timeout)

    def _run(self) -> None:
        db: Database | None = None
        pending: list[dict[str, Any]] = []
        markers: list[threading.Event] = []
        stopping = False
        # set while the database is failing; at once when rows wait from an earlier run
        retry_at: float | None = time.monotonic() if self._spill.waiting else None
        opened: tuple[int, int] | None = None  # the file the open database is
        while True:
            if retry_at is None:
                items = self._take(block=True, timeout=None)
            else:  # keep taking rows (and _STOP) while waiting to retry
                items = self._take(block=True, timeout=max(retry_at - time.monotonic(), 0.0))
            lines: list[str] = []
            for item in items:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    try:
                        row, line = item()
                    except Exception:  # a bug in a job must not stop the writer
                        logger.exception("llm-usage: could not build a row; that call is not logged")
                        continue
                    pending.append(row)
                    if line is not None:
                        lines.append(line)
            self._print(lines)
            if len(pending) > MAX_PENDING_ON_FAILURE:
                overflow = len(pending) - MAX_PENDING_ON_FAILURE
                self.dropped += overflow
                del pending[:overflow]
                logger.error("llm-usage: dropped %d unwritten row(s) while the database fails", overflow)
            wrote = False
            due = pending or self._spill.waiting
            if pending and retry_at is not None and time.monotonic() < retry_at and not stopping:
                pending = self._put_aside(pending)  # the database is failing: not in memory until it is back
            elif due and (retry_at is None or time.monotonic() >= retry_at or stopping):
                if db is not None and _file_identity(self.path) != opened:
                    # Deleted or replaced under us: SQLite would go on writing into the
                    # unlinked file, and every row after would be lost without a word.
                    logger.warning("llm-usage: %s was deleted or replaced; creating it again", self.path)
                    _close_quietly(db)
                    db = None
                try:
                    if db is None:
                        db = open_database(self.path, BUSY_TIMEOUT_MS)
                        opened = _file_identity(self.path)
                        if self.key_salt is not None:
                            keep_salt(db.conn, self.key_salt)
                        # NORMAL: never corrupt, at worst the last rows are lost on a power
                        # cut. Temporary tables and statement journals in memory, not files
                        # in /var/tmp created and deleted for every batch. A lock held
                        # elsewhere is waited for briefly, then the rows go aside.
                        db.execute("PRAGMA synchronous=NORMAL")
                        db.execute("PRAGMA temp_store=MEMORY")
                    self._write(db, pending)
                    pending = []
                    retry_at = None
                    wrote = True
                    self.problem = None
                except (sqlite3.Error, OSError) as exc:
                    self.failures += 1
                    self.problem = f"rows cannot be written: {exc}"
                    logger.error(
                        "llm-usage: could not write %s to %s: %s (will retry; traffic is unaffected)",
                        f"{len(pending)} row(s)" if pending else "the rows set aside",
                        self.path,
                        exc,
                    )
                    _close_quietly(db)
                    db = None
                    retry_at = time.monotonic() + RETRY_SECONDS
                    pending = self._put_aside(pending)
            if not pending and not self._spill.waiting:
                for marker in markers:
                    marker.set()
                markers = []
            if stopping:
                if pending:
                    logger.error("llm-usage: shutting down with %d row(s) not written to %s", len(pending), self.path)
                if self._spill.waiting:
                    logger.warning(
                        "llm-usage: %d row(s) wait in %s for the database; they are written when it takes rows "
                        "again (the next start at the latest)",
                        self.set_aside,
                        self._spill.path,
                    )
                break
            if wrote:
                time.sleep(BATCH_WINDOW_SECONDS)
        for marker in markers:
            marker.set()
        _close_quietly(db)

    def _take(self, block: bool, timeout: float | None) -> list[Any]:
        items: list[Any] = []
        try:
            items.append(self._queue.get(block, timeout))
        except queue.Empty:
            return items
        while len(items) < BATCH_MAX:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _put_aside(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows the database did not take go to the pending file; what is left in memory
        (all of them, if the file cannot be written either) is returned."""
        if not rows:
            return rows
        try:
            self._spill.append(rows)
        except OSError as exc:
            logger.error("llm-usage: could not keep %d row(s) in %s either: %s", len(rows), self._spill.path, exc)
            return rows
        self.set_aside += len(rows)
        return []

    def _write(self, db: Database, rows: list[dict[str, Any]]) -> None:
        """First what waits in the pending file (oldest first), then ``rows`` in one
        transaction. A database-level failure (sqlite3.OperationalError, a corrupt file,
        I/O) propagates, to be retried; a row the database will not take (an unencodable
        string, an out-of-range number) is written without its fellows failing: each row
        alone, and the ones refused are dropped, loudly."""
        while self._spill.waiting:
            with db.conn:
                copied = self._spill.copy_into(db.conn, lambda row: _insert_one(db.conn, row))
            self._spill.copied()
            self.written += copied
            self.set_aside = max(self.set_aside - copied, 0)
        try:
            insert_rows(db, rows)
            self.written += len(rows)
            return
        except Exception as exc:
            if _database_failure(exc):
                raise
            logger.error("llm-usage: a batch of %d row(s) was refused (%s); writing them one by one", len(rows), exc)
        for row in rows:
            try:
                insert_rows(db, [row])
                self.written += 1
            except Exception as exc:
                if _database_failure(exc):
                    raise
                self.dropped += 1
                logger.error("llm-usage: dropped a row the database refused (%s): %r", exc, _describe(row))

    def _print(self, lines: list[str]) -> None:
        if not lines or self.on_lines is None:
            return
        try:
            try:
                self.on_lines(lines)
            except UnicodeError:  # a stray surrogate in a model name: print it replaced
                self.on_lines([line.encode("utf-8", "replace").decode("utf-8") for line in lines])
        except (OSError, ValueError):  # stdout closed: the rows still get written
            self.on_lines = None


def keep_salt(conn: sqlite3.Connection, salt: bytes) -> None:
    """A database made again under the running proxy (deleted, replaced by an empty one)
    takes the salt the proxy fingerprints keys with, so ``key-id`` agrees with its rows;
    one that already holds rows keeps its own (and says so: new fingerprints differ)."""
    if database_salt(conn, create=False) == salt:
        return
    if conn.execute("SELECT 1 FROM requests LIMIT 1").fetchone() is None:
        with conn:
            conn.execute("UPDATE llm_usage_settings SET value = ? WHERE name = ?", [salt.hex(), SALT_SETTING])
    else:
        logger.warning("llm-usage: the database has another key salt than the proxy started with: restart the proxy")


def _database_failure(exc: Exception) -> bool:
    """A failure of the database (retried) rather than of one row's values (dropped alone).
    A value SQLite cannot bind is the row's fault, though sqlite3 calls it a DatabaseError."""
    if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.InterfaceError)) and "binding parameter" in str(exc):
        return False
    return isinstance(exc, (sqlite3.DatabaseError, OSError))


def _describe(row: dict[str, Any]) -> str:
    return f"{row.get('timestamp')} {row.get('provider')} {row.get('endpoint')}"


def _file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``; None when there is none. One ``stat`` a batch."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _close_quietly(db: Database | None) -> None:
    if db is not None:
        try:
            db.close()
        except sqlite3.Error:
            pass
