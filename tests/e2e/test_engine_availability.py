"""An engine whose native driver is missing where the broker runs (Azure SQL without Microsoft's
ODBC driver, as on a Functions image that lacks it) is reported, never a crash: health names it,
the target list says it is unavailable and why, and a command answers a precise 503."""

from __future__ import annotations

import yaml

from tests.e2e.test_execute import reader
from tests.e2e.test_outages import _request_id_for, devhost_with, marker_query


def test_a_target_whose_driver_is_missing_is_reported_unavailable(stack, tmp_path) -> None:
    catalog = yaml.safe_load((stack.state_dir / "catalog.yaml").read_text())
    catalog["targets"]["legacy-sql"] = {
        "engine": "mssql", "description": "Azure SQL (no ODBC driver on this machine)",
        "credential": {"source": "managed-identity", "scope": "https://database.windows.net/.default"},
        "connection": {"host": "legacy.database.windows.net", "database": "orders"},
    }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    policy = yaml.safe_load(stack.policy_path.read_text())  # the dev policy, plus reads on legacy-sql
    policy["rules"].insert(0, {"id": "agents-read-legacy", "effect": "allow",
                               "when": {"roles": ["Broker.Caller"], "targets": ["legacy-sql"], "risk": ["read"]}})
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    with devhost_with(stack, BROKER_CATALOG_PATH=str(path), BROKER_POLICY_PATH=str(policy_path)) as client:
        health = client.get("/api/health").json()
        assert health["checks"]["targets"]["legacy-sql"] == "engine_unavailable"
        assert health["checks"]["targets"]["demo-postgres"] == "ok"
        assert health["status"] == "degraded"
        auth = {"Authorization": f"Bearer {stack.token('devin')}"}
        views = {t["name"]: t for t in client.get("/api/targets", headers=auth).json()["targets"]}
        assert views["legacy-sql"]["available"] is False
        assert "ODBC Driver 18" in views["legacy-sql"]["unavailable_reason"]
        assert views["demo-postgres"]["available"] is True and "unavailable_reason" not in views["demo-postgres"]
        marker, sql = marker_query()
        answer = client.post("/api/execute", headers=auth, json={"target": "legacy-sql", "sql": sql})
        assert answer.status_code == 503, answer.text  # allowed by the policy, then refused: never a 500
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "engine_unavailable"
        records = [s.record for s in reader(stack).by_request(_request_id_for(stack, marker))]
        assert ("execute.outcome", "engine_unavailable") in {(r.event, r.outcome.get("code")) for r in records}
