"""What a request carried that is secret, and taking every form of it out of text a row keeps.

A provider's or gateway's error message may echo the request back: the URL with a Gemini
``?key=``, a header, a cookie, a field of the JSON body (OpenRouter's BYOK ``api_key``, a
tool's ``client_secret``), and not always as it was sent -- URL-encoded (``%2F``, ``+``) or
base64-encoded. Every secret is taken out in each of those forms, *before* the message is
cut to its stored length, so no head of a secret is left at the cut either.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from ..proxy.attribution import CREDENTIAL_HEADERS as KEY_HEADERS
from ..proxy.headers import Fields

REDACTED = "[redacted]"
MIN_SECRET = 8
"""Shorter values (``alt=sse``, ``stream``) are not worth redacting and would mangle messages."""
CREDENTIAL_HEADERS = frozenset((*KEY_HEADERS, b"proxy-authorization"))
"""The headers an API key travels in (the ones its fingerprint is taken from), and a proxy's."""
_KEY_PROTOCOL = "openai-insecure-api-key."
"""A browser cannot set headers on a WebSocket, so OpenAI's Realtime API takes the key as a
subprotocol, ``openai-insecure-api-key.<key>``
(https://platform.openai.com/docs/guides/realtime-websocket)."""

_SECRET_NAME = re.compile(
    rb'"([A-Za-z0-9_.-]{0,48}(?:key|token|secret|password|passwd|credential|credentials|auth|authorization|'
    rb'cookie|signature)[A-Za-z0-9_.-]{0,16})"\s*:\s*"',
    re.IGNORECASE,
)
"""A JSON member whose name says its string value is secret (``api_key``, ``apiKey``,
``access_token``, ``client_secret``, ``password``, ...). Found by a scan rather than a
parse, so a 100 MB body costs no tree of objects; counts such as ``max_tokens`` end in
``tokens`` and their values are numbers, never strings, so they never match."""
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.){0,4096}"', re.DOTALL)
"""The rest of a JSON string after its opening quote (a secret is never longer)."""
_FORM = "application/x-www-form-urlencoded"


def request_secrets(target: str, headers: Fields, body: bytes = b"", content_type: str = "") -> tuple[str, ...]:
    """Every value of the request that is secret: its query values, credential headers
    (``Bearer <token>`` and the token alone), cookie values, a WebSocket key subprotocol,
    and the body's secret-named JSON fields or (a form) all its values."""
    found = [value for _name, value in parse_qsl(urlsplit(target).query, keep_blank_values=True)]
    for name, value in headers:
        key = name.lower()
        text = value.decode("utf-8", "surrogateescape")
        if key in CREDENTIAL_HEADERS:
            found += [text, text.partition(" ")[2]]
        elif key == b"cookie":
            found += [part.partition("=")[2].strip() for part in text.split(";")]
        elif key == b"sec-websocket-protocol":
            protocols = (p.strip() for p in text.split(","))
            found += [p.removeprefix(_KEY_PROTOCOL) for p in protocols if p.startswith(_KEY_PROTOCOL)]
    if body:
        if content_type.split(";")[0].strip().lower() == _FORM:
            found += [value for _name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)]
        else:
            found += list(_json_secrets(body))
    unique = dict.fromkeys(s for s in found if len(s) >= MIN_SECRET)
    return tuple(unique)


def _json_secrets(body: bytes) -> Iterator[str]:
    for match in _SECRET_NAME.finditer(body):
        rest = _STRING_REST.match(body, match.end())
        if rest is None:
            continue
        raw = body[match.end() - 1 : rest.end()]
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, str):
            yield value


def forms(secret: str) -> set[str]:
    """The ways a secret is seen echoed: as it was, URL-encoded (``%20`` or ``+``), and
    base64 (standard and URL-safe alphabets) -- whole, and inside a longer encoded text
    (HTTP Basic's ``user:key``), where it starts at any of three byte offsets: there only
    the characters that encode the secret's bits alone are certain, and those are taken."""
    data = secret.encode("utf-8", "surrogateescape")
    found = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        found.add(encode(data).decode())
        for offset in range(3):
            encoded = encode(bytes(offset) + data).decode()
            found.add(encoded[(8 * offset + 5) // 6 : 8 * (offset + len(data)) // 6])
    return found


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every form of every secret replaced by ``[redacted]``, longest first
    (so a secret inside another's encoding cannot leave a piece of it behind)."""
    if not text:
        return text
    every = sorted({form for secret in secrets for form in forms(secret)}, key=len, reverse=True)
    for form in every:
        if form in text:
            text = text.replace(form, REDACTED)
    return text
