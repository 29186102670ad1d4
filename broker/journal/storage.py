"""The journal's storage clients: a Table for queries, a Blob container for write-once copies.

In Azure the container carries a version-level immutability (WORM) policy set by the infra; our
code additionally never overwrites: every blob is created with ``If-None-Match: *`` and an
existing name is reported as ``ImmutableCopyExists``, never replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient
from azure.storage.blob import BlobPrefix, ContainerClient, ContentSettings

from broker.settings import Settings

# Bounded so a journal write either lands or fails within ~40 s (sealing leaves a wider margin).
_TIMEOUTS = {"connection_timeout": 3, "read_timeout": 10, "retry_total": 2, "retry_backoff_factor": 0.2}
_JSON = ContentSettings(content_type="application/json")
_POOL = 64  # concurrent requests per host: the writer runs Table and Blob writes for many lanes


class ImmutableCopyExists(Exception):
    """A write-once blob already exists: nothing was overwritten."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the immutable copy {name} already exists; it was not overwritten")
        self.name = name


def _transport() -> RequestsTransport:
    session = requests.Session()
    # Storage is reached directly (no proxy, public CAs): skipping requests' per-request scan of
    # the environment for proxy settings saves ~1 ms of CPU on every journal write.
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=_POOL)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=True)


@dataclass
class JournalStorage:
    table: TableClient
    container: ContainerClient

    @classmethod
    def from_settings(cls, settings: Settings, credential: TokenCredential | None = None) -> JournalStorage:
        conn = settings.storage_connection_string.get_secret_value()
        if conn:
            table = TableClient.from_connection_string(conn, settings.journal_table, transport=_transport(),
                                                       **_TIMEOUTS)
            container = ContainerClient.from_connection_string(conn, settings.journal_container,
                                                               transport=_transport(), **_TIMEOUTS)
        elif settings.table_endpoint and settings.blob_endpoint and credential is not None:
            table = TableClient(settings.table_endpoint, settings.journal_table, credential=credential,
                                transport=_transport(), **_TIMEOUTS)
            container = ContainerClient(settings.blob_endpoint, settings.journal_container,
                                        credential=credential, transport=_transport(), **_TIMEOUTS)
        else:
            raise ValueError("journal storage is not configured: set BROKER_STORAGE_CONNECTION_STRING, "
                             "or BROKER_TABLE_ENDPOINT and BROKER_BLOB_ENDPOINT")
        return cls(table, container)

    def ensure(self) -> None:
        """Create the table and container when missing (the infra creates them in Azure)."""
        with contextlib.suppress(ResourceExistsError):
            self.table.create_table()
        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    def probe(self) -> None:
        """Raise unless both the table and the container answer (health)."""
        next(iter(self.table.query_entities("PartitionKey eq 'probe'", results_per_page=1)), None)
        self.container.get_container_properties()

    # --- the write-once container ---
    def put_immutable(self, name: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Create ``name`` only if it does not exist (``If-None-Match: *``)."""
        try:
            self.container.upload_blob(name, data, overwrite=False, metadata=metadata,
                                       content_settings=_JSON)
        except ResourceExistsError as exc:
            raise ImmutableCopyExists(name) from exc

    def read_blob(self, name: str) -> bytes | None:
        try:
            return self.container.download_blob(name).readall()
        except ResourceNotFoundError:
            return None

    def child_prefixes(self, prefix: str) -> list[str]:
        """The "folders" directly under ``prefix`` (hierarchical listing, one level)."""
        return sorted(item.name for item in self.container.walk_blobs(name_starts_with=prefix, delimiter="/")
                      if isinstance(item, BlobPrefix))

    def blob_names(self, prefix: str) -> Iterator[str]:
        for item in self.container.list_blobs(name_starts_with=prefix):
            yield item.name

    def close(self) -> None:
        self.table.close()
        self.container.close()
