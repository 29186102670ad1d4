"""How long from raising an external event to the orchestration's result being available, locally.

The product's target is "approve click -> command result available in under 1 s". This measures
the engine's share of that path on the devhost: an orchestration waits for a decision (raced
against a deadline timer, like an approval); the event is raised through an app HTTP function that
uses DurableOrchestrationClient.raise_event; the orchestration then runs one activity and
completes; the clock stops when the status URL reports the output. Wall clock, real Azurite.

    .venv/bin/python benchmarks/durable_event_latency.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devhost.azurite import Azurite  # noqa: E402
from devhost.stack import free_port  # noqa: E402

KEY = "bench-key"


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.01):  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(interval)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="durable-bench-"))
    azurite = Azurite(ROOT, work / "azurite", free_port(), free_port(), free_port()).start()
    port = free_port()
    env = {**os.environ, "AzureWebJobsStorage": azurite.connection_string, "DURABLE_TEST_HUB": "benchhub",
           "DEVHOST_DURABLE_KEY": KEY, "DURABLE_SAMPLE_DIR": str(work / "sample"), "PYTHONUNBUFFERED": "1"}
    log = open(work / "devhost.log", "wb")  # noqa: SIM115 - closed below
    devhost = subprocess.Popen([sys.executable, "-m", "devhost", "serve", "--app", "tests.devhost.sample_app",
                                "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        wait_until(lambda: _up(http), timeout=30, interval=0.05)
        raise_to_done: list[float] = []
        raise_call: list[float] = []
        for i in range(args.runs + 2):  # the first two warm up imports and connections
            started = http.post("/api/orchestrators/approval", json={"id": f"bench-{i}", "timeout_s": 3600})
            links = started.json()
            url = links["statusQueryGetUri"]
            wait_until(lambda url=url: http.get(url).json().get("customStatus") == "waiting")
            t0 = time.perf_counter()
            raised = http.post(f"/api/instances/{links['id']}/events/decision", json={"approved": True})
            t1 = time.perf_counter()
            assert raised.status_code == 202, raised.text
            wait_until(lambda url=url: http.get(url).json().get("runtimeStatus") == "Completed")
            t2 = time.perf_counter()
            if i >= 2:
                raise_call.append((t1 - t0) * 1000)
                raise_to_done.append((t2 - t0) * 1000)
        _report("raise_event call (HTTP function -> client -> engine)", raise_call)
        _report("raise_event -> orchestration completed (1 activity)", raise_to_done)
    finally:
        http.close()
        devhost.terminate()
        devhost.wait(15)
        log.close()
        if azurite.process is not None:
            azurite.process.kill()
            azurite.process.wait(5)
    return 0


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("/admin/durable/clock", headers={"x-functions-key": KEY}).status_code == 200
    except httpx.HTTPError:
        return False


def _report(what: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{what}: n={len(samples)} median={statistics.median(samples):.0f} ms p95={p95:.0f} ms "
          f"max={max(samples):.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
