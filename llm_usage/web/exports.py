"""The calls as CSV or JSON lines, one row each with the database's own column names: for
``python -m llm_usage export`` and for ``/stats/export`` over HTTP.

Rows are written as they are read from a cursor, so a million of them never sit in memory.
CSV is safe to open in a spreadsheet: a text cell that a spreadsheet would run as a formula
(it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return -- a model name or an
error text a provider chose) gets a leading ``'``
(https://owasp.org/www-community/attacks/CSV_Injection).

Over HTTP, mitmproxy sends an addon's own response whole (``Response.make`` takes bytes),
so ``/stats/export`` is not answered by the addon: once the token and the parameters are
checked (``pages.py``), the flow is sent on to ``ExportServer``, a small HTTP server on a
loopback port of this process, and its response is streamed through mitmproxy to the
client (``flow.response.stream``) -- backpressure included, nothing held. That server
answers only requests carrying this process's random secret, which only the addon adds.
"""

from __future__ import annotations

import csv
import hmac
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

from .params import FILTER_PARAMS, Filters, ParamError, key_by_label, parse_filters, single_values
from .queries import REQUEST_COLUMNS, export_rows
from .reader import open_read_only

logger = logging.getLogger(__name__)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
EXPORT_PARAMS = FILTER_PARAMS | {"format"}
SECRET_HEADER = "x-llm-usage-export"
CHUNK = 64 * 1024


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text, never runs."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(rows: Iterator[tuple[Any, ...]], out: IO[str]) -> int:
    writer = csv.writer(out)
    writer.writerow(REQUEST_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        count += 1
    return count


def write_jsonl(rows: Iterator[tuple[Any, ...]], out: IO[str]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(dict(zip(REQUEST_COLUMNS, row, strict=True)), ensure_ascii=False) + "\n")
        count += 1
    return count


WRITERS = {"csv": write_csv, "jsonl": write_jsonl}


def parse_export(
    pairs: list[tuple[str, str]], now: datetime, key_labels: dict[str, str] | None = None
) -> tuple[str, dict[str, str], Filters]:
    """``/stats/export``'s format, its filter values (a key's label made its fingerprint) and
    the filters they make; ``ParamError`` names a bad one."""
    values = single_values(pairs, EXPORT_PARAMS)
    form = values.pop("format", "csv")
    if form not in FORMATS:
        raise ParamError(f"format: must be csv or jsonl, not {form[:40]!r}")
    values = key_by_label(values, key_labels or {})
    return form, values, parse_filters(values, now)


class _Chunked:
    """A text stream written as HTTP/1.1 chunks of about ``CHUNK`` bytes."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, text: str) -> int:
        data = text.encode()
        self.parts.append(data)
        self.size += len(data)
        if self.size >= CHUNK:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self.size:
            self.raw.write(b"%x\r\n%s\r\n" % (self.size, b"".join(self.parts)))
            self.parts, self.size = [], 0

    def close(self) -> None:
        self.flush()
        self.raw.write(b"0\r\n\r\n")


class ExportServer:
    """The loopback server ``/stats/export`` is streamed from (started on first use)."""

    def __init__(self, database: Callable[[], str]) -> None:
        self.database = database
        self.secret = secrets.token_urlsafe(32)
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        with self._lock:
            if self._server is None:
                self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
                self._server.daemon_threads = True
                threading.Thread(target=self._server.serve_forever, name="llm-usage-export", daemon=True).start()
            host, port = self._server.server_address[:2]
            return str(host), int(port)

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version, sys_version = "llm-usage", ""

            def do_GET(self) -> None:
                server.answer(self, body=True)

            def do_HEAD(self) -> None:
                server.answer(self, body=False)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: mitmproxy already has the flow; the query string is not logged."""

        return Handler

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        if not hmac.compare_digest(handler.headers.get(SECRET_HEADER, ""), self.secret):
            handler.send_error(403)
            return
        try:
            form, _, filters = parse_export(parse_qsl(urlsplit(handler.path).query), datetime.now(UTC))
        except ParamError as exc:  # checked before: only a bug gets here
            handler.send_error(400, str(exc))
            return
        path = self.database()
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        handler.send_response(200)
        handler.send_header("content-type", FORMATS[form])
        handler.send_header("content-disposition", f'attachment; filename="llm-usage-{stamp}.{form}"')
        handler.send_header("cache-control", "no-store")
        handler.send_header("x-content-type-options", "nosniff")
        handler.send_header("transfer-encoding", "chunked")
        handler.send_header("connection", "close")
        handler.end_headers()
        if not body:
            handler.wfile.write(b"0\r\n\r\n")
            return
        out = _Chunked(handler.wfile)
        try:
            if Path(path).is_file():
                conn = open_read_only(path)
                try:
                    count = WRITERS[form](export_rows(conn, filters), out)  # type: ignore[arg-type]
                finally:
                    conn.close()
            else:
                count = WRITERS[form](iter(()), out)  # type: ignore[arg-type]
            out.close()
            logger.info("llm-usage: /stats/export sent %d row(s) as %s", count, form)
        except sqlite3.Error as exc:
            # Headers are gone: the only honest signal left is a cut-off transfer.
            logger.error("llm-usage: /stats/export stopped, the database could not be read: %s", exc)
            handler.close_connection = True
        except OSError:  # the client went away: its choice, not a fault
            logger.info("llm-usage: /stats/export ended early: the client closed the connection")
            handler.close_connection = True
