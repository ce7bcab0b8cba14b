"""A local OTLP/HTTP receiver for tests: what an OpenTelemetry collector would get.

Every POST to ``/v1/metrics`` or ``/v1/traces`` is kept as it came (path, headers, body)
and answered as the protocol says (https://opentelemetry.io/docs/specs/otlp/#otlphttp):
200 with an empty ``Export*ServiceResponse``. ``metrics()`` and ``spans()`` decode the
bodies with opentelemetry-proto's own messages, so a test reads what a collector reads.
``Silent`` is a collector that accepts connections and never answers.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


def value_of(value: AnyValue) -> Any:
    """An OTLP attribute value as the Python value it stands for."""
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass
class Point:
    """One data point of a metric, flattened: the metric's name and unit, its attributes,
    and its value (a histogram's sum, count and bucket bounds; a sum's value)."""

    metric: str
    unit: str
    attributes: dict[str, Any]
    sum: float
    count: int = 0
    bounds: tuple[float, ...] = ()
    resource: dict[str, Any] = field(default_factory=dict)


class OtlpReceiver:
    def __init__(self) -> None:
        received: list[Received] = []
        self.received = received
        self.lock = threading.Lock()
        lock = self.lock

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with lock:
                    received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                reply = {"/v1/metrics": ExportMetricsServiceResponse, "/v1/traces": ExportTraceServiceResponse}.get(
                    self.path
                )
                content = reply().SerializeToString() if reply is not None else b""
                self.send_response(200 if reply is not None else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, path: str) -> list[bytes]:
        with self.lock:
            return [r.body for r in self.received if r.path == path]

    def metrics(self) -> list[Point]:
        """Every data point received, in order (cumulative: a later export repeats the sums)."""
        points: list[Point] = []
        for body in self.bodies("/v1/metrics"):
            request = ExportMetricsServiceRequest.FromString(body)
            for resource_metrics in request.resource_metrics:
                resource = attributes(resource_metrics.resource.attributes)
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        points.extend(_points(metric, resource))
        return points

    def last_points(self, metric: str) -> list[Point]:
        """The latest export's points of ``metric`` (cumulative temporality: the totals)."""
        latest: dict[tuple[tuple[str, Any], ...], Point] = {}
        for point in self.metrics():
            if point.metric == metric:
                latest[tuple(sorted(point.attributes.items()))] = point
        return list(latest.values())

    def spans(self) -> list[tuple[Any, dict[str, Any], dict[str, Any]]]:
        """Every span received: ``(span, its attributes, its resource's attributes)``."""
        found = []
        for body in self.bodies("/v1/traces"):
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    found.extend((span, attributes(span.attributes), resource) for span in scope.spans)
        return found

    def wait_for(self, ready: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def _points(metric: Any, resource: dict[str, Any]) -> list[Point]:
    kind = metric.WhichOneof("data")
    if kind == "histogram":
        return [
            Point(
                metric.name, metric.unit, attributes(p.attributes), p.sum, p.count, tuple(p.explicit_bounds), resource
            )
            for p in metric.histogram.data_points
        ]
    if kind == "sum":
        return [
            Point(metric.name, metric.unit, attributes(p.attributes), p.as_double or p.as_int, resource=resource)
            for p in metric.sum.data_points
        ]
    return []


class Silent:
    """A "collector" that accepts every connection and never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        for conn in self.accepted:
            conn.close()
        self.sock.close()
