"""The composition root, the only one: builds the broker's long-lived parts once per process from
``Settings`` and wires each to what it needs (the execute service to the approval desk, the grants to
the approval requests). Nothing else constructs a service from settings.

Loading validates the catalog and policy, so a bad file fails start-up (the first request in
a cold Functions worker) with a precise message rather than misbehaving later.

The domain is imported here when the broker is built, not when this module is: the HTTP and
workflow adapters import ``get_broker`` at indexing time, when the Functions host only needs the
functions' names and bindings (``function_app`` stays light; tests/unit/test_cold_start.py).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.problems import Unavailable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from broker.approvals.channels import ApprovalChannels
    from broker.approvals.decisions import DecisionDesk
    from broker.approvals.service import ApprovalService
    from broker.catalog import Catalog, KeyVaultCredential
    from broker.classification import Classifier
    from broker.describe import TargetDescriber
    from broker.discovery import Discovery
    from broker.execute import ExecuteService
    from broker.grants import GrantService
    from broker.identity import TokenValidator
    from broker.journal import JournalReader, JournalStorage, JournalWriter
    from broker.policy import Policy
    from broker.secrets import CredentialResolver, SecretValue
    from broker.settings import Settings
    from broker.targets import TargetEngine


def azure_credential() -> TokenCredential:
    """The broker's own identity: the Function app's managed identity in Azure."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


@dataclass
class ApprovalParts:
    """The approval requests, the decisions on them and the grants they open."""

    approvals: ApprovalService
    desk: DecisionDesk
    grants: GrantService
    hmac_key: KeyVaultCredential
    channels: ApprovalChannels
    """How decisions arrive (signed link, Logic App signature, Entra token), built once."""

    def close(self) -> None:
        self.approvals.store.close()
        self.grants.store.close()


def build_approvals(settings: Settings, *, credential: TokenCredential | None, credentials: CredentialResolver,
                    journal: JournalWriter, catalog: Catalog, policy: Policy,
                    validator: TokenValidator) -> ApprovalParts:
    from broker.approvals.channels import build_channels
    from broker.approvals.decisions import DecisionDesk
    from broker.approvals.directory import ApproverDirectory
    from broker.approvals.requests import RequestStore
    from broker.approvals.service import ApprovalService
    from broker.approvals.tokens import ApprovalTokens
    from broker.catalog import KeyVaultCredential
    from broker.grants import GrantService, GrantStore, GrantView
    from broker.notify import notifier_from_settings
    from broker.storage import container_client, table_client

    directory = ApproverDirectory.load(settings.approvers_path)
    signing = KeyVaultCredential(secret=settings.approval_signing_secret)

    def signing_key() -> SecretValue:
        return credentials.resolve(signing)

    tokens = ApprovalTokens(signing_key, form_seconds=settings.approval_form_seconds)
    store = RequestStore(table_client(settings, settings.approvals_table, credential),
                         container_client(settings, settings.results_container, credential))
    grants_store = GrantStore(table_client(settings, settings.grants_table, credential))
    grant_view = GrantView(grants_store)  # where an approved grant request stands: the grant row's word
    approvals = ApprovalService(store=store, directory=directory, tokens=tokens, journal=journal,
                                notifier=notifier_from_settings(settings, credentials, credential),
                                public_base_url=settings.public_base_url, after_approval={"grant": grant_view})
    desk = DecisionDesk(store=store, directory=directory, tokens=tokens, journal=journal,
                        delegate_role=settings.approval_automation_role)
    grants = GrantService(catalog=catalog, policy=policy, store=grants_store,
                          approvals=approvals, directory=directory, journal=journal, view=grant_view)
    hmac_key = KeyVaultCredential(secret=settings.approval_hmac_secret)
    channels = build_channels(desk, store, authenticator=validator, hmac_key=lambda: credentials.resolve(hmac_key),
                              hmac_window_seconds=settings.approval_hmac_window_seconds)
    return ApprovalParts(approvals, desk, grants, hmac_key, channels)


