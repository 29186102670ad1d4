"""The engine's durable records: an instance's state, the messages waiting for it, work to do."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devhost.durable.history import ACTIVE, TERMINAL, Event


@dataclass
class InstanceState:
    """What the sentinel row of an instance's history partition holds (the commit point)."""

    instance_id: str
    name: str
    execution_id: str
    status: str  # Pending, Running, ContinuedAsNew, Completed, Failed, Terminated
    input: str | None  # JSON text, as ExecutionStarted.Input
    created: datetime
    updated: datetime
    output: str | None = None  # JSON text
    custom_status: str | None = None  # JSON text
    completed: datetime | None = None
    history_length: int = 0
    diagnostics: str | None = None  # the engine's warning about this instance, if any
    etag: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def enqueue_stamp() -> int:
    """A sortable arrival stamp for messages (wall-clock nanoseconds; ties broken by row key)."""
    return time.time_ns()


def unique_suffix() -> str:
    return os.urandom(6).hex()


@dataclass
class Message:
    """A message waiting in an instance's inbox (a row in its history partition).

    Completions and timer firings have deterministic row keys, so recording one twice is a
    no-op: that is what makes an activity's completion idempotent.
    """

    key: str
    kind: str  # start | event | terminate | task | timer
    enqueued: int
    execution_id: str | None = None
    task_id: int | None = None
    name: str | None = None
    data: str | None = None  # start input, event input, activity result, terminate reason
    failed: bool = False
    details: str | None = None
    fire_at: str | None = None

    @staticmethod
    def start(execution_id: str, input_: str | None) -> Message:
        return Message(f"inbox-start-{execution_id}", "start", 0, execution_id=execution_id, data=input_)

    @staticmethod
    def event(name: str, input_: str | None) -> Message:
        stamp = enqueue_stamp()
        return Message(f"inbox-event-{stamp:020d}-{unique_suffix()}", "event", stamp, name=name, data=input_)

    @staticmethod
    def terminate(reason: str | None) -> Message:
        stamp = enqueue_stamp()
        return Message(f"inbox-terminate-{stamp:020d}-{unique_suffix()}", "terminate", stamp, data=reason)

    @staticmethod
    def task_result(execution_id: str, task_id: int, name: str, result: str | None = None,
                    reason: str | None = None, details: str | None = None) -> Message:
        return Message(task_message_key(execution_id, task_id), "task", enqueue_stamp(), execution_id=execution_id,
                       task_id=task_id, name=name, data=result if reason is None else reason,
                       failed=reason is not None, details=details)

    @staticmethod
    def timer(execution_id: str, timer_id: int, fire_at: str) -> Message:
        return Message(f"inbox-timer-{execution_id}-{timer_id:08d}", "timer", enqueue_stamp(),
                       execution_id=execution_id, task_id=timer_id, fire_at=fire_at)


def task_message_key(execution_id: str, task_id: int) -> str:
    return f"inbox-task-{execution_id}-{task_id:08d}"


def activity_marker_key(execution_id: str, task_id: int) -> str:
    return f"act-{execution_id}-{task_id:08d}"


@dataclass(frozen=True)
class ActivityWork:
    """An activity to run: the scheduled task of one execution (stable across restarts)."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass(order=True, frozen=True)
class TimerWork:
    fire_at: datetime
    instance_id: str = field(compare=False)
    execution_id: str = field(compare=False)
    timer_id: int = field(compare=False)
    fire_at_text: str = field(compare=False)


@dataclass
class InstanceRecord:
    """Everything one read of an instance's partition returns."""

    state: InstanceState
    history: list[Event]
    messages: list[Message]
    markers: dict[str, dict[str, Any]]  # activity markers by row key
