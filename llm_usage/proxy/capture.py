"""Capturing calls: one ``CallRecord`` per routed call, streamed or not, finished or cut short.

- ``responseheaders``: a streamed response (decided from the response itself) gets a
  ``StreamTee``; everything else stays buffered (streaming a body costs mitmproxy more
  CPU than buffering it).
- ``response``: the call finished; ``error``: upstream unreachable, reset, or client gone
  mid-stream. Either way the call becomes a ``CallRecord`` (plain data, no parsing) that
  is handed on; its row is built off the event loop (``accounting.account``).
- A ``101`` that opens a WebSocket is no call: the socket's own calls (the Responses API's
  ``response.create`` messages) are read by ``sockets.ResponsesSocket`` through
  ``websocket_message`` until ``websocket_end``. A socket on any other path, whose
  messages no parser reads, is one call from opening to end (its usage missing).

Per-call state lives here, keyed by ``flow.id``, and is dropped when the call ends -- never
in ``flow.metadata``, which mitmproxy serializes when it saves flows (``-w``, mitmweb's
Save): an object there would make every flow unsavable. A late ``error`` after
``response`` finds nothing, so no call gets two rows.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from mitmproxy import ctx, http

from ..accounting.record import CallRecord
from ..parsers import is_streamed
from ..parsers.usage import Usage
from .decoding import make_decoder
from .include_usage import UsageChunkFilter
from .routing import RoutedCall
from .sockets import ResponsesSocket, carries_calls
from .tee import StreamTee

logger = logging.getLogger(__name__)

STOPPED = "the proxy stopped before the call completed"
_MODEL_KEY = re.compile(rb'"model(?:Version)?"\s*:\s*"[^"]')
"""A response body's served-model key with a non-empty string (Gemini: modelVersion)."""


def record_of(flow: http.HTTPFlow, call: RoutedCall, tee: StreamTee | None, failure: str | None) -> CallRecord:
    """The finished call as plain data: references and numbers only, no parsing.
    (A streamed response's parser finishes here: its state stays on this side.)"""
    request, response = flow.request, flow.response
    stream_usage = tee.finish() if tee is not None else None
    body = (response.raw_content or b"") if response is not None and tee is None else b""
    # The request body (often hundreds of kB from a coding tool; a reference, not a copy)
    # matters when the response names no model, and when the call failed: the error text
    # may echo one of its secret fields (accounting/secrets.py).
    if tee is not None and stream_usage is not None:
        wants_request = stream_usage.model is None or failure is not None or tee.parse_error is not None
    else:
        wants_request = not (response is not None and response.status_code < 400 and _MODEL_KEY.search(body))
    return call.record(
        flow,
        started_at=request.timestamp_start,
        ended_at=_ended_at(flow),
        failure=failure,
        stream_usage=stream_usage,
        stream_error=tee.parse_error if tee is not None else None,
        first_byte_at=tee.first_byte_at if tee is not None else None,
        body=body,
        request_body=(request.raw_content or b"") if wants_request else b"",
        transport="http" if flow.websocket is None else "websocket",
    )


def _ended_at(flow: http.HTTPFlow) -> float:
    if flow.websocket is not None and flow.websocket.timestamp_end:
        return flow.websocket.timestamp_end
    return (flow.response.timestamp_end if flow.response is not None else None) or time.time()


def stream_tee(call: RoutedCall, response: http.Response, content_type: str) -> StreamTee:
    """The tee for a streamed response; it may edit the response's headers (see below)."""
    parser = call.format.stream_parser(content_type)
    headers = response.headers
    try:
        decoder = make_decoder(headers.get("content-encoding", ""))
    except ValueError as exc:
        logger.warning("llm-usage: %s %s: %s; its usage is not parsed", call.provider.slug, call.path, exc)
        tee = StreamTee(parser)
        tee.fail(str(exc))
        return tee
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
    return StreamTee(parser, decoder, forward_decoded=forward_decoded, chunk_filter=chunk_filter)


