"""Fair share of a target end to end: one caller's slow reads cannot make another caller's read fail."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.test_execute import reader

# a read that works (no sleeping: pg_sleep is not a read) until the 5 s statement timeout stops it
SLOW = "SELECT count(*) FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 100000) b"


def test_ten_slow_reads_of_one_caller_leave_room_for_another_callers_read(api, stack):
    token = api.token("devin")

    def slow(_: int) -> tuple[float, httpx.Response]:
        with httpx.Client(base_url=stack.base_url, timeout=60) as http:
            sent = time.monotonic()
            r = http.post("/api/execute", json={"target": "demo-postgres", "sql": SLOW},
                          headers={"Authorization": f"Bearer {token}"})
            return time.monotonic() - sent, r

    with ThreadPoolExecutor(10) as pool:
        hogs = [pool.submit(slow, i) for i in range(10)]
        time.sleep(1.0)  # the hog's admitted reads are running now
        sent = time.monotonic()
        other = api.execute({"target": "demo-postgres", "sql": "SELECT 1 AS one"}, identity="devin2")
        other_seconds = time.monotonic() - sent
        answers = [f.result() for f in hogs]

    assert other.status_code == 200, other.text
    assert other.json()["rows"] == [[1]] and other_seconds < 3  # it did not wait for the hog
    statuses = sorted(r.status_code for _, r in answers)
    assert statuses == [429] * 8 + [504] * 2, statuses  # two ran (until the timeout); eight never did
    for seconds, r in answers:
        if r.status_code != 429:
            continue
        problem = r.json()
        assert problem["code"] == "too_many_requests" and problem["limit"] == 2
        assert r.headers["retry-after"] == "1" and r.headers["content-type"].startswith("application/problem+json")
        assert seconds < 2.5  # answered at once, not after a pool wait


def test_a_refused_call_is_journaled_as_denied_and_never_as_intent(api, stack):
    token = api.token("devin")
    reason = f"fair-share {uuid.uuid4()}"
    since = datetime.now(UTC) - timedelta(seconds=5)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(lambda: httpx.post(f"{stack.base_url}/api/execute", timeout=60,
                                                  json={"target": "demo-postgres", "sql": SLOW, "reason": reason},
                                                  headers={"Authorization": f"Bearer {token}"}))
                   for _ in range(3)]
        answers = [f.result() for f in futures]
    assert sorted(r.status_code for r in answers) == [429, 504, 504]
    records = [s.record for s in reader(stack).iter_range(since, datetime.now(UTC) + timedelta(seconds=5))
               if s.record.reason == reason]
    by_request: dict[str, list[str]] = {}
    for record in records:
        by_request.setdefault(record.request_id, []).append(record.event)
    assert sorted(sorted(events) for events in by_request.values()) == [
        ["execute.denied"], ["execute.intent", "execute.outcome"], ["execute.intent", "execute.outcome"]]
    denied = next(r for r in records if r.event == "execute.denied")
    assert denied.outcome == {"status": "refused", "code": "too_many_requests"}
