"""What the broker adds to a query: the same small SELECT through ``POST /api/execute`` (token
validation, policy, both journal writes to Azurite Table + Blob, Key Vault-cached credential,
masking) and directly with psycopg, interleaved, warm. The broker runs it twice per round: on the
demo target (column lineage on, warm schema cache) and on the same database registered with
lineage off (``sensitive.lineage: false``), so the difference is what lineage adds to execute.

    .venv/bin/python benchmarks/execute_overhead.py [--runs 500]

Starts its own dev stack on free ports in a temporary folder and stops it at the end.
Target: broker p50 added latency < 5 ms on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devhost.stack import DEMO_SECRET, REPO_ROOT, DevStack, Ports

SQL = "SELECT id, name, email, created_at FROM customers WHERE id = 42"


def percentiles(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": statistics.median(samples), "p95": q[94], "p99": q[98], "mean": statistics.fmean(samples)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ports = Ports.free()
        policy = yaml.safe_load((REPO_ROOT / "config" / "dev" / "policy.yaml").read_text())
        for rule in policy["rules"]:  # the same rules for the lineage-off twin of the demo target
            if "demo-postgres" in rule["when"].get("targets", []):
                rule["when"]["targets"].append("bench-nolineage")
        (Path(tmp) / "policy.yaml").write_text(yaml.safe_dump(policy))
        twin = {"bench-nolineage": {
            "engine": "postgres", "read_only": True, "credential": {"source": "key-vault", "secret": DEMO_SECRET},
            "connection": {"host": "127.0.0.1", "port": ports.postgres, "database": "demo", "sslmode": "disable"},
            "sensitive": {"lineage": False, "database_masking": {"kind": "masked-views", "note": "benchmark"}}}}
        stack = DevStack(Path(tmp) / "stack", ports, policy_path=Path(tmp) / "policy.yaml", extra_targets=twin)
        stack.start()
        try:
            credential = json.loads(stack.keyvault.store.get(DEMO_SECRET, None)["value"])
            direct = psycopg.connect(host="127.0.0.1", port=stack.ports.postgres, dbname="demo",
                                     user=credential["username"], password=credential["password"], autocommit=True)
            http = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token()}"},
                                timeout=60)
            body = {"target": "demo-postgres", "sql": SQL}
            no_lineage = {"target": "bench-nolineage", "sql": SQL}

            phases: dict[str, list[float]] = {}

            def via_broker(request: dict[str, str] = body) -> float:
                t = time.perf_counter()
                r = http.post("/api/execute", json=request)
                elapsed = time.perf_counter() - t
                assert r.status_code == 200 and r.json()["row_count"] == 1, r.text
                for part in r.headers.get("server-timing", "").split(","):
                    name, _, dur = part.strip().partition(";dur=")
                    if dur and request is body:
                        phases.setdefault(name, []).append(float(dur))
                return elapsed * 1000

            def via_psycopg() -> float:
                t = time.perf_counter()
                rows = direct.execute(SQL).fetchall()
                elapsed = time.perf_counter() - t
                assert len(rows) == 1
                return elapsed * 1000

            for _ in range(args.warmup):
                via_broker()
                via_broker(no_lineage)
                via_psycopg()
            phases.clear()
            broker_ms, off_ms, direct_ms = [], [], []
            for _ in range(args.runs):
                broker_ms.append(via_broker())
                off_ms.append(via_broker(no_lineage))
                direct_ms.append(via_psycopg())
            b, o, d = percentiles(broker_ms), percentiles(off_ms), percentiles(direct_ms)
            print(f"execute overhead, {args.runs} interleaved runs each (warm), query: {SQL}")
            print(f"{'':>12} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8}   (ms)")
            for name, p in (("broker", b), ("no lineage", o), ("psycopg", d)):
                print(f"{name:>12} {p['p50']:8.2f} {p['p95']:8.2f} {p['p99']:8.2f} {p['mean']:8.2f}")
            print(f"{'added':>12} {b['p50'] - d['p50']:8.2f} {b['p95'] - d['p95']:8.2f} "
                  f"{b['p99'] - d['p99']:8.2f} {b['mean'] - d['mean']:8.2f}   (broker with lineage - psycopg)")
            print(f"{'lineage':>12} {b['p50'] - o['p50']:8.2f} {b['p95'] - o['p95']:8.2f} "
                  f"{b['p99'] - o['p99']:8.2f} {b['mean'] - o['mean']:8.2f}   (lineage on - off)")
            print(f"target: added p50 < 5 ms -> {'met' if b['p50'] - d['p50'] < 5 else 'NOT met'}")
            print("inside the broker (Server-Timing, p50 ms): " + ", ".join(
                f"{name} {statistics.median(values):.2f}" for name, values in phases.items()))
            inside = sum(statistics.median(v) for v in phases.values())
            print(f"  sum {inside:.2f}; the rest ({b['p50'] - inside:.2f}) is HTTP, token validation and the devhost")
            direct.close()
            http.close()
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
