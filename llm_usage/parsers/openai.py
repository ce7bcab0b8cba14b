"""OpenAI wire format: chat completions, legacy completions, embeddings, Responses API.

Also every OpenAI-compatible provider (OpenRouter, NVIDIA, Moonshot, Z.ai, MiniMax,
Ollama's ``/v1``, Groq, DeepSeek, xAI, ...), each with its quirks handled here by reading
the numbers, never by provider name.

Counts (https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage,
https://platform.openai.com/docs/api-reference/responses/object#responses/object-usage):

- ``prompt_tokens`` / ``input_tokens`` INCLUDE ``*_tokens_details.cached_tokens``.
- ``completion_tokens`` / ``output_tokens`` INCLUDE ``*_tokens_details.reasoning_tokens``
  -- except on xAI, whose ``completion_tokens`` leave reasoning out
  (``total_tokens = prompt + completion + reasoning``,
  https://docs.x.ai/docs/guides/reasoning); detected from that sum.
- Embeddings report no output: output is 0.
- ``prompt_tokens_details.cache_write_tokens`` (OpenRouter, Avian) is the cache write count.
- DeepSeek also reports ``prompt_cache_hit_tokens`` (same as ``cached_tokens``):
  https://api-docs.deepseek.com/api/create-chat-completion
- ``usage.cost`` (OpenRouter, Vercel AI Gateway, Avian) is the provider's own charge in USD:
  https://openrouter.ai/docs/use-cases/usage-accounting. On a bring-your-own-key call
  (``is_byok``) that is only OpenRouter's fee; the provider bills the user's own key
  ``cost_details.upstream_inference_cost`` on top, so the row's cost is the sum.

Billed beyond the counts (``Usage.details``, genai-prices' names): ``audio_tokens`` and
``image_tokens`` in ``*_tokens_details`` (input and output), and the Responses API's
server tool calls, one output item each (``web_search_call`` -> ``web_searches``,
``file_search_call`` -> ``storage_searches``, ``code_interpreter_call`` ->
``code_executions``: https://platform.openai.com/docs/pricing#built-in-tools). The
response's ``service_tier`` (``default``, ``flex``, ``priority``, ``scale``) is the tier it
was served on: https://platform.openai.com/docs/api-reference/responses/object#responses/object-service_tier

Streams: chat chunks carry ``usage`` on a final ``choices: []`` chunk
(``stream_options.include_usage``), or on the ``finish_reason`` chunk (DeepSeek, Z.ai,
Mistral, OpenRouter), or also under ``x_groq.usage`` (Groq, repeated up to three times);
the usage is a running total, so the LAST non-null one counts, once. The Responses API
sends it in ``response.completed`` / ``response.incomplete`` / ``response.failed``:
https://platform.openai.com/docs/api-reference/responses-streaming
"""

from __future__ import annotations

import re
from typing import Any

from .framing import SSEFramer
from .json_values import as_decimal, as_int, body_model, error_message, get_path, implausible, load_json
from .usage import Usage, details_of, tier_name

USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_RESPONSE_TERMINAL = re.compile(rb'"type"\s*:\s*"response\.(completed|incomplete|failed)"')
_ERROR_FIELD = re.compile(rb'"(?:error|type)"\s*:\s*(?:\{|"error")')
_RESPONSE_ENDS = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')
_MODEL_ATTEMPTS = 8
"""Events looked at for the model before giving up (a stream that names none)."""


