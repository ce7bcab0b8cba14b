"""``export``: the calls as CSV or JSON lines, one row each, with the database's own column
names, filtered like the stats API (``--days``/``--since``/``--until``/``--tz`` and
``--provider``, ``--model``, ``--client``, ``--project``, ``--key``, ``--session``).

Rows are written as they are read (``web/exports.py``, shared with ``/stats/export``). CSV is safe
to open in a spreadsheet: a text cell that a spreadsheet would run as a formula (it starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return -- a model name or an error text
a provider chose) is written with a leading ``'`` (https://owasp.org/www-community/attacks/CSV_Injection).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..web.exports import WRITERS
from ..web.params import Filters, ParamError, parse_filters
from ..web.queries import export_rows
from ..web.reader import open_read_only
from .options import add_filters, filter_values


def arguments(command: Any) -> None:
    command.add_argument("--format", choices=tuple(WRITERS), default="csv")
    command.add_argument("-o", "--output", help="a file to write (default: standard output)")
    add_filters(command)


def run(args: argparse.Namespace, db_path: str) -> int:
    try:
        filters: Filters = parse_filters(filter_values(args), datetime.now(UTC))
    except ParamError as exc:
        print(f"export: --{exc}", file=sys.stderr)
        return 2
    if not Path(db_path).is_file():
        print(f"export: no database at {db_path} (give --db)", file=sys.stderr)
        return 2
    conn = open_read_only(db_path)
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        count = WRITERS[args.format](export_rows(conn, filters), out)
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
