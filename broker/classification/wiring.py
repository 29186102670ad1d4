"""Builds the classification store and classifier from ``Settings`` (used by the composition root)."""

from __future__ import annotations

from collections.abc import Callable

from azure.core.credentials import TokenCredential
from azure.data.tables import TableClient

from broker.catalog import Catalog, KeyVaultCredential
from broker.classification.classifier import Classifier, ClassifyLimits
from broker.classification.store import ClassificationStore, derive_key
from broker.journal import JournalWriter
from broker.masking import Masker
from broker.secrets import CredentialResolver
from broker.settings import Settings
from broker.targets import TargetEngine

_TIMEOUTS = {"connection_timeout": 3, "read_timeout": 10, "retry_total": 2, "retry_backoff_factor": 0.2}


def classification_store(settings: Settings, credentials: CredentialResolver,
                         credential: TokenCredential | None) -> ClassificationStore:
    """The store, its rows signed with a key derived from the masking key (Key Vault, cached)."""
    conn = settings.storage_connection_string.get_secret_value()
    if conn:
        table = TableClient.from_connection_string(conn, settings.classification_table, **_TIMEOUTS)
    else:
        table = TableClient(settings.table_endpoint, settings.classification_table, credential=credential,
                            **_TIMEOUTS)
    masking_key = KeyVaultCredential(secret=settings.masking_key_secret)

    def key() -> bytes:
        return derive_key(credentials.resolve(masking_key).value.encode("utf-8"))

    return ClassificationStore(table, key)


def build_classifier(settings: Settings, *, catalog: Catalog, engines: dict[str, TargetEngine],
                     credentials: CredentialResolver, masker: Callable[[], Masker], store: ClassificationStore,
                     journal: JournalWriter, on_stored: Callable[[str], None] | None = None) -> Classifier:
    limits = ClassifyLimits(rows=settings.classification_sample_rows, timeout_ms=settings.classification_timeout_ms)
    return Classifier(catalog=catalog, engines=engines, credentials=credentials, masker=masker, store=store,
                      journal=journal, limits=limits, on_stored=on_stored)
