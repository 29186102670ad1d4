"""A local certificate authority (trustme) for the HTTPS stand-ins, and a CA bundle that trusts it."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import trustme


class DevCertificates:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "tls"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_path = self.dir / "ca.pem"
        self.cert_path = self.dir / "server.pem"
        self.bundle_path = self.dir / "ca-bundle.pem"
        if not (self.ca_path.exists() and self.cert_path.exists()):
            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            ca.cert_pem.write_to_path(str(self.ca_path))
            cert.private_key_and_cert_chain_pem.write_to_path(str(self.cert_path))
            self.cert_path.chmod(0o600)
        self.bundle_path.write_text(Path(certifi.where()).read_text() + "\n" + self.ca_path.read_text())

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_path))
        return context
