"""The Durable extension's half of an out-of-process replay.

After the Python worker returns its actions, the real extension replays them through DTFx: it
walks the top-level actions one at a time (``await`` each; ``WhenAll``/``WhenAny`` start all
their children), gives every scheduled activity and timer the next sequence number, matches those
numbers against the TaskScheduled/TimerCreated events already in the history, and records the
unmatched ones as new work. Retries (``CallActivityWithRetry``) are run by the extension: a failed
attempt creates a retry timer and, when it fires, a new attempt, each with the next number.

This module reproduces that algorithm over the same history the SDK saw, so the engine knows
which task ids to record and can check determinism exactly where DTFx does:

* a TaskScheduled/TimerCreated event in the history must meet an action the orchestrator
  scheduled with the same id, type and name (and, stricter than DTFx, the same input / fire
  time) — otherwise :class:`NonDeterminismError`;
* where the SDK and the extension disagree about what is still pending (e.g. ``task_any`` over a
  timer that was already scheduled), the extension stops at the blocking action and schedules
  nothing behind it; :attr:`ReplayResult.divergence` says so, because in Azure that instance
  stalls the same way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devhost.durable import history as h
from devhost.durable.history import Event, EventType
from devhost.durable.payloads import same_json


class ReplayError(Exception):
    """The extension would fail this orchestration (the instance becomes Failed)."""


class NonDeterminismError(ReplayError):
    """The orchestrator no longer schedules what its history recorded."""


class UnsupportedActionError(ReplayError):
    """An action the devhost engine does not implement (sub-orchestrations, entities, HTTP)."""


_UNSUPPORTED = {2: "CallSubOrchestrator", 3: "CallSubOrchestratorWithRetry", 7: "CallEntity", 8: "CallHttp",
                9: "SignalEntity", 10: "ScheduledSignalEntity"}
_ACTION_NAMES = {0: "CallActivity", 1: "CallActivityWithRetry", 4: "ContinueAsNew", 5: "CreateTimer",
                 6: "WaitForExternalEvent", 11: "WhenAny", 12: "WhenAll", **_UNSUPPORTED}


@dataclass(frozen=True)
class RetryPolicy:
    """The extension's ``RetryOptions`` (Python sends the first two; JS may send all)."""

    first_interval: timedelta
    max_attempts: int
    backoff: float = 1.0
    max_interval: timedelta = timedelta(days=6)
    timeout: timedelta | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetryPolicy:
        def ms(key: str) -> timedelta | None:
            value = data.get(key)
            return timedelta(milliseconds=value) if value else None

        return cls(first_interval=ms("firstRetryIntervalInMilliseconds") or timedelta(0),
                   max_attempts=int(data.get("maxNumberOfAttempts") or 1),
                   backoff=float(data.get("backoffCoefficient") or 1.0),
                   max_interval=ms("maxRetryIntervalInMilliseconds") or timedelta(days=6),
                   timeout=ms("retryTimeoutInMilliseconds"))

    def next_delay(self, attempt: int, first_attempt: datetime, now: datetime) -> timedelta:
        """DTFx ``RetryInterceptor.ComputeNextDelay``: zero means give up."""
        if self.timeout is not None and now >= first_attempt + self.timeout:
            return timedelta(0)
        delay = self.first_interval * (self.backoff ** attempt)
        return min(delay, self.max_interval)


@dataclass
class Op:
    """A task id the extension hands out: an activity call or a timer."""

    task_id: int
    kind: str  # "activity" | "timer"
    name: str | None = None
    input: str | None = None
    fire_at: datetime | None = None
    by_host: bool = False  # a retry attempt or retry timer, made by the extension itself
    canceled: bool = False

    def describe(self) -> str:
        if self.kind == "activity":
            return f"activity {self.name!r} (task {self.task_id})"
        return f"timer (task {self.task_id}) firing at {h.format_time(self.fire_at) if self.fire_at else '?'}"


