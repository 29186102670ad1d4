"""The MySQL/MariaDB engine's connection settings (light: no driver import)."""

from __future__ import annotations

from pydantic import Field

from broker.targets.connection import LOOPBACK, ConnectionSettings, Transport


class MySQLTls(ConnectionSettings):
    """TLS with a CA file of its own (else the system CAs)."""

    ca: str | None = Field(default=None, min_length=1)
    verify_identity: bool = True


class MySQLConnection(ConnectionSettings):
    """Where the server is and how to talk to it; the credential is never here."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=3306, ge=1, le=65535)
    database: str | None = Field(default=None, min_length=1)
    connect_timeout: int | None = Field(default=None, ge=1, le=300)
    tls: bool | MySQLTls = False
    """``true`` (system CAs, identity verified) or ``{ca: path, verify_identity: true}``; off when absent.
    Azure Database for MySQL requires it."""
    username: str = ""
    """The user, when the Key Vault secret is a bare password."""

    def transport(self) -> Transport | None:
        if self.host in LOOPBACK:
            return None
        return Transport("connection.tls", bool(self.tls), "on" if self.tls else "off",
                         "set connection.tls: true (or {ca: PATH}) in the catalogue")
