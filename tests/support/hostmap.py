"""TEST-ONLY mitmproxy addon: a private /etc/hosts for the proxy's upstream connections, so a
test can pose a local TLS server as ``api.openai.com`` without touching the system.

``--set hostmap=api.openai.com:443=127.0.0.1:9443,...``: only the TCP address changes; the
SNI and the Host header stay the name the client asked for, so the upstream certificate is
checked against that name (``ssl_verify_upstream_trusted_ca`` trusts the test CA). Any
other address that is not loopback is refused: a test never reaches the internet.
"""

from __future__ import annotations

from mitmproxy import ctx
from mitmproxy.proxy import server_hooks

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class HostMap:
    def __init__(self) -> None:
        self.map: dict[tuple[str, int], tuple[str, int]] = {}

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("hostmap", str, "", "host:port=ip:port,... (tests only)")

    def configure(self, updated: set[str]) -> None:
        if "hostmap" in updated:
            self.map = {}
            for item in filter(None, ctx.options.hostmap.split(",")):
                source, target = item.split("=")
                host, port = source.rsplit(":", 1)
                target_host, target_port = target.rsplit(":", 1)
                self.map[(host.lower(), int(port))] = (target_host, int(target_port))

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        address = data.server.address
        if address is None:
            return
        mapped = self.map.get((str(address[0]).lower(), address[1]))
        if mapped is not None:
            data.server.address = mapped
        elif address[0] not in LOOPBACK:
            data.server.error = f"hostmap: {address} is not mapped (tests never reach the internet)"


addons = [HostMap()]