@dataclass
class ReplayResult:
    new_ops: list[Op]
    finished: bool  # every top-level action has completed: the extension can finish
    continue_as_new: str | None  # the new input text, when ContinueAsNew was invoked
    continued: bool
    divergence: str | None = None
    blocked_on: str | None = None
    ops: dict[int, Op] = field(default_factory=dict)
    # timers neither fired nor cancelled: the Durable Task Framework completes an orchestration only
    # once every timer it created has fired or been cancelled, so these keep the instance Running
    pending_timers: list[Op] = field(default_factory=list)


class _Task:
    def __init__(self) -> None:
        self.done = False
        self.ok = False
        self.parent: _Task | None = None

    def finish(self, ok: bool) -> None:
        if self.done:
            return
        self.done, self.ok = True, ok
        if self.parent is not None:
            self.parent.child_done(self)

    def child_done(self, child: _Task) -> None:  # pragma: no cover - compound tasks override
        pass


class _Atomic(_Task):
    def __init__(self, op: Op) -> None:
        super().__init__()
        self.op = op


class _Event(_Task):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class _WhenAll(_Task):
    def __init__(self, children: list[_Task]) -> None:
        super().__init__()
        self.children = children
        for child in children:
            child.parent = self
        self.child_done(None)

    def child_done(self, child: _Task | None) -> None:
        # .NET Task.WhenAll: completes when every child has, faulted if any faulted.
        if all(c.done for c in self.children):
            self.finish(all(c.ok for c in self.children))


class _WhenAny(_Task):
    def __init__(self, children: list[_Task]) -> None:
        super().__init__()
        self.children = children
        for child in children:
            child.parent = self
        if any(c.done for c in children):
            self.finish(True)

    def child_done(self, child: _Task | None) -> None:
        self.finish(True)


class _Retry(_Task):
    def __init__(self, replay: ExtensionReplay, name: str, input_: str | None, policy: RetryPolicy) -> None:
        super().__init__()
        self.replay, self.name, self.input, self.policy = replay, name, input_, policy
        self.first_attempt = replay.now
        self.attempt = 0
        self.waiting: _Task | None = None
        self._start_attempt(by_host=False)

    def _start_attempt(self, by_host: bool) -> None:
        self.waiting = self.replay.schedule_activity(self.name, self.input, by_host=by_host)
        self.waiting.parent = self

    def child_done(self, child: _Task | None) -> None:
        if child is not self.waiting:
            return
        if isinstance(child, _Atomic) and child.op.kind == "activity":
            if child.ok:
                self.finish(True)
                return
            delay = self.policy.next_delay(self.attempt, self.first_attempt, self.replay.now)
            if delay <= timedelta(0):
                self.finish(False)
                return
            self.waiting = self.replay.schedule_timer(self.replay.now + delay, by_host=True)
            self.waiting.parent = self
        else:  # the retry timer fired
            self.attempt += 1
            if self.attempt >= self.policy.max_attempts:
                self.finish(False)
            else:
                self._start_attempt(by_host=True)


