"""Who may decide: an approver is a person other than the requester, never an agent identity.

The rules, applied by the decision desk to every channel (link, Entra, delegate, HMAC):

- Identities are compared in one spelling: lowercase GUIDs. ``TENANT/OID``, ``tenant/oid`` and
  `` tenant/oid `` are one approver (one decision row, one Durable event), never two; anything
  that is not two GUIDs is refused.
- The requester never decides: the same object id (in any tenant), or the same app id when
  either side is an application (a user token obtained through the agent's own app registration
  is the agent acting).
- A principal holding ``Broker.Caller`` never decides, for itself or for anyone it names.
- Deciding for a named person is the separate automation role (``Broker.ApproverDelegate`` by
  default): only an application may hold it, and not together with ``Broker.Caller``.
- A policy can require that the approvals come from people who signed in themselves (their own
  Entra token: channel ``entra``); links, delegates and signed bodies then count for denials only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from broker.problems import BadRequest, Forbidden

CALLER_ROLE = "Broker.Caller"
DELEGATE_ROLE = "Broker.ApproverDelegate"
Channel = Literal["link", "entra", "entra-app", "hmac"]
SIGNED_IN_CHANNELS: frozenset[str] = frozenset({"entra"})
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def approver_key(tenant_id: Any, object_id: Any) -> str:
    """``tenant/oid`` in the one spelling used for rows, events and comparisons."""
    tenant, oid = str(tenant_id or "").strip().lower(), str(object_id or "").strip().lower()
    if not (_GUID.fullmatch(tenant) and _GUID.fullmatch(oid)):
        raise BadRequest("An approver is named by two GUIDs: {\"tenant_id\", \"object_id\"}.", code="invalid_request")
    return f"{tenant}/{oid}"


def normal_key(key: str) -> str:
    """A ``tenant/oid`` key lowercased and trimmed (for keys already validated elsewhere)."""
    tenant, _, oid = key.partition("/")
    return f"{tenant.strip().lower()}/{oid.strip().lower()}"


@dataclass(frozen=True)
class Actor:
    """The authenticated identity that delivered a decision (absent for links and signed bodies)."""

    tenant_id: str
    object_id: str
    app_id: str = ""
    kind: str = "user"
    display_name: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "object_id": self.object_id, "app_id": self.app_id,
                "kind": self.kind, "display_name": self.display_name, "roles": sorted(self.roles)}


def same_identity(requester: dict[str, Any], object_id: str, app_id: str = "", kind: str = "user") -> bool:
    """True when this identity is the requester: same object id, or same app id where an app is involved."""
    if object_id and object_id.strip().lower() == str(requester.get("object_id", "")).strip().lower():
        return True
    theirs = str(requester.get("app_id", "")).strip().lower()
    mine = app_id.strip().lower()
    app_involved = kind == "app" or requester.get("kind") == "app"
    return bool(mine and theirs and mine == theirs and app_involved)


def check_actor(actor: Actor, requester: dict[str, Any], delegate_role: str, on_behalf: bool) -> None:
    """Refuse an authenticated decider that is the requester, an agent, or an unentitled delegate."""
    if CALLER_ROLE in actor.roles:
        raise Forbidden(f"An identity holding {CALLER_ROLE} (an agent) never decides approvals, not even for "
                        "someone it names.", code="caller_cannot_approve",
                        remedy="Approvers decide with their own identity; agents only ask.")
    if same_identity(requester, actor.object_id, actor.app_id, actor.kind):
        raise Forbidden("Nobody may approve their own request (same object id or app id as the requester).",
                        code="self_approval")
    if on_behalf and (actor.kind != "app" or delegate_role not in actor.roles):
        raise Forbidden(f"Deciding for a named approver needs an application holding the {delegate_role} role.",
                        code="delegate_role_required",
                        remedy="People decide as themselves (omit 'approver'); automations need the delegate role.")
