"""Orchestrators driven through the SDK's real entry point with the engine's replay, no storage.

The harness runs the same episode logic as the devhost (SDK replay + the extension-side replay);
these tests pin the protocol details: task ids, retries, timers, events, determinism checks.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from devhost.durable import history as h
from devhost.durable.history import EventType
from devhost.durable.replay import ExtensionReplay, NonDeterminismError
from devhost.durable.testing import OrchestrationHarness
from devhost.functions import FunctionIndex


@pytest.fixture(scope="module")
def index() -> FunctionIndex:
    return FunctionIndex("tests.devhost.sample_app")


@pytest.fixture
def sample_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DURABLE_SAMPLE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def harness(index: FunctionIndex, sample_dir: Path) -> OrchestrationHarness:
    return OrchestrationHarness(index)


def kinds(events: list[dict]) -> list[str]:
    return [h.event_type_name(h.kind(e)) for e in events]


def scheduled_ids(events: list[dict]) -> list[tuple[str, int]]:
    return [(h.event_type_name(h.kind(e)), e["EventId"]) for e in events
            if h.kind(e) in (EventType.TASK_SCHEDULED, EventType.TIMER_CREATED)]


def test_chain_schedules_one_activity_per_episode_with_sequential_ids(harness: OrchestrationHarness) -> None:
    run = harness.start("chain", ["A", "B"])
    assert run.pending_activities == ["say_hello"]
    run.run_activities()
    assert run.status == "Completed"
    assert run.output == ["Hello A!", "Hello B!"]
    assert scheduled_ids(run.history) == [("TaskScheduled", 0), ("TaskScheduled", 1)]
    assert kinds(run.history)[:3] == ["OrchestratorStarted", "ExecutionStarted", "TaskScheduled"]
    assert kinds(run.history)[-2:] == ["ExecutionCompleted", "OrchestratorCompleted"]


def test_fan_out_schedules_all_children_in_one_episode(harness: OrchestrationHarness) -> None:
    run = harness.start("fan_out", 4)
    assert run.pending_activities == ["double"] * 4
    assert [e["Input"] for e in run.history if h.kind(e) == EventType.TASK_SCHEDULED] == ["0", "1", "2", "3"]
    run.run_activities()
    assert run.output == 12


def test_retry_uses_extension_timers_and_fresh_task_ids(harness: OrchestrationHarness) -> None:
    run = harness.start("retrying", {"key": "r1", "succeed_on": 3, "max_attempts": 3, "interval_ms": 5000})
    run.run_activities()
    assert run.status == "Running" and run.pending_activities == []  # waiting for the retry timer
    retry_timer = next(e for e in run.history if h.kind(e) == EventType.TIMER_CREATED)
    assert h.parse_time(retry_timer["FireAt"]) == harness.now + timedelta(seconds=5)
    run.advance(timedelta(seconds=4))
    assert run.pending_activities == []
    run.advance(timedelta(seconds=1))
    run.run_activities()
    run.advance(timedelta(seconds=5))
    run.run_activities()
    assert run.status == "Completed"
    assert run.output == "ok after 3"
    assert scheduled_ids(run.history) == [("TaskScheduled", 0), ("TimerCreated", 1), ("TaskScheduled", 2),
                                          ("TimerCreated", 3), ("TaskScheduled", 4)]


def test_retry_exhausted_fails_after_the_extra_timer(harness: OrchestrationHarness) -> None:
    run = harness.start("retrying", {"key": "r2", "succeed_on": 9, "max_attempts": 2, "interval_ms": 1000})
    run.run_activities()
    run.advance(timedelta(seconds=1))
    run.run_activities()
    assert run.status == "Running"  # DTFx waits one more retry interval before giving up
    run.advance(timedelta(seconds=1))
    assert run.status == "Failed"
    assert "attempt 2 failed" in run.output
    assert run.custom_status == {"gave_up": "Activity function 'flaky' failed: RuntimeError: attempt 2 failed "}
    assert [c[0] for c in run.activity_calls] == ["flaky", "flaky"]


def test_retries_inside_task_all_and_task_any_keep_ids_in_step(harness: OrchestrationHarness) -> None:
    run = harness.start("mixed_fan_out", {"key": "m1", "succeed_on": 2})
    run.run_activities()  # flaky fails once, double succeeds
    run.advance(timedelta(seconds=1))  # the retry timer fires: flaky again, succeeds
    run.run_activities()  # now the race: flaky (-2) fails once more
    run.advance(timedelta(seconds=1))
    run.run_activities()
    assert run.status == "Completed", run.output
    assert run.output == ["ok after 2", 42, "racer"]
    assert scheduled_ids(run.history) == [("TaskScheduled", 0), ("TaskScheduled", 1), ("TimerCreated", 2),
                                          ("TaskScheduled", 3), ("TaskScheduled", 4), ("TimerCreated", 5),
                                          ("TimerCreated", 6), ("TaskScheduled", 7)]


def test_timer_fires_only_when_the_clock_reaches_it(harness: OrchestrationHarness) -> None:
    run = harness.start("sleeper", 3600)
    assert run.custom_status == "sleeping"
    run.advance(timedelta(minutes=59))
    assert run.status == "Running"
    run.advance(timedelta(minutes=1))
    assert run.status == "Completed" and run.output == "woke up"


@pytest.mark.parametrize(("answer", "expected"), [
    ({"approved": True, "by": "approver"}, "done"),
    ({"approved": False, "by": "approver2"}, "denied"),
])
def test_approval_decision_beats_the_deadline(harness: OrchestrationHarness, answer: dict, expected: str) -> None:
    run = harness.start("approval", {"id": "req-1", "timeout_s": 3600})
    run.run_activities()
    assert run.custom_status == "waiting"
    run.raise_event("decision", answer)
    run.run_activities()
    assert run.status == "Completed"
    assert run.output["outcome"] == expected and run.output["by"] == answer["by"]
    steps = [c[1]["step"] for c in run.activity_calls]
    assert steps == (["notify", "run"] if expected == "done" else ["notify"])
    canceled = [a for a in run.history if h.kind(a) == EventType.TIMER_CREATED]
    assert len(canceled) == 1  # the deadline timer was recorded, then cancelled by the orchestrator


def test_a_timer_the_orchestrator_did_not_cancel_keeps_the_instance_running(harness: OrchestrationHarness) -> None:
    run = harness.start("forgets_timer")
    run.raise_event("go")
    assert run.status == "Running"  # returned "event", but its deadline timer is still pending
    assert "neither fired nor cancelled" in (run.diagnostics or "")
    run.advance(timedelta(seconds=60))
    assert run.status == "Completed" and run.output == "event"


def test_a_deadline_longer_than_six_days_cannot_be_cancelled_as_in_azure(harness: OrchestrationHarness) -> None:
    """The Azure Storage provider's maximumShortTimerDuration (6 days): the SDK splits a longer
    timer into 3-day timers and its cancel() misses them (azure-functions-durable-python, open),
    so a decided 7-day approval keeps its instance Running. Hence the policy's 5-day ceiling."""
    run = harness.start("approval", {"id": "long", "timeout_s": 7 * 86400})
    run.run_activities()
    fire_at = [h.parse_time(e["FireAt"]) for e in run.history if h.kind(e) == EventType.TIMER_CREATED]
    assert fire_at == [harness.now + timedelta(days=3)]  # the first 3-day slice, not the 7-day deadline
    run.raise_event("decision", {"approved": False, "by": "approver"})
    assert run.status == "Running" and "maximumShortTimerDuration" in (run.diagnostics or "")
    run.advance(timedelta(days=7))
    assert run.status == "Completed" and run.output["outcome"] == "denied"