class ExtensionReplay:
    """Replays one episode's actions against its history, as the extension does."""

    def __init__(self, actions: list[dict[str, Any]], history: list[Event]) -> None:
        self.actions = actions
        self.history = history
        self.now: datetime = h.parse_time(history[0]["Timestamp"]) if history else datetime.min
        self.next_id = 0
        self.ops: dict[int, Op] = {}
        self.recorded: set[int] = set()
        self.tasks: dict[int, _Atomic] = {}
        self.waiters: dict[str, list[_Event]] = {}
        self.buffered: dict[str, deque[str | None]] = {}
        self.cursor = 0
        self.current: _Task | None = None
        self.started = False
        self.continue_as_new: str | None = None
        self.continued = False

    # --- what the orchestration program does -------------------------------------------
    def schedule_activity(self, name: str, input_: str | None, *, by_host: bool = False) -> _Atomic:
        op = Op(self.next_id, "activity", name=name, input=input_, by_host=by_host)
        return self._add(op)

    def schedule_timer(self, fire_at: datetime, *, by_host: bool = False, canceled: bool = False) -> _Atomic:
        op = Op(self.next_id, "timer", fire_at=fire_at, by_host=by_host, canceled=canceled)
        return self._add(op)

    def _add(self, op: Op) -> _Atomic:
        self.next_id += 1
        self.ops[op.task_id] = op
        task = _Atomic(op)
        self.tasks[op.task_id] = task
        return task

    def _invoke(self, action: dict[str, Any]) -> _Task:
        action_type = int(action.get("actionType", -1))
        if action_type == 0:
            return self.schedule_activity(action["functionName"], action.get("input"))
        if action_type == 1:
            return _Retry(self, action["functionName"], action.get("input"),
                          RetryPolicy.from_json(action.get("retryOptions") or {}))
        if action_type == 5:
            canceled = bool(action.get("isCanceled"))
            task = self.schedule_timer(h.parse_time(action["fireAt"]), canceled=canceled)
            if canceled:  # the extension cancels the timer's token: its task ends at once
                task.finish(False)
            return task
        if action_type == 6:
            return self._wait_for_event(action["externalEventName"])
        if action_type == 4:
            self.continued = True
            self.continue_as_new = action.get("input")
            done = _Task()
            done.finish(True)
            return done
        if action_type in (11, 12):
            children = [self._invoke(child) for child in action.get("compoundActions") or []]
            if action_type == 12:
                return _WhenAll(children)
            if not children:
                raise ReplayError(
                    "task_any() over tasks that were all scheduled before: the orchestrator sends the Durable "
                    "extension an empty WhenAny, and the extension fails the orchestration (Task.WhenAny of "
                    "no tasks). Race fresh tasks, e.g. create a new timer for each task_any().")
            return _WhenAny(children)
        if action_type in _UNSUPPORTED:
            raise UnsupportedActionError(
                f"{_UNSUPPORTED[action_type]} is not implemented by the devhost Durable engine "
                "(it runs activities, timers, external events, retries and continue-as-new).")
        raise ReplayError(f"Received an unexpected action type from the out-of-proc function: {action_type!r}.")

    def _wait_for_event(self, name: str) -> _Event:
        task = _Event(name)
        queue = self.buffered.get(name)
        if queue:  # an event that arrived before anyone waited: delivered first-in, first-out
            queue.popleft()
            task.finish(True)
        else:  # waiters form a stack: the newest wait gets the next event (as in the extension)
            self.waiters.setdefault(name, []).append(task)
        return task

    def _advance(self) -> None:
        while self.current is None or self.current.done:
            if self.cursor >= len(self.actions):
                return
            action = self.actions[self.cursor]
            self.cursor += 1
            self.current = self._invoke(action)

    # --- the history ---------------------------------------------------------------------
    def run(self) -> ReplayResult:
        for index, event in enumerate(self.history):
            event_type = h.kind(event)
            if event_type == EventType.ORCHESTRATOR_STARTED:
                self.now = max(self.now, h.parse_time(event["Timestamp"]))
            elif event_type == EventType.EXECUTION_STARTED:
                self.started = True
                self._advance()
            elif event_type == EventType.TASK_SCHEDULED:
                self._match(index, event, "activity")
            elif event_type == EventType.TIMER_CREATED:
                self._match(index, event, "timer")
            elif event_type in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
                self._complete(event["TaskScheduledId"], event_type == EventType.TASK_COMPLETED)
            elif event_type == EventType.TIMER_FIRED:
                self._complete(event["TimerId"], True)
            elif event_type == EventType.EVENT_RAISED:
                self._raise(event["Name"], event.get("Input"))
            elif event_type in (EventType.EXECUTION_COMPLETED, EventType.EXECUTION_TERMINATED,
                                EventType.CONTINUE_AS_NEW):
                break
        finished = self.cursor >= len(self.actions) and (self.current is None or self.current.done)
        new_ops = [op for task_id, op in sorted(self.ops.items()) if task_id not in self.recorded]
        pending = [op for task_id, op in sorted(self.ops.items())
                   if op.kind == "timer" and not op.canceled and not self.tasks[task_id].done]
        result = ReplayResult(new_ops=new_ops, finished=finished, continue_as_new=self.continue_as_new,
                              continued=self.continued, ops=dict(self.ops), pending_timers=pending)
        if not finished and self.current is not None:
            result.blocked_on = self._describe_action(self.actions[self.cursor - 1], self.cursor - 1)
            behind = [a for a in self.actions[self.cursor:] if _schedules(a)]
            if behind:
                result.divergence = (
                    f"the Durable extension is still waiting on {result.blocked_on}, which the SDK already "
                    f"considers complete, so it does not schedule the {len(behind)} action(s) after it "
                    f"(first: {self._describe_action(behind[0], self.actions.index(behind[0]))}). In Azure this "
                    "instance stalls the same way until that action completes. Typical cause: task_any()/"
                    "task_all() over a task that was already yielded before (e.g. one deadline timer reused "
                    "in a loop); race freshly created tasks instead.")
        return result

    def _match(self, index: int, event: Event, expected: str) -> None:
        task_id = event["EventId"]
        op = self.ops.get(task_id)
        recorded = self._describe_event(index, event)
        if op is None:
            raise NonDeterminismError(
                f"Non-deterministic orchestrator: history event #{index} {recorded} has no matching action; "
                f"on replay the orchestrator scheduled only {self.next_id} task(s) by that point.")
        if op.kind != expected:
            raise NonDeterminismError(
                f"Non-deterministic orchestrator: history event #{index} {recorded}, but on replay task "
                f"{task_id} is a {op.describe()}.")
        if expected == "activity":
            if op.name != event.get("Name"):
                raise NonDeterminismError(
                    f"Non-deterministic orchestrator: history event #{index} {recorded}, but on replay task "
                    f"{task_id} calls activity {op.name!r}.")
            if not same_json(op.input, event.get("Input")):
                raise NonDeterminismError(
                    f"Non-deterministic orchestrator: history event #{index} {recorded} with input "
                    f"{event.get('Input')}, but on replay it is called with input {op.input}.")
        elif not op.by_host and op.fire_at is not None and event.get("FireAt") \
                and op.fire_at != h.parse_time(event["FireAt"]):
            raise NonDeterminismError(
                f"Non-deterministic orchestrator: history event #{index} {recorded}, but on replay the timer "
                f"fires at {h.format_time(op.fire_at)} (compute deadlines from context.current_utc_datetime).")
        self.recorded.add(task_id)

    def _complete(self, task_id: int, ok: bool) -> None:
        task = self.tasks.get(task_id)
        if task is not None and not task.done:
            task.finish(ok)
        self._advance()

    def _raise(self, name: str, input_: str | None) -> None:
        stack = self.waiters.get(name)
        while stack:
            waiter = stack.pop()
            if not waiter.done:
                waiter.finish(True)
                self._advance()
                return
        self.buffered.setdefault(name, deque()).append(input_)

    @staticmethod
    def _describe_event(index: int, event: Event) -> str:
        if h.kind(event) == EventType.TASK_SCHEDULED:
            return f"TaskScheduled (task {event['EventId']}, activity {event.get('Name')!r})"
        return f"TimerCreated (task {event['EventId']}, fire at {event.get('FireAt')})"

    @staticmethod
    def _describe_action(action: dict[str, Any], index: int) -> str:
        action_type = int(action.get("actionType", -1))
        label = _ACTION_NAMES.get(action_type, str(action_type))
        detail = action.get("functionName") or action.get("externalEventName") or action.get("fireAt") or ""
        if action_type in (11, 12):
            inner = ", ".join(ExtensionReplay._describe_action(c, index) for c in action.get("compoundActions") or [])
            return f"action #{index} {label}[{inner}]"
        return f"action #{index} {label}({detail})" if detail else f"action #{index} {label}"


def _schedules(action: dict[str, Any]) -> bool:
    """Whether an action makes the extension record work (so skipping it changes the outcome)."""
    action_type = int(action.get("actionType", -1))
    if action_type in (11, 12):
        return any(_schedules(c) for c in action.get("compoundActions") or [])
    return action_type != 6
