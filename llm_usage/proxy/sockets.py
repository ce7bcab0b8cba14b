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
calls: an event that names its lane goes to that lane only; one that names none goes to
the only lane in flight (every client so far), else the default one. In a lane:

- ``response.created`` opens the next call that has none yet; with none waiting it is a
  response the server started on its own -- the successor of a response ended by
  ``response.steer`` -- and becomes a call of its own, since it is billed as one.
- The other events belong to the oldest call; only a final event ends it
  (``response.completed`` / ``.incomplete`` / ``.failed``), or an ``error`` that comes
  before its ``response.created`` (the request was refused). A later ``error`` is about
  something else (an unknown client event, a failed steer): the call goes on.
- ``response.steer.*`` events acknowledge more input for a call already counted.

These hooks only read: mitmproxy forwards each message as it came once they return, and
permessage-deflate is undone by mitmproxy on each side (``proxy/layers/websocket.py``), so
``message.content`` is the plain JSON.
"""

from __future__ import annotations

import json
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
    """One response in flight."""

    parser: SocketParser
    request: bytes
    """The ``response.create`` message: the requested model, when no event names one."""
    started_at: float
    first_event_at: float | None = None
    created: bool = False
    """Its ``response.created`` has arrived: the server is answering it."""


_TYPE = re.compile(rb'"type"\s*:\s*"([^"]*)"')
_FINAL = frozenset((b"response.completed", b"response.incomplete", b"response.failed"))


@dataclass(slots=True)
class ResponsesSocket:
    """The calls in flight on one socket, by lane (a lane is dropped once empty);
    ``submit`` gets each finished one."""

    call: RoutedCall
    flow: http.HTTPFlow
    submit: Callable[[CallRecord, http.HTTPFlow], None]
    lanes: dict[bytes | None, deque[SocketCall]] = field(default_factory=dict)

    def message(self, content: bytes, from_client: bool, at: float) -> None:
        if from_client:
            if _REQUEST.search(content, 0, 256) or _REQUEST.search(content):
                self.lanes.setdefault(_lane(content), deque()).append(self._new_call(content, at))
            return  # response.steer, ...: more input for a call already counted
        lane = self._lane_of(content)
        queue = self.lanes.get(lane)
        head = queue[0] if queue else None
        if head is not None:
            if head.first_event_at is None:
                head.first_event_at = at
            if head.parser.settled and head.parser.quiet(content):  # the deltas: nearly every message
                return
        match = _TYPE.search(content, 0, 512) or _TYPE.search(content)
        kind = match.group(1) if match else b""
        if kind == b"response.created":
            self._created(lane, content, at)
        elif head is None or kind.startswith(b"response.steer") or (kind == b"error" and head.created):
            return  # not about the answer under way (a failed steer, an unknown client event)
        else:
            head.parser.feed_event(content)
            if kind in _FINAL or (kind == b"error" and not head.created):
                self._done(lane, at, None)

    def _new_call(self, request: bytes, at: float) -> SocketCall:
        return SocketCall(self.call.format.stream_parser(""), request, at)  # type: ignore[arg-type]

    def _lane_of(self, content: bytes) -> bytes | None:
        """The lane this server event belongs to."""
        if b'"stream_id"' in content:
            return _lane(content)
        if len(self.lanes) == 1:
            return next(iter(self.lanes))
        return None

    def _created(self, lane: bytes | None, content: bytes, at: float) -> None:
        queue = self.lanes.setdefault(lane, deque())
        waiting = next((c for c in queue if not c.created), None)
        if waiting is None:  # a response the server started itself (after a steer)
            waiting = self._new_call(b"", at)
            waiting.first_event_at = at
            queue.append(waiting)
        waiting.created = True
        waiting.parser.feed_event(content)

    def _done(self, lane: bytes | None, at: float, failure: str | None) -> None:
        queue = self.lanes[lane]
        self._finish(queue.popleft(), at, failure)
        if not queue:
            del self.lanes[lane]

    def end(self, at: float, why: str = CLOSED_EARLY) -> None:
        """The socket is gone: every call still waiting ends here, cut short."""
        for lane in list(self.lanes):
            while lane in self.lanes:
                self._done(lane, at, why)

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


def refusal_event(request: bytes, message: str) -> bytes | None:
    """The Responses API's own ``error`` event refusing a ``response.create`` (on its lane),
    or None for any other client message (https://platform.openai.com/docs/api-reference/realtime-server-events/error)."""
    if not (_REQUEST.search(request, 0, 256) or _REQUEST.search(request)):
        return None
    event: dict[str, object] = {
        "type": "error",
        "error": {"type": "insufficient_quota", "code": "budget_exceeded", "message": message},
    }
    lane = _lane(request)
    if lane is not None:
        event["stream_id"] = json.loads(b'"' + lane + b'"')
    return json.dumps(event).encode()


def carries_calls(call: RoutedCall) -> bool:
    paths = call.format.socket_paths
    return paths is not None and paths.search(call.path) is not None
