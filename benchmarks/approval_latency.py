"""How long an approved command takes to become a result: from the approver's Approve click (the
form POST) to the masked result being available at the agent's status URL.

    .venv/bin/python benchmarks/approval_latency.py [--runs 20]

Starts its own dev stack on free ports in a temporary folder (wall clock, the devhost's Durable
engine, SMTP sink), inserts throw-away rows, and for each run: the agent's DELETE -> 202, the
approval mail's link opened (GET), Approve posted, the status URL polled every 5 ms until
``done``. Target: p50 < 1 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devhost.smtp import read_message
from devhost.stack import DevStack, Ports

LINK = re.compile(r"http://127\.0\.0\.1:\d+/api/approvals/[0-9a-f-]{36}\?t=[\w.-]+")
FIRST_ID = 900_000


def link_for(stack: DevStack, request_id: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted((stack.state_dir / "mail").glob("*.eml"), reverse=True):
            text = read_message(path).get_body(("plain",)).get_content()
            for url in LINK.findall(text):
                if f"/api/approvals/{request_id}?" in url:
                    return url
        time.sleep(0.02)
    raise TimeoutError(f"no approval mail for {request_id}")


def percentiles(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=20, method="inclusive") if len(samples) > 1 else samples * 19
    return {"p50": statistics.median(samples), "p95": q[18], "max": max(samples), "mean": statistics.fmean(samples)}


def one_run(stack: DevStack, http: httpx.Client, token: str, row: int) -> tuple[float, float]:
    r = http.post("/api/execute", headers={"Authorization": f"Bearer {token}"},
                  json={"target": "demo-postgres", "sql": f"DELETE FROM customers WHERE id = {row}",
                        "reason": "benchmark"})
    assert r.status_code == 202, r.text
    rid = r.json()["request_id"]
    url = link_for(stack, rid)
    page = http.get(url)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
    cookie = page.headers["set-cookie"].split(";")[0]
    started = time.perf_counter()
    posted = http.post(url.split("?")[0], data={**fields, "verdict": "approve"}, headers={"Cookie": cookie})
    post_done = time.perf_counter()
    assert posted.status_code == 200, posted.text
    while True:
        status = http.get(f"/api/requests/{rid}", headers={"Authorization": f"Bearer {token}"}).json()
        if status["status"] in ("done", "failed", "denied", "expired"):
            break
        time.sleep(0.005)
    finished = time.perf_counter()
    assert status["status"] == "done" and status["result"]["affected_rows"] == 1, status
    return (post_done - started) * 1000, (finished - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as tmp:
        stack = DevStack(Path(tmp), Ports.free(), quiet=True)
        stack.start()
        try:
            assert stack.postgres is not None
            with stack.postgres.admin("demo") as db:
                for i in range(args.runs + 1):
                    db.execute("INSERT INTO customers (id, name, created_at) VALUES (%s, 'bench', now()) "
                               "ON CONFLICT (id) DO NOTHING", (FIRST_ID + i,))
            token = stack.token("devin", lifetime=3600)
            clicks, results = [], []
            with httpx.Client(base_url=stack.base_url, timeout=30) as http:
                one_run(stack, http, token, FIRST_ID + args.runs)  # warm-up: imports, pools, first replay
                for i in range(args.runs):
                    click, result = one_run(stack, http, token, FIRST_ID + i)
                    clicks.append(click)
                    results.append(result)
        finally:
            stack.stop()
    report = {"runs": args.runs, "approve_post_ms": percentiles(clicks),
              "approve_click_to_result_ms": percentiles(results), "target_p50_ms": 1000}
    print(json.dumps({k: ({m: round(v, 1) for m, v in x.items()} if isinstance(x, dict) else x)
                      for k, x in report.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
