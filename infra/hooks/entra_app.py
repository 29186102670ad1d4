"""preprovision: the broker API's Entra app registration, with its app roles.

Creates (first run) or updates (later runs) one app registration per azd environment:
identifier URI ``api://<client id>``, v2 access tokens, and the app roles the broker's policy
matches on. Its service principal requires assignment, so only users, groups and apps that an
administrator assigned a role can get a token for the broker at all. The client id goes into the
azd environment as BROKER_API_CLIENT_ID, which main.parameters.json passes to Bicep.

Bring your own registration instead: `azd env set BROKER_API_CLIENT_ID <client id>` first. The
hook then only adds missing roles, and carries on with a warning if it may not.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _azure import GRAPH, EnvWriter, HookError, Rest, azd_env_set, azd_token, env, run

# Stable role ids: the same role has the same id in every environment and on every run.
_ROLE_NAMESPACE = uuid.UUID("6c1f0b8e-6a64-4d7e-9a5b-0d4f1b6f2a10")

APP_ROLES = [
    ("Broker.Caller", "Agent (caller)", ["Application", "User"],
     "Call POST /api/execute and read its own requests; what runs is still decided by policy."),
    ("Broker.Approver", "Approver", ["User"],
     "Approve or deny requests and grants as oneself (through the mailed link or one's own token)."),
    ("Broker.ApproverDelegate", "Approval delegate (automation)", ["Application"],
     "An automation (a Logic App) that posts a decision on behalf of the approver it names. Never "
     "together with Broker.Caller: the broker refuses an identity holding both."),
    ("Broker.Auditor", "Auditor", ["User", "Application"],
     "Read, replay and verify the journal (GET /api/journal)."),
    ("Broker.Operator", "Operator", ["User"],
     "Operate the broker: revoke grants early, see detailed health. Not an approver by itself."),
]


def app_roles() -> list[dict]:
    return [{"id": str(uuid.uuid5(_ROLE_NAMESPACE, value)), "value": value, "displayName": name,
             "description": description, "allowedMemberTypes": members, "isEnabled": True}
            for value, name, members, description in APP_ROLES]


def env_tag(environment: str) -> str:
    return f"agent-access-broker:{environment}"


def ensure_app(graph: Rest, environment: str, client_id: str = "") -> tuple[dict, bool]:
    """The registration (found, or created), with every broker role present. True if created."""
    created = False
    if client_id:
        reply = graph.call("GET", f"/v1.0/applications(appId='{client_id}')")
        if reply.status == 404:
            raise HookError(f"BROKER_API_CLIENT_ID {client_id} is not an app registration in this tenant.")
        app = graph.expect(reply, 200, doing="reading the app registration")
    else:
        query = quote(f"tags/any(t:t eq '{env_tag(environment)}')", safe="")
        found = graph.expect(graph.call("GET", f"/v1.0/applications?$filter={query}"),
                             200, doing="looking up the app registration")["value"]
        if found:
            app = found[0]
        else:
            body = {"displayName": f"Agent Access Broker ({environment})", "signInAudience": "AzureADMyOrg",
                    "tags": [env_tag(environment)], "appRoles": app_roles(),
                    "api": {"requestedAccessTokenVersion": 2}}
            reply = graph.call("POST", "/v1.0/applications", body)
            if reply.status == 403:
                raise HookError("you may not create app registrations in this tenant. Ask an administrator to "
                                "create one (docs/deploy.md, 'Entra ID'), then `azd env set BROKER_API_CLIENT_ID "
                                "<client id>` and run `azd up` again.")
            app = graph.expect(reply, 201, doing="creating the app registration")
            created = True
    _ensure_roles_and_uri(graph, app)
    _ensure_service_principal(graph, app["appId"])
    return app, created


def _ensure_roles_and_uri(graph: Rest, app: dict) -> None:
    present = {role["value"] for role in app.get("appRoles", [])}
    missing = [role for role in app_roles() if role["value"] not in present]
    patch: dict = {}
    if missing:
        patch["appRoles"] = [*app.get("appRoles", []), *missing]
    uri = f"api://{app['appId']}"
    if uri not in app.get("identifierUris", []):
        patch["identifierUris"] = [*app.get("identifierUris", []), uri]
    if patch:
        reply = graph.call("PATCH", f"/v1.0/applications/{app['id']}", patch)
        if reply.status == 403:
            raise HookError(f"may not update app registration {app['appId']}: add the roles "
                            f"{[r['value'] for r in missing]} and identifier URI {uri} by hand (docs/deploy.md).")
        graph.expect(reply, 204, doing="updating the app registration")
        app.update(patch)


def _ensure_service_principal(graph: Rest, app_id: str) -> None:
    reply = graph.call("GET", f"/v1.0/servicePrincipals(appId='{app_id}')")
    if reply.status == 200:
        return
    graph.expect(reply, 404, doing="reading the service principal")
    graph.expect(graph.call("POST", "/v1.0/servicePrincipals",
                            {"appId": app_id, "appRoleAssignmentRequired": True}),
                 201, doing="creating the service principal")


def main(graph: Rest | None = None, set_env: EnvWriter = azd_env_set) -> int:
    environment = env("AZURE_ENV_NAME")
    if not environment:
        raise HookError("AZURE_ENV_NAME is not set; run this through `azd provision` / `azd up`.")
    client_id = env("BROKER_API_CLIENT_ID")
    graph = graph or Rest(GRAPH, azd_token(f"{GRAPH}/.default"))
    try:
        app, created = ensure_app(graph, environment, client_id)
    except HookError as error:
        if not client_id:
            raise
        print(f"WARNING: {error}\nContinuing with BROKER_API_CLIENT_ID={client_id} as it is.")
        return 0
    if app["appId"] != client_id:
        set_env("BROKER_API_CLIENT_ID", app["appId"])
    print(f"{'Created' if created else 'Using'} app registration {app.get('displayName', '')} "
          f"(client id {app['appId']}, audience api://{app['appId']}).")
    print("Assign its app roles (Broker.Caller to the agent's identity, Broker.Approver to approvers) under "
          "Enterprise applications > Users and groups; see docs/deploy.md.")
    return 0


if __name__ == "__main__":
    run(main)
