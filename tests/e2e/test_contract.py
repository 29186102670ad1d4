"""The agent-facing contract on the dev stack: explain, per-caller targets, answers that say which
shape they carry and why they stopped, array types, and problem ``type`` URIs that resolve."""

from __future__ import annotations

import httpx
import pytest

from broker.problem_codes import CODES

pytestmark = pytest.mark.e2e


def explain(api, body: dict, identity: str = "devin") -> httpx.Response:
    return api.http.post("/api/explain", json=body, headers={"Authorization": f"Bearer {api.token(identity)}"})


def test_explain_answers_the_decision_and_runs_nothing(api, stack):
    with stack.postgres.admin("demo") as db:
        before = db.execute("SELECT count(*), max(notes) FROM customers").fetchone()
    cases = [("SELECT * FROM customers", "read", "allow"), ("DELETE FROM customers WHERE id = 3", "write", "approve"),
             ("DELETE FROM customers", "destructive", "deny"), ("TRUNCATE customers", "destructive", "deny"),
             ("UPDATE customers SET notes = 'x' WHERE id = 4", "write", "approve")]
    for sql, risk, effect in cases:
        r = explain(api, {"target": "demo-postgres", "sql": sql})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["risk"], body["effect"]) == (risk, effect), (sql, body)
        assert body["would"] and body["limits"]["max_rows"] == 500 and body["policy_version"].startswith("sha256:")
        if effect == "approve":
            assert body["approvers"]["groups"] == ["dba-approvers"]
        if effect == "deny":
            assert body["remedy"]
    with stack.postgres.admin("demo") as db:
        assert db.execute("SELECT count(*), max(notes) FROM customers").fetchone() == before
    k8s = explain(api, {"target": "demo-k8s", "kubectl": ["delete", "pod", "web-1", "-n", "demo"]}).json()
    assert k8s["effect"] == "approve" and k8s["rule_id"] == "agents-change-demo-k8s-with-approval"


def test_explain_refuses_like_execute(api):
    for body, status, code in (({"target": "nope", "sql": "SELECT 1"}, 404, "unknown_target"),
                               ({"target": "demo-postgres", "sql": "SELEC 1"}, 400, "invalid_sql"),
                               ({"target": "demo-postgres", "sql": ""}, 400, "invalid_request"),
                               ({"target": "demo-postgres", "kubectl": []}, 400, "invalid_request"),
                               ({"target": "", "sql": "SELECT 1"}, 400, "invalid_request")):
        r = explain(api, body)
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert api.http.post("/api/explain", json={"target": "demo-postgres", "sql": "SELECT 1"}).status_code == 401


def test_targets_carry_this_callers_permissions(api):
    def perms(identity: str) -> dict:
        r = api.http.get("/api/targets", headers={"Authorization": f"Bearer {api.token(identity)}"})
        assert r.status_code == 200, r.text
        return {t["name"]: t for t in r.json()["targets"]}

    devin = perms("devin")
    assert devin["demo-postgres"]["language"] == "sql" and devin["demo-k8s"]["language"] == "kubectl"
    pg = devin["demo-postgres"]["permissions"]
    assert {r: p["effect"] for r, p in pg.items() if p["effect"] != "deny"} == {
        "read": "allow", "sensitive-predicate": "approve", "write": "approve"}
    assert pg["write"]["approvers"] == {"groups": ["dba-approvers"], "roles": ["Broker.Approver"], "quorum": 1,
                                        "timeout_seconds": 900}
    assert pg["destructive"]["remedy"]
    outsider = perms("outsider")
    assert all(p["effect"] == "deny" for t in outsider.values() for p in t["permissions"].values())
    for target in devin.values():  # still no hosts, connection settings or secret names
        assert set(target) - {"unavailable_reason"} == {"name", "engine", "language", "description", "labels",
                                                      "read_only", "available", "permissions"}


def test_a_kubernetes_document_says_so(api):
    r = api.execute({"target": "demo-k8s", "kubectl": ["get", "pods", "-n", "demo", "-o", "json"]})
    body = r.json()
    assert r.status_code == 200 and body["result_kind"] == "document", body
    assert body["rows"] == [] and len(body["document"]["items"]) >= 3
    table = api.execute({"target": "demo-k8s", "kubectl": ["get", "pods", "-n", "demo"]}).json()
    assert table["result_kind"] == "rows" and table["row_count"] >= 3
    text = api.execute({"target": "demo-k8s", "kubectl": ["get", "pods", "-n", "demo", "-o", "name"]}).json()
    assert text["result_kind"] == "text"


SERIES = "SELECT g FROM generate_series(1, 600) AS g"


def test_truncation_says_which_limit_and_max_rows_narrows_it(api):
    body = api.execute({"target": "demo-postgres", "sql": SERIES}).json()
    assert body["truncated"] is True and body["row_count"] == 500
    assert body["truncation"]["reason"] == "max_rows" and body["truncation"]["limit"] == 500
    few = api.execute({"target": "demo-postgres", "sql": SERIES, "max_rows": 7}).json()
    assert few["row_count"] == 7 and few["truncation"] == {**few["truncation"], "reason": "max_rows", "limit": 7}
    more = api.execute({"target": "demo-postgres", "sql": SERIES, "max_rows": 99999}).json()
    assert more["row_count"] == 500  # the policy's limit wins
    big = api.execute({"target": "demo-postgres", "sql": "SELECT 1 AS id, repeat('x', 1200000) AS blob"}).json()
    assert big["row_count"] == 1 and big["rows"] == [[1, None]] and big["truncated"] is True  # withheld, not NULL:
    assert big["truncation"]["cells"] == [{"row": 0, "column": 1, "bytes": 1200000}]
    assert big["truncation"]["reason"] == "max_bytes" and big["truncation"]["limit"] == 1048576
    whole = api.execute({"target": "demo-postgres", "sql": "SELECT 1 AS id"}).json()
    assert whole["truncated"] is False and "truncation" not in whole
    assert api.execute({"target": "demo-postgres", "sql": "SELECT 1", "max_rows": 0}).status_code == 400