def test_a_five_day_deadline_is_one_timer_and_is_cancelled(harness: OrchestrationHarness) -> None:
    run = harness.start("approval", {"id": "five", "timeout_s": 5 * 86400})
    run.run_activities()
    fire_at = [h.parse_time(e["FireAt"]) for e in run.history if h.kind(e) == EventType.TIMER_CREATED]
    assert fire_at == [harness.now + timedelta(days=5)]
    run.raise_event("decision", {"approved": False, "by": "approver"})
    assert run.status == "Completed"


def test_approval_deadline_beats_a_late_decision(harness: OrchestrationHarness) -> None:
    run = harness.start("approval", {"id": "req-2", "timeout_s": 60})
    run.run_activities()
    run.advance(timedelta(seconds=60))
    assert run.status == "Completed" and run.output == {"outcome": "expired"}
    run.raise_event("decision", {"approved": True})
    assert run.output == {"outcome": "expired"}
    assert [c[1]["step"] for c in run.activity_calls] == ["notify"]


def test_event_raised_before_the_wait_is_kept_for_it(harness: OrchestrationHarness) -> None:
    run = harness.start("late_listener")
    run.raise_event("ping", {"n": 1})
    assert run.status == "Running"
    run.advance(timedelta(seconds=60))
    assert run.status == "Completed"
    # DurableOrchestrationClient.raise_event JSON-encodes the payload once more; the orchestrator
    # receives that JSON text (Azure/azure-functions-durable-python#295), here as in Azure.
    assert json.loads(run.output) == {"n": 1}


