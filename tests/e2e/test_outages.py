"""Fail closed when a dependency is down: nothing reaches the database, the caller gets a precise
503, and the journal (when it is up) says what happened. An engine whose native driver is missing
where the broker runs is one more such dependency (its devhost starts with the others)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import pytest
import yaml

from devhost.stack import free_port, stop_process
from tests.e2e.test_execute import reader

BROKEN = ("journal", "key_vault", "target", "issuer", "catalog", "driver")


@pytest.fixture(scope="module")
def broken(stack, tmp_path_factory) -> Iterator[dict[str, httpx.Client]]:
    """One devhost per broken dependency on the same stack, started together (each start builds a
    broker: one after the other they cost a minute of this suite)."""
    folder = tmp_path_factory.mktemp("outages")
    dead = free_port()
    storage = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=AAAA;"
               f"BlobEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;"
               f"TableEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;")
    catalog = yaml.safe_load((stack.state_dir / "catalog.yaml").read_text())
    catalog["targets"]["demo-postgres"]["connection"]["port"] = free_port()
    (folder / "target.yaml").write_text(yaml.safe_dump(catalog))
    (folder / "invalid.yaml").write_text("targets:\n  broken:\n    engine: oracle\n    credential: {secret: x}\n")
    _without_driver(stack, folder)
    settings = {
        "journal": {"BROKER_STORAGE_CONNECTION_STRING": storage},
        "key_vault": {"BROKER_KEY_VAULT_URL": f"https://127.0.0.1:{free_port()}"},
        "target": {"BROKER_CATALOG_PATH": str(folder / "target.yaml")},
        "issuer": {"BROKER_JWKS_URI": f"http://127.0.0.1:{free_port()}/keys"},
        "catalog": {"BROKER_CATALOG_PATH": str(folder / "invalid.yaml")},
        "driver": {"BROKER_CATALOG_PATH": str(folder / "driver.yaml"),
                   "BROKER_POLICY_PATH": str(folder / "policy.yaml")},
    }
    with ThreadPoolExecutor(len(BROKEN)) as starting, ExitStack() as running:
        ports = {name: free_port() for name in BROKEN}
        # Its own task hub each: the app has orchestrations, and one task hub has one devhost (a lease).
        started = {name: starting.submit(stack.spawn_devhost, ports[name],
                                         {"BROKER_TASK_HUB": f"probe{ports[name]}", **settings[name]},
                                         log_name=f"devhost-{name}.log", timeout=60)
                   for name in BROKEN}
        failed = [future.exception() for future in started.values() if future.exception()]
        processes = [future.result() for future in started.values() if not future.exception()]
        # Stopped together as well (each takes its shutdown grace); none is left behind on a failure.
        running.callback(lambda: list(starting.map(stop_process, processes)))
        if failed:
            raise failed[0]
        clients = {}
        for name in started:
            clients[name] = running.enter_context(
                httpx.Client(base_url=f"http://127.0.0.1:{ports[name]}", timeout=30))
        # The first call builds each broker: build them all at once too.
        for warming in [starting.submit(client.get, "/api/health") for client in clients.values()]:
            warming.result()
        yield clients


def _without_driver(stack, folder) -> None:
    """The dev catalogue plus an Azure SQL target (no ODBC driver on this machine, as on a Functions
    image that lacks it), and the dev policy plus reads on it."""
    catalog = yaml.safe_load((stack.state_dir / "catalog.yaml").read_text())
    catalog["targets"]["legacy-sql"] = {
        "engine": "mssql", "description": "Azure SQL (no ODBC driver on this machine)",
        "credential": {"source": "managed-identity", "scope": "https://database.windows.net/.default"},
        "connection": {"host": "legacy.database.windows.net", "database": "orders"},
    }
    (folder / "driver.yaml").write_text(yaml.safe_dump(catalog))
    policy = yaml.safe_load(stack.policy_path.read_text())
    policy["rules"].insert(0, {"id": "agents-read-legacy", "effect": "allow",
                               "when": {"roles": ["Broker.Caller"], "targets": ["legacy-sql"], "risk": ["read"]}})
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy))


def marker_query() -> tuple[str, str]:
    marker = f"probe-{uuid.uuid4().hex}"
    return marker, f"SELECT id FROM customers WHERE name = '{marker}'"


def database_saw(stack, marker: str) -> bool:
    return marker in stack.postgres.log_path.read_text(errors="replace")


def post(client: httpx.Client, stack, sql: str) -> httpx.Response:
    return client.post("/api/execute", json={"target": "demo-postgres", "sql": sql},
                       headers={"Authorization": f"Bearer {stack.token()}"})


def test_the_database_log_does_show_queries_that_ran(api, stack):
    """Positive control for the checks below: the log is where an executed query would appear."""
    marker, sql = marker_query()
    assert api.execute({"target": "demo-postgres", "sql": sql}).status_code == 200
    assert database_saw(stack, marker)


def test_journal_storage_down_means_503_and_the_database_receives_nothing(stack, broken):
    client = broken["journal"]
    marker, sql = marker_query()
    r = post(client, stack, sql)
    assert r.status_code == 503 and r.json()["code"] == "journal_unavailable"
    assert not database_saw(stack, marker)
    health = client.get("/api/health").json()
    assert health["status"] == "unhealthy" and health["checks"]["journal"] != "ok"


def test_key_vault_down_means_503_journaled_and_the_database_receives_nothing(stack, broken):
    client = broken["key_vault"]
    marker, sql = marker_query()
    r = post(client, stack, sql)
    assert r.status_code == 503 and r.json()["code"] == "secrets_unavailable"
    assert not database_saw(stack, marker)
    records = [s.record for s in reader(stack).by_request(_request_id_for(stack, marker))]
    events = sorted((rec.event, rec.outcome.get("code")) for rec in records)
    # Reads are resolved against the target's own catalog before the decision (issue 14), which
    # needs the credential: with Key Vault down the call is refused at decision time, journaled.
    assert events == [("execute.denied", "secrets_unavailable")]


def test_target_down_means_503_target_unavailable(stack, broken):
    client = broken["target"]
    r = post(client, stack, "SELECT 1")
    assert r.status_code == 503 and r.json()["code"] == "target_unavailable"
    assert client.get("/api/health").json()["checks"]["targets"]["demo-postgres"] == "target_unavailable"


def test_issuer_keys_unreachable_is_503_not_a_silent_401(stack, broken):
    client = broken["issuer"]
    r = post(client, stack, "SELECT 1")
    assert r.status_code == 503 and r.json()["code"] == "issuer_unavailable"


def test_an_invalid_catalog_refuses_every_call_with_503_misconfigured(stack, broken):
    client = broken["catalog"]
    r = post(client, stack, "SELECT 1")
    assert r.status_code == 503 and r.json()["code"] == "broker_misconfigured"
    assert "oracle" not in r.text  # the reason is for the operator's log, not the caller
    assert client.get("/api/health").json() == {"status": "unhealthy",
                                                "checks": {"configuration": "invalid"}}


def test_a_target_whose_driver_is_missing_is_reported_unavailable(stack, broken) -> None:
    """Reported, never a crash: health names it, the target list says it is unavailable and why, and
    a command answers a precise 503."""
    client = broken["driver"]
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


def _request_id_for(stack, marker: str) -> str:
    for stored in reader(stack).recent(limit=100):
        if marker in stored.record.command.get("sql", ""):
            return stored.record.request_id
    raise AssertionError("no journal record for the marker")
