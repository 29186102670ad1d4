"""Fair share of every target: how many commands one caller, and all callers, run there at once.

Without it a target's connection pool is first come, first served: four ``SELECT pg_sleep(4.8)``
from one agent filled a pool of four and every other caller got 503 after a 3 s pool wait. Here
each caller has its own limit on a target (``Limits.max_concurrent``, settable per policy rule);
a call over it is refused at once with 429 ``too_many_requests`` and ``Retry-After``. Below it,
a call takes one of the target's slots (``Target.max_concurrency``, sized to the engine's pool);
when every slot is taken it queues, and a freed slot goes to the waiting caller that has the
fewest commands running there (the oldest waiter among equals), so one busy caller cannot push
others out. A call that waited ``queue_wait_seconds`` in vain gets 503 ``target_busy`` with
``Retry-After``; nothing of it has run.

One process's view: each Functions instance keeps its own counts (a Flex app scales to several
instances), so the limits hold per instance; the databases' own per-role connection limits are
the cross-instance wall (docs/engines.md).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.problems import TooManyRequests, Unavailable


@dataclass
class _Waiter:
    caller: str
    seq: int
    granted: bool = False


@dataclass
class _TargetSlots:
    running: dict[str, int] = field(default_factory=dict)
    waiting: list[_Waiter] = field(default_factory=list)

    def total(self) -> int:
        return sum(self.running.values())

    def held_by(self, caller: str) -> int:
        """Commands of this caller running or queued here."""
        return self.running.get(caller, 0) + sum(1 for w in self.waiting if w.caller == caller)


class Slot:
    """A held slot of a target; leaving the ``with`` block (or ``release``) frees it, once."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class AdmissionStats:
    """What a target's slots look like now (for health and tests)."""

    running: dict[str, int]
    waiting: dict[str, int]


class Admission:
    """Per-target slots with a per-caller limit and fair hand-over; thread-safe, one per process."""

    def __init__(self, *, default_capacity: int = 4, queue_wait_seconds: float = 3.0) -> None:
        if default_capacity < 1:
            raise ValueError("a target needs at least one slot")
        self._default_capacity = default_capacity
        self._queue_wait = queue_wait_seconds
        self._targets: dict[str, _TargetSlots] = {}
        self._cond = threading.Condition()
        self._seq = itertools.count()

    def admit(self, target: str, caller: str, *, per_caller: int, capacity: int | None = None) -> Slot:
        """Take one of ``target``'s slots for ``caller``; the returned ``Slot`` gives it back on exit.

        Raises TooManyRequests (429) at once when ``caller`` already holds ``per_caller`` there,
        Unavailable (503 ``target_busy``) when no slot frees within the queue wait.
        """
        capacity = capacity or self._default_capacity
        self._acquire(target, caller, per_caller, capacity)
        return Slot(lambda: self._release(target, caller, capacity))

    def stats(self, target: str) -> AdmissionStats:
        with self._cond:
            slots = self._targets.get(target, _TargetSlots())
            waiting: dict[str, int] = {}
            for w in slots.waiting:
                waiting[w.caller] = waiting.get(w.caller, 0) + 1
            return AdmissionStats(dict(slots.running), waiting)

    def _acquire(self, target: str, caller: str, per_caller: int, capacity: int) -> None:
        with self._cond:
            slots = self._targets.setdefault(target, _TargetSlots())
            if slots.held_by(caller) >= per_caller:
                raise TooManyRequests(
                    f"You already have {per_caller} command(s) running on {target}, the most one caller may "
                    "run there at once.", code="too_many_requests", retry_after=1,
                    remedy="Wait for your running commands to finish (see Retry-After), then send this again.",
                    extra={"limit": per_caller})
            if not slots.waiting and slots.total() < capacity:
                slots.running[caller] = slots.running.get(caller, 0) + 1
                return
            waiter = _Waiter(caller, next(self._seq))
            slots.waiting.append(waiter)
            deadline = time.monotonic() + self._queue_wait
            while not waiter.granted:
                left = deadline - time.monotonic()
                if left <= 0:
                    slots.waiting.remove(waiter)
                    self._hand_over(slots, capacity)  # our place may have been the one blocking others
                    raise Unavailable(
                        f"Every connection to {target} is busy with other callers' commands.", code="target_busy",
                        retry_after=max(1, round(self._queue_wait)),
                        remedy="Retry after Retry-After; nothing of this command ran.")
                self._cond.wait(left)

    def _release(self, target: str, caller: str, capacity: int) -> None:
        with self._cond:
            slots = self._targets[target]
            left = slots.running.get(caller, 0) - 1
            if left > 0:
                slots.running[caller] = left
            else:
                slots.running.pop(caller, None)
            self._hand_over(slots, capacity)
            if not slots.running and not slots.waiting:
                self._targets.pop(target, None)

    def _hand_over(self, slots: _TargetSlots, capacity: int) -> None:
        """Give free slots to the waiters whose callers run the fewest commands here (oldest first)."""
        granted = False
        while slots.waiting and slots.total() < capacity:
            chosen = min(slots.waiting, key=lambda w: (slots.running.get(w.caller, 0), w.seq))
            slots.waiting.remove(chosen)
            slots.running[chosen.caller] = slots.running.get(chosen.caller, 0) + 1
            chosen.granted = True
            granted = True
        if granted:
            self._cond.notify_all()
