"""The Azure SQL / SQL Server engine's connection settings (light: no driver import)."""

from __future__ import annotations

from pydantic import Field

from broker.targets.connection import ConnectionSettings


class AzureSqlConnection(ConnectionSettings):
    """Where the server is and how to talk to it; the credential is never here."""

    host: str = Field(min_length=1)
    """Required: there is no local default (``orders.database.windows.net``)."""
    port: int = Field(default=1433, ge=1, le=65535)
    database: str = ""
    trust_server_certificate: bool = False
    connect_timeout: int | None = Field(default=None, ge=1, le=300)
    driver: str | None = Field(default=None, min_length=1)
    """An ODBC driver name; default: the newest Microsoft driver installed."""
    username: str = ""
    """The login, when the Key Vault secret is a bare password (SQL authentication)."""
