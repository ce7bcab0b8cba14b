"""Ollama's native API: ``/api/chat``, ``/api/generate``, ``/api/embed`` (and the older
``/api/embeddings``).

Counts (https://github.com/ollama/ollama/blob/main/docs/api.md): ``prompt_eval_count``
is the input, ``eval_count`` the output (thinking included; not reported apart), both
only on the final object (``done: true``). ``/api/embed`` reports ``prompt_eval_count``
only: output is 0. The native API streams NDJSON by default -- when ``stream`` is absent
from the request -- one JSON object per line.
"""

from __future__ import annotations

import re
from typing import Any

from .framing import NDJSONFramer
from .json_values import as_int, body_model, error_message, implausible, load_json
from .usage import Usage

_DONE = re.compile(rb'"done"\s*:\s*true')
_ERROR = re.compile(rb'"error"\s*:')


def _from_object(obj: Any) -> Usage:
    if not isinstance(obj, dict):
        return Usage()
    model = obj.get("model") if isinstance(obj.get("model"), str) else None
    if "error" in obj and "prompt_eval_count" not in obj:
        return Usage(model=model, error=error_message(obj))
    prompt = as_int(obj.get("prompt_eval_count"))
    output = as_int(obj.get("eval_count"))
    problems = implausible({key: obj.get(key) for key in ("prompt_eval_count", "eval_count")})
    if prompt is None and output is None and not problems:
        return Usage(model=model)
    return Usage(
        model=model, input_tokens=prompt or 0, output_tokens=output or 0, status="complete", implausible=problems
    )


requested_model = body_model


def parse_response(body: bytes) -> Usage:
    obj = load_json(body)
    if obj is None and b"\n" in body.strip():
        parser = StreamParser()  # an NDJSON stream read whole
        parser.feed(body)
        return parser.finish()
    return _from_object(obj)


class StreamParser:
    __slots__ = ("_error", "_final", "_framer", "_model")

    def __init__(self, content_type: str = "") -> None:
        self._framer = NDJSONFramer()
        self._model: str | None = None
        self._final: bytes | None = None
        self._error: str | None = None

    event_end = b"\n"

    @property
    def settled(self) -> bool:
        return self._model is not None

    @staticmethod
    def quiet(lines: bytes) -> bool:
        """No ``"error"``, and no ``"done"`` but a single ``"done":false``: once the model
        is known, ``_on_line`` reads only the final object and errors."""
        at = lines.rfind(b'"done"')
        if at >= 0 and (not lines.startswith(b":false", at + 6) or lines.rfind(b'"done"', 0, at) >= 0):
            return False
        return lines.rfind(b'"error"') < 0

    def feed(self, chunk: bytes) -> None:
        for line in self._framer.feed(chunk, self.quiet if self.settled else None):
            self._on_line(line)

    def _on_line(self, line: bytes) -> None:
        if _DONE.search(line):
            self._final = line
        elif self._model is None:
            obj = load_json(line)
            if isinstance(obj, dict) and isinstance(obj.get("model"), str):
                self._model = obj["model"]
        if _ERROR.search(line):  # only a top-level "error" is Ollama's error object
            obj = load_json(line)
            if isinstance(obj, dict) and obj.get("error"):
                self._error = error_message(obj)

    def finish(self) -> Usage:
        for line in self._framer.flush():
            self._on_line(line)
        warnings = (f"{self._framer.dropped} over-long NDJSON line(s) skipped",) if self._framer.dropped else ()
        usage = _from_object(load_json(self._final)) if self._final is not None else Usage(model=self._model)
        if usage.model is None:
            usage = usage.with_(model=self._model)
        return usage.with_(error=usage.error or self._error, warnings=warnings)
