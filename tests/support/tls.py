"""Test-only certificates: a CA and a leaf certificate for the names a local TLS server
poses as, made with mitmproxy's own certificate store (never installed anywhere)."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from mitmproxy import certs


class TestCA:
    """A CA in ``directory`` (``<name>-ca-cert.pem``) that signs leaf certificates."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.name = directory, name
        self.store = certs.CertStore.from_store(directory, name, 2048)
        self.cert_path = directory / f"{name}-ca-cert.pem"

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server-side TLS context presenting a leaf certificate for ``names``."""
        entry = self.store.get_cert(names[0], [x509.DNSName(n) for n in names])
        leaf = self.directory / f"{names[0]}.pem"
        key = entry.privatekey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        leaf.write_bytes(entry.cert.to_pem() + key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(leaf)
        return context

    def leaf_fingerprint(self, name: str) -> bytes:
        """The SHA-256 of the DER certificate ``server_context`` made for ``name``."""
        pem = (self.directory / f"{name}.pem").read_bytes()
        return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256())