def test_decision_that_arrives_while_the_notification_runs_is_not_lost(harness: OrchestrationHarness) -> None:
    run = harness.start("approval", {"id": "fast", "timeout_s": 3600})
    run.raise_event("decision", {"approved": True, "by": "quick"})  # before notify has finished
    run.run_activities()
    assert run.status == "Completed" and run.output["outcome"] == "done"


def test_sdk_redelivers_an_early_event_to_every_later_wait_as_in_azure(harness: OrchestrationHarness) -> None:
    """azure-functions-durable 1.7 keeps an event that arrived before any wait and hands it to
    every later wait for that name (Azure/azure-functions-durable-python#507). The engine runs the
    SDK's own replay, so the devhost shows the same result Azure would: one event seen twice, the
    other lost. Orchestrators must not wait twice on a name whose events can arrive early."""
    run = harness.start("two_pings")
    run.raise_event("ping", "one", via_client=False)
    run.raise_event("ping", "two", via_client=False)
    run.advance(timedelta(seconds=60))
    assert run.status == "Completed"
    assert run.output == ["two", "two"]


def test_terminate_stops_an_instance_and_later_results_are_dropped(index: FunctionIndex, sample_dir: Path) -> None:
    run = OrchestrationHarness(index, activities={"gate": lambda key: key}).start("gated", "k1")
    run.terminate("enough")
    assert run.status == "Terminated" and run.output == "enough"
    run.run_activities()
    assert run.status == "Terminated"
    assert kinds(run.history)[-3:] == ["ExecutionTerminated", "ExecutionCompleted", "OrchestratorCompleted"]


def test_continue_as_new_restarts_with_a_fresh_history(harness: OrchestrationHarness) -> None:
    run = harness.start("counter", {"n": 0, "until": 3})
    first_execution = run.state.execution_id
    run.run_activities()
    assert run.status == "Completed"
    assert run.output == {"n": 2, "last": 4}
    assert run.state.execution_id != first_execution
    assert kinds(run.history).count("ExecutionStarted") == 1


def test_changed_orchestrator_fails_loudly_as_non_deterministic(harness: OrchestrationHarness,
                                                                 sample_dir: Path) -> None:
    (sample_dir / "drift-mode").write_text("say_hello")
    run = harness.start("drifting")
    run.run_activities()
    (sample_dir / "drift-mode").write_text("double")
    run.raise_event("go")
    assert run.status == "Failed"
    assert "Non-deterministic" in run.output
    assert "'say_hello'" in run.output and "'double'" in run.output


