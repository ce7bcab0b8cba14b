"""Who a call is for: its coding session (and subagent), its project, and its key.

All read from what the client sends anyway, with no set-up in the client:

- **Sessions.** Coding agents send a stable per-session id on every request. The headers
  below are the clients' own, taken from their source or their captured traffic
  (``tests/fixtures/clients``):

  - Claude Code: ``X-Claude-Code-Session-Id``; a subagent's calls add
    ``x-claude-code-agent-id`` and ``x-claude-code-agent-type`` (found in the shipped
    ``claude`` binary of ``@anthropic-ai/claude-code``).
  - Codex CLI: ``session-id`` (captured from ``codex exec`` 0.171; ``session_id`` /
    ``conversation_id`` in older builds); a subagent's calls keep the root's ``session-id``
    and add ``x-openai-subagent`` (``review``, ``compact``, ``collab_spawn``, ...)
    (https://github.com/openai/codex, its subagents documentation).
  - opencode: ``x-session-affinity`` and ``X-Session-Id``; a subagent runs in a child
    session and adds ``x-parent-session-id`` (https://github.com/sst/opencode,
    ``packages/opencode/src/session/llm/request.ts``): its calls count for the parent session.
  - anything else: ``x-session-id``, and Helicone's ``Helicone-Session-Id``.

  A session id is an opaque correlation value: only printable ASCII, at most
  ``MAX_ID`` characters, and used for nothing but grouping.
- **Projects.** ``X-LLM-Usage-Project: <name>``, or a first path segment ``@<name>`` for
  clients that only let one change the base URL (``routing.py``). Never forwarded.
- **Keys.** A short salted fingerprint of the credential the client sent
  (``accounting/keys.py``); the key itself is never kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

MAX_ID = 128
PROJECT_HEADER = b"x-llm-usage-project"
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PROJECT_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_PRINTABLE = re.compile(r"[\x21-\x7e]+")

SESSION_HEADERS: tuple[bytes, ...] = (
    b"x-claude-code-session-id",
    b"x-parent-session-id",  # opencode's subagent: the parent is the coding session
    b"x-session-affinity",
    b"session-id",
    b"session_id",
    b"conversation_id",
    b"x-session-id",
    b"helicone-session-id",
)
"""Where a call's session id is found, first match wins."""
SUBAGENT_HEADERS: tuple[bytes, ...] = (
    b"x-openai-subagent",
    b"x-claude-code-agent-type",
    b"x-claude-code-agent-id",
)
"""What names a subagent's call (Codex's label, Claude Code's agent type, else its id)."""
CREDENTIAL_HEADERS: tuple[bytes, ...] = (b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key")
"""Where a call's API key is, first match wins (then Gemini's ``?key=``)."""
HEADERS = frozenset((*SESSION_HEADERS, *SUBAGENT_HEADERS, *CREDENTIAL_HEADERS, PROJECT_HEADER))
"""Every header this module reads (``routing.py`` collects them once per request)."""


class ProjectError(ValueError):
    """A project name that breaks ``PROJECT_RULE`` (answered with 400)."""


@dataclass(frozen=True, slots=True)
class Attribution:
    session_id: str | None = None
    subagent: str | None = None
    project: str | None = None


NOBODY = Attribution()


def opaque_id(value: str | None) -> str | None:
    """A correlation value as it may be stored: printable ASCII, capped; else nothing."""
    if not value:
        return None
    value = value.strip()[:MAX_ID]
    return value if _PRINTABLE.fullmatch(value) else None


def project_name(value: str, where: str) -> str:
    """A valid project name, or ``ProjectError`` naming ``where`` it came from and the rule."""
    if not PROJECT_NAME.fullmatch(value):
        raise ProjectError(f"{where}: a project name is {PROJECT_RULE}; not {value[:70]!r}")
    return value


def attribution(headers: dict[bytes, str], path_project: str | None) -> Attribution:
    """The session, subagent and project of a request (``headers``: lower-cased names)."""
    session = next((s for name in SESSION_HEADERS if (s := opaque_id(headers.get(name)))), None)
    subagent = next((s for name in SUBAGENT_HEADERS if (s := opaque_id(headers.get(name)))), None)
    if subagent is None and headers.get(b"x-parent-session-id"):
        subagent = opaque_id(headers.get(b"x-session-affinity") or headers.get(b"x-session-id"))
    project = path_project
    if project is None and PROJECT_HEADER in headers:
        project = project_name(headers[PROJECT_HEADER].strip(), "X-LLM-Usage-Project")
    return Attribution(session, subagent, project)


def credential(headers: dict[bytes, str], query: str) -> str | None:
    """The API key a request carries: a bearer token, an API-key header, or ``?key=``."""
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name, "").strip()
        if name == b"authorization":
            scheme, _, token = value.partition(" ")
            value = token.strip() if scheme.lower() == "bearer" else value
        if value:
            return value
    for field, found in parse_qsl(query.lstrip("?"), keep_blank_values=False):
        if field == "key" and found:
            return found
    return None
