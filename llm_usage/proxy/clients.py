"""Which tool made a call: a family name from the headers that identify it, never a header.

One table, first match wins, read from the request's headers in the routing pass. A tool
is named by what only it sends, before the library it is built on is named by what every
user of that library sends; where a tool cannot be told apart, the library is named
honestly ("Vercel AI SDK", "OpenAI JS SDK") rather than "other". Each entry is checked
against the headers captured from the real client (``tests/fixtures/clients/``,
``make clients-check``). Sources:

- Codex CLI: ``originator: codex_exec`` / ``codex_cli_rs`` / ``codex_vscode`` and a
  ``codex_...`` User-Agent (openai/codex ``codex-rs/login/src/auth/default_client.rs``).
- Claude Code: ``x-app: cli``, ``anthropic-beta: claude-code-20250219,...``, User-Agent
  ``claude-cli/<version> (external, sdk-cli)``; its start-up pre-connect ``HEAD`` says only
  ``Bun/<version>``.
- Cline (VS Code) and tools routed through OpenRouter name themselves in OpenRouter's
  attribution headers ``X-Title`` / ``HTTP-Referer``
  (https://openrouter.ai/docs/api-reference/overview#headers). Cline CLI 3.x sends only
  the Vercel AI SDK's ``ai-sdk/<provider>/<version> ... runtime/bun/<version>``.
- The Stainless-generated SDKs (OpenAI, Anthropic) send ``x-stainless-lang`` and a
  User-Agent ``<class name>/JS <version>``; a bundled copy has its class name minified
  (Continue CLI: ``ls/JS 5.23.2``), so the wire format of the call says which SDK it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Sign:
    header: bytes
    """Lower-case header name."""
    pattern: re.Pattern[str]
    name: str
    wire_format: str | None = None
    """Only for calls in this wire format (None: any)."""


TOOLS: tuple[tuple[str, str], ...] = (
    # pattern (case-insensitive) -> tool, looked for in the User-Agent, X-Title and HTTP-Referer
    (r"\bclaude-cli/|\bclaude-code\b", "Claude Code"),
    (r"(?<!roo-)\bcline\b", "Cline"),  # Roo Code's referer is github.com/RooVetGit/Roo-Cline
    (r"\broo[- ]?code\b", "Roo Code"),
    (r"\bkilo[- ]?code\b", "Kilo Code"),
    (r"\bcontinue\b", "Continue"),
    (r"\bcodex(?![a-z])", "Codex CLI"),  # codex_exec/..., codex-cli; not "codexample"
    (r"\baider\b", "Aider"),
    (r"\bcursor\b(?!=)", "Cursor"),  # not a referer's "?cursor=..."
    (r"(?<![\w-])zed\b", "Zed"),
    (r"\bopencode\b", "opencode"),
    (r"\bgoose\b", "Goose"),
    (r"\blitellm\b", "LiteLLM"),
    (r"\blangchain", "LangChain"),
    (r"\bllama[-_]?index\b", "LlamaIndex"),
)

LIBRARIES: tuple[tuple[bytes, str, str, str | None], ...] = (
    # header, pattern, library, wire format
    (b"user-agent", r"\bai-sdk/", "Vercel AI SDK", None),
    (b"user-agent", r"^OpenAI/Python\b", "OpenAI Python SDK", None),
    (b"user-agent", r"^OpenAI/JS\b", "OpenAI JS SDK", None),
    (b"user-agent", r"^Anthropic/Python\b", "Anthropic Python SDK", None),
    (b"user-agent", r"^Anthropic/JS\b", "Anthropic JS SDK", None),
    (b"x-stainless-lang", r"^js\b", "OpenAI JS SDK", "openai"),
    (b"x-stainless-lang", r"^js\b", "Anthropic JS SDK", "anthropic"),
    (b"x-stainless-lang", r"^python\b", "OpenAI Python SDK", "openai"),
    (b"x-stainless-lang", r"^python\b", "Anthropic Python SDK", "anthropic"),
    (b"user-agent", r"google-genai-sdk/|\bgoogle-genai\b|gl-python/", "Google GenAI SDK", None),
    (b"user-agent", r"^ollama-python/|\bollama-python\b", "Ollama Python SDK", None),
    (b"user-agent", r"^ollama-js/|\bollama-js\b", "Ollama JS SDK", None),
    (b"user-agent", r"^curl/", "curl", None),
    (b"user-agent", r"^Wget/", "wget", None),
    (b"user-agent", r"^python-httpx/", "httpx", None),
    (b"user-agent", r"^python-requests/", "requests", None),
    (b"user-agent", r"^aiohttp/|Python/.* aiohttp/", "aiohttp", None),
    (b"user-agent", r"^Bun/", "Bun", None),
    (b"user-agent", r"^node-fetch|^undici|^node\b", "Node.js", None),
    (b"user-agent", r"Mozilla/", "Browser", None),
)


def _signs() -> tuple[Sign, ...]:
    def sign(header: bytes, pattern: str, name: str, fmt: str | None = None) -> Sign:
        return Sign(header, re.compile(pattern, re.IGNORECASE), name, fmt)

    signs = [
        sign(b"originator", r"^codex", "Codex CLI"),
        sign(b"x-app", r"^cli$", "Claude Code"),
    ]
    for header in (b"x-title", b"http-referer", b"user-agent"):
        signs += [sign(header, pattern, name) for pattern, name in TOOLS]
    # After the tools' own names: other tools on a Claude subscription send this beta too.
    signs.append(sign(b"anthropic-beta", r"\bclaude-code-\d", "Claude Code"))
    signs += [sign(header, pattern, name, fmt) for header, pattern, name, fmt in LIBRARIES]
    return tuple(signs)


SIGNS = _signs()
CLIENT_HEADERS = frozenset(s.header for s in SIGNS)
"""Every header the table reads (the router reads them in its one pass)."""
_MAX_VALUE = 512


def client_family(headers: dict[bytes, str], wire_format: str = "") -> str | None:
    """A short family name; ``"other"`` when something is sent but nothing matches,
    ``None`` when the request carries no identifying header at all."""
    present = tuple(sorted((h, v[:_MAX_VALUE]) for h, v in headers.items() if h in CLIENT_HEADERS))
    return _family(present, wire_format)


@lru_cache(maxsize=1024)
def _family(present: tuple[tuple[bytes, str], ...], wire_format: str) -> str | None:
    """Cached: a tool sends the same headers on every call."""
    if not present:
        return None
    values = dict(present)
    for s in SIGNS:
        value = values.get(s.header)
        if value and (s.wire_format is None or s.wire_format == wire_format) and s.pattern.search(value):
            return s.name
    return "other"
