"""Anthropic Messages API (and the Anthropic-compatible ``/v1/messages`` of Ollama,
Moonshot, Z.ai, MiniMax and Vertex AI's ``:rawPredict``).

Counts (https://docs.anthropic.com/en/api/messages#response-usage): ``input_tokens``
EXCLUDES cached tokens, so the contract's input is
``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``
(https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#tracking-cache-performance).
``output_tokens`` already includes extended-thinking tokens, which Anthropic does not
report separately, so ``reasoning_tokens`` stays NULL.

Billed beyond the counts (``Usage.details``): the cache writes by lifetime,
``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens`` (a 1-hour
write costs 2x input, a 5-minute one 1.25x:
https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#pricing), and the
server tools' requests in ``server_tool_use``: ``web_search_requests`` ($10 per 1,000:
https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-search-tool#usage-and-pricing),
``web_fetch_requests`` (no charge beyond its tokens:
https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-fetch-tool#usage-and-pricing)
and ``code_execution_requests``. ``usage.service_tier`` (``standard``, ``priority``,
``batch``) is the tier served; ``speed`` (``fast``) and ``inference_geo`` (``us``) are
kept with it, since they change the price too.

Streams (https://docs.anthropic.com/en/docs/build-with-claude/streaming#event-types):
``message_start`` carries ``message.usage`` (input and cache counts, a provisional
output count); each ``message_delta`` carries cumulative ``usage`` whose non-null fields
overwrite the earlier ones (older API versions send only ``output_tokens`` there; newer
ones repeat the input and cache counts).
"""

from __future__ import annotations

from typing import Any

from .framing import SSEFramer
from .json_values import as_int, body_model, error_message, get_path, implausible, load_json, path_model
from .usage import Usage, details_of, tier_name

_RAW_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_DETAILS = (
    # (object in usage, its field) -> the genai-prices usage key
    ("cache_creation", "ephemeral_5m_input_tokens", "cache_write_5m_tokens"),
    ("cache_creation", "ephemeral_1h_input_tokens", "cache_write_1h_tokens"),
    ("server_tool_use", "web_search_requests", "web_searches"),
    ("server_tool_use", "web_fetch_requests", "web_fetches"),
    ("server_tool_use", "code_execution_requests", "code_executions"),
)
_TIER_FIELDS = ("service_tier", "speed", "inference_geo")


def _merge(into: dict[str, Any], usage: Any) -> None:
    """Every count of a ``usage`` object into ``into``; a later object's non-null fields
    overwrite an earlier one's (a stream's ``message_delta`` after its ``message_start``)."""
    if not isinstance(usage, dict):
        return
    problems = implausible(usage)
    if problems:
        into["implausible"] = (*into.get("implausible", ()), *problems)
    for key in _RAW_FIELDS:
        value = as_int(usage.get(key))
        if value is not None:
            into[key] = value
    for parent, key, name in _DETAILS:
        value = as_int(get_path(usage, parent, key))
        if value is not None:
            into[name] = value
    for key in _TIER_FIELDS:
        value = usage.get(key)
        if isinstance(value, str) and value:
            into[key] = value


_PLAIN = (None, "", "standard", "global", "not_available")
"""``speed`` / ``inference_geo`` values that leave the price as it is."""


def _tier(raw: dict[str, Any]) -> str | None:
    """``standard``, ``priority``, ...; with ``+fast`` / ``+geo:us`` when those apply."""
    tier = raw.get("service_tier")
    extras = [raw["speed"]] if raw.get("speed") not in _PLAIN else []
    extras += [f"geo:{raw['inference_geo']}"] if raw.get("inference_geo") not in _PLAIN else []
    if not tier and not extras:
        return None
    return tier_name("+".join([tier or "standard", *extras]))


def _to_usage(raw: dict[str, Any], model: str | None, status: str) -> Usage:
    if "input_tokens" not in raw and "output_tokens" not in raw and not raw.get("implausible"):
        return Usage(model=model)
    cache_write = raw.get("cache_creation_input_tokens")
    cache_read = raw.get("cache_read_input_tokens")
    return Usage(
        model=model,
        input_tokens=raw.get("input_tokens", 0) + (cache_write or 0) + (cache_read or 0),
        output_tokens=raw.get("output_tokens", 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        details=details_of({name: raw.get(name, 0) for _, _, name in _DETAILS}),
        service_tier=_tier(raw),
        status=status,  # type: ignore[arg-type]
        implausible=tuple(dict.fromkeys(raw.get("implausible", ()))),
    )


def requested_model(path: str, request: dict[str, Any]) -> str | None:
    """The body's ``model``; on Vertex AI it sits in the URL
    (``.../publishers/anthropic/models/claude-3-7-sonnet@20250219:rawPredict``)."""
    return body_model(path, request) or path_model(path)


def parse_response(body: bytes) -> Usage:
    obj = load_json(body)
    if not isinstance(obj, dict):
        return Usage()
    model = obj.get("model") if isinstance(obj.get("model"), str) else None
    if obj.get("type") == "error" or ("error" in obj and "usage" not in obj):
        return Usage(model=model, error=error_message(obj))
    raw: dict[str, Any] = {}
    _merge(raw, obj.get("usage"))
    return _to_usage(raw, model, "complete")


class StreamParser:
    __slots__ = ("_error", "_final", "_framer", "_model", "_raw")

    def __init__(self, content_type: str = "") -> None:
        self._framer = SSEFramer()
        self._raw: dict[str, Any] = {}
        self._model: str | None = None
        self._final = False
        self._error: str | None = None

    event_end = b"\n\n"
    settled = True  # the model comes with message_start, which is never quiet

    @staticmethod
    def quiet(events: bytes) -> bool:
        """Neither ``message_`` nor ``error`` anywhere: ``_on_event`` reads only
        ``message_start``, ``message_delta`` and ``error`` events (by name or by type)."""
        return events.rfind(b"message_") < 0 and events.rfind(b"error") < 0

    def feed(self, chunk: bytes) -> None:
        for event, data in self._framer.feed(chunk, self.quiet):
            self._on_event(event, data)

    def _on_event(self, event: bytes, data: bytes) -> None:
        # Most events are content_block_delta: skip them without parsing JSON.
        if event:
            if event not in (b"message_start", b"message_delta", b"error"):
                return
        elif b'"message_start"' not in data and b'"message_delta"' not in data and b'"error"' not in data:
            return
        obj = load_json(data)
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind == "message_start":
            message = obj.get("message")
            model = get_path(message, "model")
            if isinstance(model, str) and model:
                self._model = model
            _merge(self._raw, get_path(message, "usage"))
        elif kind == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict):
                _merge(self._raw, usage)
                self._final = True
        elif kind == "error":
            self._error = error_message(obj)

    def finish(self) -> Usage:
        for event, data in self._framer.flush():
            self._on_event(event, data)
        status = "complete" if self._final else "partial"
        usage = _to_usage(self._raw, self._model, status)
        warnings = (f"{self._framer.dropped} over-long SSE line(s) skipped",) if self._framer.dropped else ()
        return usage.with_(error=self._error, warnings=warnings)
