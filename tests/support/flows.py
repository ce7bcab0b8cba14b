"""mitmproxy's test flows as the reverse (``/<provider>/...``) listener has them.

``mitmproxy.test.tflow`` makes flows of a regular-mode client connection, which the addon
now treats as the HTTPS_PROXY listener's (routed by host, ``proxy/https_proxy.py``)."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import tflow

REVERSE = ProxyMode.parse("reverse:http://127.0.0.1:9")


def reverse(flow: http.HTTPFlow) -> http.HTTPFlow:
    flow.client_conn.proxy_mode = REVERSE
    return flow


def tflow_reverse(**kwargs: object) -> http.HTTPFlow:
    return reverse(tflow.tflow(**kwargs))  # type: ignore[arg-type]


def twebsocketflow_reverse(**kwargs: object) -> http.HTTPFlow:
    return reverse(tflow.twebsocketflow(**kwargs))  # type: ignore[arg-type]
