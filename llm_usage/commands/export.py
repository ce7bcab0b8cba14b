"""``export``: the calls as CSV or JSON lines, one row each, with the database's own column
names, filtered like the stats API (``--days``/``--since``/``--until``/``--tz`` and
``--provider``, ``--model``, ``--client``, ``--project``, ``--key``, ``--session``).

Rows are written as they are read, so a million of them never sit in memory. CSV is safe
to open in a spreadsheet: a text cell that a spreadsheet would run as a formula (it starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return -- a model name or an error text
a provider chose) is written with a leading ``'`` (https://owasp.org/www-community/attacks/CSV_Injection).
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ..web.params import FILTER_PARAMS, Filters, ParamError, parse_filters
from ..web.queries import REQUEST_COLUMNS, export_rows

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def arguments(command: Any) -> None:
    command.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    command.add_argument("-o", "--output", help="a file to write (default: standard output)")
    for name in sorted(FILTER_PARAMS):
        command.add_argument(f"--{name}", help=f"as the stats API's {name}")


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


def run(args: argparse.Namespace, db_path: str) -> int:
    values = {name: getattr(args, name) for name in FILTER_PARAMS if getattr(args, name) is not None}
    try:
        filters: Filters = parse_filters(values, datetime.now(UTC))
    except ParamError as exc:
        print(f"export: --{exc}", file=sys.stderr)
        return 2
    if not Path(db_path).is_file():
        print(f"export: no database at {db_path} (give --db)", file=sys.stderr)
        return 2
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        write = write_csv if args.format == "csv" else write_jsonl
        count = write(export_rows(conn, filters), out)
    except sqlite3.Error as exc:
        print(f"export: cannot read {db_path}: {exc}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
        conn.close()
    if args.output:
        print(f"export: {count:,} row(s) to {args.output}", file=sys.stderr)
    return 0