def test_reused_deadline_timer_stalls_like_the_extension_and_says_why(harness: OrchestrationHarness) -> None:
    run = harness.start("quorum_shared_timer")
    run.raise_event("vote", "yes")
    run.advance(timedelta(seconds=60))
    # The SDK wants to run the expiry activity, but the extension waits on a WhenAny that only
    # holds the second wait_for_external_event: in Azure the instance stalls here too.
    assert run.status == "Running"
    assert run.pending_activities == []
    assert run.diagnostics and "stalls" in run.diagnostics


def test_unsupported_actions_fail_the_instance_with_a_clear_reason(harness: OrchestrationHarness) -> None:
    run = harness.start("uses_http")
    assert run.status == "Failed"
    assert "CallHttp is not implemented" in run.output


def test_orchestrator_exception_fails_the_instance_with_its_message(index: FunctionIndex, sample_dir: Path) -> None:
    run = OrchestrationHarness(index, activities={"flaky": lambda job: 1 / 0}).start(
        "retrying", {"key": "x", "succeed_on": 1, "max_attempts": 1})
    run.run_activities()
    run.advance(timedelta(seconds=1))
    assert run.status == "Failed"
    assert run.output.startswith("Orchestrator function 'retrying' failed:")
    assert "ZeroDivisionError" in run.output or "division by zero" in run.output


# --- the extension-side replay on hand-built histories ---------------------------------------
T0 = h.parse_time("2030-01-01T00:00:00.000000Z")


def started() -> list[dict]:
    return [h.orchestrator_started(T0), h.execution_started(T0, "i", "e", "o", None)]


def test_history_event_without_a_matching_action_is_non_deterministic() -> None:
    history = [*started(), h.task_scheduled(T0, 0, "A", '"x"'), h.orchestrator_completed(T0)]
    with pytest.raises(NonDeterminismError, match="no matching action"):
        ExtensionReplay([], history).run()


def test_same_activity_with_another_input_is_non_deterministic() -> None:
    history = [*started(), h.task_scheduled(T0, 0, "A", '"x"'), h.orchestrator_completed(T0)]
    actions = [{"actionType": 0, "functionName": "A", "input": '"y"'}]
    with pytest.raises(NonDeterminismError, match="input"):
        ExtensionReplay(actions, history).run()


def test_timer_moved_by_wall_clock_use_is_non_deterministic() -> None:
    history = [*started(), h.timer_created(T0, 0, T0 + timedelta(hours=1)), h.orchestrator_completed(T0)]
    actions = [{"actionType": 5, "fireAt": h.format_time(T0 + timedelta(hours=2)), "isCanceled": False}]
    with pytest.raises(NonDeterminismError, match="current_utc_datetime"):
        ExtensionReplay(actions, history).run()


def test_events_wait_in_arrival_order_and_the_newest_waiter_gets_the_next() -> None:
    history = [*started(), h.orchestrator_completed(T0), h.orchestrator_started(T0),
               h.event_raised(T0, "e", '"1"'), h.event_raised(T0, "e", '"2"')]
    actions = [{"actionType": 6, "externalEventName": "e"}, {"actionType": 6, "externalEventName": "e"},
               {"actionType": 6, "externalEventName": "e"}]
    result = ExtensionReplay(actions, history).run()
    assert not result.finished and result.blocked_on is not None and "action #2" in result.blocked_on


# --- the worker's guard against runaway replays ---------------------------------------------
def test_runaway_code_is_stopped_at_the_timeout() -> None:
    from devhost.durable.worker import InvocationTimeout, call_with_timeout

    def spin() -> None:
        while True:
            pass

    with pytest.raises(InvocationTimeout, match="exceeded by orchestrator 'spin'"):
        call_with_timeout(spin, 0.2, "orchestrator 'spin'")
    assert call_with_timeout(lambda: 42, 0.2, "fast") == 42
