"""The azd hooks against small stand-ins of Microsoft Graph and Azure Resource Manager on
127.0.0.1 (real HTTP through the hooks' own client): the app registration is created once and
completed later, generated secrets are never overwritten, and the audit policy is locked only on
the exact request, with the If-Match etag the real API demands."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost._http import Request, Response, StandInServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infra" / "hooks"))

import entra_app
import postprovision
import predown
from _azure import HookError, Rest

GROUP = "/subscriptions/sub-1/resourceGroups/rg-test"
POLICY = (f"{GROUP}/providers/Microsoft.Storage/storageAccounts/sttest/blobServices/default/containers/journal/"
          "immutabilityPolicies/default")


class Cloud:
    """Just enough of Graph (applications, service principals) and ARM (vault secrets, a
    container's immutability policy) to run the hooks; records every call."""

    def __init__(self) -> None:
        self.reset()
        app_by_app_id = r"/v1\.0/applications\(appId='(?P<app_id>[^']+)'\)"
        secret = (r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/]+"
                  r"/secrets/(?P<name>[^/]+)")
        routes = [
            ("GET", re.compile(app_by_app_id), self.get_app),
            ("GET", re.compile(r"/v1\.0/applications"), self.list_apps),
            ("POST", re.compile(r"/v1\.0/applications"), self.create_app),
            ("PATCH", re.compile(r"/v1\.0/applications/(?P<id>[^/]+)"), self.patch_app),
            ("GET", re.compile(r"/v1\.0/servicePrincipals\(appId='(?P<app_id>[^']+)'\)"), self.get_sp),
            ("POST", re.compile(r"/v1\.0/servicePrincipals"), self.create_sp),
            ("GET", re.compile(secret), self.get_secret),
            ("PUT", re.compile(secret), self.put_secret),
            ("GET", re.compile(re.escape(POLICY)), self.get_policy),
            ("POST", re.compile(re.escape(POLICY) + "/lock"), self.lock_policy),
        ]
        self.server = StandInServer("127.0.0.1", 0, [(m, p, self._recorded(h)) for m, p, h in routes])

    def reset(self) -> None:
        self.apps: dict[str, dict] = {}
        self.service_principals: dict[str, dict] = {}
        self.secrets: dict[str, str] = {}
        self.policy = {"state": "Unlocked", "days": 365, "etag": '"8d1"'}
        self.calls: list[tuple[str, str]] = []
        self.forbid_create = False

    def _recorded(self, handler):  # type: ignore[no-untyped-def]
        def wrapper(req: Request) -> Response:
            assert req.headers.get("authorization") == "Bearer test-token"
            self.calls.append((req.method, req.path))
            return handler(req)
        return wrapper

    # --- Graph ---
    def get_app(self, req: Request) -> Response:
        app = next((a for a in self.apps.values() if a["appId"] == req.match["app_id"]), None)
        return Response(200, app) if app else Response(404, {"error": {"code": "Request_ResourceNotFound"}})

    def list_apps(self, req: Request) -> Response:
        tag = re.fullmatch(r"tags/any\(t:t eq '(.+)'\)", req.query["$filter"]).group(1)
        return Response(200, {"value": [a for a in self.apps.values() if tag in a.get("tags", [])]})

    def create_app(self, req: Request) -> Response:
        if self.forbid_create:
            return Response(403, {"error": {"code": "Authorization_RequestDenied"}})
        app = {**req.json(), "id": str(uuid.uuid4()), "appId": str(uuid.uuid4()), "identifierUris": []}
        self.apps[app["id"]] = app
        return Response(201, app)

    def patch_app(self, req: Request) -> Response:
        self.apps[req.match["id"]].update(req.json())
        return Response(204)

    def get_sp(self, req: Request) -> Response:
        sp = self.service_principals.get(req.match["app_id"])
        return Response(200, sp) if sp else Response(404, {"error": {"code": "Request_ResourceNotFound"}})

    def create_sp(self, req: Request) -> Response:
        self.service_principals[req.json()["appId"]] = req.json()
        return Response(201, req.json())

    # --- ARM ---
    def get_secret(self, req: Request) -> Response:
        if req.match["name"] not in self.secrets:
            return Response(404, {"error": {"code": "ResourceNotFound"}})
        return Response(200, {"name": req.match["name"], "properties": {}})  # ARM never returns the value

    def put_secret(self, req: Request) -> Response:
        self.secrets[req.match["name"]] = req.json()["properties"]["value"]
        return Response(201, {"name": req.match["name"], "properties": {}})

    def _policy_body(self) -> dict:
        return {"etag": self.policy["etag"], "properties": {
            "state": self.policy["state"], "immutabilityPeriodSinceCreationInDays": self.policy["days"]}}

    def get_policy(self, req: Request) -> Response:
        return Response(200, self._policy_body())

    def lock_policy(self, req: Request) -> Response:
        if req.headers.get("if-match") != self.policy["etag"]:
            return Response(412, {"error": {"code": "ConditionNotMet"}})
        self.policy.update(state="Locked", etag='"8d2"')
        return Response(200, self._policy_body())


