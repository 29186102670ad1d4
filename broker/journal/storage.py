"""The journal's storage clients: a Table for queries, a Blob container for write-once copies.

In Azure the container carries a version-level immutability (WORM) policy set by the infra; our
code additionally never overwrites: every blob is created with ``If-None-Match: *`` and an
existing name is reported as ``ImmutableCopyExists``, never replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.blob import BlobPrefix, ContainerClient, ContentSettings

from broker.settings import Settings
from broker.storage import container_client, table_client

_JSON = ContentSettings(content_type="application/json")


class ImmutableCopyExists(Exception):
    """A write-once blob already exists: nothing was overwritten."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the immutable copy {name} already exists; it was not overwritten")
        self.name = name


@dataclass
class JournalStorage:
    table: TableClient
    container: ContainerClient

    @classmethod
    def from_settings(cls, settings: Settings, credential: TokenCredential | None = None) -> JournalStorage:
        table = table_client(settings, settings.journal_table, credential)
        container = container_client(settings, settings.journal_container, credential)
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
