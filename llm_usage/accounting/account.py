"""``account(record, pricer) -> (row, line)``: the one step from a finished call to its row.

Runs on the writer thread (``store/writer.py``), never on mitmproxy's event loop: it
decodes and parses a buffered body, prices the usage and shapes the row and its line.
It never raises: a failure becomes a row that says so, so the call is still counted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from mitmproxy.net import encoding

from ..parsers import parse_whole
from ..parsers.json_values import MAX_ERROR_CHARS, error_message, load_json
from ..parsers.usage import Usage
from .line import summary_line
from .pricing import UNPRICED, Pricer
from .record import CallRecord
from .row import Row, build_row, owes_usage, usage_status
from .secrets import redact, request_secrets

logger = logging.getLogger(__name__)
UNTRUSTED = "the provider's usage cannot be true, so it is not trusted or priced"


def account(record: CallRecord, pricer: Pricer) -> tuple[Row, str]:
    """The call's row and readable line. The parser's warnings (an over-long line
    skipped, ...) are logged against the call."""
    try:
        row, warnings = _account(record, pricer)
    except Exception as exc:  # a bug must not lose the row
        logger.exception("llm-usage: could not account for a call to %s %s", record.provider.slug, record.path)
        error = f"llm-usage could not account for this call: {type(exc).__name__}: {exc}"
        row, warnings = build_row(record, Usage(), UNPRICED, None, error), ()
    for warning in warnings:
        logger.warning("llm-usage: %s %s: %s", record.provider.slug, record.path, warning)
    return row, summary_line(row)


def _account(record: CallRecord, pricer: Pricer) -> tuple[Row, tuple[str, ...]]:
    status_code = record.status_code
    body = decoded(record.body, record.content_encoding)
    owed = owes_usage(record)
    # A request that owes no usage is not read for one: a stored response fetched again
    # (GET /v1/responses/<id>) carries a usage that was counted when it was made.
    usage, unreadable = _usage(record, body) if owed else (Usage(), None)
    error = record.failure
    if error is None and status_code is not None and status_code >= 400:
        error = usage.error or (error_message(body) if body else None) or (f"HTTP {status_code}" if owed else None)
    error = error or usage.error or unreadable or record.stream_error
    if usage.implausible:  # counted, not trusted: the row says why, and it is not priced
        error = error or f"{UNTRUSTED}: {', '.join(usage.implausible)}"
    if error:  # secrets out first, then the cut: a cut must not leave a secret's head behind
        request = decoded(record.request_body, record.request_encoding)
        secrets = request_secrets(record.request_target, record.request_headers, request, record.request_content_type)
        error = redact(error, secrets)[:MAX_ERROR_CHARS]
    if usage.model is None:
        usage = usage.with_(model=_requested_model(record))
    at = datetime.fromtimestamp(record.started_at, UTC)
    priced = (
        UNPRICED if usage.implausible else pricer.price(record.provider.slug, record.provider.genai_prices, usage, at)
    )
    warnings = usage.warnings + ((f"{UNTRUSTED}: {', '.join(usage.implausible)}",) if usage.implausible else ())
    return build_row(record, usage, priced, usage_status(record, usage), error), warnings


def decoded(data: bytes, content_encoding: str) -> bytes:
    """The body decoded as mitmproxy's ``get_content(strict=False)`` would: as it came
    when the encoding is unknown or the bytes do not decode."""
    if not data or not content_encoding:
        return data
    try:
        result = encoding.decode(data, content_encoding)
    except ValueError:
        return data
    return result if isinstance(result, bytes) else data  # "utf8" is not a content-encoding


def _usage(record: CallRecord, body: bytes) -> tuple[Usage, str | None]:
    """The call's usage, and an error when a successful body could not be read at all."""
    if record.stream_usage is not None:
        return record.stream_usage, None
    if record.status_code is None:  # no response at all
        return Usage(), None
    try:
        usage = parse_whole(record.wire_format, body, record.content_type)
    except Exception as exc:
        logger.exception("llm-usage: usage parser failed on %s %s", record.provider.slug, record.path)
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
    return record.wire_format.model_requested_in(record.path, decoded(record.request_body, record.request_encoding))
