"""Sessions, subagents, projects and keys, from the clients' real header shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_usage.accounting.keys import KEY_ID, fingerprint
from llm_usage.config.files import ConfigError
from llm_usage.config.key_labels import load_key_labels
from llm_usage.proxy.attribution import ProjectError, attribution, credential
from llm_usage.proxy.routing import RouteError, parse_route
from tests.support.harness import OWN_FIXTURES

CAPTURES = sorted((OWN_FIXTURES / "clients").glob("*.json"))
SESSIONS = {
    # capture -> the header its session id is read from (None: the client sends none)
    "claude": "x-claude-code-session-id",
    "codex": "session-id",
    "opencode": "x-session-affinity",
    "aider": None,
    "cline": None,
    "continue": None,
    "llm": None,
}


def _headers(raw: dict[str, str]) -> dict[bytes, str]:
    return {name.lower().encode(): value for name, value in raw.items()}


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_the_session_of_each_captured_client(capture: Path) -> None:
    header = SESSIONS[capture.stem.split("-")[0]]
    for request in json.loads(capture.read_text())["requests"]:
        if request["method"] != "POST":
            continue
        who = attribution(_headers(request["headers"]), None)
        want = request["headers"].get(header) if header else None
        assert who.session_id == want and want != "", (capture.stem, request["headers"])
        assert who.subagent is None and who.project is None


@pytest.mark.parametrize(
    ("headers", "session", "subagent"),
    [
        # Claude Code's subagent: same session, its agent type named (else its id)
        ({"X-Claude-Code-Session-Id": "s1", "x-claude-code-agent-id": "a7", "x-claude-code-agent-type": "Explore"},
         "s1", "Explore"),
        ({"X-Claude-Code-Session-Id": "s1", "x-claude-code-agent-id": "a7"}, "s1", "a7"),
        # Codex: the root's session-id, and the subagent's label
        ({"session-id": "019a-root", "thread-id": "child", "x-openai-subagent": "review"}, "019a-root", "review"),
        ({"session_id": "old-codex"}, "old-codex", None),
        ({"conversation_id": "older-codex"}, "older-codex", None),
        # opencode: a child session counts for its parent; the child is the subagent
        ({"x-session-affinity": "ses_child", "X-Session-Id": "ses_child", "x-parent-session-id": "ses_parent"},
         "ses_parent", "ses_child"),
        ({"x-session-id": "generic"}, "generic", None),
        ({"Helicone-Session-Id": "helicone"}, "helicone", None),
        # opaque values only: printable ASCII, capped; anything else is no session
        ({"x-session-id": "with space"}, None, None),
        ({"x-session-id": "caf\u00e9"}, None, None),
        ({"x-session-id": "x" * 500}, "x" * 128, None),
        ({"x-session-id": ""}, None, None),
    ],
)  # fmt: skip
def test_sessions_and_subagents(headers: dict[str, str], session: str | None, subagent: str | None) -> None:
    who = attribution(_headers(headers), None)
    assert (who.session_id, who.subagent) == (session, subagent)


def test_projects_from_a_header_or_the_path_prefix() -> None:
    assert attribution(_headers({"X-LLM-Usage-Project": "webshop"}), None).project == "webshop"
    assert attribution(_headers({"X-LLM-Usage-Project": "webshop"}), "blog").project == "blog"  # the URL wins
    with pytest.raises(RouteError, match="the '/@<project>/' prefix: a project name is 1 to 64"):
        parse_route("/@web$hop/openai/v1")
    with pytest.raises(ProjectError, match="X-LLM-Usage-Project: a project name is 1 to 64"):
        attribution(_headers({"X-LLM-Usage-Project": "../etc"}), None)
    route = parse_route("/@webshop/openai/v1/chat/completions?x=1")
    assert (route.project, route.slug, route.path, route.query) == ("webshop", "openai", "/v1/chat/completions", "?x=1")
    assert parse_route("/openai/v1/models").project is None


@pytest.mark.parametrize(
    "target",
    [
        "/@/openai/v1/chat/completions",
        "/@web shop/openai/v1",
        "/@-x/openai/v1",
        "/@" + "a" * 65 + "/openai/v1",
        "/@webshop",
        "/@webshop/../anthropic/v1",
        "/@webshop//evil.example/v1",
        "/@webshop%2Fanthropic/v1",
        "/@a/@b/openai/v1",
        "/@evil.example:443/openai/v1",
    ],
)
def test_a_bad_project_prefix_is_refused(target: str) -> None:
    """Never another host or path: the prefix is a name or a 400 (the router answers
    ``RouteError`` with 400 and the message)."""
    with pytest.raises(RouteError):
        parse_route(target)


def test_the_credential_of_a_request() -> None:
    assert credential(_headers({"Authorization": "Bearer sk-proj-1"}), "") == "sk-proj-1"
    assert credential(_headers({"x-api-key": "sk-ant-2"}), "") == "sk-ant-2"
    assert credential(_headers({"x-goog-api-key": "AIza3"}), "?alt=sse") == "AIza3"
    assert credential(_headers({"api-key": "azure4"}), "") == "azure4"
    assert credential({}, "?alt=sse&key=AIza5") == "AIza5"
    assert credential({}, "") is None  # a local Ollama


@settings(max_examples=200, deadline=None)
@given(key=st.text(min_size=1, max_size=200), salt=st.binary(min_size=32, max_size=32))
def test_a_fingerprint_never_holds_the_key(key: str, salt: bytes) -> None:
    found = fingerprint(salt, key)
    assert KEY_ID.fullmatch(found)
    assert key not in found or len(key) < 4  # 8 hex digits cannot hold more than a chance 3 characters
    assert (fingerprint(salt, key) == found and fingerprint(bytes(32), key) != found) or salt == bytes(32)


def test_key_labels_are_validated_naming_the_file_and_key(tmp_path: Path) -> None:
    good = tmp_path / "keys.yaml"
    good.write_text("alice: key-3fa9c1d2\nci: key-90b1e07f\n")
    assert load_key_labels(str(good)) == {"key-3fa9c1d2": "alice", "key-90b1e07f": "ci"}
    for text, problem in (
        ("alice: sk-live-123\n", "'alice': 'sk-live-123' is not a key fingerprint"),
        ("a: key-3fa9c1d2\nb: key-3fa9c1d2\n", "'b': key-3fa9c1d2 is already labelled 'a'"),
        ("- key-3fa9c1d2\n", "must be a mapping"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=problem.replace("'", ".")) as error:
            load_key_labels(str(bad))
        assert str(bad) in str(error.value)
