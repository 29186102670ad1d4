"""The devhost's Durable engine end to end: a devhost process serving the sample app against a real
Azurite, driven through the app's HTTP functions (which use the SDK's DurableOrchestrationClient)
and the public webhook URLs; time moves only when a test advances the manual clock."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from conftest import KEY, SampleHost


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_activity_chain_runs_and_reports_history_through_the_client(host: SampleHost) -> None:
    instance = host.start_and_settle("chain", ["Tokyo", "Seattle", "London"])
    status = host.status(instance, history=True)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    events = status["historyEvents"]
    assert [e["EventType"] for e in events] == ["ExecutionStarted", "TaskCompleted", "TaskCompleted",
                                                 "TaskCompleted", "ExecutionCompleted"]
    assert events[0]["FunctionName"] == "chain"
    assert [e["FunctionName"] for e in events[1:4]] == ["say_hello"] * 3
    assert events[2]["Result"] == "Hello Seattle!"


def test_fan_out_fan_in(host: SampleHost) -> None:
    instance = host.start_and_settle("fan_out", 6)
    assert host.status(instance)["output"] == 30


def test_check_status_urls_work_with_the_system_key_only(host: SampleHost) -> None:
    instance_id = new_id("urls")
    response = host.start_instance("forever", instance_id=instance_id)
    assert response.status_code == 202
    links = response.json()
    assert response.headers["Location"] == links["statusQueryGetUri"]
    assert links["id"] == instance_id and f"code={KEY}" in links["statusQueryGetUri"]
    host.idle()
    status = httpx.get(links["statusQueryGetUri"])
    assert status.status_code == 202 and status.json()["customStatus"] == "waiting forever"
    without_key = links["statusQueryGetUri"].replace(f"code={KEY}", "code=wrong")
    assert httpx.get(without_key).status_code == 401
    terminate = links["terminatePostUri"].replace("{text}", "done")
    assert httpx.post(terminate).status_code == 202
    host.idle()
    final = httpx.get(links["statusQueryGetUri"])
    assert final.status_code == 200 and final.json()["runtimeStatus"] == "Terminated"
    assert final.json()["output"] == "done"


def test_retry_then_success_waits_for_the_retry_interval(host: SampleHost) -> None:
    key = new_id("flaky")
    instance = host.start_and_settle("retrying", {"key": key, "succeed_on": 2, "max_attempts": 3,
                                                  "interval_ms": 30_000})
    assert host.status(instance)["runtimeStatus"] == "Running"
    assert [c for c in host.calls() if c.startswith(f"flaky:{key}")] == [f"flaky:{key}:1"]
    host.advance(30)
    status = host.status(instance)
    assert status["runtimeStatus"] == "Completed" and status["output"] == "ok after 2"


def test_retry_exhausted_fails_the_instance(host: SampleHost) -> None:
    key = new_id("doomed")
    instance = host.start_and_settle("retrying", {"key": key, "succeed_on": 99, "max_attempts": 2,
                                                  "interval_ms": 1000})
    host.advance(1)
    host.advance(1)
    status = host.status(instance)
    assert status["runtimeStatus"] == "Failed"
    assert "attempt 2 failed" in status["output"]
    assert len([c for c in host.calls() if c.startswith(f"flaky:{key}")]) == 2


def test_timer_fires_when_the_manual_clock_reaches_it(host: SampleHost) -> None:
    instance = host.start_and_settle("sleeper", 3600)
    host.advance(3599)
    assert host.status(instance)["runtimeStatus"] == "Running"
    host.advance(1)
    assert host.status(instance)["output"] == "woke up"


def test_event_raised_before_the_wait_is_delivered(host: SampleHost) -> None:
    instance = host.start_and_settle("late_listener")
    assert host.raise_event(instance, "ping", {"n": 7}).status_code == 202
    assert host.status(instance)["runtimeStatus"] == "Running"
    host.advance(60)
    status = host.status(instance)
    assert status["runtimeStatus"] == "Completed"
    assert json.loads(status["output"]) == {"n": 7}  # the client's extra JSON encoding, as in Azure


def test_decision_before_the_deadline_runs_the_action_once(host: SampleHost) -> None:
    request = new_id("approve")
    instance = host.start_and_settle("approval", {"id": request, "timeout_s": 3600})
    assert host.status(instance)["customStatus"] == "waiting"
    host.raise_event(instance, "decision", {"approved": True, "by": "approver"})
    status = host.status(instance)
    assert status["output"]["outcome"] == "done" and status["output"]["by"] == "approver"
    assert sum(f'"id": "{request}", "step": "run"' in c for c in host.calls()) == 1
    host.advance(3600)  # the cancelled deadline fires later and changes nothing
    assert host.status(instance)["output"]["outcome"] == "done"


def test_deadline_before_the_decision_expires_and_refuses_late_events(host: SampleHost) -> None:
    request = new_id("expire")
    instance = host.start_and_settle("approval", {"id": request, "timeout_s": 600})
    host.advance(600)
    assert host.status(instance)["output"] == {"outcome": "expired"}
    late = host.raise_event(instance, "decision", {"approved": True})
    assert late.status_code == 409 and "is gone" in late.json()["error"]  # the extension answers 410
    assert not any(f'"id": "{request}", "step": "run"' in c for c in host.calls())


def test_terminate_then_purge(host: SampleHost) -> None:
    instance = host.start_and_settle("forever")
    assert host.http.post(f"/api/instances/{instance}/terminate", params={"reason": "bye"}).status_code == 202
    host.idle()
    status = host.status(instance)
    assert status["runtimeStatus"] == "Terminated" and status["output"] == "bye"
    assert host.http.delete(f"/api/instances/{instance}").json() == {"instancesDeleted": 1}
    assert host.http.get(f"/api/instances/{instance}").status_code == 404
    assert host.http.delete(f"/api/instances/{instance}").json() == {"instancesDeleted": 0}


def test_query_by_runtime_status(host: SampleHost) -> None:
    running = host.start_and_settle("forever")
    done = host.start_and_settle("fan_out", 1)
    found = {s["instanceId"]: s["runtimeStatus"] for s in host.http.get("/api/instances",
                                                                         params={"status": "Running"}).json()}
    assert found.get(running) == "Running" and done not in found


def test_starting_a_running_instance_id_again_is_refused(host: SampleHost) -> None:
    instance_id = new_id("dup")
    assert host.start_instance("forever", instance_id=instance_id).status_code == 202
    assert host.start_instance("forever", instance_id=instance_id).status_code == 500
    host.idle()
    assert host.status(instance_id)["runtimeStatus"] == "Running"


def test_continue_as_new(host: SampleHost) -> None:
    instance = host.start_and_settle("counter", {"n": 0, "until": 3})
    assert host.status(instance)["output"] == {"n": 2, "last": 4}


def test_non_deterministic_orchestrator_fails_loudly(host: SampleHost) -> None:
    (host.sample_dir / "drift-mode").write_text("say_hello")
    instance = host.start_and_settle("drifting")
    (host.sample_dir / "drift-mode").write_text("double")
    host.raise_event(instance, "go", {"go": True})
    status = host.status(instance)
    assert status["runtimeStatus"] == "Failed"
    assert "Non-deterministic" in status["output"] and "'double'" in status["output"]


def test_payloads_larger_than_a_table_property(host: SampleHost) -> None:
    text = "x" * 200_000
    instance = host.start_and_settle("big", text)
    status = host.status(instance)
    assert status["output"] == {"length": 200_000}
    assert json.loads(status["input"]) == text


def test_restart_while_waiting_for_an_event_completes_exactly_once(host: SampleHost) -> None:
    request = new_id("restart")
    instance = host.start_and_settle("approval", {"id": request, "timeout_s": 3600})
    assert host.status(instance)["customStatus"] == "waiting"
    host.kill()
    host.start()
    host.raise_event(instance, "decision", {"approved": True, "by": "approver2"})
    assert host.status(instance)["output"]["outcome"] == "done"
    steps = [c for c in host.calls() if f'"id": "{request}"' in c]
    assert steps == [f'record:{{"id": "{request}", "step": "notify"}}',
                     f'record:{{"id": "{request}", "step": "run"}}']


def test_crash_during_an_activity_reruns_it_once_after_restart(host: SampleHost) -> None:
    key = new_id("gate")
    response = host.start_instance("gated", key)
    assert response.status_code == 202
    deadline = time.monotonic() + 10
    while f"gate-start:{key}" not in host.calls():
        assert time.monotonic() < deadline, "the gate activity never started"
        time.sleep(0.02)
    host.kill()  # the activity started and its result was never stored
    host.start()
    (host.sample_dir / f"gate-{key}").touch()
    host.idle()
    assert host.status(response.json()["id"])["output"] == key
    calls = [c for c in host.calls() if key in c]
    assert calls.count(f"gate-start:{key}") == 2  # at-least-once: it ran again after the crash
    assert calls.count(f"gate-end:{key}") == 1
    assert sum("after-gate" in c for c in calls) == 1
    assert "starts again (attempt 2)" in host.log_path.read_text()


def test_unknown_orchestrator_is_a_clean_client_error(host: SampleHost) -> None:
    with pytest.raises(AssertionError):
        host.start_and_settle("no_such_orchestrator")
    response = host.start_instance("no_such_orchestrator")
    assert response.status_code == 500  # the app's function let the client's exception through
    assert "doesn't exist" in host.log_path.read_text()


def test_a_second_devhost_on_the_same_task_hub_is_refused(host: SampleHost, tmp_path_factory) -> None:
    second = SampleHost(host.azurite, tmp_path_factory.mktemp("second"))
    with pytest.raises(RuntimeError, match="devhost exited"):
        second.start(timeout=20)
    assert "task hub is in use by another devhost" in second.log_path.read_text()
    second.http.close()


def test_admin_and_webhooks_require_the_system_key(host: SampleHost) -> None:
    assert host.http.get("/admin/durable/clock").status_code == 401
    assert host.http.get("/runtime/webhooks/durabletask/instances/").status_code == 401
    listing = host.http.get("/runtime/webhooks/durabletask/instances/", params={"code": KEY})
    assert listing.status_code == 200 and isinstance(listing.json(), list)


def test_purge_by_filter_through_the_webhook(host: SampleHost) -> None:
    done = host.start_and_settle("fan_out", 1)
    created = host.status(done)["createdTime"]
    params = {"code": KEY, "createdTimeFrom": created, "runtimeStatus": "Completed"}
    purged = host.http.delete("/runtime/webhooks/durabletask/instances/", params=params)
    assert purged.status_code == 200 and purged.json()["instancesDeleted"] >= 1
    assert host.http.get(f"/api/instances/{done}").status_code == 404
    assert host.http.delete("/runtime/webhooks/durabletask/instances/", params=params).status_code == 404
