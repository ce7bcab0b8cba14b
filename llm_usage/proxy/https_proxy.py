"""The second way in: a regular HTTP(S) proxy listener (``--mode regular@8081``) that tools
reach through ``HTTPS_PROXY``, trusting mitmproxy's CA -- for tools whose base URL cannot be
changed. Only the providers' own hosts are decrypted; everything else is tunnelled.

Which listener a flow came through is its client connection's ``proxy_mode``: the reverse
listener (``/<provider>/...``, the proxy's pages) is exactly as before; every other one
routes a request by the host it was sent to.

Why a ``next_layer`` hook and not mitmproxy's ``allow_hosts``: ``allow_hosts`` applies to
every listener, and the reverse listener's connections (to its placeholder upstream) would
then be tunnelled too; and it intercepts when *any* of the CONNECT target, SNI or Host
matches, so a CONNECT to another host with a provider's SNI would be decrypted. Here the
decision is made on the CONNECT target alone -- the address mitmproxy actually connects to --
before mitmproxy's own ``NextLayer`` addon (script addons run first, and it keeps a layer
an addon has set; mitmproxy/addons/next_layer.py). A non-provider host gets a raw TCP
tunnel: its TLS is never terminated, so the client sees the site's real certificate and
nothing of it is decrypted, shown, logged or stored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping

from mitmproxy import http
from mitmproxy.proxy import layer, layers, mode_specs

from ..config.providers import Provider

ProviderHosts = dict[tuple[str, int], list[Provider]]
"""(host, port) -> the providers served there, the longest base path first."""


def provider_hosts(providers: Mapping[str, Provider]) -> ProviderHosts:
    """Every provider's (host, port): what the regular listener decrypts and records."""
    hosts: ProviderHosts = {}
    for provider in providers.values():
        hosts.setdefault((provider.host.lower(), provider.port), []).append(provider)
    for entries in hosts.values():
        entries.sort(key=lambda p: len(p.base_path), reverse=True)
    return hosts


def on_reverse_listener(flow: http.HTTPFlow) -> bool:
    """Whether the flow came through the ``/<provider>/...`` listener (the proxy's pages too)."""
    return isinstance(flow.client_conn.proxy_mode, mode_specs.ReverseMode)


def provider_path(hosts: ProviderHosts, request: http.Request) -> str | None:
    """A request sent through the regular listener as the reverse listener would have had
    it, ``/<slug><path below the base URL's path>?query``; None for any other host (passed on
    untouched, never recorded). The scheme must be the provider's: a plain-HTTP request to
    ``api.openai.com:443`` is not the API."""
    for provider in hosts.get((request.host.lower().rstrip("."), request.port), ()):
        if provider.scheme != request.scheme:
            continue
        path, sep, query = request.path.partition("?")
        base = provider.base_path
        if base and path != base and not path.startswith(base + "/"):
            continue
        return f"/{provider.slug}{path[len(base) :] or '/'}{sep}{query}"
    return None


def this_machine(host: str) -> bool:
    """Whether ``host`` names this machine itself (``localhost``, a loopback or unspecified
    address): the listener never relays to it unless it is a provider's (Ollama) -- offered
    to a LAN (``CAPTURE_HOST=0.0.0.0``), it would otherwise hand the network this machine's
    loopback-only services, the dashboard among them."""
    name = host.lower().rstrip(".").strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def own_services_refusal(flow: http.HTTPFlow, hosts: ProviderHosts) -> http.Response | None:
    """The listener's answer to a CONNECT or plain request for this machine's own services
    (``this_machine``), or None to let it pass."""
    request = flow.request
    if (request.host.lower().rstrip("."), request.port) in hosts or not this_machine(request.host):
        return None
    return http.Response.make(
        403, b"llm-usage: the HTTPS_PROXY listener does not relay to this machine's own services\n",
        {"content-type": "text/plain; charset=utf-8"},
    )  # fmt: skip


class TunnelOtherHosts:
    """The ``next_layer`` hook: on the regular listener, a connection to any host that is
    not a provider's is a raw tunnel."""

    def __init__(self, hosts: Callable[[], ProviderHosts]) -> None:
        self.hosts = hosts

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        context = nextlayer.context
        if nextlayer.layer is not None or isinstance(context.client.proxy_mode, mode_specs.ReverseMode):
            return
        address = context.server.address
        if address is None:
            return  # the listener's own HTTP layer, which reads the CONNECT (or an absolute-form request)
        if (str(address[0]).lower().rstrip("."), address[1]) in self.hosts():
            return  # mitmproxy decides as usual: TLS interception, then HTTP
        nextlayer.layer = layers.TCPLayer(context, ignore=True)
