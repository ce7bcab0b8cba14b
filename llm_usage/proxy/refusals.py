"""An answer the proxy gives itself, in the error format of the API the client speaks, so
its tool shows the message as it would a provider's: OpenAI-compatible
(https://platform.openai.com/docs/guides/error-codes), Anthropic
(https://docs.anthropic.com/en/api/errors), Gemini (google.rpc.Status,
https://ai.google.dev/gemini-api/docs/troubleshooting) and Ollama (``{"error": ...}``)."""

from __future__ import annotations

import json

from mitmproxy import http

KINDS = {
    # HTTP status -> (OpenAI type, Anthropic type, Gemini status)
    403: ("permission_error", "permission_error", "PERMISSION_DENIED"),
    429: ("insufficient_quota", "rate_limit_error", "RESOURCE_EXHAUSTED"),
}


def error_response(
    wire_format: str, status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> http.Response:
    openai_type, anthropic_type, gemini_status = KINDS[status]
    body: object
    if wire_format == "anthropic":
        body = {"type": "error", "error": {"type": anthropic_type, "message": message}}
    elif wire_format == "gemini":
        body = {"error": {"code": status, "message": message, "status": gemini_status}}
    elif wire_format == "ollama":
        body = {"error": message}
    else:
        body = {"error": {"message": message, "type": openai_type, "param": None, "code": code}}
    return http.Response.make(
        status, json.dumps(body).encode(), {"content-type": "application/json", **(headers or {})}
    )
