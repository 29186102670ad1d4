"""One orchestration episode, planned without touching storage.

Given an instance's committed state and history and the messages in its inbox, decide what the
Durable extension would append to the history: the new events (OrchestratorStarted, the messages
as ExecutionStarted/TaskCompleted/TimerFired/EventRaised/..., the work the orchestrator scheduled,
the completion) and the instance's next state. The orchestrator runs through the SDK's real entry
point (:mod:`devhost.durable.worker`) and its actions are checked by the extension-side replay
(:mod:`devhost.durable.replay`). The caller commits the plan and dispatches its work.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from devhost.durable import history as h
from devhost.durable.history import Event, EventType, OrchestrationStatus
from devhost.durable.model import ActivityWork, InstanceState, Message, TimerWork, activity_marker_key
from devhost.durable.payloads import text, token
from devhost.durable.replay import ExtensionReplay, ReplayError
from devhost.durable.worker import orchestration_context, run_orchestrator
from devhost.functions import TriggeredFunction

log = logging.getLogger("devhost.durable")


@dataclass
class EpisodePlan:
    state: InstanceState
    new_events: list[Event] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)  # inbox / marker row keys to delete
    new_messages: list[Message] = field(default_factory=list)
    activities: list[ActivityWork] = field(default_factory=list)
    timers: list[TimerWork] = field(default_factory=list)
    reset_history: bool = False  # continue-as-new: a new execution starts with an empty history

    @property
    def changes_state(self) -> bool:
        return bool(self.new_events or self.new_messages or self.reset_history)


def plan_episode(state: InstanceState, past: list[Event], messages: list[Message], markers: set[str],
                 now: datetime, orchestrators: dict[str, TriggeredFunction], replay_timeout: float) -> EpisodePlan:
    plan = EpisodePlan(state=replace(state))
    ordered = sorted(messages, key=lambda m: (m.kind != "start", m.enqueued, m.key))
    plan.consumed = [m.key for m in ordered]
    if not state.active:
        plan.consumed += sorted(markers)  # late messages (and start markers) of a finished instance
        return plan  # are dropped, as the extension drops them

    scheduled = {e["EventId"]: e for e in past if h.kind(e) == EventType.TASK_SCHEDULED}
    timers = {e["EventId"]: e for e in past if h.kind(e) == EventType.TIMER_CREATED}
    closed = {e["TaskScheduledId"] for e in past if h.kind(e) in (EventType.TASK_COMPLETED, EventType.TASK_FAILED)}
    closed |= {e["TimerId"] for e in past if h.kind(e) == EventType.TIMER_FIRED}
    started = any(h.kind(e) == EventType.EXECUTION_STARTED for e in past)

    incoming: list[Event] = []
    terminate: Message | None = None
    for message in ordered:
        if message.kind == "terminate":
            terminate = terminate or message
        elif message.kind == "start":
            if not started and message.execution_id == state.execution_id:
                incoming.append(h.execution_started(now, state.instance_id, state.execution_id, state.name,
                                                    state.input))
                started = True
        elif message.kind == "event":
            incoming.append(h.event_raised(now, message.name or "", message.data))
        elif message.execution_id != state.execution_id or message.task_id in closed:
            continue  # a duplicate or a message for an earlier execution
        elif message.kind == "task" and message.task_id in scheduled:
            closed.add(message.task_id)
            incoming.append(h.task_failed(now, message.task_id, message.data or "", message.details)
                            if message.failed else h.task_completed(now, message.task_id, message.data))
            marker = activity_marker_key(state.execution_id, message.task_id)
            if marker in markers:
                plan.consumed.append(marker)
        elif message.kind == "timer" and message.task_id in timers:
            closed.add(message.task_id)
            incoming.append(h.timer_fired(now, message.task_id, timers[message.task_id]["FireAt"]))

    if terminate is not None:
        reason = terminate.data
        plan.new_events = [h.orchestrator_started(now), h.execution_terminated(now, reason),
                           h.execution_completed(now, OrchestrationStatus.Terminated, reason),
                           h.orchestrator_completed(now)]
        _finish(plan, "Terminated", text(reason), now)
        return plan
    if not incoming or not started:
        return plan  # only duplicates (or events waiting for a start that never came)

    new = [h.orchestrator_started(now), *incoming]
    _run(plan, past, new, now, orchestrators, replay_timeout)
    return plan


def _run(plan: EpisodePlan, past: list[Event], new: list[Event], now: datetime,
         orchestrators: dict[str, TriggeredFunction], replay_timeout: float) -> None:
    state = plan.state
    if state.status in ("Pending", "ContinuedAsNew"):
        state.status = "Running"
    function = orchestrators.get(state.name)
    if function is None:
        _fail(plan, new, now, f"The function '{state.name}' doesn't exist, is disabled, or is not an "
                              "orchestrator function.")
        return
    context = orchestration_context(state.instance_id, h.for_worker(past, new), token(state.input), bool(past))
    outcome = run_orchestrator(function, context, replay_timeout)
    if outcome.state is None:
        _fail(plan, new, now, f"Orchestrator function '{state.name}' failed: {outcome.error}")
        return
    if "customStatus" in outcome.state:
        state.custom_status = text(outcome.state["customStatus"])
    try:
        replay = ExtensionReplay(outcome.actions, past + new).run()
    except ReplayError as exc:
        _fail(plan, new, now, str(exc))
        return

    recorded = [h.task_scheduled(now, op.task_id, op.name or "", op.input) if op.kind == "activity"
                else h.timer_created(now, op.task_id, op.fire_at or now) for op in replay.new_ops]
    if replay.finished and outcome.error:
        _fail(plan, new + recorded, now, f"Orchestrator function '{state.name}' failed: {outcome.error}")
        return
    if replay.finished and outcome.done and replay.continued:
        plan.new_events = []
        plan.reset_history = True
        state.execution_id = uuid.uuid4().hex
        state.status, state.input, state.history_length = "ContinuedAsNew", replay.continue_as_new, 0
        state.updated, state.diagnostics = now, None
        plan.new_messages.append(Message.start(state.execution_id, replay.continue_as_new))
        return
    if replay.finished and outcome.done and not replay.pending_timers:
        output = text(outcome.state.get("output"))
        plan.new_events = [*new, *recorded, h.execution_completed(now, OrchestrationStatus.Completed, output),
                           h.orchestrator_completed(now)]
        _finish(plan, "Completed", output, now)
        return

    plan.new_events = [*new, *recorded, h.orchestrator_completed(now)]
    state.updated = now
    state.diagnostics = None
    if replay.finished and outcome.done:  # returned, but a timer it created is still pending
        first = replay.pending_timers[0]
        state.diagnostics = (
            f"the orchestrator returned, but timer {first.task_id} (due {h.format_time(first.fire_at or now)}) was "
            "neither fired nor cancelled; as in Azure, the instance stays Running until it fires. Cancel the "
            "timers you no longer wait for; a timer longer than the Azure Storage provider's "
            "maximumShortTimerDuration is split by the Python SDK into short ones that its cancel() misses.")
        log.warning("instance %s: %s", state.instance_id, state.diagnostics)
    elif not replay.finished and (replay.divergence or outcome.done or outcome.error):
        state.diagnostics = replay.divergence or (
            f"the orchestrator {'failed' if outcome.error else 'returned'}, but the Durable extension is still "
            f"waiting on {replay.blocked_on}, which the SDK considers complete; in Azure this instance stays "
            "Running until that action completes. Typical cause: task_any()/task_all() over a task that was "
            "already yielded before (e.g. one deadline timer reused in a loop).")
        log.warning("instance %s: %s", state.instance_id, state.diagnostics)
    for op in replay.new_ops:
        if op.kind == "activity":
            plan.activities.append(ActivityWork(state.instance_id, state.execution_id, op.task_id, op.name or "",
                                                op.input))
        elif op.fire_at is not None:
            plan.timers.append(TimerWork(op.fire_at, state.instance_id, state.execution_id, op.task_id,
                                         h.format_time(op.fire_at)))


def _fail(plan: EpisodePlan, new: list[Event], now: datetime, reason: str) -> None:
    log.error("instance %s failed: %s", plan.state.instance_id, reason)
    output = text(reason)
    plan.new_events = [*new, h.execution_completed(now, OrchestrationStatus.Failed, output),
                       h.orchestrator_completed(now)]
    _finish(plan, "Failed", output, now)


def _finish(plan: EpisodePlan, status: str, output: str | None, now: datetime) -> None:
    state = plan.state
    state.status, state.output, state.updated, state.completed = status, output, now, now
    state.diagnostics = None
