"""Journal fixtures: one Azurite for the journal's storage tests, a fresh table and container per
test, and helpers that reach the storage through the real azure-data-tables/azure-storage-blob
clients (as a tamperer with storage access would)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.journal import JournalStorage, JournalWriter
from broker.settings import Settings
from devhost.azurite import Azurite
from devhost.stack import REPO_ROOT, free_port


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(REPO_ROOT, tmp_path_factory.mktemp("journal-azurite"), free_port(), free_port(), free_port())
    server.start()
    yield server
    # In memory, nothing to flush: Azurite's graceful SIGTERM waits ~10 s on idle keep-alives.
    if server.process is not None and server.process.poll() is None:
        server.process.kill()
        server.process.wait(5)
    server.stop()


def journal_settings(azurite: Azurite, name: str) -> Settings:
    return Settings(storage_connection_string=azurite.connection_string, journal_table=f"j{name}",
                    journal_container=f"j{name}")


@pytest.fixture
def settings(azurite: Azurite) -> Settings:
    return journal_settings(azurite, uuid.uuid4().hex[:12])


@pytest.fixture
def storage(settings: Settings) -> Iterator[JournalStorage]:
    store = JournalStorage.from_settings(settings)
    store.ensure()
    yield store
    store.close()


@pytest.fixture
def writer(storage: JournalStorage) -> Iterator[JournalWriter]:
    w = JournalWriter(storage)
    yield w
    w.close()


@pytest.fixture
def repo() -> Path:
    return REPO_ROOT