def usage_from_object(u: dict[str, Any]) -> dict[str, Any]:
    """Normalise one OpenAI-style ``usage`` object to the contract's fields."""
    input_tokens = as_int(u.get("prompt_tokens"))
    if input_tokens is None:
        input_tokens = as_int(u.get("input_tokens"))
    output_tokens = as_int(u.get("completion_tokens"))
    if output_tokens is None:
        output_tokens = as_int(u.get("output_tokens"))
    input_details = u.get("prompt_tokens_details") or u.get("input_tokens_details") or {}
    output_details = u.get("completion_tokens_details") or u.get("output_tokens_details") or {}
    cache_read = as_int(get_path(input_details, "cached_tokens"))
    if cache_read is None:
        cache_read = as_int(u.get("prompt_cache_hit_tokens"))
    # Chat usage from OpenRouter/Avian carries real cache writes; OpenAI's Responses API
    # reports a cache_write_tokens that OpenAI never bills (its caching is automatic and
    # writes are free), so it is not taken as a cache-write count.
    cache_write = as_int(get_path(u.get("prompt_tokens_details"), "cache_write_tokens"))
    reasoning = as_int(get_path(output_details, "reasoning_tokens"))
    total = as_int(u.get("total_tokens"))
    if input_tokens is not None and output_tokens is None:
        output_tokens = 0  # embeddings: prompt_tokens and total_tokens only
    if (
        reasoning
        and input_tokens is not None
        and output_tokens is not None
        and total == input_tokens + output_tokens + reasoning
    ):
        output_tokens += reasoning  # xAI: completion_tokens excludes reasoning
    details = {
        "input_audio_tokens": as_int(get_path(input_details, "audio_tokens")) or 0,
        "input_image_tokens": as_int(get_path(input_details, "image_tokens")) or 0,
        "output_audio_tokens": as_int(get_path(output_details, "audio_tokens")) or 0,
        "output_image_tokens": as_int(get_path(output_details, "image_tokens")) or 0,
    }
    cost = as_decimal(u.get("cost"))
    upstream = as_decimal(get_path(u, "cost_details", "upstream_inference_cost"))
    if cost is not None and upstream is not None and u.get("is_byok") is True:
        cost += upstream  # OpenRouter's fee, plus what the user's own key was billed
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
        "provider_cost_usd": cost,
        "details": details,
        "implausible": implausible(u),
    }


_TOOL_CALLS = {"web_search_call": "web_searches", "file_search_call": "storage_searches",
               "code_interpreter_call": "code_executions"}  # fmt: skip
"""A Responses API output item -> the genai-prices usage key it is billed under."""


