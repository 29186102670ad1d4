"""Drive orchestrators in a unit test: the engine's episode logic without storage or threads.

``OrchestrationHarness`` runs an app's orchestrator through the SDK's real entry point and the
extension-side replay — the same code the devhost runs — while the test decides when activities
run, which events arrive and how far the clock moves::

    harness = OrchestrationHarness(index)           # a devhost FunctionIndex of the app
    run = harness.start("approval", {"id": "r1", "timeout_s": 60})
    run.run_activities()                              # the app's own activities (or stubs)
    run.raise_event("decision", {"approved": True})
    run.run_activities()
    assert run.status == "Completed"

Stubs replace activities by name: ``OrchestrationHarness(index, activities={"notify": lambda x: None})``
(a stub's exception becomes the task's failure, as a real activity's would).
"""

from __future__ import annotations

import json
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost.durable.episode import plan_episode
from devhost.durable.history import Event
from devhost.durable.model import ActivityWork, InstanceState, Message, TimerWork
from devhost.durable.payloads import text, token
from devhost.durable.worker import run_activity
from devhost.functions import FunctionIndex


class OrchestrationRun:
    def __init__(self, harness: OrchestrationHarness, state: InstanceState) -> None:
        self.harness = harness
        self.state = state
        self.history: list[Event] = []
        self.inbox: list[Message] = [Message.start(state.execution_id, state.input)]
        self.activities: list[ActivityWork] = []
        self.timers: list[TimerWork] = []
        self.activity_calls: list[tuple[str, Any]] = []
        self.step()

    # --- what the test sees ----------------------------------------------------------------
    @property
    def status(self) -> str:
        return self.state.status

    @property
    def output(self) -> Any:
        return token(self.state.output)

    @property
    def custom_status(self) -> Any:
        return token(self.state.custom_status)

    @property
    def diagnostics(self) -> str | None:
        return self.state.diagnostics

    @property
    def pending_activities(self) -> list[str]:
        return [w.name for w in self.activities]

    # --- what the test does ----------------------------------------------------------------
    def step(self) -> None:
        """Run episodes until the inbox is empty (continue-as-new starts a new execution)."""
        while self.inbox:
            messages, self.inbox = self.inbox, []
            plan = plan_episode(self.state, self.history, messages, set(), self.harness.now,
                                self.harness.index.orchestrators, self.harness.replay_timeout)
            self.state = plan.state
            if plan.reset_history:
                self.history, self.activities, self.timers = [], [], []
            self.history += plan.new_events
            self.state.history_length = len(self.history)
            self.inbox += plan.new_messages
            self.activities += plan.activities
            self.timers += plan.timers

    def run_activities(self, only: str | None = None) -> None:
        """Run the pending activities (all, or those named ``only``), then let the orchestrator react."""
        while True:
            ready = [w for w in self.activities if only is None or w.name == only]
            if not ready:
                break
            for work in ready:
                self.activities.remove(work)
                self.inbox.append(self.harness.execute(work, self))
            self.step()

    def fail_activity(self, name: str, reason: str = "failed by the test") -> None:
        work = next(w for w in self.activities if w.name == name)
        self.activities.remove(work)
        self.inbox.append(Message.task_result(work.execution_id, work.task_id, name, reason=reason))
        self.step()

    def raise_event(self, name: str, data: Any = None, *, via_client: bool = True) -> None:
        """Deliver an event. ``via_client`` reproduces ``DurableOrchestrationClient.raise_event``,
        whose payload reaches the orchestrator JSON-encoded once more (a string), as in Azure."""
        payload = text(json.dumps(data)) if via_client else text(data)
        self.inbox.append(Message.event(name, payload))
        self.step()

    def terminate(self, reason: str = "terminated by the test") -> None:
        self.inbox.append(Message.terminate(reason))
        self.step()

    def advance(self, by: timedelta) -> None:
        """Move the clock and fire the timers that are due (in order)."""
        self.harness.now += by
        due = sorted(t for t in self.timers if t.fire_at <= self.harness.now)
        for timer in due:
            self.timers.remove(timer)
            self.inbox.append(Message.timer(timer.execution_id, timer.timer_id, timer.fire_at_text))
        self.step()


class OrchestrationHarness:
    def __init__(self, index: FunctionIndex, activities: dict[str, Callable[[Any], Any]] | None = None,
                 now: datetime | None = None, replay_timeout: float = 10.0) -> None:
        self.index = index
        self.stubs = dict(activities or {})
        self.now = now or datetime(2030, 1, 1, tzinfo=UTC)
        self.replay_timeout = replay_timeout

    def start(self, name: str, input_: Any = None, instance_id: str | None = None) -> OrchestrationRun:
        """Start like ``DurableOrchestrationClient.start_new`` does (its input arrives JSON-encoded)."""
        state = InstanceState(instance_id=instance_id or uuid.uuid4().hex, name=name, execution_id=uuid.uuid4().hex,
                              status="Pending", input=None if input_ is None else text(json.dumps(input_)),
                              created=self.now, updated=self.now)
        return OrchestrationRun(self, state)

    def execute(self, work: ActivityWork, run: OrchestrationRun) -> Message:
        run.activity_calls.append((work.name, token(work.input)))
        stub = self.stubs.get(work.name)
        if stub is not None:
            try:
                result = stub(token(work.input))
                return Message.task_result(work.execution_id, work.task_id, work.name, result=text(result))
            except Exception as exc:
                return Message.task_result(work.execution_id, work.task_id, work.name,
                                           reason=f"Activity function '{work.name}' failed: {exc}",
                                           details="".join(traceback.format_exception(exc)))
        function = self.index.activities.get(work.name)
        if function is None:
            return Message.task_result(work.execution_id, work.task_id, work.name,
                                       reason=f"The function '{work.name}' doesn't exist")
        outcome = run_activity(function, work.name, work.input, {}, _run_coroutine, 0)
        return Message.task_result(work.execution_id, work.task_id, work.name, result=outcome.result,
                                   reason=outcome.reason, details=outcome.details)


def _run_coroutine(awaitable: Any) -> Any:
    import asyncio

    async def wait() -> Any:
        return await awaitable

    return asyncio.run(wait())


__all__ = ["OrchestrationHarness", "OrchestrationRun"]
