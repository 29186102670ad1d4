"""Latency of Kubernetes commands through ``POST /api/execute`` on the dev stack (kmock stand-in).

Prints, per command, the median and 95th percentile of the whole HTTP round trip and of the part
the broker reports as running the command (``duration_ms``: credential, API calls, masking, with
the journal writes around it excluded). Usage: ``python benchmarks/kubernetes_execute.py [N]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.stack import DevStack, Ports

COMMANDS = {
    "get pods -l": ["get", "pods", "-n", "demo", "-l", "app=web"],
    "get secret -o json": ["get", "secret", "db-credentials", "-n", "demo", "-o", "json"],
    "describe deploy": ["describe", "deployment", "web", "-n", "demo"],
    "logs --tail 20": ["logs", "-l", "app=web", "-n", "demo", "--tail", "20"],
}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def main(n: int = 50) -> None:
    with tempfile.TemporaryDirectory() as state:
        stack = DevStack(Path(state), Ports.free(), quiet=True).start()
        try:
            http = httpx.Client(base_url=stack.base_url, timeout=30,
                                headers={"Authorization": f"Bearer {stack.token('devin')}"})
            pods = http.post("/api/execute", json={"target": "demo-k8s", "kubectl": COMMANDS["get pods -l"]})
            pod = pods.json()["rows"][0][0]
            commands = dict(COMMANDS, **{"exec echo": ["exec", pod, "-n", "demo", "--", "echo", "hi"]})
            print(f"{'command':<22}{'http p50':>10}{'http p95':>10}{'run p50':>10}{'run p95':>10}   (ms, n={n})")
            for label, argv in commands.items():
                wall, run = [], []
                for i in range(n + 3):
                    started = time.perf_counter()
                    r = http.post("/api/execute", json={"target": "demo-k8s", "kubectl": argv})
                    elapsed = (time.perf_counter() - started) * 1000
                    r.raise_for_status()
                    if i >= 3:  # warm-up: discovery, token, connection pool
                        wall.append(elapsed)
                        run.append(r.json()["duration_ms"])
                print(f"{label:<22}{statistics.median(wall):>10.1f}{percentile(wall, .95):>10.1f}"
                      f"{statistics.median(run):>10.1f}{percentile(run, .95):>10.1f}")
        finally:
            stack.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