def test_array_columns_are_reported_as_arrays(api):
    body = api.execute({"target": "demo-postgres", "sql": "SELECT ARRAY[1,2]::int4[] AS a, ARRAY['x']::text[] AS b, "
                        "1::int4 AS c"}).json()
    assert [c["type"] for c in body["columns"]] == ["int4[]", "text[]", "int4"]
    assert body["rows"] == [[[1, 2], ["x"], 1]]


def test_problem_type_uris_resolve_to_the_codes_page(api, stack):
    r = api.execute({"target": "demo-postgres", "sql": "SELECT 1; SELECT 2"})
    problem = r.json()
    assert problem["type"] == f"{stack.base_url}/api/problems/multiple_statements"
    page = httpx.get(problem["type"], timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "multiple_statements" in page.text and "one statement per call" in page.text
    listed = httpx.get(f"{stack.base_url}/api/problems", timeout=10).json()["problems"]
    assert [p["code"] for p in listed] == list(CODES)
    assert httpx.get(f"{stack.base_url}/api/problems/no_such_code", timeout=10).status_code == 404
    assert httpx.get(f"{stack.base_url}/api/problems/%3Cscript%3E", timeout=10).status_code == 404


@pytest.mark.parametrize("rid", ["abc", "11111111-1111-4111-8111-11111111111", "11111111-1111-4111-8111-1111111111111",
                                 "11111111-1111-4111-8111-11111111111A", "1111111111114111811111111111111a",
                                 "{11111111-1111-4111-8111-111111111111}", "11111111-1111-4111-8111-11111111111%23",
                                 "11111111-1111-4111-8111-11111111111%27", "%2e%2e", "x" * 300, "x" * 2000,
                                 "11111111-1111-4111-8111-1111111111%5C1", "11111111-1111-4111-8111-1111111111%2F1",
                                 "11111111-1111-4111-8111-1111111111%3F1", "11111111-1111-4111-8111-1111111111%001",
                                 "11111111-1111-4111-8111-1111111111%0A1", "11111111-1111-4111-8111-1111111111%C3%28",
                                 "11111111-1111-4111-8111-1111111111%091"])
def test_a_request_id_nobody_minted_is_404_before_any_lookup(api, rid):
    """The route segment is a lower-case UUID (what the broker mints, the OpenAPI RequestId pattern):
    anything else - short, long, upper case, braces, a key Table storage forbids (#, ', /) - is the
    same 404 ``not_found`` on every route that takes one, never a storage error."""
    auth = {"Authorization": f"Bearer {api.token('devin')}"}
    for method, path in (("GET", f"/api/requests/{rid}"), ("DELETE", f"/api/requests/{rid}"),
                         ("POST", f"/api/grants/{rid}/revoke"), ("GET", f"/api/approvals/{rid}?t=x")):
        r = api.http.request(method, path, headers=auth)
        assert r.status_code == 404, (method, path, r.status_code, r.text[:300])
        if not path.startswith("/api/approvals/"):  # the approval page answers HTML
            assert r.json()["code"] == "not_found", r.text


def test_a_grant_duration_is_iso_text_of_at_least_a_second(api):
    """The schema says a string; the server took a bare number as seconds and PT0.5S as a grant of
    0 s. Both are refused now, each with what to send instead."""
    auth = {"Authorization": f"Bearer {api.token('devin')}"}
    base = {"target": "demo-postgres", "level": "write", "reason": "duration spellings"}
    for duration, code in ((1800, "invalid_request"), (12.5, "invalid_request"), ("PT0.5S", "invalid_duration"),
                           ("PT0S", "invalid_duration"), ("-PT5M", "invalid_duration"), ("PT2H", "invalid_duration")):
        r = api.http.post("/api/grants", json={**base, "duration": duration}, headers=auth)
        assert (r.status_code, r.json()["code"]) == (400, code), (duration, r.text)
        assert r.json()["remedy"]


def test_every_path_refuses_the_methods_it_does_not_take_with_405_and_allow(api):
    """Answered by the app (methods.py: the problem's type is the broker's page), not by the front end,
    which on Azure would say 404 with no body; Allow lists the documented methods."""
    import yaml

    from devhost.stack import REPO_ROOT

    spec = yaml.safe_load((REPO_ROOT / "broker/api/openapi.yaml").read_text())
    values = {"{request_id}": "11111111-1111-4111-8111-111111111111", "{name}": "demo-postgres",
              "{code}": "invalid_sql"}
    auth = {"Authorization": f"Bearer {api.token('devin')}"}
    checked = 0
    for path, operations in spec["paths"].items():
        url = "/api" + path
        for placeholder, value in values.items():
            url = url.replace(placeholder, value)
        documented = {m.upper() for m in operations}
        allow = ", ".join(sorted(documented - ({"GET", "DELETE"} if path == "/mcp" else set())))
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - documented):
            r = api.http.request(method, url, headers=auth)
            assert (r.status_code, r.headers.get("allow")) == (405, allow), (method, path, r.text[:200])
            problem = r.json()
            assert problem["type"].endswith("/api/problems/method_not_allowed") and problem["remedy"], problem
            checked += 1
    assert checked >= 50
