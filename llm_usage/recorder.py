"""Usage logging: one row per proxied call, streamed or not, finished or cut short.

- ``responseheaders``: a streamed response (decided from the response itself) gets a
  ``StreamTee``; everything else stays buffered (streaming a body costs mitmproxy about
  1.3 ms more CPU per flow than buffering it).
- ``response``: the call finished; ``error``: upstream unreachable, reset, or client gone
  mid-stream. Either way the call becomes a ``CallRecord`` (plain data, no parsing) that
  the accountant turns into a row, prices and logs -- off the event loop (``accountant.py``).

Each call also prints one readable line and, in mitmweb, becomes the flow's comment.
"""

from __future__ import annotations

import logging
import re
import time

from mitmproxy import http

from .accounting import CallRecord
from .call import CALL_KEY, Call
from .decoding import make_decoder
from .headers import header_values, request_secrets
from .injection import UsageChunkFilter
from .parsers import is_streamed
from .settings import Settings
from .streaming import StreamTee
from .usage import Usage

logger = logging.getLogger(__name__)


def _call(flow: http.HTTPFlow) -> Call | None:
    call = flow.metadata.get(CALL_KEY)
    return call if isinstance(call, Call) and not call.logged else None


_MODEL_KEY = re.compile(rb'"model(?:Version)?"\s*:\s*"[^"]')
"""A response body's served-model key with a non-empty string (Gemini: modelVersion)."""


def _record_of(flow: http.HTTPFlow, call: Call, failure: str | None) -> CallRecord:
    """The finished call as plain data: references and numbers only, no parsing.
    (A streamed response's parser finishes here: its state stays in this process.)"""
    request, response, tee = flow.request, flow.response, call.tee
    if response is not None and call.response_seen is not response:
        _read_response_headers(call, response)
    stream_usage = tee.finish() if tee is not None else None
    body = (response.raw_content or b"") if response is not None and tee is None else b""
    # The request body (often hundreds of kB from a coding tool) only matters when the
    # response names no model; a successful plain one with a "model" key does.
    if stream_usage is not None:
        wants_request = stream_usage.model is None
    else:
        names_model = response is not None and response.status_code < 400 and not call.content_encoding
        wants_request = not (names_model and _MODEL_KEY.search(body))
    return CallRecord(
        provider=call.provider.slug,
        genai_provider=call.provider.genai_prices,
        wire_format=call.format.name,
        path=call.path,
        method=request.method,
        client=call.client,
        started_at=request.timestamp_start,
        ended_at=(response.timestamp_end if response is not None else None) or time.time(),
        status_code=response.status_code if response is not None else None,
        failure=failure,
        stream_usage=stream_usage,
        stream_error=tee.parse_error if tee is not None else None,
        first_byte_at=tee.first_byte_at if tee is not None else None,
        body=body,
        content_type=call.content_type,
        content_encoding=call.content_encoding,
        request_body=(request.raw_content or b"") if wants_request else b"",
        request_encoding=call.request_encoding,
        secrets=request_secrets(request),
    )


_RESPONSE_HEADERS = frozenset((b"content-type", b"content-encoding"))


def _read_response_headers(call: Call, response: http.Response) -> None:
    """Content type and encoding, read once per response (in ``responseheaders``, or in
    ``response`` when another addon supplied the response and that hook never ran)."""
    found = header_values(response.headers.fields, _RESPONSE_HEADERS)
    call.content_type = found.get(b"content-type", "")
    call.content_encoding = found.get(b"content-encoding", "")
    call.response_seen = response


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
            response.stream = call.tee.stream_callable
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
        response.stream = call.tee.stream_callable

    def response(self, flow: http.HTTPFlow) -> None:
        call = _call(flow)
        if call is not None:
            self._record(flow, call, failure=None)

    def error(self, flow: http.HTTPFlow) -> None:
        call = _call(flow)
        if call is not None:
            self._record(flow, call, failure=flow.error.msg if flow.error else "connection failed")

    def _record(self, flow: http.HTTPFlow, call: Call, failure: str | None) -> None:
        """Hand the finished call to the accountant, which builds its row (``accounting.py``).

        Nothing here parses a body or prices anything: the event loop only marks the call
        logged (so a late ``error`` hook adds no second row) and takes a ``CallRecord``."""
        call.logged = True
        accountant = self.settings.accountant
        if accountant is None:
            logger.error("llm-usage: shutting down; not recorded: %s %s", call.provider.slug, call.path)
            return
        try:
            record = _record_of(flow, call, failure)
        except Exception as exc:  # a bug must not lose the call or reach mitmproxy
            logger.exception("llm-usage: could not read a call to %s %s", call.provider.slug, call.path)
            record = _minimal_record(flow, call, f"llm-usage could not read this call: {type(exc).__name__}: {exc}")
        accountant.submit(record, flow)


def _minimal_record(flow: http.HTTPFlow, call: Call, error: str) -> CallRecord:
    """What is surely known of a call whose full record could not be taken."""
    now = time.time()
    return CallRecord(
        provider=call.provider.slug,
        genai_provider=None,
        wire_format=call.format.name,
        path=call.path,
        method=flow.request.method,
        client=call.client,
        started_at=flow.request.timestamp_start or now,
        ended_at=now,
        status_code=flow.response.status_code if flow.response is not None else None,
        failure=error,
        stream_usage=Usage() if call.tee is not None else None,
        stream_error=None,
        first_byte_at=None,
        body=b"",
        content_type="",
        content_encoding="",
        request_body=b"",
        request_encoding="",
        secrets=(),
    )
