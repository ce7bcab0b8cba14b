"""The commands beside the proxy, reading the same database (``--db``, else
``PROXY_DB_PATH`` from the environment or ``.env``, else ``./usage.db``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from ..config.files import read_dotenv
from . import export, key_id


def database_path(given: str | None) -> str:
    """The database the proxy would use: the argument, the environment, ``.env``, the default."""
    if given:
        return given
    return os.environ.get("PROXY_DB_PATH") or read_dotenv().get("PROXY_DB_PATH") or "./usage.db"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_usage", description="llm-usage commands")
    parser.add_argument("--db", help="the SQLite file (default: PROXY_DB_PATH, else ./usage.db)")
    commands = parser.add_subparsers(dest="command", required=True)
    key_id.register(commands)
    export.register(commands)
    args = parser.parse_args(argv)
    return int(args.run(args, database_path(args.db)))