@pytest.fixture(scope="module")
def running_cloud() -> Iterator[Cloud]:
    fake = Cloud()
    fake.server.start_background()
    yield fake
    fake.server.stop()


@pytest.fixture
def cloud(running_cloud: Cloud) -> Cloud:
    running_cloud.reset()
    return running_cloud


@pytest.fixture
def rest(cloud: Cloud) -> Rest:
    return Rest(cloud.server.base_url, "test-token")


@pytest.fixture
def azd_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The values azd exports to hooks; `azd env set` writes land in the returned dict."""
    values = {"AZURE_ENV_NAME": "test", "AZURE_SUBSCRIPTION_ID": "sub-1", "AZURE_RESOURCE_GROUP": "rg-test",
              "AZURE_KEY_VAULT_NAME": "kv-test", "AZURE_STORAGE_ACCOUNT_NAME": "sttest",
              "AUDIT_CONTAINER_NAME": "journal", "GENERATED_SECRET_NAMES": "masking-key,signing-key"}
    for name in ("BROKER_API_CLIENT_ID", "AUDIT_LOCK_IMMUTABILITY", "AUDIT_IMMUTABILITY_LOCKED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    written: dict[str, str] = {}

    def set_env(key: str, value: str) -> None:
        written[key] = value
        monkeypatch.setenv(key, value)
    written["__setter__"] = set_env  # type: ignore[assignment]
    return written


# --- preprovision: the app registration ---


def test_app_registration_is_created_with_roles_uri_and_assignment_required(cloud: Cloud, rest: Rest,
                                                                           azd_env: dict) -> None:
    assert entra_app.main(rest, azd_env["__setter__"]) == 0
    (app,) = cloud.apps.values()
    assert azd_env["BROKER_API_CLIENT_ID"] == app["appId"]
    assert {r["value"] for r in app["appRoles"]} == {"Broker.Caller", "Broker.Approver", "Broker.Auditor",
                                                       "Broker.Operator", "Broker.ApproverDelegate"}
    delegate = next(r for r in app["appRoles"] if r["value"] == "Broker.ApproverDelegate")
    assert delegate["allowedMemberTypes"] == ["Application"]  # automations only, never a person's role
    caller = next(r for r in app["appRoles"] if r["value"] == "Broker.Caller")
    assert "Application" in caller["allowedMemberTypes"]  # an agent's service principal holds it
    assert app["identifierUris"] == [f"api://{app['appId']}"]
    assert app["api"]["requestedAccessTokenVersion"] == 2
    assert app["signInAudience"] == "AzureADMyOrg"
    assert cloud.service_principals[app["appId"]]["appRoleAssignmentRequired"] is True


def test_app_registration_is_reused_and_role_ids_are_stable(cloud: Cloud, rest: Rest, azd_env: dict,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    entra_app.main(rest, azd_env["__setter__"])
    first = {r["value"]: r["id"] for r in next(iter(cloud.apps.values()))["appRoles"]}
    monkeypatch.delenv("BROKER_API_CLIENT_ID")  # a fresh clone of the same environment: found by tag
    entra_app.main(rest, azd_env["__setter__"])
    assert len(cloud.apps) == 1 and len(cloud.service_principals) == 1
    assert first == {r["value"]: r["id"] for r in next(iter(cloud.apps.values()))["appRoles"]}
    assert first == {r["value"]: r["id"] for r in entra_app.app_roles()}


def test_an_existing_registration_gains_missing_roles_and_keeps_its_own(cloud: Cloud, rest: Rest, azd_env: dict,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    own_role = {"id": str(uuid.uuid4()), "value": "Custom.Thing", "displayName": "x", "description": "x",
                "allowedMemberTypes": ["User"], "isEnabled": True}
    cloud.apps["obj-1"] = {"id": "obj-1", "appId": "c1d2e3f4-0000-4000-8000-000000000000", "displayName": "Mine",
                           "appRoles": [own_role], "identifierUris": []}
    monkeypatch.setenv("BROKER_API_CLIENT_ID", "c1d2e3f4-0000-4000-8000-000000000000")
    assert entra_app.main(rest, azd_env["__setter__"]) == 0
    values = [r["value"] for r in cloud.apps["obj-1"]["appRoles"]]
    assert values[0] == "Custom.Thing" and set(values) >= {"Broker.Caller", "Broker.Approver", "Broker.Auditor"}
    assert "BROKER_API_CLIENT_ID" not in azd_env  # unchanged, nothing to write


def test_without_permission_to_create_the_hook_fails_with_instructions(cloud: Cloud, rest: Rest,
                                                                       azd_env: dict) -> None:
    cloud.forbid_create = True
    with pytest.raises(HookError, match="BROKER_API_CLIENT_ID"):
        entra_app.main(rest, azd_env["__setter__"])
    assert not cloud.apps


# --- postprovision: generated secrets and the audit lock ---


def test_generated_secrets_are_created_once_and_never_overwritten(cloud: Cloud, rest: Rest, azd_env: dict) -> None:
    cloud.secrets["signing-key"] = "operator-chosen"
    assert postprovision.main(rest, azd_env["__setter__"]) == 0
    masking = cloud.secrets["masking-key"]
    assert len(masking) >= 43 and cloud.secrets["signing-key"] == "operator-chosen"
    postprovision.main(rest, azd_env["__setter__"])
    assert cloud.secrets["masking-key"] == masking
    assert ("PUT", f"{GROUP}/providers/Microsoft.KeyVault/vaults/kv-test/secrets/signing-key") not in cloud.calls


def test_the_policy_stays_unlocked_by_default(cloud: Cloud, rest: Rest, azd_env: dict,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    postprovision.main(rest, azd_env["__setter__"])
    assert cloud.policy["state"] == "Unlocked"
    assert not any(path.endswith("/lock") for _, path in cloud.calls)
    assert "365 days" in capsys.readouterr().out


def test_a_vague_lock_request_locks_nothing(cloud: Cloud, rest: Rest, azd_env: dict,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_LOCK_IMMUTABILITY", "true")
    with pytest.raises(HookError, match="yes-lock-forever"):
        postprovision.main(rest, azd_env["__setter__"])
    assert cloud.policy["state"] == "Unlocked"


def test_the_exact_request_locks_with_the_etag_and_records_it(cloud: Cloud, rest: Rest, azd_env: dict,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_LOCK_IMMUTABILITY", postprovision.LOCK_PHRASE)
    postprovision.main(rest, azd_env["__setter__"])
    assert cloud.policy["state"] == "Locked"
    assert azd_env["AUDIT_IMMUTABILITY_LOCKED"] == "true"  # main.bicep then leaves the policy out
    postprovision.main(rest, azd_env["__setter__"])  # idempotent once locked
    assert sum(path.endswith("/lock") for _, path in cloud.calls) == 1


# --- predown: what cannot be deleted ---


def test_predown_names_the_locked_account_and_the_vault(cloud: Cloud, rest: Rest, azd_env: dict,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    cloud.policy["state"] = "Locked"
    assert predown.main(rest) == 0
    out = capsys.readouterr().out
    assert "sttest" in out and "LOCKED" in out and "365 days" in out
    assert "kv-test" in out and "purge" in out


def test_predown_explains_the_unlocked_case_without_failing(cloud: Cloud, rest: Rest, azd_env: dict,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert predown.main(rest) == 0
    out = capsys.readouterr().out
    assert "unlocked" in out and "immutability-policy delete" in out
