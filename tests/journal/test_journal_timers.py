"""devhost runs timer triggers as the Functions host does: NCRONTAB schedules, and on demand
through ``POST /admin/functions/{name}`` with the master key."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import journal_timer_app
import pytest

from devhost.functions import FunctionIndex
from devhost.server import FunctionsHttpServer
from devhost.timers import ScheduleError, TimerHost, attach_timers, next_occurrence, resolve_schedule

KEY = "test-master-key"


@pytest.mark.parametrize(("expression", "env", "resolved"), [
    ("0 */5 * * * *", {}, "0 */5 * * * *"),
    ("%SEAL%", {"SEAL": "30 0 * * * MON-FRI"}, "30 0 * * * MON-FRI"),
    ("  0 0 12 * * 0 ", {}, "0 0 12 * * 0"),
])
def test_schedules_resolve_settings_and_need_six_fields(expression, env, resolved):
    assert resolve_schedule(expression, env) == resolved


@pytest.mark.parametrize(("expression", "env", "problem"), [
    ("0 */5 * * *", {}, "six fields"),
    ("%MISSING%", {}, "does not resolve"),
    ("0 0 25 * * *", {}, "not a valid"),
    ("00:05:00", {}, "six fields"),
])
def test_schedules_the_host_would_refuse_are_refused(expression, env, problem):
    with pytest.raises(ScheduleError, match=problem):
        resolve_schedule(expression, env)


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    ("0 */5 * * * *", datetime(2025, 6, 14, 10, 2, 11, tzinfo=UTC), datetime(2025, 6, 14, 10, 5, tzinfo=UTC)),
    ("0 */5 * * * *", datetime(2025, 6, 14, 10, 5, tzinfo=UTC), datetime(2025, 6, 14, 10, 10, tzinfo=UTC)),
    ("*/10 * * * * *", datetime(2025, 6, 14, 10, 2, 11, tzinfo=UTC), datetime(2025, 6, 14, 10, 2, 20, tzinfo=UTC)),
    ("0 30 9 * * MON", datetime(2025, 6, 14, 10, 0, tzinfo=UTC), datetime(2025, 6, 16, 9, 30, tzinfo=UTC)),
])
def test_next_occurrence_reads_seconds_first(schedule, after, expected):
    assert next_occurrence(schedule, after) == expected


@pytest.fixture(scope="module")
def index() -> FunctionIndex:
    return FunctionIndex("journal_timer_app")  # the app's function list can be built once per process


@pytest.fixture
def server(index: FunctionIndex) -> Iterator[FunctionsHttpServer]:
    srv = FunctionsHttpServer(("127.0.0.1", 0), index)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _wait_for(name: str, count: int = 1, timeout: float = 10.0) -> list[tuple[str, bool]]:
    deadline = time.monotonic() + timeout
    with journal_timer_app.RAN:
        while sum(1 for n, _ in journal_timer_app.RUNS if n == name) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{name} did not run {count} time(s): {journal_timer_app.RUNS}")
            journal_timer_app.RAN.wait(left)
        return [r for r in journal_timer_app.RUNS if r[0] == name]


def test_the_admin_api_runs_a_timer_function_on_demand(server):
    journal_timer_app.RUNS.clear()
    env = {"DEVHOST_ADMIN_KEY": KEY, "JOURNAL_TEST_SCHEDULE": "0 0 * * * *"}
    timers = attach_timers(server, schedule=False, env=env)
    url = f"{server.base_url}/admin/functions"
    with httpx.Client(timeout=10) as http:
        assert http.post(f"{url}/yearly", json={"input": ""}).status_code == 401
        assert http.post(f"{url}/yearly", headers={"x-functions-key": "wrong"}).status_code == 401
        r = http.post(f"{url}/yearly", json={"input": ""}, headers={"x-functions-key": KEY})
        assert r.status_code == 202 and r.content == b""
        assert _wait_for("yearly") == [("yearly", False)]
        assert http.post(f"{url}/configured", params={"code": KEY}).status_code == 202  # async, key in ?code=
        _wait_for("configured")
        missing = http.post(f"{url}/nope", headers={"x-functions-key": KEY})
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        broken = http.post(f"{url}/five_fields", headers={"x-functions-key": KEY})
        assert broken.status_code == 404 and "six fields" in broken.json()["detail"]
        assert http.get(f"{url}/yearly", headers={"x-functions-key": KEY}).status_code == 405
        bad = http.post(f"{url}/yearly", content=b"{", headers={"x-functions-key": KEY})
        assert bad.status_code == 400
        assert http.get(f"{server.base_url}/api/hello").text == "hi"  # HTTP functions still served
    assert "five_fields" in timers.errors and "every_second" in timers.functions
    assert [n for n, _ in journal_timer_app.RUNS].count("yearly") == 1


def test_without_a_key_the_admin_api_is_off(server):
    attach_timers(server, schedule=False, env={})
    r = httpx.post(f"{server.base_url}/admin/functions/yearly", headers={"x-functions-key": ""}, timeout=10)
    assert r.status_code == 401 and r.json()["code"] == "admin_disabled"


def test_timer_functions_fire_on_their_schedule(server):
    journal_timer_app.RUNS.clear()
    timers = attach_timers(server, schedule=True, env={"JOURNAL_TEST_SCHEDULE": "0 0 0 1 1 *"})
    try:
        runs = _wait_for("every_second", count=2, timeout=6)
    finally:
        timers.stop()
    assert runs[:2] == [("every_second", False), ("every_second", False)]
    assert {n for n, _ in journal_timer_app.RUNS} == {"every_second"}


def test_a_timer_never_overlaps_itself():
    gate = threading.Event()
    started = threading.Event()
    runs: list[bool] = []

    class Fn:  # what FunctionIndex hands over: the decorated function's builder view
        def get_function_name(self) -> str:
            return "slow"

        def get_trigger(self):
            return type("T", (), {"schedule": "* * * * * *", "run_on_startup": False, "name": "timer"})()

        def get_user_function(self):
            def slow(timer):
                started.set()
                gate.wait(5)
                runs.append(timer.past_due)
            return slow

    host = TimerHost([Fn()], run_async=lambda c: None, admin_key=None, env={})
    first = threading.Thread(target=host.invoke, args=("slow",))
    first.start()
    assert started.wait(5)
    assert host.invoke("slow", wait_if_running=False) is False  # a scheduled occurrence is skipped
    gate.set()
    first.join(5)
    assert runs == [False]
