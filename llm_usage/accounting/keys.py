"""Key fingerprints: which key paid for a call, without keeping the key.

``key_id`` is ``key-`` and 8 hex digits of HMAC-SHA256(salt, key). The salt is 32 random
bytes made once per database and kept in it (``llm_usage_settings``), so:

- the same key always gets the same ``key_id`` in one database, and a person can label
  their own keys (``python -m llm_usage key-id`` prints a key's fingerprint);
- a fingerprint cannot be matched across installations, and a list of known or leaked keys
  cannot be tried against the fingerprints without the database's salt;
- 32 bits of a keyed hash say nothing about the key itself; with a handful of keys per
  database two of them sharing a fingerprint is a one-in-a-billion chance.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3

SALT_SETTING = "key_salt"
KEY_ID = re.compile(r"key-[0-9a-f]{8}")


def fingerprint(salt: bytes, key: str) -> str:
    digest = hmac.new(salt, key.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
    return f"key-{digest[:8]}"


def database_salt(conn: sqlite3.Connection, create: bool = True) -> bytes | None:
    """The database's salt; made (at random) and stored when it has none and ``create``."""
    row = conn.execute("SELECT value FROM llm_usage_settings WHERE name = ?", [SALT_SETTING]).fetchone()
    if row is not None:
        return bytes.fromhex(row[0])
    if not create:
        return None
    salt = secrets.token_bytes(32)
    with conn:
        conn.execute("INSERT OR IGNORE INTO llm_usage_settings (name, value) VALUES (?, ?)", [SALT_SETTING, salt.hex()])
    row = conn.execute("SELECT value FROM llm_usage_settings WHERE name = ?", [SALT_SETTING]).fetchone()
    return bytes.fromhex(row[0])  # another process may have made it first: theirs wins