@dataclass
class Broker:
    settings: Settings
    validator: TokenValidator
    catalog: Catalog
    policy: Policy
    engines: dict[str, TargetEngine]
    credentials: CredentialResolver
    journal_storage: JournalStorage
    journal: JournalWriter
    journal_reader: JournalReader
    execute: ExecuteService
    approvals: ApprovalParts
    discovery: Discovery
    classifier: Classifier
    describer: TargetDescriber

    @classmethod
    def from_settings(cls, settings: Settings, credential: TokenCredential | None = None) -> Broker:
        from broker.admission import Admission
        from broker.catalog import load_catalog
        from broker.classification import build_classifier, classification_store
        from broker.describe import TargetDescriber
        from broker.discovery import Discovery
        from broker.execute import ExecuteService, MaskerSource
        from broker.identity import TokenValidator
        from broker.journal import JournalReader, JournalStorage, JournalWriter
        from broker.lineage.guard import LineageGuard
        from broker.masking.scanner import build_prefilter
        from broker.policy import Policy
        from broker.secrets import CredentialResolver, KeyVaultSecretStore
        from broker.targets import create_engine

        build_prefilter()  # compile the masking scanner now (cold start), not on the first request
        catalog = load_catalog(settings.catalog_path)  # refuses unregistered engines and bad settings
        policy = Policy.load(settings.policy_path)
        credential = credential or azure_credential()
        secrets = KeyVaultSecretStore(settings.key_vault_url, credential,
                                      ttl_seconds=settings.secret_cache_ttl_seconds)
        credentials = CredentialResolver(secrets, credential)
        engines = {name: create_engine(name, **_pool_size(name, catalog, settings))
                   for name in {t.engine for t in catalog.targets.values()}}
        storage = JournalStorage.from_settings(settings, credential)
        journal = JournalWriter(storage)
        validator = TokenValidator(settings)
        approvals = build_approvals(settings, credential=credential, credentials=credentials, journal=journal,
                                    validator=validator,
                                    catalog=catalog, policy=policy)
        store = classification_store(settings, credentials, credential)
        lineage = LineageGuard(discovered=store.findings)
        admission = Admission(default_capacity=settings.target_concurrency,
                              queue_wait_seconds=settings.target_queue_wait_seconds)
        service = ExecuteService(catalog=catalog, policy=policy, engines=engines, credentials=credentials,
                                 masker=MaskerSource(credentials, settings.masking_key_secret), journal=journal,
                                 grants=approvals.grants.store.active, admission=admission, lineage=lineage,
                                 approvals=approvals.approvals)
        discovery = Discovery(execute=service, policy=policy, journal=journal, grants=approvals.grants.store.active)
        classifier = build_classifier(settings, catalog=catalog, engines=engines, credentials=credentials,
                                      masker=service.masker.get, store=store, journal=journal,
                                      on_stored=lineage.forget)
        describer = TargetDescriber(execute=service, discovery=discovery, policy=policy, journal=journal)
        return cls(settings, validator, catalog, policy, engines, credentials, storage, journal,
                   JournalReader(storage), service, approvals, discovery, classifier, describer)

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
        self.journal.close()
        self.journal_storage.close()
        self.approvals.close()
        self.classifier.store.close()


def _pool_size(engine: str, catalog: Catalog, settings: Settings) -> dict[str, int]:
    """A pooled engine holds one connection more than its busiest target admits at once: the
    guard's catalog look-ups must not queue behind the commands (``broker/admission.py``)."""
    from broker.targets import ENGINES

    if not ENGINES[engine].pooled:
        return {}
    slots = max(t.max_concurrency or settings.target_concurrency
                for t in catalog.targets.values() if t.engine == engine)
    return {"pool_max_size": slots + 1}


log = logging.getLogger("broker")
_broker: Broker | None = None
_lock = threading.Lock()


def built_broker() -> Broker | None:
    """The broker when it is already built: an async caller then needs no thread hop to get it."""
    return _broker


def get_broker() -> Broker:
    """The process-wide broker, built on first use (cold start) and reused by every invocation.

    An invalid catalog, policy or setting refuses every request with 503 ``broker_misconfigured``
    (the precise reason goes to the log for the operator, not to the caller).
    """
    global _broker
    if _broker is None:
        from broker.settings import get_settings

        with _lock:
            if _broker is None:
                try:
                    _broker = Broker.from_settings(get_settings())
                except (ValueError, OSError) as exc:  # CatalogError, PolicyError, ValidationError
                    log.error("broker configuration is invalid: %s", exc)
                    raise Unavailable("The broker's configuration is invalid; an operator must fix it "
                                      "(see the broker's log).", code="broker_misconfigured") from exc
    return _broker
