"""Rows the database could not take, kept in a file beside it until it takes them.

Why: a row held in memory is lost when the proxy is killed (SIGKILL, the OOM killer, a
power cut), and a database that is locked, read-only, full or gone for a while would
otherwise hold every row in memory for as long as that lasts. So rows whose write failed
are appended here at once, one JSON object a line (``usage.db.pending``, readable by its
owner only), and copied into the database, oldest first and before any newer row, as soon
as it takes rows again -- at the latest when the proxy next starts.

Exactly once: each file starts with an id, and how far it was copied is recorded in the
database (``llm_usage_pending``) in the same transaction as the rows, so a crash between
that commit and the file's removal copies nothing twice; a line cut off by a kill while
it was appended is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger(__name__)

SUFFIX = ".pending"
COPY_AT_ONCE = 5000
"""Rows copied per transaction: a long outage's file is copied in bounded pieces."""


class Spill:
    def __init__(self, db_path: str) -> None:
        self.path = db_path + SUFFIX
        self.waiting = os.path.exists(self.path)
        """Whether the file may hold rows not yet copied (checked once, then kept up to date)."""
        self._finished = False

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add ``rows`` to the file (made, with its id, when there is none). Raises OSError
        when the file cannot be written either (then the caller keeps them in memory)."""
        lines = [json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows]
        if not lines:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8", errors="surrogatepass") as file:
            size = os.fstat(fd).st_size
            if size == 0:
                file.write(json.dumps({"llm_usage_pending": uuid.uuid4().hex}) + "\n")
            elif os.pread(fd, 1, size - 1) != b"\n":
                file.write("\n")  # end a line a kill cut off, so the next row is a line of its own
            file.writelines(lines)
            file.flush()
            os.fsync(fd)  # a kill never loses them, and a power cut neither
        self.waiting = True

    def copy_into(self, conn: sqlite3.Connection, insert: Callable[[dict[str, Any]], None]) -> int:
        """Inside the caller's transaction: ``insert`` the next rows of the file, and record
        how far it is copied. Returns how many rows were copied. Raises what the database
        raises (the transaction is then rolled back, and the copy tried again later)."""
        if not self.waiting:
            return 0
        try:
            file = open(self.path, "rb")
        except FileNotFoundError:
            self.waiting = False
            return 0
        with file:
            header = _header(file.readline())
            if header is None:
                aside = self.path + ".unreadable"
                logger.error("llm-usage: %s is not a file of pending rows; moved to %s", self.path, aside)
                os.replace(self.path, aside)
                self.waiting = False
                return 0
            row = conn.execute("SELECT copied FROM llm_usage_pending WHERE file = ?", [header]).fetchone()
            if row is not None:
                file.seek(max(row[0], file.tell()))
            copied = 0
            position = file.tell()
            while copied < COPY_AT_ONCE:
                line = file.readline()
                if not line.endswith(b"\n"):
                    break  # the end, or a line a kill cut off while it was written (it is lost)
                position = file.tell()
                try:
                    values = json.loads(line)
                except ValueError:
                    logger.error("llm-usage: skipped an unreadable line of %s", self.path)
                    continue
                if isinstance(values, dict):
                    insert(values)
                    copied += 1
        conn.execute(
            "INSERT INTO llm_usage_pending (file, copied) VALUES (?, ?) "
            "ON CONFLICT (file) DO UPDATE SET copied = excluded.copied",
            [header, position],
        )
        self._finished = copied < COPY_AT_ONCE  # the end was reached: the file goes once this commits
        return copied

    def copied(self) -> None:
        """The transaction of ``copy_into`` committed: remove the file once all of it is in."""
        if self.waiting and self._finished:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # still recorded as copied: nothing is copied twice
                logger.warning("llm-usage: could not remove %s: %s", self.path, exc)
            self.waiting = False
            self._finished = False


def _header(line: bytes) -> str | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    file_id = value.get("llm_usage_pending") if isinstance(value, dict) else None
    return file_id if isinstance(file_id, str) else None
