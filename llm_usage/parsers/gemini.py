"""Gemini ``generateContent`` / ``streamGenerateContent`` (Google AI and Vertex AI).

Counts (https://ai.google.dev/api/generate-content#UsageMetadata):
``promptTokenCount`` INCLUDES ``cachedContentTokenCount``; ``candidatesTokenCount``
EXCLUDES ``thoughtsTokenCount`` (thinking is billed as output,
https://ai.google.dev/gemini-api/docs/thinking#pricing), so output = candidates +
thoughts, as llm-gemini does. ``toolUsePromptTokenCount`` (tokens of tool results, e.g.
search grounding) sits outside ``promptTokenCount`` and is billed as input, so it is
added to input. ``totalTokenCount`` = prompt + toolUsePrompt + candidates + thoughts.

Billed beyond the counts (``Usage.details``, genai-prices' names): the modalities of
``promptTokensDetails`` (AUDIO, IMAGE, VIDEO -> ``input_<m>_tokens``),
``candidatesTokensDetails`` (IMAGE, AUDIO -> ``output_<m>_tokens``: an image the model
draws costs far more than text) and ``cacheTokensDetails`` (``cache_<m>_read_tokens``),
each a list of ``{"modality", "tokenCount"}``
(https://ai.google.dev/api/generate-content#ModalityTokenCount,
https://ai.google.dev/gemini-api/docs/pricing). TEXT is the default price and needs no
entry. ``serviceTier`` (``standard``, ``flex``, ``priority``) is the tier served.

Streams repeat a cumulative ``usageMetadata`` in every chunk (the first ones may lack
``candidatesTokenCount``, and ``promptTokenCount`` may change): the LAST one wins. The
stream is SSE with ``?alt=sse``, otherwise one JSON array sent element by element.
"""

from __future__ import annotations

import re
from typing import Any

from .framing import JSONArrayFramer, SSEFramer
from .json_values import as_int, body_model, error_message, implausible, load_json, path_model
from .usage import Usage, details_of, tier_name

_USAGE_METADATA = re.compile(rb'"usageMetadata"\s*:\s*\{')
_FINISHED = re.compile(rb'"(?:finishReason|blockReason)"\s*:')
"""Only the last chunk of a stream says why it finished (or that the prompt was blocked)."""


_MODALITY_DETAILS = (
    ("promptTokensDetails", "input_{}_tokens"),
    ("candidatesTokensDetails", "output_{}_tokens"),
    ("cacheTokensDetails", "cache_{}_read_tokens"),
)
_PRICED_MODALITIES = {
    "promptTokensDetails": ("audio", "image", "video"),
    "candidatesTokensDetails": ("audio", "image"),
    "cacheTokensDetails": ("audio", "image", "video"),
}


def requested_model(path: str, request: dict[str, Any]) -> str | None:
    """Gemini names the model in the URL: ``/v1beta/models/gemini-2.5-flash:generateContent``
    (the body's ``model``, when an SDK sends one, is ``models/<name>``)."""
    model = path_model(path) or body_model(path, request)
    return model.removeprefix("models/") if model else None


def _from_document(obj: Any, status: str = "complete") -> Usage:
    if isinstance(obj, list):  # a non-streamed read of an array stream: last element wins
        with_usage = [o for o in obj if isinstance(o, dict) and "usageMetadata" in o]
        obj = with_usage[-1] if with_usage else (obj[-1] if obj else None)
    if not isinstance(obj, dict):
        return Usage()
    model = obj.get("modelVersion") if isinstance(obj.get("modelVersion"), str) else None
    if model:
        model = model.removeprefix("models/")
    meta = obj.get("usageMetadata")
    if not isinstance(meta, dict):
        err = error_message(obj) if obj.get("error") else None
        return Usage(model=model, error=err)
    prompt = as_int(meta.get("promptTokenCount"))
    tool_prompt = as_int(meta.get("toolUsePromptTokenCount"))
    candidates = as_int(meta.get("candidatesTokenCount"))
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    problems = implausible(meta)
    if prompt is None and candidates is None and thoughts is None and not problems:
        return Usage(model=model)
    details: dict[str, int] = {}
    for field, template in _MODALITY_DETAILS:
        entries = meta.get(field)
        for entry in entries if isinstance(entries, list) else ():
            modality = str(entry.get("modality", "")).lower() if isinstance(entry, dict) else ""
            if modality in _PRICED_MODALITIES.get(field, ()):
                name = template.format(modality)
                details[name] = details.get(name, 0) + (as_int(entry.get("tokenCount")) or 0)
    tier = meta.get("serviceTier") or obj.get("serviceTier")
    return Usage(
        model=model,
        input_tokens=(prompt or 0) + (tool_prompt or 0),
        output_tokens=(candidates or 0) + (thoughts or 0),
        cache_read_tokens=as_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
        details=details_of(details),
        service_tier=tier_name(tier.lower().removeprefix("service_tier_")) if isinstance(tier, str) else None,
        status=status,  # type: ignore[arg-type]
        implausible=problems,
    )


def parse_response(body: bytes) -> Usage:
    return _from_document(load_json(body))


class StreamParser:
    __slots__ = ("_any", "_framer", "_last", "_sse")

    def __init__(self, content_type: str = "") -> None:
        self._sse = "event-stream" in content_type
        self._framer: SSEFramer | JSONArrayFramer = SSEFramer() if self._sse else JSONArrayFramer()
        self._last: bytes | None = None
        self._any: bytes | None = None

    event_end = None
    settled = True

    @staticmethod
    def quiet(events: bytes) -> bool:
        return False  # usage comes in every chunk (a running total): no event is quiet

    def feed(self, chunk: bytes) -> None:
        for item in self._framer.feed(chunk):
            self._on_element(item[1] if isinstance(item, tuple) else item)

    def _on_element(self, data: bytes) -> None:
        if _USAGE_METADATA.search(data):
            self._last = data  # cumulative: parse only the last one, at the end
        elif self._any is None or b'"error"' in data:
            self._any = data

    def finish(self) -> Usage:
        for item in self._framer.flush():
            self._on_element(item[1] if isinstance(item, tuple) else item)
        warnings = (f"{self._framer.dropped} over-long stream element(s) skipped",) if self._framer.dropped else ()
        data = self._last if self._last is not None else self._any
        usage = _from_document(load_json(data)) if data is not None else Usage()
        if usage.status == "complete" and data is not None and not _FINISHED.search(data):
            # The running total of a stream that stopped before its last chunk.
            usage = usage.with_(status="partial")
        return usage.with_(warnings=warnings)
