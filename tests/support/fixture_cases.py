"""Provider exchanges for the table-driven parser tests.

Two sources, one schema (see ``../shared/fixtures/README.md``):

- ``tests/fixtures/*.json`` -- the project's own small hand-written exchanges, one per parser
  path, always present. Their ``expected`` may add ``status`` (complete | partial | missing)
  and ``error_message`` (the exact provider message the row must keep).
- ``../shared/fixtures/*.json`` -- real recorded provider traffic that lives beside the repo.
  It is read in place, never copied; without it those cases skip with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llm_usage.parsers import StreamParser, WireFormat, is_streamed, wire_format
from llm_usage.parsers.json_values import error_message
from llm_usage.parsers.usage import Usage
from tests.support.harness import OWN_FIXTURES, SHARED_FIXTURES

SHARED_MISSING = f"recorded provider traffic not found at {SHARED_FIXTURES} (it lives beside the repo, in ../shared)"

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


@dataclass(frozen=True, eq=False)
class Case:
    """One recorded or hand-written HTTP exchange."""

    origin: str  # "own" | "shared"
    name: str  # the file name
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.origin}/{self.name}"

    @property
    def path(self) -> str:
        return str(self.data["request"]["path"])

    @property
    def request_body(self) -> dict[str, Any]:
        body = self.data["request"].get("body")
        return body if isinstance(body, dict) else {}

    @property
    def status_code(self) -> int:
        return int(self.data["response"]["status"])

    @property
    def content_type(self) -> str:
        return str(self.data["response"]["headers"].get("content-type", ""))

    @property
    def body(self) -> bytes:
        return str(self.data["response"]["body_text"]).encode()

    @property
    def expected(self) -> dict[str, Any]:
        return dict(self.data["expected"])

    @property
    def fmt(self) -> WireFormat:
        return wire_format(self.data["provider_format"], self.path)

    @property
    def streamed(self) -> bool:
        return is_streamed(self.content_type, self.path)

    @property
    def framing(self) -> str:
        """How a streamed body is cut into events: sse | ndjson | json-array (``json`` when not streamed)."""
        if not self.streamed:
            return "json"
        ct = self.content_type.lower()
        if "event-stream" in ct:
            return "sse"
        if "ndjson" in ct or "jsonl" in ct:
            return "ndjson"
        return "json-array"

    def stream_parser(self) -> StreamParser:
        return self.fmt.stream_parser(self.content_type)

    def feed(self, chunks: Iterable[bytes]) -> Usage:
        """The body given to a fresh stream parser piece by piece."""
        parser = self.stream_parser()
        for chunk in chunks:
            parser.feed(chunk)
        return parser.finish()

    def parse(self) -> Usage:
        """The whole body, the way a finished response is parsed."""
        if self.streamed:
            return self.feed([self.body])
        return self.fmt.parse_response(self.body)

    def row_model(self, usage: Usage) -> str | None:
        """The model the row gets: the response's, else the requested one."""
        return usage.model or self.fmt.requested_model(self.path, self.request_body)


def load_dir(directory: Path, origin: str) -> list[Case]:
    return [
        Case(origin, path.name, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(directory.glob("*.json"))
    ]


OWN_CASES = load_dir(OWN_FIXTURES, "own")
SHARED_CASES = load_dir(SHARED_FIXTURES, "shared") if SHARED_FIXTURES.is_dir() else []


def params(*, streamed: bool | None = None, framing: tuple[str, ...] = (), own: bool = True, shared: bool = True):
    """``pytest.param`` per case (id = origin/file name); one skipped placeholder when ../shared is absent."""

    def keep(case: Case) -> bool:
        if streamed is not None and case.streamed != streamed:
            return False
        return not framing or case.framing in framing

    out = [pytest.param(c, id=c.id) for c in OWN_CASES if own and keep(c)]
    if shared:
        if SHARED_FIXTURES.is_dir():
            out += [pytest.param(c, id=c.id) for c in SHARED_CASES if keep(c)]
        else:
            out.append(pytest.param(None, id="shared", marks=pytest.mark.skip(reason=SHARED_MISSING)))
    return out


def expected_status(case: Case) -> str:
    exp = case.expected
    if "status" in exp:
        return str(exp["status"])
    return "complete" if exp["input_tokens"] is not None or exp["output_tokens"] is not None else "missing"


def assert_matches_expected(case: Case, usage: Usage) -> None:
    """Everything ``expected`` says, in CONTRACT.md's semantics."""
    exp = case.expected
    got = {field: getattr(usage, field) for field in TOKEN_FIELDS}
    want = {field: exp[field] for field in TOKEN_FIELDS}
    assert got == want, f"token counts of {case.id}"
    assert case.row_model(usage) == exp["model"]
    assert case.streamed == exp["streaming"]
    if exp.get("cost") is None:
        assert usage.provider_cost_usd is None
    else:
        assert isinstance(usage.provider_cost_usd, Decimal)
        assert usage.provider_cost_usd == Decimal(str(exp["cost"]))
    assert usage.status == expected_status(case)
    assert usage.warnings == ()
    if "details" in exp:  # the billed dimensions beyond the counts, as genai-prices names them
        assert dict(usage.details) == exp["details"], f"details of {case.id}"
    if "service_tier" in exp:
        assert usage.service_tier == exp["service_tier"], f"service tier of {case.id}"

    # The row's error: the parser's, or (for a whole non-stream error body) the body's own message.
    fallback = error_message(case.body) if not case.streamed and case.status_code >= 400 else None
    row_error = usage.error or fallback
    if exp.get("error"):
        assert case.status_code >= 400
        assert isinstance(row_error, str) and row_error.strip()
    if "error_message" in exp:
        assert row_error == exp["error_message"], f"{case.id}: the provider's error message was not kept"
    elif not exp.get("error"):
        assert usage.error is None, f"a successful exchange got error {usage.error!r}"

    # total = input + output; cache and reasoning counts are subsets.
    if usage.input_tokens is not None and usage.output_tokens is not None:
        assert usage.total_tokens == exp["input_tokens"] + exp["output_tokens"]
    if usage.input_tokens is not None:
        assert (usage.cache_read_tokens or 0) + (usage.cache_write_tokens or 0) <= usage.input_tokens
    if usage.output_tokens is not None:
        assert (usage.reasoning_tokens or 0) <= usage.output_tokens
