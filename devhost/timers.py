"""Timer triggers, as the Functions host runs them: ``@app.timer_trigger`` functions fire on their
NCRONTAB schedule (six fields, seconds first, UTC; ``%SETTING%`` resolved from the environment),
and on demand through the host's admin API, ``POST /admin/functions/{name}`` with the master key
in ``x-functions-key`` (here: the key in ``DEVHOST_ADMIN_KEY``; without it the admin API is off).

Like the host, a timer function never overlaps itself: a scheduled occurrence that finds the
previous run still going is skipped, and an on-demand run waits for it.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from azure.functions.timer import TimerRequest
from croniter import croniter

log = logging.getLogger("devhost.timers")

ADMIN_KEY_ENV = "DEVHOST_ADMIN_KEY"
ADMIN_PREFIX = "/admin/functions/"
PAST_DUE_AFTER = timedelta(seconds=5)
_SETTING = re.compile(r"%([A-Za-z0-9_.:-]+)%")
_ADMIN_PATH = re.compile(r"^/admin/functions/(?P<name>[A-Za-z0-9_-]+)/?$")


class ScheduleError(ValueError):
    """A schedule the Functions host would refuse."""


def resolve_schedule(expression: str, env: Mapping[str, str]) -> str:
    """Substitute ``%SETTING%`` and check it is a six-field NCRONTAB expression."""

    def setting(m: re.Match[str]) -> str:
        if m[1] not in env:
            raise ScheduleError(f"'%{m[1]}%' does not resolve to a value")
        return env[m[1]]

    resolved = _SETTING.sub(setting, expression).strip()
    if len(resolved.split()) != 6:
        raise ScheduleError(f"{resolved!r} is not an NCRONTAB expression: it needs six fields "
                            "({second} {minute} {hour} {day} {month} {day-of-week})")
    if not croniter.is_valid(resolved, second_at_beginning=True):
        raise ScheduleError(f"{resolved!r} is not a valid NCRONTAB expression")
    return resolved


def next_occurrence(schedule: str, after: datetime) -> datetime:
    """The first occurrence strictly after ``after`` (UTC)."""
    return croniter(schedule, after.astimezone(UTC), second_at_beginning=True).get_next(datetime)


@dataclass
class TimerFunction:
    name: str
    function: Callable[..., Any]
    trigger_param: str
    schedule: str
    run_on_startup: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: datetime | None = None


class TimerHost:
    """Runs an app's timer functions. ``run_async`` runs a coroutine to completion (the devhost's
    event loop), for ``async def`` functions."""

    def __init__(self, functions: list[Any], run_async: Callable[[Any], Any], *, admin_key: str | None,
                 env: Mapping[str, str], clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._run_async = run_async
        self._admin_key = admin_key or ""
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.functions: dict[str, TimerFunction] = {}
        self.errors: dict[str, str] = {}
        for fn in functions:
            trigger = fn.get_trigger()
            name = fn.get_function_name()
            try:
                schedule = resolve_schedule(trigger.schedule, env)
            except ScheduleError as exc:
                self.errors[name] = str(exc)
                log.error("timer function %s is in error: %s", name, exc)
                continue
            self.functions[name] = TimerFunction(name, fn.get_user_function(), trigger.name, schedule,
                                                 bool(trigger.run_on_startup))

    # --- running ---
    def invoke(self, name: str, *, wait_if_running: bool = True, past_due: bool = False) -> bool:
        """Run one occurrence now, in this thread; False when skipped (the previous still running)."""
        timer = self.functions[name]
        if not timer.lock.acquire(blocking=wait_if_running):
            log.warning("timer %s: previous run still going; this occurrence is skipped", name)
            return False
        try:
            now = self._clock()
            request = TimerRequest(past_due=past_due, schedule={"AdjustForDST": True}, schedule_status={
                "Last": (timer.last or now).isoformat(), "Next": next_occurrence(timer.schedule, now).isoformat(),
                "LastUpdated": now.isoformat()})
            params = inspect.signature(timer.function).parameters
            kwargs: dict[str, Any] = {timer.trigger_param: request}
            if "context" in params:
                kwargs["context"] = None
            result = timer.function(**kwargs)
            if inspect.isawaitable(result):
                self._run_async(result)
            timer.last = now
            log.info("timer %s ran", name)
        except Exception:
            log.exception("timer function %s failed", name)
        finally:
            timer.lock.release()
        return True

    def trigger(self, name: str, *, scheduled: bool = False, past_due: bool = False) -> None:
        """Run one occurrence in the background (as the host does for schedules and the admin API)."""
        threading.Thread(target=self.invoke, args=(name,), kwargs={"wait_if_running": not scheduled,
                         "past_due": past_due}, name=f"timer-{name}", daemon=True).start()

    def start(self) -> None:
        for timer in self.functions.values():
            if timer.run_on_startup:
                self.trigger(timer.name, scheduled=True)
        self._thread = threading.Thread(target=self._loop, name="devhost-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        if not self.functions:
            return
        now = self._clock()
        due = {name: next_occurrence(t.schedule, now) for name, t in self.functions.items()}
        while not self._stop.is_set():
            name, when = min(due.items(), key=lambda item: item[1])
            wait = (when - self._clock()).total_seconds()
            if wait > 0:
                self._stop.wait(min(wait, 30.0))
                continue
            late = self._clock() - when
            self.trigger(name, scheduled=True, past_due=late > PAST_DUE_AFTER)
            due[name] = next_occurrence(self.functions[name].schedule, max(when, self._clock() - PAST_DUE_AFTER))

    # --- the admin API ---
    def handle_admin(self, handler: BaseHTTPRequestHandler) -> bool:
        """``POST /admin/functions/{name}``: 202 and the function runs; 401 without the key."""
        split = urlsplit(handler.path)
        m = _ADMIN_PATH.match(split.path)
        if not m:
            return False
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if handler.command != "POST":
            return _reply(handler, 405, "method_not_allowed", "Use POST to run a function.")
        given = handler.headers.get("x-functions-key") or dict(parse_qsl(split.query)).get("code", "")
        if not self._admin_key:
            return _reply(handler, 401, "admin_disabled", f"The admin API is off: set {ADMIN_KEY_ENV}.")
        if not hmac.compare_digest(given.encode(), self._admin_key.encode()):
            return _reply(handler, 401, "unauthorized", "The admin API needs the master key in x-functions-key.")
        name = next((n for n in self.functions if n.lower() == m["name"].lower()), None)
        if name is None:
            detail = self.errors.get(m["name"], "No timer function has this name.")
            return _reply(handler, 404, "not_found", detail)
        if body:
            try:
                json.loads(body)
            except ValueError:
                return _reply(handler, 400, "invalid_json", 'Send {"input": "..."} or no body.')
        self.trigger(name)
        return _reply(handler, 202, "", "")


def attach_timers(server: Any, *, schedule: bool = True, env: Mapping[str, str] | None = None) -> TimerHost:
    """Give a devhost server its timer functions (on their schedule unless ``schedule`` is False)
    and the admin API route."""
    env = os.environ if env is None else env
    timers = TimerHost(server.index.by_trigger.get("timerTrigger", []), server.runner.run,
                       admin_key=env.get(ADMIN_KEY_ENV), env=env)
    server.extra_routes[ADMIN_PREFIX] = timers.handle_admin
    if schedule:
        timers.start()
    return timers


def _reply(handler: BaseHTTPRequestHandler, status: int, code: str, detail: str) -> bool:
    body = json.dumps({"status": status, "code": code, "detail": detail}).encode() if code else b""
    handler.send_response(status)
    if body:
        handler.send_header("Content-Type", "application/problem+json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    return True
