"""Consumer-subscription credentials: refused, never forwarded (the seed allows API-key traffic only).

A subscription (Claude Pro/Max, ChatGPT Plus/Pro) is not billed per token to a key the
person owns, and its terms do not allow routing it through a proxy like this one. The
proxy answers such a request itself with ``403`` in the wire format the client speaks,
saying why and what to do, and logs the refusal without the credential. Recognised by:

- Anthropic OAuth access tokens, ``sk-ant-oat01-...``, sent by Claude Code (and tools
  reusing its login) as ``Authorization: Bearer``, alongside ``anthropic-beta:
  oauth-2025-04-20`` (API keys are ``sk-ant-api03-...``:
  https://docs.anthropic.com/en/api/overview#authentication).
- Codex signed in with ChatGPT: its requests carry ``ChatGPT-Account-ID`` next to the
  ChatGPT login's bearer token (openai/codex ``codex-rs/core/src/client.rs``); an API key
  never comes with that header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mitmproxy import http

from .refusals import error_response


@dataclass(frozen=True, slots=True)
class Subscription:
    header: bytes
    pattern: re.Pattern[str]
    what: str


SUBSCRIPTIONS = (
    # A repeated header reaches us joined with ", " (``headers.py``): every value is checked.
    Subscription(
        b"authorization", re.compile(r"(?:^|,)\s*bearer\s+sk-ant-oat", re.IGNORECASE), "a Claude subscription's login"
    ),
    Subscription(b"x-api-key", re.compile(r"(?:^|,)\s*sk-ant-oat", re.IGNORECASE), "a Claude subscription's login"),
    Subscription(b"anthropic-beta", re.compile(r"\boauth-\d{4}-\d{2}-\d{2}\b"), "a Claude subscription's login"),
    Subscription(b"chatgpt-account-id", re.compile(r"\S"), "a ChatGPT subscription's login"),
)
SUBSCRIPTION_HEADERS = frozenset(s.header for s in SUBSCRIPTIONS)


def subscription_of(headers: dict[bytes, str]) -> str | None:
    """What kind of subscription credential the request carries, or None."""
    for sub in SUBSCRIPTIONS:
        value = headers.get(sub.header)
        if value and sub.pattern.search(value):
            return sub.what
    return None


def refusal(wire_format: str, what: str, slug: str) -> http.Response:
    """``403`` in the client's own error format, so its tool shows the message."""
    message = (
        f"llm-usage refused this request: it carries {what}, not an API key. The proxy "
        "measures API-key traffic only and does not route subscription traffic. Point this "
        f"tool straight at the provider, or give it an API key for the {slug} provider."
    )
    return error_response(wire_format, 403, message, "subscription_not_allowed")
