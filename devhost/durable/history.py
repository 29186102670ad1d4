"""History events in the JSON shape the Durable extension hands to out-of-process workers.

The extension serialises DurableTask (DTFx) ``HistoryEvent`` objects with their .NET property
names (``EventType`` as an integer, ``EventId``, ``IsPlayed``, ``Timestamp`` and the fields of
each event type); the Python SDK reads them back with ``HistoryEvent(**event)``. Events here are
plain dicts in exactly that shape, so they go to the SDK unchanged and into Table storage as
columns. Nothing in this module talks to storage or runs user code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from azure.durable_functions.models.history import HistoryEventType as EventType

Event = dict[str, Any]

# What the SDK itself uses (constants.DATETIME_STRING_FORMAT); DTFx writes 7 fractional digits,
# which the SDK's dateutil parser reads the same way.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class OrchestrationStatus(IntEnum):
    """DTFx ``OrchestrationStatus``; the names are the runtime statuses clients see."""

    Running = 0
    Completed = 1
    ContinuedAsNew = 2
    Failed = 3
    Canceled = 4
    Terminated = 5
    Pending = 6


TERMINAL = frozenset({"Completed", "Failed", "Canceled", "Terminated"})
ACTIVE = frozenset({"Pending", "Running", "ContinuedAsNew"})


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _event(event_type: EventType, timestamp: datetime, event_id: int = -1, **fields: Any) -> Event:
    return {"EventType": int(event_type), "EventId": event_id, "IsPlayed": False,
            "Timestamp": format_time(timestamp), **fields}


def kind(event: Event) -> EventType:
    return EventType(event["EventType"])


def orchestrator_started(at: datetime) -> Event:
    return _event(EventType.ORCHESTRATOR_STARTED, at)


def orchestrator_completed(at: datetime) -> Event:
    return _event(EventType.ORCHESTRATOR_COMPLETED, at)


def execution_started(at: datetime, instance_id: str, execution_id: str, name: str, input_: str | None) -> Event:
    return _event(EventType.EXECUTION_STARTED, at,
                  OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
                  ParentInstance=None, Name=name, Version="", Input=input_, Tags=None)


def task_scheduled(at: datetime, task_id: int, name: str, input_: str | None) -> Event:
    return _event(EventType.TASK_SCHEDULED, at, task_id, Name=name, Version="", Input=input_)


def task_completed(at: datetime, task_id: int, result: str | None) -> Event:
    return _event(EventType.TASK_COMPLETED, at, TaskScheduledId=task_id, Result=result)


def task_failed(at: datetime, task_id: int, reason: str, details: str | None) -> Event:
    return _event(EventType.TASK_FAILED, at, TaskScheduledId=task_id, Reason=reason, Details=details)


def timer_created(at: datetime, timer_id: int, fire_at: datetime) -> Event:
    return _event(EventType.TIMER_CREATED, at, timer_id, FireAt=format_time(fire_at))


def timer_fired(at: datetime, timer_id: int, fire_at: str) -> Event:
    return _event(EventType.TIMER_FIRED, at, TimerId=timer_id, FireAt=fire_at)


def event_raised(at: datetime, name: str, input_: str | None) -> Event:
    return _event(EventType.EVENT_RAISED, at, Name=name, Input=input_)


def execution_terminated(at: datetime, reason: str | None) -> Event:
    return _event(EventType.EXECUTION_TERMINATED, at, Input=reason)


def execution_completed(at: datetime, status: OrchestrationStatus, result: str | None) -> Event:
    return _event(EventType.EXECUTION_COMPLETED, at, OrchestrationStatus=int(status), Result=result)


def continued_as_new(at: datetime, input_: str | None) -> Event:
    return _event(EventType.CONTINUE_AS_NEW, at, OrchestrationStatus=int(OrchestrationStatus.ContinuedAsNew),
                  Result=input_)


def for_worker(past: list[Event], new: list[Event]) -> list[Event]:
    """The history as the worker receives it: past events marked as played, new ones not."""
    return [{**e, "IsPlayed": True} for e in past] + [{**e, "IsPlayed": False} for e in new]


def for_status(history: list[Event], *, show_output: bool, show_input: bool) -> list[dict[str, Any]]:
    """The history as the extension's status API shows it (``showHistory=true``).

    Like the extension: event types by name, each TaskScheduled folded into its completion
    (FunctionName, ScheduledTime), orchestrator episode markers and ids dropped, results only
    with ``showHistoryOutput``.
    """
    from devhost.durable.payloads import token

    scheduled: dict[int, Event] = {}
    out: list[dict[str, Any]] = []
    for event in history:
        event_type = kind(event)
        item = {k: v for k, v in event.items() if k not in ("EventId", "IsPlayed")}
        item["EventType"] = event_type_name(event_type)
        if event_type in (EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED):
            continue
        if event_type == EventType.TASK_SCHEDULED:
            scheduled[event["EventId"]] = event
            continue
        if event_type in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
            origin = scheduled.get(item.pop("TaskScheduledId", -1))
            if origin is not None:
                item["ScheduledTime"] = origin["Timestamp"]
                item["FunctionName"] = origin["Name"]
                item["Input"] = origin.get("Input")
            if event_type == EventType.TASK_COMPLETED:
                result = item.pop("Result", None)
                if show_output:
                    item["Result"] = token(result)
        elif event_type == EventType.EXECUTION_STARTED:
            item["FunctionName"] = item.pop("Name", None)
            for key in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                item.pop(key, None)
        elif event_type == EventType.EXECUTION_COMPLETED:
            item["OrchestrationStatus"] = OrchestrationStatus(item["OrchestrationStatus"]).name
            result = item.pop("Result", None)
            if show_output:
                item["Result"] = token(result)
        elif event_type == EventType.TIMER_FIRED:
            item.pop("TimerId", None)
        if not show_input:
            item.pop("Input", None)
        out.append(item)
    return out


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_BY_NAME = {_pascal(t.name): t for t in EventType}


def event_type_name(event_type: EventType) -> str:
    """``TASK_SCHEDULED`` -> ``TaskScheduled``, the name DTFx and the status API use."""
    return _pascal(EventType(event_type).name)


def event_type_from_name(name: str) -> EventType:
    return _BY_NAME[name]