def _tool_calls(obj: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    output = obj.get("output")
    for item in output if isinstance(output, list) else ():
        name = _TOOL_CALLS.get(str(item.get("type"))) if isinstance(item, dict) else None
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _usage_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The usage object of a chat/completions/embeddings body or chunk, or of a Response."""
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        usage = get_path(obj, "x_groq", "usage")  # Groq streams
    return usage if isinstance(usage, dict) else None


def _from_document(obj: Any, status: str = "complete") -> Usage:
    if not isinstance(obj, dict):
        return Usage()
    model = obj.get("model") or None
    usage = _usage_of(obj)
    if usage is None:
        err = error_message(obj) if "error" in obj and obj.get("error") else None
        return Usage(model=model if isinstance(model, str) else None, error=err)
    fields = usage_from_object(usage)
    if fields["input_tokens"] is None and fields["output_tokens"] is None and not fields["implausible"]:
        return Usage(model=model if isinstance(model, str) else None)
    details = fields.pop("details") | _tool_calls(obj)
    return Usage(
        model=model if isinstance(model, str) else None,
        status=status,  # type: ignore[arg-type]
        details=details_of(details),
        service_tier=tier_name(obj.get("service_tier")),
        **fields,
    )


requested_model = body_model


def parse_response(body: bytes) -> Usage:
    """A whole (non-streamed) response body."""
    return _from_document(load_json(body))


class StreamParser:
    """SSE stream of chat/legacy completion chunks or Responses API events."""

    __slots__ = (
        "_error",
        "_framer",
        "_last_usage_data",
        "_model",
        "_model_attempts",
        "_terminal",
        "_warnings",
        "settled",
    )

    def __init__(self, content_type: str = "") -> None:
        self._framer = SSEFramer()
        self._model: str | None = None
        self._model_attempts = 0
        self._last_usage_data: bytes | None = None
        self._terminal: Usage | None = None
        self._warnings: list[str] = []
        self._error: str | None = None
        self.settled = False
        """Set once the model is known (or given up on): a quiet event then tells nothing."""

    event_end = b"\n\n"

    @staticmethod
    def quiet(events: bytes) -> bool:
        """No usage object, no error, no Responses API final event.

        ``"usage":null`` (in every chunk once ``include_usage`` is on) is let through when
        it is the only ``"usage"``; a Responses API stream names every event
        ``"response.<something>"``, and only its final ones count. Plain ``rfind``s:
        about 0.3 us a chunk on the 2-core development machine, where a regex of the same
        rule took 0.9 us (every ``"`` of the JSON is a place to try it), and this runs for
        every event of every stream.
        """
        at = events.rfind(b'"usage"')
        if at >= 0 and (not events.startswith(b":null", at + 7) or events.rfind(b'"usage"', 0, at) >= 0):
            return False
        if events.rfind(b'"error"') >= 0:
            return False
        if events.rfind(b'"response.') < 0:
            return True  # a chat or completions stream
        return all(events.rfind(end) < 0 for end in _RESPONSE_ENDS)

    def feed(self, chunk: bytes) -> None:
        for _event, data in self._framer.feed(chunk, self.quiet if self.settled else None):
            self.feed_event(data)

    @property
    def ended(self) -> bool:
        """A final event arrived (``response.completed`` / ``.incomplete`` / ``.failed``, or
        an ``error`` event): on a Responses API WebSocket, the call is over."""
        return self._terminal is not None or self._error is not None

    def feed_event(self, data: bytes) -> None:
        """One event's JSON, already framed: an SSE ``data:`` payload, or a WebSocket
        message's text (the Responses API's WebSocket mode sends the same events as its
        SSE stream, one per message: ``proxy/sockets.py``)."""
        if self.quiet(data):  # nearly every event: no JSON
            if not self.settled:
                self._read_model(data)
            return
        if _RESPONSE_TERMINAL.search(data):
            self._on_response_terminal(data)
            return
        if _ERROR_FIELD.search(data):
            self._on_possible_error(data)
        if USAGE_OBJECT.search(data):
            # Parsed once at the end: usage repeats (Groq) and the last one wins.
            self._last_usage_data = data
        elif not self.settled:
            self._read_model(data)

    def _read_model(self, data: bytes) -> None:
        self._model_attempts += 1
        self.settled = self._model_attempts >= _MODEL_ATTEMPTS
        if b'"model"' not in data:
            return
        obj = load_json(data)
        model = obj.get("model") or get_path(obj, "response", "model") if isinstance(obj, dict) else None
        if isinstance(model, str) and model:
            self._model = model
            self.settled = True

    def _on_possible_error(self, data: bytes) -> None:
        """A mid-stream error: OpenRouter's chunk with a top-level ``error`` object
        (https://openrouter.ai/docs/api-reference/streaming#stream-cancellation), or the
        Responses API's ``{"type": "error", "message": ...}`` event."""
        obj = load_json(data)
        if isinstance(obj, dict) and (isinstance(obj.get("error"), dict) or obj.get("type") == "error"):
            self._error = error_message(obj)

    def _on_response_terminal(self, data: bytes) -> None:
        obj = load_json(data)
        response = get_path(obj, "response")
        if not isinstance(response, dict):
            self._warnings.append("unreadable Responses API terminal event")
            return
        usage = _from_document(response)
        err = get_path(response, "error", "message")
        if obj.get("type") == "response.failed" and isinstance(err, str):  # type: ignore[union-attr]
            usage = usage.with_(error=err)
        self._terminal = usage

    def finish(self) -> Usage:
        for _event, data in self._framer.flush():
            self.feed_event(data)
        if self._framer.dropped:
            self._warnings.append(f"{self._framer.dropped} over-long SSE line(s) skipped")
        if self._terminal is not None:
            result = self._terminal
        elif self._last_usage_data is not None:
            result = _from_document(load_json(self._last_usage_data))
        else:
            result = Usage()
        return result.with_(
            model=result.model or self._model,
            error=result.error or self._error,
            warnings=tuple(self._warnings),
        )
