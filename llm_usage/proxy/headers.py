"""Reading several headers of a message in one pass over its raw fields.

Why: each ``Headers.get`` lower-cases and compares every field of the message, and the
proxy reads four or five headers of every request on mitmproxy's event loop; one pass
over ``Headers.fields`` (mitmproxy's documented raw view) reads them all for the price
of one. Measured on the 2-core development machine, for a request with ten headers: five
``get`` calls about 30 us, one pass about 3 us (the proxy's own cost per call is a few
hundred us there, so this is a tenth of it). The result matches ``Headers.get``:
names are case-insensitive, repeated fields are joined with ``", "``, values are decoded
as mitmproxy decodes them (UTF-8, surrogateescape).
"""

from __future__ import annotations

from collections.abc import Iterable

Fields = tuple[tuple[bytes, bytes], ...]
"""``Headers.fields``: raw ``(name, value)`` byte pairs, immutable."""


def header_values(fields: Iterable[tuple[bytes, bytes]], names: frozenset[bytes]) -> dict[bytes, str]:
    """The wanted headers (lower-case byte names) that are present, by name."""
    found: dict[bytes, bytes] = {}
    for name, value in fields:
        key = name.lower()
        if key in names:
            found[key] = found[key] + b", " + value if key in found else value
    return {key: value.decode("utf-8", "surrogateescape") for key, value in found.items()}


def header_value(fields: Fields, name: bytes) -> str:
    """One header (lower-case byte name), ``""`` when absent."""
    return header_values(fields, frozenset((name,))).get(name, "")
