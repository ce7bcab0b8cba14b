"""Usage logging: one row per proxied call, streamed or not, finished or cut short.

- ``responseheaders``: a streamed response (decided from the response itself) gets a
  ``StreamTee``; everything else stays buffered (streaming a body costs mitmproxy about
  1.3 ms more CPU per flow than buffering it).
- ``response``: the call finished; parse (or finish the stream parser), price, log.
- ``error``: upstream unreachable, reset, or client gone mid-stream; log what was seen.

The row is handed to the writer thread; no I/O happens here. Each call also prints one
readable line and, in mitmweb, becomes the flow's comment.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from functools import partial

from mitmproxy import http

from .call import CALL_KEY, Call
from .decoding import make_decoder
from .headers import header_values
from .injection import UsageChunkFilter
from .parsers import is_streamed, parse_whole
from .parsers.common import error_message, load_json
from .pricing import UNPRICED
from .records import CallFacts, build_row, redact, row_usage_status, summary_line
from .settings import Settings
from .streaming import StreamTee
from .usage import Usage

logger = logging.getLogger(__name__)


def _call(flow: http.HTTPFlow) -> Call | None:
    call = flow.metadata.get(CALL_KEY)
    return call if isinstance(call, Call) and not call.logged else None


_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization")


def _request_secrets(request: http.Request) -> list[str]:
    """Every query value and credential the request carried (only read for error rows)."""
    secrets = [value for _name, value in request.query.items(multi=True)]
    for header in _CREDENTIAL_HEADERS:
        value = request.headers.get(header)
        if value:
            secrets += [value, value.partition(" ")[2]]  # "Bearer <token>" and the token alone
    return [s for s in secrets if s]


def _facts(flow: http.HTTPFlow, call: Call, error: str | None, recorded_at: float) -> CallFacts:
    """What the proxy itself saw of the call (``recorded_at``: when it ended, if no response did)."""
    request, response = flow.request, flow.response
    return CallFacts(
        provider=call.provider.slug,
        endpoint=call.path,
        method=request.method,
        started_at=request.timestamp_start,
        ended_at=(response.timestamp_end if response is not None else None) or recorded_at,
        streaming=call.tee is not None,
        status_code=response.status_code if response is not None else None,
        error=error,
        first_byte_at=call.tee.first_byte_at if call.tee else None,
        client=call.client,
    )


_RESPONSE_HEADERS = frozenset((b"content-type", b"content-encoding"))


def _read_response_headers(call: Call, response: http.Response) -> None:
    """Content type and encoding, read once per response (in ``responseheaders``, or in
    ``response`` when another addon supplied the response and that hook never ran)."""
    found = header_values(response.headers.fields, _RESPONSE_HEADERS)
    call.content_type = found.get(b"content-type", "")
    call.content_encoding = found.get(b"content-encoding", "")
    call.response_seen = response


def _body(response: http.Response, call: Call) -> bytes:
    """The decoded body; with no content-encoding (the usual case) the raw bytes as they are."""
    if call.response_seen is not response:
        _read_response_headers(call, response)
    if not call.content_encoding:
        return response.raw_content or b""
    return response.get_content(strict=False) or b""


class UsageRecorder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        call = _call(flow)
        response = flow.response
        if call is None or response is None:
            return
        _read_response_headers(call, response)
        content_type = call.content_type
        headers = response.headers
        if not is_streamed(content_type, call.path):
            return
        try:
            decoder = make_decoder(call.content_encoding)
        except ValueError as exc:
            logger.warning("llm-usage: %s %s: %s; its usage is not parsed", call.provider.slug, call.path, exc)
            call.tee = StreamTee(call.format.stream_parser(content_type))
            call.tee.parse_error = str(exc)
            call.tee.finish()
            response.stream = call.tee
            return
        chunk_filter = UsageChunkFilter() if call.injected_usage and "event-stream" in content_type else None
        forward_decoded = chunk_filter is not None and decoder is not None
        if chunk_filter is not None:
            # The filter edits the body: the length changes, and it edits decoded bytes.
            if forward_decoded:
                del headers["content-encoding"]
            if "content-length" in headers:
                del headers["content-length"]
                if response.http_version == "HTTP/1.1":
                    headers["transfer-encoding"] = "chunked"
        call.tee = StreamTee(
            call.format.stream_parser(content_type),
            decoder,
            forward_decoded=forward_decoded,
            chunk_filter=chunk_filter,
        )
        response.stream = call.tee

    def response(self, flow: http.HTTPFlow) -> None:
        call = _call(flow)
        if call is not None:
            self._record(flow, call, failure=None)

    def error(self, flow: http.HTTPFlow) -> None:
        call = _call(flow)
        if call is not None:
            self._record(flow, call, failure=flow.error.msg if flow.error else "connection failed")

    def _record(self, flow: http.HTTPFlow, call: Call, failure: str | None) -> None:
        """Hand the finished call to the writer thread, which builds its row (``_account``).

        Nothing here reads a body or prices anything: the event loop only marks the call
        logged (so a late ``error`` hook adds no second row) and notes the time."""
        call.logged = True
        writer = self.settings.writer
        if writer is None:
            logger.error(
                "llm-usage: no database writer (shutting down?); not recorded: %s %s", call.provider.slug, call.path
            )
            return
        writer.submit_job(partial(self._account, flow, call, failure, time.time()))

    def _account(
        self, flow: http.HTTPFlow, call: Call, failure: str | None, recorded_at: float
    ) -> tuple[dict[str, object], str]:
        """On the writer thread: the call's row and readable line; the line also becomes
        the flow's comment (mitmweb is told the flow changed)."""
        try:
            row, line, warnings = self._build_row(flow, call, failure, recorded_at)
        except Exception as exc:  # a bug must not lose the row
            logger.exception("llm-usage: could not account for a call to %s %s", call.provider.slug, call.path)
            error = f"llm-usage could not account for this call: {type(exc).__name__}: {exc}"
            row = build_row(_facts(flow, call, error, recorded_at), Usage(), UNPRICED, None)
            line, warnings = summary_line(row), ()
        flow.comment = line  # mitmweb shows it beside the flow
        self.settings.announce_change(flow)
        for warning in warnings:
            logger.warning("llm-usage: %s %s: %s", call.provider.slug, call.path, warning)
        return row, line

    def _build_row(
        self, flow: http.HTTPFlow, call: Call, failure: str | None, recorded_at: float
    ) -> tuple[dict[str, object], str, tuple[str, ...]]:
        response = flow.response
        status_code = response.status_code if response is not None else None
        usage, unreadable = self._usage(call, response)
        error = failure
        if error is None and status_code is not None and status_code >= 400:
            body = _body(response, call) if response is not None and call.tee is None else b""
            error = usage.error or (error_message(body) if body else None) or f"HTTP {status_code}"
        error = error or usage.error or unreadable or (call.tee.parse_error if call.tee else None)
        if error:
            error = redact(error, _request_secrets(flow.request))
        if usage.model is None:
            usage = usage.with_(model=self._requested_model(flow, call))
        usage_status = row_usage_status(
            usage.status,
            has_counts=usage.has_counts,
            method=flow.request.method,
            path=call.path,
            status_code=status_code,
            failed=failure is not None,
            streamed=call.tee is not None,
        )
        facts = _facts(flow, call, error, recorded_at)
        priced = self.settings.pricer.price(
            call.provider.slug, call.provider.genai_prices, usage, datetime.fromtimestamp(facts.started_at, UTC)
        )
        row = build_row(facts, usage, priced, usage_status)
        return row, summary_line(row), usage.warnings

    @staticmethod
    def _usage(call: Call, response: http.Response | None) -> tuple[Usage, str | None]:
        """The call's usage, and an error when a successful body could not be read at all."""
        if call.tee is not None:
            return call.tee.finish(), None
        if response is None:
            return Usage(), None
        body = _body(response, call)
        content_type = call.content_type or ""
        try:
            usage = parse_whole(call.format, body, content_type)
        except Exception as exc:
            logger.exception("llm-usage: usage parser failed on %s %s", call.provider.slug, call.path)
            return Usage(), f"usage parser failed: {type(exc).__name__}: {exc}"
        if (
            response.status_code < 400
            and body
            and not usage.has_counts
            and usage.model is None
            and load_json(body) is None
            and "json" in content_type
        ):
            return usage, "unreadable response body (not JSON)"
        return usage, None

    @staticmethod
    def _requested_model(flow: http.HTTPFlow, call: Call) -> str | None:
        request = load_json(flow.request.get_content(strict=False) or b"")
        return call.format.requested_model(call.path, request if isinstance(request, dict) else {})
