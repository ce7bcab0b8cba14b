"""Small pure helpers shared by the per-format parsers."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_ERROR_CHARS = 500
"""What a row keeps of an error message: cut only after its secrets are taken out."""
MAX_ERROR_SCAN = 65_536
"""What an error message is read to (bounded memory), before redaction and the cut."""
MAX_COST_USD = Decimal(1_000_000)
"""A reported cost above this for one call is garbage, not a price."""


def load_json(body: bytes | str) -> Any:
    """Parse JSON, returning ``None`` for anything that is not JSON (an HTML error page...)."""
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


MAX_COUNT = 10**9
"""No real call uses this many tokens (the largest context windows hold ~10 million; a
batch of embeddings a few million): a count beyond is garbage, not usage."""


def as_int(value: Any) -> int | None:
    """A token count as an int; ``None`` for absent, null, booleans, negatives or garbage."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value < MAX_COUNT:
        return value
    return None


def as_decimal(value: Any) -> Decimal | None:
    """A provider-reported cost as an exact Decimal (from the JSON number's own digits);
    ``None`` for a negative or absurd one, which is then priced as if none were reported
    (a gateway's negative figure once took a user's totals below zero)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, str)):
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            return None
        return result if result.is_finite() and 0 <= result < MAX_COST_USD else None
    return None


_COUNT_NAME = re.compile(r"(?:tokens?|token_?count|_count|_requests)$", re.IGNORECASE)
_COST_NAME = re.compile(r"(?:^|_)cost$", re.IGNORECASE)
_MAX_DEPTH = 4


def implausible(usage: Any, _path: str = "", _depth: int = 0) -> tuple[str, ...]:
    """What of a provider's usage object cannot be true: a count (``..._tokens``,
    ``...TokenCount``, ``..._count``, ``..._requests``) or a cost that is negative, absurd,
    fractional or not a number at all -- each as ``name = value``. A usage with any of these
    is not trusted (``usage_status`` 'invalid', no price from it): a negative cost once took
    a user's totals below zero, and 1e30 tokens were stored as a complete, empty call."""
    found: list[str] = []
    items = usage.items() if isinstance(usage, dict) else enumerate(usage) if isinstance(usage, list) else ()
    for key, value in items:
        if (type(value) is int and 0 <= value < MAX_COUNT) or value is None:
            continue  # the usual case, fast: a plausible count (or cost), or nothing
        if isinstance(value, (dict, list)):
            if _depth < _MAX_DEPTH:
                found += implausible(value, f"{_path}.{key}" if _path else str(key), _depth + 1)
        elif not isinstance(key, str):
            continue
        elif _COUNT_NAME.search(key):
            if as_int(value) is None:
                found.append(
                    f"{_path}.{key} = {json.dumps(value)[:40]}" if _path else f"{key} = {json.dumps(value)[:40]}"
                )
        elif _COST_NAME.search(key) and as_decimal(value) is None:
            found.append(f"{_path}.{key} = {json.dumps(value)[:40]}" if _path else f"{key} = {json.dumps(value)[:40]}")
    return tuple(found)


