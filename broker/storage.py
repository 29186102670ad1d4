"""The broker's own storage account: every table and container client is opened here, with one set
of timeouts and one HTTP transport, and rows move between states the same way everywhere.

Why one place: the journal, the approval requests, the grants and any later store talk to the same
account; when each built its clients itself they diverged (one skipped the proxy scan that costs
~1 ms per request, one had no connection pool size), and two copies of the ETag loop differed only
in their error codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import requests
from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import ContainerClient

from broker.problems import BrokerError
from broker.settings import Settings

# Bounded so a storage call either lands or fails within ~40 s.
TIMEOUTS = {"connection_timeout": 3, "read_timeout": 10, "retry_total": 2, "retry_backoff_factor": 0.2}
POOL = 64  # concurrent requests per host: the journal writes Table rows and Blob copies for many lanes
MOVE_ATTEMPTS = 8


class StorageNotConfigured(ValueError):
    """Neither a connection string nor endpoints with a credential were given."""


def transport(pool: int = POOL) -> RequestsTransport:
    """A pooled transport that does not scan the environment for proxies on every request: storage
    is reached directly (no proxy, public CAs), and the scan costs about 1 ms of CPU per call."""
    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=True)


def _connection_string(settings: Settings) -> str:
    return settings.storage_connection_string.get_secret_value()


def table_client(settings: Settings, name: str, credential: TokenCredential | None) -> TableClient:
    """A client for table ``name``: the connection string locally, the endpoint and the managed
    identity in Azure."""
    if conn := _connection_string(settings):
        return TableClient.from_connection_string(conn, name, transport=transport(), **TIMEOUTS)
    if settings.table_endpoint and credential is not None:
        return TableClient(settings.table_endpoint, name, credential=credential, transport=transport(), **TIMEOUTS)
    raise StorageNotConfigured("storage is not configured: set BROKER_STORAGE_CONNECTION_STRING, "
                               "or BROKER_TABLE_ENDPOINT and BROKER_BLOB_ENDPOINT")


def container_client(settings: Settings, name: str, credential: TokenCredential | None) -> ContainerClient:
    """A client for blob container ``name``, configured like ``table_client``."""
    if conn := _connection_string(settings):
        return ContainerClient.from_connection_string(conn, name, transport=transport(), **TIMEOUTS)
    if settings.blob_endpoint and credential is not None:
        return ContainerClient(settings.blob_endpoint, name, credential=credential, transport=transport(),
                               **TIMEOUTS)
    raise StorageNotConfigured("storage is not configured: set BROKER_STORAGE_CONNECTION_STRING, "
                               "or BROKER_TABLE_ENDPOINT and BROKER_BLOB_ENDPOINT")


class Versioned(Protocol):
    """A record read from a table row, carrying the row's ETag."""

    @property
    def etag(self) -> str: ...


R = TypeVar("R", bound=Versioned)


def move(table: TableClient, load: Callable[[], R], change: Callable[[R], R | None],
         entity: Callable[[R], dict[str, Any]], *, unavailable: Callable[[], BrokerError],
         busy: Callable[[], BrokerError]) -> R | None:
    """Read, change and write one row under its ETag, again from the read when someone else wrote
    it first. ``change`` returns the new record, or None when the current one must not move (it may
    also raise its own refusal). Returns the row as stored after the write, or None."""
    for _ in range(MOVE_ATTEMPTS):
        current = load()
        updated = change(current)
        if updated is None:
            return None
        try:
            table.update_entity(entity(updated), mode=UpdateMode.REPLACE, etag=current.etag,
                                match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            continue
        except AzureError as exc:
            raise unavailable() from exc
        return load()
    raise busy()


def insert_once(table: TableClient, entity: dict[str, Any]) -> bool:
    """Create the row; False when it exists (the row is a one-time marker: a decision, a used link)."""
    try:
        table.create_entity(entity)
    except ResourceExistsError:
        return False
    return True
