"""``key-id``: the fingerprint this database gives a key, to label it in ``llm_usage_key_labels``.

The key is read from the terminal without echo, or from standard input
(``pass show openai | python -m llm_usage key-id``), never from the command line, where
it would stay in the shell's history and be visible to other users in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sqlite3
import sys
from pathlib import Path
from typing import Any

from ..accounting.keys import database_salt, fingerprint
from ..store.schema import open_database


def arguments(command: Any) -> None:
    """None beyond ``--db``."""


def _read_key() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("API key (not shown): ")
    return sys.stdin.readline()


def run(args: argparse.Namespace, db_path: str) -> int:
    if not Path(db_path).is_file():
        print(f"key-id: no database at {db_path}; each database has its own salt, made when the proxy "
              "first starts on it (or give --db)", file=sys.stderr)  # fmt: skip
        return 2
    key = _read_key().strip()
    scheme, _, token = key.partition(" ")
    if scheme.lower() == "bearer" and token:
        key = token.strip()
    if not key:
        print("key-id: no key given", file=sys.stderr)
        return 2
    try:
        db = open_database(db_path)
        try:
            salt = database_salt(db.conn)
        finally:
            db.close()
    except sqlite3.Error as exc:
        print(f"key-id: cannot read {db_path}: {exc}", file=sys.stderr)
        return 1
    assert salt is not None
    key_id = fingerprint(salt, key)
    print(key_id)
    if sys.stdout.isatty():
        print(f"label it in the file of llm_usage_key_labels, e.g.:  my-laptop: {key_id}", file=sys.stderr)
    return 0
