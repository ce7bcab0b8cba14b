"""Which tool made a call, from its User-Agent: a family name, never the full header.

Table-driven: the first pattern that matches names the client. Sources: the SDKs'
own User-Agent strings (``OpenAI/Python 1.x``, ``Anthropic/Python``,
``google-genai-sdk/...``, ``ollama-python/...``), Cline (``Cline/<version>``), Continue,
Claude Code (``claude-cli/<version>``), Codex, Aider, ...
"""

from __future__ import annotations

import re
from functools import lru_cache

Patterns = tuple[tuple[re.Pattern[str], str], ...]


def _compile(table: tuple[tuple[str, str], ...]) -> Patterns:
    return tuple((re.compile(pattern, re.IGNORECASE), name) for pattern, name in table)


TOOL_PATTERNS = _compile(
    (
        (r"\bclaude-cli/|\bclaude-code\b", "Claude Code"),
        (r"\bcline\b", "Cline"),
        (r"\broo-?code\b", "Roo Code"),
        (r"\bkilo-?code\b", "Kilo Code"),
        (r"\bcontinue\b", "Continue"),
        (r"\bcodex", "Codex CLI"),
        (r"\baider\b", "Aider"),
        (r"\bcursor\b", "Cursor"),
        (r"\bzed\b", "Zed"),
        (r"\bopencode\b", "opencode"),
        (r"\bgoose\b", "Goose"),
        (r"\blitellm\b", "LiteLLM"),
        (r"\blangchain", "LangChain"),
        (r"\bllama[-_]?index\b", "LlamaIndex"),
    )
)

LIBRARY_PATTERNS = _compile(
    (
        (r"^OpenAI/Python\b", "OpenAI Python SDK"),
        (r"^OpenAI/JS\b", "OpenAI JS SDK"),
        (r"^Anthropic/Python\b", "Anthropic Python SDK"),
        (r"^Anthropic/JS\b", "Anthropic JS SDK"),
        (r"google-genai-sdk/|\bgoogle-genai\b|gl-python/", "Google GenAI SDK"),
        (r"^ollama-python/|\bollama-python\b", "Ollama Python SDK"),
        (r"^ollama-js/|\bollama-js\b", "Ollama JS SDK"),
        (r"^curl/", "curl"),
        (r"^Wget/", "wget"),
        (r"^python-httpx/", "httpx"),
        (r"^python-requests/", "requests"),
        (r"^aiohttp/|Python/.* aiohttp/", "aiohttp"),
        (r"^node-fetch|^undici|^node\b", "Node.js"),
        (r"Mozilla/", "Browser"),
    )
)


@lru_cache(maxsize=1024)
def client_family(user_agent: str | None, app_title: str | None = None, referer: str | None = None) -> str | None:
    """A short family name, ``"other"`` when unknown, ``None`` when nothing identifies it.

    Tools built on an SDK (Cline and Roo Code use the OpenAI/Anthropic JS SDKs) send the
    SDK's User-Agent but name themselves in OpenRouter's attribution headers
    (``X-Title``, ``HTTP-Referer``: https://openrouter.ai/docs/api-reference/overview#headers),
    so those are read first. Cached: a tool sends the same headers on every call.
    """
    for hint in (app_title, referer):
        if hint:
            for pattern, name in TOOL_PATTERNS:
                if pattern.search(hint[:256]):
                    return name
    if not user_agent:
        return None
    ua = user_agent[:512]
    for pattern, name in TOOL_PATTERNS + LIBRARY_PATTERNS:
        if pattern.search(ua):
            return name
    return "other"
