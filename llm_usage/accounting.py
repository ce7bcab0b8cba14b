"""A finished call as plain data (``CallRecord``), and the pure step from it to a row.

The record is taken on mitmproxy's event loop from the flow (``recorder.py``); everything
costly -- decoding and parsing the body, pricing, formatting -- happens in ``account``,
wherever the row is built: the accountant process, or a writer thread (``accountant.py``).
A record holds only plain values (bytes, strings, numbers, a ``Usage``), so it crosses a
process boundary as one cheap pickle.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import NamedTuple

from mitmproxy.net import encoding

from .parsers import FORMATS, parse_whole
from .parsers.common import error_message, load_json
from .pricing import UNPRICED, Pricer
from .records import CallFacts, build_row, redact, row_usage_status, summary_line
from .usage import Usage

logger = logging.getLogger(__name__)

Row = dict[str, object]


class CallRecord(NamedTuple):
    """What the proxy saw of one finished call (a NamedTuple: the fastest to pickle)."""

    provider: str
    genai_provider: str | None
    wire_format: str
    path: str
    """Upstream path without the query (the row's ``endpoint``)."""
    method: str
    client: str | None
    started_at: float
    ended_at: float
    status_code: int | None
    failure: str | None
    """mitmproxy's error when the call did not complete (upstream unreachable, reset, ...)."""
    stream_usage: Usage | None
    """For a streamed response: what its parser saw; None for a buffered one."""
    stream_error: str | None
    first_byte_at: float | None
    body: bytes
    """A buffered response's body as received (still content-encoded)."""
    content_type: str
    content_encoding: str
    request_body: bytes
    """The request body as received: the requested model, when the response names none."""
    request_encoding: str
    secrets: tuple[str, ...]
    """The request's credentials and query values: never written, only removed from error text."""


def account(record: CallRecord, pricer: Pricer) -> tuple[Row, str, tuple[str, ...]]:
    """The call's row, its readable line, and parser warnings. Never raises: a failure
    here becomes a row that says so (the call is still counted)."""
    try:
        return _account(record, pricer)
    except Exception as exc:  # a bug must not lose the row
        logger.exception("llm-usage: could not account for a call to %s %s", record.provider, record.path)
        error = f"llm-usage could not account for this call: {type(exc).__name__}: {exc}"
        row = build_row(_facts(record, error), Usage(), UNPRICED, None)
        return row, summary_line(row), ()


def _account(record: CallRecord, pricer: Pricer) -> tuple[Row, str, tuple[str, ...]]:
    streamed = record.stream_usage is not None
    status_code = record.status_code
    body = _decoded(record.body, record.content_encoding)
    usage, unreadable = _usage(record, body)
    error = record.failure
    if error is None and status_code is not None and status_code >= 400:
        error = usage.error or (error_message(body) if body else None) or f"HTTP {status_code}"
    error = error or usage.error or unreadable or record.stream_error
    if error:
        error = redact(error, list(record.secrets))
    if usage.model is None:
        usage = usage.with_(model=_requested_model(record))
    usage_status = row_usage_status(
        usage.status,
        has_counts=usage.has_counts,
        method=record.method,
        path=record.path,
        status_code=status_code,
        failed=record.failure is not None,
        streamed=streamed,
    )
    facts = _facts(record, error)
    priced = pricer.price(record.provider, record.genai_provider, usage, datetime.fromtimestamp(record.started_at, UTC))
    row = build_row(facts, usage, priced, usage_status)
    return row, summary_line(row), usage.warnings


def _facts(record: CallRecord, error: str | None) -> CallFacts:
    return CallFacts(
        provider=record.provider,
        endpoint=record.path,
        method=record.method,
        started_at=record.started_at,
        ended_at=record.ended_at,
        streaming=record.stream_usage is not None,
        status_code=record.status_code,
        error=error,
        first_byte_at=record.first_byte_at,
        client=record.client,
    )


def _decoded(data: bytes, content_encoding: str) -> bytes:
    """The body decoded as mitmproxy's ``get_content(strict=False)`` would: as it came
    when the encoding is unknown or the bytes do not decode."""
    if not data or not content_encoding:
        return data
    try:
        decoded = encoding.decode(data, content_encoding)
    except ValueError:
        return data
    return decoded if isinstance(decoded, bytes) else data  # "utf8" is not a content-encoding


def _usage(record: CallRecord, body: bytes) -> tuple[Usage, str | None]:
    """The call's usage, and an error when a successful body could not be read at all."""
    if record.stream_usage is not None:
        return record.stream_usage, None
    if record.status_code is None:  # no response at all
        return Usage(), None
    fmt = FORMATS[record.wire_format]
    try:
        usage = parse_whole(fmt, body, record.content_type)
    except Exception as exc:
        logger.exception("llm-usage: usage parser failed on %s %s", record.provider, record.path)
        return Usage(), f"usage parser failed: {type(exc).__name__}: {exc}"
    if (
        record.status_code < 400
        and body
        and not usage.has_counts
        and usage.model is None
        and load_json(body) is None
        and "json" in record.content_type
    ):
        return usage, "unreadable response body (not JSON)"
    return usage, None


def _requested_model(record: CallRecord) -> str | None:
    request = load_json(_decoded(record.request_body, record.request_encoding))
    return FORMATS[record.wire_format].requested_model(record.path, request if isinstance(request, dict) else {})