def get_path(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...`` or ``None`` when any step is missing or not a mapping."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


_MODEL_IN_PATH = re.compile(r"/models/([^/:]+)(?::|$)")


def body_model(path: str, request: dict[str, Any]) -> str | None:
    """The ``model`` the client asked for in its JSON body."""
    model = request.get("model")
    return model if isinstance(model, str) and model else None


def path_model(path: str) -> str | None:
    """The model named in a URL: ``/v1beta/models/gemini-2.5-flash:generateContent``, Vertex
    AI's ``.../publishers/anthropic/models/claude-3-7-sonnet@20250219:rawPredict``."""
    match = _MODEL_IN_PATH.search(path)
    return match.group(1) if match else None


def error_message(body: bytes | str | Any) -> str | None:
    """The provider's own error message from an error body, in any of the shapes seen.

    OpenAI-compatible and Anthropic: ``{"error": {"message": ...}}``; Gemini (google.rpc):
    the same, sometimes wrapped in a one-element list; Ollama: ``{"error": "..."}``;
    others: ``{"message": ...}`` or ``{"detail": ...}``. A non-JSON body is returned as
    (truncated) text so the row still says something.
    """
    data = load_json(body) if isinstance(body, (bytes, str)) else body
    if isinstance(data, list) and data:
        data = data[0]
    message: Any = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message") or err.get("type") or err.get("status") or err.get("code")
        elif isinstance(err, str):
            message = err
        if not message:
            message = data.get("message") or data.get("detail")
    if message is None and isinstance(body, (bytes, str)) and data is None:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        message = " ".join(text.split())
    if message is None:
        return None
    if not isinstance(message, str):
        message = json.dumps(message)
    return message[:MAX_ERROR_SCAN] or None


_TOKEN = re.compile(rb'\s*+(?:("[^"\\]*+(?:\\.[^"\\]*+)*+")|([{}\[\],:])|([^\s{}\[\],:"]++))', re.DOTALL)
"""One JSON token: a string (unrolled, possessive: a 100 MB string is one C-speed match,
no backtracking), a structural character, or a literal (number, true, false, null)."""


def top_level_spans(body: bytes, wanted: frozenset[bytes]) -> dict[str, tuple[int, int]] | None:
    """Where the values of the ``wanted`` keys of a JSON object ``body`` are (byte spans),
    without building the object: a coding tool's request can be 100 MB of messages, and
    ``json.loads`` would make a tree several times that size to read one key. ``None``
    when ``body`` is not one JSON object as far as its structure goes (the values' own
    contents are not checked: the caller parses the few it reads). Keys are matched as
    written (clients write them plainly, never with escapes)."""
    found: dict[str, tuple[int, int]] = {}
    state, depth, key, value_start, value_end, position, members = "start", 0, b"", 0, 0, 0, 0
    while (match := _TOKEN.match(body, position)) is not None:
        group = match.lastindex or 0
        # a string's text only as a key: a 100 MB message is not copied to be skipped
        token = match.group(group) if group != 1 or state == "key" else b'"'
        start, position = match.start(group), match.end()
        if state == "start":
            if token != b"{":
                return None
            state, depth = "key", 1
        elif state == "key":
            if group == 1:
                key, state = token[1:-1], "colon"
            elif token == b"}" and not members:
                state = "end"
            else:
                return None
        elif state == "colon":
            if token != b":":
                return None
            state, value_start = "value", -1
        elif state == "value":
            if value_start < 0:  # the value's first token
                if group == 2 and token not in (b"{", b"["):
                    return None
                value_start = start
                depth += token in (b"{", b"[")
            elif depth > 1:
                depth += 1 if token in (b"{", b"[") else -1 if token in (b"}", b"]") else 0
            elif token in (b",", b"}"):
                members += 1
                if key in wanted:
                    found[key.decode("utf-8", "replace")] = (value_start, value_end)
                state = "key" if token == b"," else "end"
                continue
            else:
                return None
            value_end = position
        else:  # something after the object
            return None
    return found if state == "end" and not body[position:].strip() else None


LARGE_BODY = 8 << 20
"""Above this a request body is not parsed whole to read a key or two (``top_level_values``)."""


def top_level_values(body: bytes, wanted: frozenset[bytes]) -> dict[str, Any] | None:
    """The ``wanted`` top-level members of a JSON object ``body``; ``None`` when ``body``
    is not a JSON object. Up to ``LARGE_BODY`` the body is parsed whole (fastest); above,
    only the spans of those members are (``top_level_spans``: 100 MB read in ~1 s with no
    memory beyond the body, where ``json.loads`` would build a tree several times its size)."""
    if len(body) <= LARGE_BODY:
        whole = load_json(body)
        return (
            {key: whole[key] for key in map(bytes.decode, wanted) if key in whole} if isinstance(whole, dict) else None
        )
    spans = top_level_spans(body, wanted)
    if spans is None:
        return None
    try:
        return {key: json.loads(body[start:end]) for key, (start, end) in spans.items()}
    except (ValueError, UnicodeDecodeError):
        return None
