"""Builds Durable Task histories for orchestrator tests and replays them through the SDK's real
entry point (the handle the Functions host calls), as the host would for each episode."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.history import HistoryEventType as T

from broker.workflows import approval, grants

START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def orchestrator(name: str) -> Any:
    """The registered orchestrator handle, exactly as the host invokes it."""
    app = df.DFApp()
    app.register_functions(approval.bp)
    app.register_functions(grants.bp)
    for fn in app.get_functions():
        if fn.get_function_name() == name:
            return fn.get_user_function()
    raise KeyError(name)


class History:
    def __init__(self, name: str, payload: Any, start: datetime = START) -> None:
        self.now = start
        self.events: list[dict[str, Any]] = []
        self.payload = payload
        self.episode()
        self._add(T.EXECUTION_STARTED, Name=name, Input=json.dumps(payload), Version="")

    def _add(self, kind: T, event_id: int = -1, **fields: Any) -> History:
        self.events.append({"EventType": int(kind), "EventId": event_id, "IsPlayed": False,
                            "Timestamp": _ts(self.now), **fields})
        return self

    def at(self, when: datetime) -> History:
        self.now = when
        return self

    def later(self, seconds: float) -> History:
        self.now += timedelta(seconds=seconds)
        return self

    def episode(self) -> History:
        """A new orchestrator episode begins (the host appends OrchestratorStarted)."""
        if self.events:
            self._add(T.ORCHESTRATOR_COMPLETED)
        return self._add(T.ORCHESTRATOR_STARTED)

    def scheduled(self, task_id: int, name: str, payload: Any = None) -> History:
        return self._add(T.TASK_SCHEDULED, task_id, Name=name, Input=json.dumps(payload))

    def completed(self, task_id: int, result: Any) -> History:
        return self._add(T.TASK_COMPLETED, TaskScheduledId=task_id, Result=json.dumps(result))

    def failed(self, task_id: int, reason: str) -> History:
        return self._add(T.TASK_FAILED, TaskScheduledId=task_id, Reason=reason, Details=reason)

    def timer_created(self, task_id: int, fire_at: datetime) -> History:
        return self._add(T.TIMER_CREATED, task_id, FireAt=_ts(fire_at))

    def timer_fired(self, task_id: int, fire_at: datetime) -> History:
        return self._add(T.TIMER_FIRED, TimerId=task_id, FireAt=_ts(fire_at))

    def raised(self, name: str, payload: Any) -> History:
        return self._add(T.EVENT_RAISED, Name=name, Input=json.dumps(payload))

    def context(self, instance_id: str = "req-1") -> str:
        return json.dumps({"history": self.events, "instanceId": instance_id, "isReplaying": False,
                           "parentInstanceId": None, "input": json.dumps(self.payload),
                           "upperSchemaVersion": 1})


def replay(name: str, history: History) -> dict[str, Any]:
    """One episode: the orchestrator's state (actions, done, output, custom status)."""
    return json.loads(orchestrator(name)(history.context()))


def actions(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The flat list of actions (schema V2 nests compound actions: flatten them)."""
    out: list[dict[str, Any]] = []

    def walk(a: Any) -> None:
        if isinstance(a, list):
            for x in a:
                walk(x)
        elif "compoundActions" in a:
            out.append({"actionType": a["actionType"]})
            for x in a["compoundActions"]:
                walk(x)
        else:
            out.append(a)

    walk(state["actions"])
    return out
