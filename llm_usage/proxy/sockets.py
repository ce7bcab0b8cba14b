"""Calls made over a WebSocket: the Responses API's WebSocket mode, Codex CLI's default.

A client opens ``GET /v1/responses`` with ``Upgrade: websocket`` -- the 101 that answers it
is a connection, not a call -- and then sends one ``{"type": "response.create", ...}``
message per turn; the server answers each with the events of the SSE stream, one per
message, ending in ``response.completed`` / ``.incomplete`` / ``.failed`` (usage inside) or
an ``error`` event (https://developers.openai.com/api/docs/guides/websocket-mode,
https://developers.openai.com/api/reference/resources/responses/websocket-events). So every
``response.create`` is a call with its own record: from its message to its final event, or
to the socket's end (a ``partial`` one) when the socket closes first.

Responses are answered in order per ``stream_id`` lane (requests with the same
``stream_id`` are processed FIFO and their events echo it), so each lane keeps a queue of
calls and an event goes to the oldest call of its lane. With one lane in flight -- every
client so far -- no event is even searched for its lane.

These hooks only read: mitmproxy forwards each message as it came once they return, and
permessage-deflate is undone by mitmproxy on each side (``proxy/layers/websocket.py``), so
``message.content`` is the plain JSON.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mitmproxy import http

from ..accounting.record import CallRecord
from ..parsers import SocketParser
from .routing import RoutedCall

_REQUEST = re.compile(rb'"type"\s*:\s*"response\.create"')
"""A client message that starts a response (its ``type`` usually comes first: looked for
there first, since the message carries the turn's whole input)."""
_LANE = re.compile(rb'"stream_id"\s*:\s*"((?:[^"\\]|\\.)*)"')
CLOSED_EARLY = "the WebSocket closed before the response completed"


@dataclass(slots=True)
class SocketCall:
    """One ``response.create`` in flight."""

    parser: SocketParser
    request: bytes
    """The ``response.create`` message: the requested model, when no event names one."""
    started_at: float
    first_event_at: float | None = None


@dataclass(slots=True)
class ResponsesSocket:
    """The calls in flight on one socket, by lane; ``submit`` gets each finished one."""

    call: RoutedCall
    flow: http.HTTPFlow
    submit: Callable[[CallRecord, http.HTTPFlow], None]
    lanes: dict[bytes | None, deque[SocketCall]] = field(default_factory=dict)

    def message(self, content: bytes, from_client: bool, at: float) -> None:
        if from_client:
            if _REQUEST.search(content, 0, 256) or _REQUEST.search(content):
                parser: SocketParser = self.call.format.stream_parser("")  # type: ignore[assignment]
                lane = _lane(content)
                self.lanes.setdefault(lane, deque()).append(SocketCall(parser, content, at))
            return  # response.steer, ...: more input for a call already counted
        pending = self._pending_for(content)
        if pending is None:
            return
        socket_call = pending[0]
        if socket_call.first_event_at is None:
            socket_call.first_event_at = at
        parser = socket_call.parser
        if parser.settled and parser.quiet(content):  # the deltas: nearly every message
            return
        parser.feed_event(content)
        if parser.ended:
            pending.popleft()
            self._finish(socket_call, at, None)

    def _pending_for(self, content: bytes) -> deque[SocketCall] | None:
        """The queue of the lane this server event belongs to (the only busy one, when
        there is one; else its ``stream_id``'s, or the default lane's)."""
        busy = [queue for queue in self.lanes.values() if queue]
        if len(busy) <= 1:
            return busy[0] if busy else None
        lane = self.lanes.get(_lane(content))
        return lane if lane else next(iter(busy))

    def end(self, at: float) -> None:
        """The socket is gone: every call still waiting ends here, cut short."""
        for queue in self.lanes.values():
            while queue:
                self._finish(queue.popleft(), at, CLOSED_EARLY)

    def _finish(self, socket_call: SocketCall, at: float, failure: str | None) -> None:
        record = self.call.record(
            self.flow,
            started_at=socket_call.started_at,
            ended_at=at,
            failure=failure,
            stream_usage=socket_call.parser.finish(),
            first_byte_at=socket_call.first_event_at,
            request_body=socket_call.request,
            transport="websocket",
        )
        self.submit(record, self.flow)


def _lane(content: bytes) -> bytes | None:
    match = _LANE.search(content)
    return match.group(1) if match else None


def carries_calls(call: RoutedCall) -> bool:
    paths = call.format.socket_paths
    return paths is not None and paths.search(call.path) is not None
