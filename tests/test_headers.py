"""``header_values`` reads several headers in one pass, exactly as ``Headers.get`` would."""

from __future__ import annotations

import pytest
from mitmproxy.http import Headers

from llm_usage.headers import header_values

NAMES = frozenset((b"content-type", b"user-agent", b"cookie", b"x-title"))


@pytest.mark.parametrize(
    "fields",
    [
        [],
        [(b"Content-Type", b"text/event-stream")],
        [(b"CONTENT-TYPE", b"a"), (b"user-agent", b"OpenAI/Python 1.0"), (b"X-Other", b"x")],
        [(b"Cookie", b"a=1"), (b"cookie", b"b=2"), (b"COOKIE", b"c=3")],  # HTTP/2 splits cookies
        [(b"User-Agent", "caf\u00e9".encode()), (b"x-title", b"\xff\xfe")],  # not UTF-8: surrogateescape
    ],
)
def test_matches_headers_get(fields: list[tuple[bytes, bytes]]) -> None:
    headers = Headers(fields)
    found = header_values(headers.fields, NAMES)
    for name in NAMES:
        assert found.get(name) == headers.get(name.decode())
