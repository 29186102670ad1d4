"""Write-once Blob copies of journal records, written right behind the Table row.

The Table row is the durable record the execute path waits for (intent before the command,
outcome before the answer); its immutable copy follows milliseconds later from this queue, so a
call pays for one storage round trip per record instead of two. The copy is made from the exact
canonical bytes that were hashed into the chain, never re-read from the Table, so an edit to the
row in between is still caught by verify.

Fail closed: while a copy cannot be written (storage down, a retry pending) or the backlog is
full, ``check`` refuses, so the broker stops running commands rather than run them without
their immutable copies. A copy whose name already exists is never overwritten; it is reported
and the journal stays refused until an operator looks (it means a bug or tampering). A process
that dies with copies queued (``SIGKILL``) leaves Table rows without copies. The backlog is bounded
by size *and* age (writers wait while more than ``max_backlog`` copies are queued or the oldest has
waited ``max_age`` seconds), so a crash costs at most a few seconds of copies; the sealer then
records those rows in a ``journal.copies_lost`` record (``seal.py``) and ``verify`` names them as
lost in a crash rather than as tampering.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from azure.core.exceptions import AzureError

from broker.problems import Unavailable

log = logging.getLogger("broker.journal")

Put = Callable[[str, bytes, dict[str, str]], None]


# The exposure a crash can cost: at most this many copies, queued at most this long. Measured in
# docs/journal.md ("What a crash still costs"): at the load the devhost sustains, neither is reached.
MAX_BACKLOG = 200
MAX_AGE_S = 2.0


@dataclass(frozen=True)
class _Copy:
    ticket: int
    name: str
    data: bytes
    metadata: dict[str, str]


class CopyQueue:
    def __init__(self, put: Put, *, max_backlog: int = MAX_BACKLOG, max_age: float = MAX_AGE_S, workers: int = 4,
                 backlog_wait: float = 5.0, retry_delays: tuple[float, ...] = (0.05, 0.2, 1.0, 2.0)) -> None:
        self._put = put
        self._max_backlog = max_backlog
        self._max_age = max_age
        self._queued: OrderedDict[int, float] = OrderedDict()  # ticket -> when submitted (oldest first)
        self._tickets = itertools.count()
        self._backlog_wait = backlog_wait
        self._retry_delays = retry_delays
        self._queue: queue.Queue[_Copy | None] = queue.Queue()
        self._pending = 0
        self._failing: str | None = None  # a copy is being retried: refuse new records meanwhile
        self._conflict: str | None = None  # a name already existed: refuse until an operator looks
        self._lock = threading.Condition()
        self._workers = [threading.Thread(target=self._run, name=f"journal-copy-{i}", daemon=True)
                         for i in range(workers)]
        for worker in self._workers:
            worker.start()
        atexit.register(self.flush, 5.0)

    # --- the writer's side ---
    def check(self) -> None:
        """Raise unless new records can be journaled with their copies."""
        with self._lock:
            if self._conflict:
                raise Unavailable("The journal found an existing immutable copy where it was about to write one; "
                                  "it overwrote nothing and refuses to journal until an operator checks it.",
                                  code="journal_unavailable", extra={"reason": "immutable_copy_exists"})
            if self._failing:
                raise Unavailable("The journal's immutable copies cannot be written, so the broker will not run "
                                  "commands.", code="journal_unavailable", extra={"reason": "copies_failing"})
            # A burst faster than copies can be written slows writers down (back-pressure); only a
            # backlog that does not drain within the wait refuses.
            deadline = time.monotonic() + self._backlog_wait
            while self._behind() and not self._failing and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(min(left, 0.05))  # age passes without a notify: look again soon
            if self._behind():
                raise Unavailable("The journal's immutable copies are behind, so the broker will not run commands.",
                                  code="journal_unavailable", extra={"reason": "copies_backlog"})

    def _behind(self) -> bool:
        """Too many copies queued, or the oldest queued too long (the caller holds the lock)."""
        if self._pending >= self._max_backlog:
            return True
        oldest = next(iter(self._queued.values()), None)
        return oldest is not None and time.monotonic() - oldest >= self._max_age

    def submit(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        with self._lock:
            self._pending += 1
            ticket = next(self._tickets)
            self._queued[ticket] = time.monotonic()
        self._queue.put(_Copy(ticket, name, data, metadata))

    # --- state, for health and tests ---
    @property
    def pending(self) -> int:
        return self._pending

    @property
    def oldest_age(self) -> float:
        """Seconds the oldest queued copy has waited (0 when none is queued)."""
        with self._lock:
            oldest = next(iter(self._queued.values()), None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued copy is written (or given up on); True when none is pending."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def close(self, timeout: float = 60.0) -> None:
        self.flush(timeout)
        for _ in self._workers:
            self._queue.put(None)

    # --- the workers ---
    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._write(item)
            with self._lock:
                self._pending -= 1
                self._queued.pop(item.ticket, None)
                self._lock.notify_all()

    def _write(self, item: _Copy) -> None:
        from broker.journal.storage import ImmutableCopyExists

        attempt = 0
        while True:
            try:
                self._put(item.name, item.data, item.metadata)
            except ImmutableCopyExists:
                log.error("journal: immutable copy %s already exists; nothing was overwritten", item.name)
                with self._lock:
                    self._conflict = item.name
                return
            except (AzureError, OSError) as exc:
                delay = self._retry_delays[min(attempt, len(self._retry_delays) - 1)]
                attempt += 1
                with self._lock:
                    self._failing = item.name
                log.warning("journal: copy %s failed (attempt %d, retrying in %.2fs): %s", item.name, attempt,
                            delay, exc)
                time.sleep(delay)
                continue
            with self._lock:
                if self._failing == item.name:
                    self._failing = None
                    self._lock.notify_all()
            return
