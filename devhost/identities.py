"""The dev stack's identities: who can call, approve and audit in the local tenant."""

from __future__ import annotations

from dataclasses import dataclass

DEV_TENANT = "8f0d5c1e-0000-4000-8000-000000000de0"
BROKER_APP_ID = "b0b0b0b0-0000-4000-8000-000000000001"
AUDIENCE = f"api://{BROKER_APP_ID}"


@dataclass(frozen=True)
class DevIdentity:
    name: str
    object_id: str
    kind: str  # "app" (service principal) or "user"
    display_name: str
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    email: str = ""
    app_id: str = ""


IDENTITIES: dict[str, DevIdentity] = {i.name: i for i in [
    DevIdentity("devin", "11111111-1111-4111-8111-111111111111", "app", "Devin (dev agent)",
                roles=("Broker.Caller",), groups=("agents",), app_id="de710000-0000-4000-8000-000000000a9e"),
    DevIdentity("devin2", "88888888-8888-4888-8888-888888888888", "app", "Second agent",
                roles=("Broker.Caller",), groups=("agents",), app_id="de720000-0000-4000-8000-000000000b9e"),
    DevIdentity("approver", "22222222-2222-4222-8222-222222222222", "user", "Ada Approver",
                roles=("Broker.Approver",), groups=("dba-approvers",), email="ada@dev.example"),
    DevIdentity("approver2", "33333333-3333-4333-8333-333333333333", "user", "Bo Approver",
                roles=("Broker.Approver",), groups=("dba-approvers",), email="bo@dev.example"),
    DevIdentity("auditor", "44444444-4444-4444-8444-444444444444", "user", "Cy Auditor",
                roles=("Broker.Auditor",), groups=("auditors",), email="cy@dev.example"),
    DevIdentity("outsider", "55555555-5555-4555-8555-555555555555", "app", "Unlisted app",
                app_id="55555555-0000-4000-8000-000000000055"),
    DevIdentity("operator", "66666666-6666-4666-8666-666666666666", "user", "Oz Operator",
                roles=("Broker.Operator",), groups=("operators",), email="oz@dev.example"),
    DevIdentity("broker", "77777777-7777-4777-8777-777777777777", "app", "Broker managed identity",
                app_id="77777777-0000-4000-8000-000000000077"),
    DevIdentity("logicapp", "88888888-8888-4888-8888-888888888888", "app", "Approvals Logic App",
                roles=("Broker.ApproverDelegate",), app_id="88888888-0000-4000-8000-000000000088"),
]}
