"""The work loops inside the devhost process: orchestration episodes, activities, timers.

Storage is the source of truth; the in-memory queues only say "look at this now". A message
(start, event, activity result, timer, terminate) is a row in the instance's inbox before anyone
is told; pending activities and timers are read back from the histories when the devhost starts.
So a devhost that is killed and started again picks up exactly where the storage says it was.

Delivery guarantees (see docs/devhost.md):

* an episode commits atomically (one entity-group transaction, ETag-checked), so every message is
  applied once; a result recorded twice is recognised by its task id and dropped;
* an activity runs at least once: it is re-run after a restart only if the devhost died after the
  activity started and before its result was stored (then its start marker says attempt 2 and the
  engine logs a warning). Side effects that must not repeat need an idempotency key — derive it
  from ``context.instance_id`` in the orchestrator and pass it in the activity input.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devhost.durable import history as h
from devhost.durable.episode import plan_episode
from devhost.durable.history import EventType
from devhost.durable.model import ActivityWork, InstanceRecord, Message, TimerWork, activity_marker_key
from devhost.durable.store import ConcurrencyError
from devhost.durable.worker import ActivityOutcome, run_activity

if TYPE_CHECKING:
    from devhost.durable.engine import DurableEngine

log = logging.getLogger("devhost.durable")
_STOP = object()


class Dispatcher:
    def __init__(self, engine: DurableEngine) -> None:
        self.engine = engine
        self._lock = threading.Condition()
        self._episodes: queue.Queue[Any] = queue.Queue()
        self._activities: queue.Queue[Any] = queue.Queue()
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._dirty: set[str] = set()
        self._running_activities = 0
        self._queued_activities = 0
        self._timers: list[TimerWork] = []
        self._firing = 0
        self._timer_wakeup = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.listeners: list[Callable[[str], None]] = []  # called with an instance id after each commit

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        settings = self.engine.settings
        for i in range(settings.orchestrator_workers):
            self._spawn(self._episode_loop, f"devhost-orchestrator-{i}")
        for i in range(settings.activity_workers):
            self._spawn(self._activity_loop, f"devhost-activity-{i}")
        self._spawn(self._timer_loop, "devhost-timers")
        self.engine.clock.on_change(self._wake_timers)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, grace: float = 10.0) -> None:
        """Stop taking work; let running episodes and activities finish (up to ``grace`` seconds)."""
        self._stopping.set()
        for _ in range(self.engine.settings.orchestrator_workers):
            self._episodes.put(_STOP)
        for _ in range(self.engine.settings.activity_workers):
            self._activities.put(_STOP)
        self._wake_timers()
        per_thread = grace / max(1, len(self._threads))
        for thread in self._threads:
            thread.join(per_thread)

    # --- recovery ------------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild pending work from storage: inbox messages, unfinished activities, timers."""
        store = self.engine.store
        projections = {p["PartitionKey"]: p for p in store.projections()}
        for state in store.all_instances():
            seen = projections.get(state.instance_id) or {}
            if (seen.get("RuntimeStatus"), seen.get("ExecutionId")) != (state.status, state.execution_id):
                store.project(state)
            if not state.active:
                continue
            record = store.load(state.instance_id)
            if record is None:
                continue
            self._recover_instance(record)

    def _recover_instance(self, record: InstanceRecord) -> None:
        state = record.state
        if record.messages:
            self.notify(state.instance_id)
        if state.status != "Running":
            return
        waiting = {m.task_id for m in record.messages if m.kind in ("task", "timer")
                   and m.execution_id == state.execution_id}
        done = {e.get("TaskScheduledId") for e in record.history
                if h.kind(e) in (EventType.TASK_COMPLETED, EventType.TASK_FAILED)}
        done |= {e.get("TimerId") for e in record.history if h.kind(e) == EventType.TIMER_FIRED}
        for event in record.history:
            task_id = event.get("EventId")
            if task_id in done or task_id in waiting:
                continue
            if h.kind(event) == EventType.TASK_SCHEDULED:
                self.submit_activity(ActivityWork(state.instance_id, state.execution_id, task_id, event["Name"],
                                                  event.get("Input")))
            elif h.kind(event) == EventType.TIMER_CREATED:
                fire_at = h.parse_time(event["FireAt"])
                self.add_timer(TimerWork(fire_at, state.instance_id, state.execution_id, task_id, event["FireAt"]))

    # --- orchestrations ------------------------------------------------------------------
    def notify(self, instance_id: str) -> None:
        """The instance has (or may have) new messages: run an episode for it soon."""
        with self._lock:
            if instance_id in self._busy:
                self._dirty.add(instance_id)
            elif instance_id not in self._queued:
                self._queued.add(instance_id)
                self._episodes.put(instance_id)

    def _episode_loop(self) -> None:
        while True:
            instance_id = self._episodes.get()
            if instance_id is _STOP:
                return
            with self._lock:
                self._queued.discard(instance_id)
                self._busy.add(instance_id)
            again = False
            try:
                again = self._run_episode(instance_id)
            except Exception:
                log.exception("episode for instance %s failed; it will be retried", instance_id)
                self._stopping.wait(0.5)
                again = not self._stopping.is_set()
            finally:
                with self._lock:
                    self._busy.discard(instance_id)
                    if instance_id in self._dirty or again:
                        self._dirty.discard(instance_id)
                        if not self._stopping.is_set():
                            self._queued.add(instance_id)
                            self._episodes.put(instance_id)
                    self._lock.notify_all()

    def _run_episode(self, instance_id: str) -> bool:
        """One episode; True when the instance needs another one right away."""
        engine = self.engine
        for _ in range(5):
            t0 = time.perf_counter()
            record = engine.store.load(instance_id)
            if record is None or not record.messages:
                return False
            t1 = time.perf_counter()
            plan = plan_episode(record.state, record.history, record.messages, set(record.markers),
                                engine.clock.now(), engine.index.orchestrators, engine.settings.replay_timeout)
            t2 = time.perf_counter()
            if not plan.changes_state:
                engine.store.delete_rows(instance_id, plan.consumed)
                return False
            try:
                engine.store.commit(plan.state, record.state.history_length, plan.new_events, plan.consumed,
                                    plan.new_messages, reset=plan.reset_history)
            except ConcurrencyError:
                log.warning("instance %s changed under this episode; replaying again", instance_id)
                continue
            t3 = time.perf_counter()
            engine.store.project(plan.state)
            log.debug("episode %s: load %.1f ms, replay %.1f ms, commit %.1f ms, project %.1f ms", instance_id,
                      (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (time.perf_counter() - t3) * 1e3)
            if plan.state.status != record.state.status:
                log.info("instance %s (%s): %s -> %s", instance_id, plan.state.name, record.state.status,
                         plan.state.status)
            for work in plan.activities:
                self.submit_activity(work)
            for timer in plan.timers:
                self.add_timer(timer)
            for listener in self.listeners:
                listener(instance_id)
            return bool(plan.new_messages)
        raise ConcurrencyError(instance_id)

    # --- activities ----------------------------------------------------------------------
    def submit_activity(self, work: ActivityWork) -> None:
        with self._lock:
            self._queued_activities += 1
        self._activities.put(work)

    def _activity_loop(self) -> None:
        while True:
            work = self._activities.get()
            if work is _STOP:
                return
            with self._lock:
                self._queued_activities -= 1
                self._running_activities += 1
            try:
                self._run_activity(work)
            except Exception:
                log.exception("activity %s (task %d) of instance %s could not be recorded; it runs again "
                              "when the devhost restarts", work.name, work.task_id, work.instance_id)
            finally:
                with self._lock:
                    self._running_activities -= 1
                    self._lock.notify_all()

    def _run_activity(self, work: ActivityWork) -> None:
        engine = self.engine
        t0 = time.perf_counter()
        marker = activity_marker_key(work.execution_id, work.task_id)
        attempt = engine.store.mark_activity(work.instance_id, marker, engine.clock.now())
        t1 = time.perf_counter()
        if attempt > 1:
            log.warning("activity %s (task %d) of instance %s starts again (attempt %d): the devhost stopped "
                        "after it started and before its result was stored, so it may have run already "
                        "(activities are at-least-once)", work.name, work.task_id, work.instance_id, attempt)
        function = engine.index.activities.get(work.name)
        if function is None:
            outcome = ActivityOutcome(reason=f"The function '{work.name}' doesn't exist, is disabled, or is not an "
                                             "activity function.")
        else:
            outcome = run_activity(function, work.name, work.input, engine.providers, engine.run_async,
                                   engine.settings.function_timeout)
        t2 = time.perf_counter()
        message = Message.task_result(work.execution_id, work.task_id, work.name,
                                      result=outcome.result, reason=outcome.reason, details=outcome.details)
        recorded = engine.store.put_message(work.instance_id, message)
        log.debug("activity %s (task %d) of %s: mark %.1f ms, run %.1f ms, record %.1f ms", work.name, work.task_id,
                  work.instance_id, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (time.perf_counter() - t2) * 1e3)
        if not recorded:
            log.info("activity %s (task %d) of instance %s: result was already recorded", work.name,
                     work.task_id, work.instance_id)
        self.notify(work.instance_id)

    # --- timers --------------------------------------------------------------------------
    def add_timer(self, timer: TimerWork) -> None:
        with self._timer_wakeup:
            heapq.heappush(self._timers, timer)
            self._timer_wakeup.notify_all()

    def _wake_timers(self) -> None:
        with self._timer_wakeup:
            self._timer_wakeup.notify_all()

    def _due(self) -> list[TimerWork]:
        now = self.engine.clock.now()
        due = []
        while self._timers and self._timers[0].fire_at <= now:
            due.append(heapq.heappop(self._timers))
        return due

    def _timer_loop(self) -> None:
        clock = self.engine.clock
        while not self._stopping.is_set():
            with self._timer_wakeup:
                due = self._due()
                if not due:
                    wait = None
                    if self._timers and not clock.manual:
                        wait = max(0.0, (self._timers[0].fire_at - clock.now()).total_seconds())
                    self._timer_wakeup.wait(min(wait, 60.0) if wait is not None else None)
                    continue
                with self._lock:
                    self._firing += len(due)
            for timer in due:
                try:
                    self.engine.store.put_message(timer.instance_id, Message.timer(
                        timer.execution_id, timer.timer_id, timer.fire_at_text))
                    self.notify(timer.instance_id)
                except Exception:
                    log.exception("timer %d of instance %s could not be delivered; retrying", timer.timer_id,
                                  timer.instance_id)
                    self.add_timer(timer)
                    self._stopping.wait(0.5)
                finally:
                    with self._lock:
                        self._firing -= 1
                        self._lock.notify_all()

    # --- observing -----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._timer_wakeup:
            now = self.engine.clock.now()
            due = sum(1 for t in self._timers if t.fire_at <= now)
            waiting = len(self._timers) - due
        with self._lock:
            return {"episodes": len(self._queued) + len(self._busy), "activities":
                    self._queued_activities + self._running_activities, "dueTimers": due + self._firing,
                    "waitingTimers": waiting}

    def idle(self) -> bool:
        counts = self.counts()
        return not (counts["episodes"] or counts["activities"] or counts["dueTimers"])

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no episode, activity or due timer is pending (what tests wait for)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                self._lock.release()
                try:
                    idle = self.idle()
                finally:
                    self._lock.acquire()
                if idle:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
