"""Which ``Host`` names the proxy's own pages answer for: a defence against DNS rebinding.

A web page on ``attacker.example`` whose name is made to resolve to 127.0.0.1 can make the
person's browser fetch ``http://attacker.example:8080/stats/requests`` -- a same-origin
request for the page, so it may read the answer -- and binding to loopback does not stop
it (https://en.wikipedia.org/wiki/DNS_rebinding). The browser still sends the attacker's
name as ``Host``, so the pages (``/stats``, ``/dashboard``, ``/healthz``, static files)
answer only for the names the proxy is really reached by: localhost and its loopback
addresses, the listen address, this machine's name and addresses when it listens on all
interfaces, and the names the user adds (``llm_usage_allowed_hosts``). Anything else is a
403. Proxied provider calls are not affected: their Host is rewritten to the provider's.
"""

from __future__ import annotations

import socket

ALLOWED_HOSTS_OPTION = "llm_usage_allowed_hosts"
LOOPBACK = frozenset(("localhost", "127.0.0.1", "::1"))


def host_name(host_header: str) -> str:
    """``Host`` without its port or IPv6 brackets, lower-cased (``[::1]:8080`` -> ``::1``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def allowed_hosts(listen_host: str, extra: str) -> frozenset[str]:
    """The names to answer for: see the module's docstring."""
    names = set(LOOPBACK)
    names |= {host_name(name) for name in extra.split(",") if name.strip()}
    if listen_host in ("", "0.0.0.0", "::"):
        names |= _this_machine()
    else:
        names.add(host_name(listen_host))
    return frozenset(names)


def _this_machine() -> set[str]:
    """This machine's name and addresses: how others on the network reach an open proxy."""
    names: set[str] = set()
    try:
        hostname = socket.gethostname()
        names |= {hostname.lower(), socket.getfqdn().lower()}
        for info in socket.getaddrinfo(hostname, None):
            names.add(str(info[4][0]).lower())
    except OSError:
        pass
    return names
