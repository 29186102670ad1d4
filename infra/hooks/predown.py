"""predown: say, before `azd down` starts, what it will not be able to delete, and why.

Never blocks `azd down` (azure.yaml sets continueOnError): it only reads and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _azure import ARM, HookError, Rest, azd_token, env, run
from postprovision import policy_path, read_policy, resource_group_path


def leftovers(policy: dict | None, account: str, container: str, vault: str, client_id: str) -> list[str]:
    notes = []
    if policy is None:
        notes.append(f"Could not read the immutability policy of {account}/{container}; if journal records "
                     "exist and are still retained, the storage account cannot be deleted.")
    elif policy["state"] == "Locked":
        notes.append(f"Storage account {account}: the journal container {container} has a LOCKED retention of "
                     f"{policy['days']} days. Azure refuses to delete any journal blob, the container, the "
                     f"account and therefore the resource group until the newest record is {policy['days']} "
                     "days old. Nobody can shorten this. Everything else is deleted; run `azd down` again "
                     "after that date.")
    else:
        notes.append(f"Storage account {account}: journal records in {container} are immutable for "
                     f"{policy['days']} days each (policy unlocked). While any is retained, deleting the "
                     "account and the resource group fails. An owner may first remove each record's unlocked "
                     "policy (`az storage blob immutability-policy delete`, needs Storage Blob Data Owner) and "
                     "delete the records, which destroys the audit trail; or wait for the retention to end.")
    notes.append(f"Key Vault {vault}: purge protection keeps it soft-deleted for its retention period (90 "
                 "days by default); `azd down --purge` cannot purge it and its name stays taken meanwhile.")
    if client_id:
        notes.append(f"Entra app registration {client_id} is not in the resource group and stays; delete it "
                     f"with `az ad app delete --id {client_id}` if no other environment uses it.")
    notes.append("The custom role 'Broker Email Sender' is a subscription-level definition and stays; "
                 "it grants nothing once the resource group is gone.")
    return notes


def main(arm: Rest | None = None) -> int:
    account, container = env("AZURE_STORAGE_ACCOUNT_NAME"), env("AUDIT_CONTAINER_NAME", "journal")
    policy = None
    if account:
        try:
            arm = arm or Rest(ARM, azd_token(f"{ARM}/.default"))
            policy = read_policy(arm, policy_path(resource_group_path(), account, container))
        except HookError as error:
            print(f"(could not read the audit policy: {error})")
    print("What `azd down` cannot delete:")
    for note in leftovers(policy, account or "<storage account>", container, env("AZURE_KEY_VAULT_NAME"),
                          env("BROKER_API_CLIENT_ID")):
        print(f"  - {note}")
    return 0


if __name__ == "__main__":
    run(main)
