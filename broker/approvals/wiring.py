"""Builds the approval and grant services from ``Settings`` (used by the composition root)."""

from __future__ import annotations

from dataclasses import dataclass

from azure.core.credentials import TokenCredential

from broker.approvals.decisions import DecisionDesk
from broker.approvals.directory import ApproverDirectory
from broker.approvals.requests import RequestStore
from broker.approvals.service import ApprovalService
from broker.approvals.tokens import ApprovalTokens
from broker.catalog import Catalog, KeyVaultCredential
from broker.grants import GrantService, GrantStore
from broker.journal import JournalWriter
from broker.notify import notifier_from_settings
from broker.policy import Policy
from broker.secrets import CredentialResolver, SecretValue
from broker.settings import Settings
from broker.storage import container_client, table_client


@dataclass
class ApprovalParts:
    approvals: ApprovalService
    desk: DecisionDesk
    grants: GrantService
    hmac_key: KeyVaultCredential

    def close(self) -> None:
        self.approvals.store.close()
        self.grants.store.close()


def build_approvals(settings: Settings, *, credential: TokenCredential | None, credentials: CredentialResolver,
                    journal: JournalWriter, catalog: Catalog, policy: Policy) -> ApprovalParts:
    directory = ApproverDirectory.load(settings.approvers_path)
    signing = KeyVaultCredential(secret=settings.approval_signing_secret)

    def signing_key() -> SecretValue:
        return credentials.resolve(signing)

    tokens = ApprovalTokens(signing_key, form_seconds=settings.approval_form_seconds)
    store = RequestStore(table_client(settings, settings.approvals_table, credential),
                         container_client(settings, settings.results_container, credential))
    approvals = ApprovalService(store=store, directory=directory, tokens=tokens, journal=journal,
                                notifier=notifier_from_settings(settings, credentials, credential),
                                public_base_url=settings.public_base_url)
    desk = DecisionDesk(store=store, directory=directory, tokens=tokens, journal=journal,
                        delegate_role=settings.approval_automation_role)
    grants_store = GrantStore(table_client(settings, settings.grants_table, credential))
    grants = GrantService(catalog=catalog, policy=policy, store=grants_store,
                          approvals=approvals, directory=directory, journal=journal)
    return ApprovalParts(approvals, desk, grants, KeyVaultCredential(secret=settings.approval_hmac_secret))
