"""The journal's storage clients: a Table for queries, a Blob container for write-once copies."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from azure.core.credentials import TokenCredential
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from broker.settings import Settings

# The journal is on every call's path: proxies are not read from the environment on each request
# (requests' trust_env costs ~0.5 ms per call); retries are few and quick.
_TIMEOUTS = {"connection_timeout": 3, "read_timeout": 10, "retry_total": 2, "retry_backoff_factor": 0.2,
             "use_env_settings": False}


@dataclass
class JournalStorage:
    table: TableClient
    container: ContainerClient

    @classmethod
    def from_settings(cls, settings: Settings, credential: TokenCredential | None = None) -> JournalStorage:
        conn = settings.storage_connection_string.get_secret_value()
        if conn:
            table = TableClient.from_connection_string(conn, settings.journal_table, **_TIMEOUTS)
            container = ContainerClient.from_connection_string(conn, settings.journal_container, **_TIMEOUTS)
        elif settings.table_endpoint and settings.blob_endpoint and credential is not None:
            table = TableClient(settings.table_endpoint, settings.journal_table, credential=credential,
                                **_TIMEOUTS)
            container = ContainerClient(settings.blob_endpoint, settings.journal_container,
                                        credential=credential, **_TIMEOUTS)
        else:
            raise ValueError("journal storage is not configured: set BROKER_STORAGE_CONNECTION_STRING, "
                             "or BROKER_TABLE_ENDPOINT and BROKER_BLOB_ENDPOINT")
        return cls(table, container)

    def ensure(self) -> None:
        """Create the table and container when missing (the infra creates them in Azure)."""
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.table.create_table()
        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    def probe(self) -> None:
        """Raise unless both the table and the container answer (health)."""
        next(iter(self.table.query_entities("PartitionKey eq 'probe'", results_per_page=1)), None)
        self.container.get_container_properties()

    def close(self) -> None:
        self.table.close()
        self.container.close()