class Capture:
    """The routed calls in flight, and the hooks that end them. ``submit`` gets each
    finished call's record, once."""

    def __init__(
        self,
        submit: Callable[[CallRecord, http.HTTPFlow], None],
        refuse: Callable[[RoutedCall, bytes], bytes | None] = lambda call, request: None,
    ) -> None:
        self.submit = submit
        self.refuse = refuse
        """A call's request message on a socket -> the error event refusing it (a used-up
        budget), or None to let it through."""
        self._calls: dict[str, RoutedCall] = {}
        self._flows: dict[str, http.HTTPFlow] = {}
        """The flows of the calls in ``_calls``: a call still open when the proxy stops is ended from it."""
        self._tees: dict[str, StreamTee] = {}
        self._sockets: dict[str, ResponsesSocket] = {}

    def begin(self, flow: http.HTTPFlow, call: RoutedCall) -> None:
        self._calls[flow.id] = call
        self._flows[flow.id] = flow

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        call = self._calls.get(flow.id)
        response = flow.response
        if call is None or response is None:
            return
        content_type = response.headers.get("content-type", "")
        if is_streamed(content_type, call.path):
            tee = self._tees[flow.id] = stream_tee(call, response, content_type)
            response.stream = tee

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is not None and flow.id in self._calls:  # the 101: a socket opens
            call = self._calls[flow.id]
            if carries_calls(call):
                del self._calls[flow.id]
                del self._flows[flow.id]
                self._sockets[flow.id] = ResponsesSocket(call, flow, self.submit)
            return  # any other socket stays one call, ended by websocket_end
        self._end(flow, None)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is not None:
            self.websocket_end(flow)
            return
        self._end(flow, flow.error.msg if flow.error else "connection failed")

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        socket = self._sockets.get(flow.id)
        if socket is not None:
            message = flow.websocket.messages[-1]  # type: ignore[union-attr]
            asks = message.from_client and not message.injected
            refusal = self.refuse(socket.call, message.content) if asks else None
            socket.message(message.content, message.from_client, message.timestamp)
            if refusal is not None:
                # A budget is used up: the call is not forwarded; the client gets the API's own
                # ``error`` event instead, which also ends the call's row as failed.
                message.drop()
                socket.message(refusal, False, time.time())
                ctx.master.commands.call("inject.websocket", flow, True, refusal, True)

    def close(self) -> None:
        """The proxy stops (Ctrl+C, ``q``, SIGTERM): a call still under way reached the
        provider and is paid for, so it gets its row now -- ``partial`` for a stream cut
        here, with the reason -- rather than none. (A call that mitmproxy already ended
        with ``error`` has its row and is not here any more.)"""
        for flow_id in list(self._calls):
            flow = self._flows.get(flow_id)
            if flow is not None:
                try:
                    self._end(flow, STOPPED)
                except Exception:  # one call must not keep the others' rows (or the writer) from closing
                    logger.exception("llm-usage: could not end a call at shutdown")
        self.close_sockets()

    def close_sockets(self) -> None:
        """The proxy stops: a response still coming on an open socket was paid for, so it
        gets its (partial) row now rather than none."""
        at = time.time()
        while self._sockets:
            try:
                self._sockets.popitem()[1].end(at, "the proxy stopped before the response completed")
            except Exception:  # one socket must not keep the others' rows (or the writer) from closing
                logger.exception("llm-usage: could not end a WebSocket's calls")

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        socket = self._sockets.pop(flow.id, None)
        if socket is not None:
            socket.end(time.time())
        else:
            self._end(flow, None)

    def _end(self, flow: http.HTTPFlow, failure: str | None) -> None:
        call = self._calls.pop(flow.id, None)
        self._flows.pop(flow.id, None)
        if call is None:  # not a routed call, or already ended
            return
        tee = self._tees.pop(flow.id, None)
        try:
            record = record_of(flow, call, tee, failure)
        except Exception as exc:  # a bug must not lose the call or reach mitmproxy
            logger.exception("llm-usage: could not read a call to %s %s", call.provider.slug, call.path)
            record = call.record(
                flow,
                started_at=flow.request.timestamp_start or time.time(),
                ended_at=time.time(),
                failure=f"llm-usage could not read this call: {type(exc).__name__}: {exc}",
                stream_usage=Usage() if tee is not None else None,
            )
        self.submit(record, flow)
