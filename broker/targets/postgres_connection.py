"""The PostgreSQL engine's connection settings (libpq's names; light: no driver import)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field

from broker.targets.connection import LOOPBACK, ConnectionSettings, Transport

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
SessionAttrs = Literal["any", "read-write", "read-only", "primary", "standby", "prefer-standby"]


class PostgresConnection(ConnectionSettings):
    """Where the server is and how to talk to it; the credential is never here."""

    host: str | None = Field(default=None, min_length=1)
    """None: libpq's default (the local socket)."""
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = Field(default=None, min_length=1, validation_alias=AliasChoices("database", "dbname"))
    sslmode: SslMode | None = None
    sslrootcert: str | None = Field(default=None, min_length=1)
    application_name: str = Field(default="agent-access-broker", max_length=63)
    connect_timeout: int | None = Field(default=None, ge=1, le=300)
    target_session_attrs: SessionAttrs | None = None
    username: str = ""
    """The role, when the Key Vault secret is a bare password."""

    def transport(self) -> Transport | None:
        if self.host is None or self.host in LOOPBACK:
            return None
        mode = self.sslmode or "prefer"
        return Transport("connection.sslmode", mode not in ("disable", "allow", "prefer"), mode,
                         "set connection.sslmode: verify-full (or require) in the catalogue")

    def libpq(self) -> dict[str, Any]:
        """libpq's keywords for what is set (``database`` is ``dbname`` there); no user, no password."""
        params: dict[str, Any] = {"dbname" if key == "database" else key: value
                                  for key, value in self.model_dump(exclude={"username"}).items()
                                  if value is not None}
        return params
