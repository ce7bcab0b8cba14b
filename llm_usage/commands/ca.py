"""``ca``: where mitmproxy's CA is, and the environment lines that send a tool through the
HTTPS_PROXY listener trusting it (``make ca``).

The CA is made here when it does not exist yet (as mitmproxy would at its first start, in
the same ``confdir``), so the lines can be set up before the proxy ever ran. Nothing is
installed anywhere: the lines point each tool at the file.

Two kinds of variables: Node's ``NODE_EXTRA_CA_CERTS`` *adds* to the built-in roots, so it
gets the CA alone; Python's ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE``, curl's
``CURL_CA_BUNDLE`` and Codex's ``CODEX_CA_CERTIFICATE`` *replace* them, so they get a
bundle of the public roots (certifi's) and the CA -- otherwise every site the tool reaches
that is not a provider (tunnelled, with its real certificate) would fail to verify.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

BUNDLE = "llm-usage-ca-bundle.pem"
DEFAULT_PORT = 8081
NO_PROXY = "localhost,127.0.0.1,::1"


def arguments(command: Any) -> None:
    command.add_argument("--confdir", default="~/.mitmproxy",
                         help="mitmproxy's confdir, as the proxy's --set confdir (default ~/.mitmproxy)")  # fmt: skip
    command.add_argument("--port", type=int, default=int(os.environ.get("CAPTURE_PORT") or DEFAULT_PORT),
                         help="the HTTPS_PROXY listener's port (default: CAPTURE_PORT, else 8081)")  # fmt: skip
    command.add_argument("--host", default="127.0.0.1", help="the address tools reach the listener at")


def ensure_ca(confdir: Path) -> tuple[Path, Path, bool]:
    """mitmproxy's CA certificate (made if absent), a bundle of it and the public roots, and
    whether the CA was made now."""
    import certifi
    from mitmproxy import certs
    from mitmproxy.options import CONF_BASENAME, KEY_SIZE

    made = not (confdir / f"{CONF_BASENAME}-ca.pem").exists()
    certs.CertStore.from_store(confdir, CONF_BASENAME, KEY_SIZE)
    cert = confdir / f"{CONF_BASENAME}-ca-cert.pem"
    bundle = confdir / BUNDLE
    bundle.write_bytes(Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + cert.read_bytes())
    return cert, bundle, made


def lines(cert: Path, bundle: Path, proxy: str) -> list[str]:
    """The ``export`` lines, each with what it is for."""
    settings = [
        (f"HTTPS_PROXY={proxy}", ""),
        (f"NO_PROXY={NO_PROXY}", "the proxy's own port, local models"),
        (f"NODE_EXTRA_CA_CERTS={cert}", "Node tools: Claude Code, Cline, Continue (added to the roots)"),
        (f"SSL_CERT_FILE={bundle}", "Python: the OpenAI/Anthropic SDKs, httpx, aider, llm"),
        (f"REQUESTS_CA_BUNDLE={bundle}", "Python requests"),
        (f"CURL_CA_BUNDLE={bundle}", "curl"),
        (f"CODEX_CA_CERTIFICATE={bundle}", "Codex CLI"),
    ]
    width = max(len(setting) for setting, _ in settings)
    return [f"export {setting:<{width}}  # {why}" if why else f"export {setting}" for setting, why in settings]


def run(args: argparse.Namespace, db_path: str) -> int:
    confdir = Path(os.path.expanduser(args.confdir))
    cert, bundle, made = ensure_ca(confdir)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host  # where a tool on this machine reaches it
    proxy = f"http://{host}:{args.port}"
    print(f"# mitmproxy's CA: {cert} ({'made now' if made else 'already there'}); with the public roots: {bundle}")
    print("# Paste into the shell (or a tool's env) that should go through the proxy; nothing is installed")
    print("# system-wide.")
    print("# Only the providers' hosts are decrypted and recorded; every other host is tunnelled with its own")
    print("# certificate. A tool signed in with a subscription (not an API key) is refused: keep it out of the")
    print("# proxy (start it without HTTPS_PROXY, or add its host to NO_PROXY).")
    for line in lines(cert, bundle, proxy):
        print(line)
    return 0
