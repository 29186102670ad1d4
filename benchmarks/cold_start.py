"""A cold start, in two parts: ``import function_app`` (what the Functions host waits for when it
indexes the app) and the first ``POST /api/execute`` on a fresh devhost (which builds the broker:
the domain's imports, the catalog, policy, clients). Deferring imports out of the first part moves
their cost into the second; both are printed so that a move does not pass for a saving.

    .venv/bin/python benchmarks/cold_start.py [--imports 15] [--starts 5]

Import: ``--imports`` fresh interpreters each time ``import function_app`` (in-process wall clock
and its CPU, and the whole process: interpreter start-up included), then one ``-X importtime`` run
summed by package (self time, so each module counts once). First call: the dev stack's support
services start once; then ``--starts`` times a fresh devhost process is started, timed until it
answers, given its first execute (the demo read), then 20 more (warm, for comparison).
Target: ``import function_app`` <= 1 s (median).

Bytecode: where ``PYTHONDONTWRITEBYTECODE`` is set (this machine) nothing writes ``.pyc`` files, so
every process compiles the broker's own modules from source (the installed packages come with
theirs). ``--cached-bytecode`` measures with the bytecode cached instead, as a deployment package
that ships it would run: one unmeasured run writes it to a temporary ``PYTHONPYCACHEPREFIX``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devhost.identities import IDENTITIES  # noqa: E402
from devhost.stack import DevStack, Ports  # noqa: E402

TARGET_SECONDS = 1.0
SQL = "SELECT id, name, email, created_at FROM customers WHERE id = 42"
TIMED_IMPORT = """
import json, time
t, c = time.perf_counter(), time.process_time()
import function_app
print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""

# Imports every broker module, and so the packages they import at the top, writing their bytecode.
WARM_BYTECODE = """
import importlib, pkgutil, function_app, devhost.server
for found in pkgutil.walk_packages(["broker"], "broker."):
    if not found.name.endswith("__main__"):
        importlib.import_module(found.name)
"""


def _env() -> dict[str, str]:
    """As a local run sees it: no Application Insights (telemetry's own import is Azure-only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    if os.environ.get("PYTHONPYCACHEPREFIX"):
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


def timed_imports(n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"import": [], "import CPU": [], "process": []}
    for _ in range(n):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", TIMED_IMPORT], cwd=ROOT, env=_env(), capture_output=True,
                                text=True, check=True)
        out["process"].append(time.perf_counter() - started)
        figures = json.loads(result.stdout.splitlines()[-1])
        out["import"].append(figures["wall"])
        out["import CPU"].append(figures["cpu"])
    return out


def by_package(top: int) -> list[tuple[str, float]]:
    """Self time per package in one ``-X importtime`` run (``azure.*`` by its second level)."""
    stderr = subprocess.run([sys.executable, "-X", "importtime", "-c", "import function_app"], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, check=True).stderr
    totals: Counter[str] = Counter()
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            parts = m[2].split(".")
            totals[".".join(parts[:2]) if parts[0] in ("azure", "broker") and len(parts) > 1 else parts[0]] += int(m[1])
    return [(name, us / 1000) for name, us in totals.most_common(top)]


def first_calls(starts: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"devhost ready": [], "first execute": [], "warm execute p50": []}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        stack = DevStack(Path(tmp) / "stack", Ports.free(), quiet=True).start(devhost=False)
        try:
            assert stack.issuer
            token = stack.issuer.sign(stack.issuer.claims_for(IDENTITIES["devin"]))
            body = {"target": "demo-postgres", "sql": SQL}
            for _ in range(starts):
                started = time.perf_counter()
                stack.start_devhost()
                out["devhost ready"].append(time.perf_counter() - started)
                with httpx.Client(base_url=stack.base_url, timeout=120,
                                  headers={"Authorization": f"Bearer {token}"}) as http:
                    calls = []
                    for _ in range(21):
                        t = time.perf_counter()
                        r = http.post("/api/execute", json=body)
                        calls.append(time.perf_counter() - t)
                        assert r.status_code == 200 and r.json()["row_count"] == 1, r.text
                out["first execute"].append(calls[0])
                out["warm execute p50"].append(statistics.median(calls[1:]))
                stack.stop_devhost()
        finally:
            stack.stop()
    return out


def line(name: str, samples: list[float]) -> str:
    return (f"  {name:<22} median {statistics.median(samples) * 1000:7.0f} ms   min {min(samples) * 1000:6.0f}"
            f"   max {max(samples) * 1000:6.0f}   (n={len(samples)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imports", type=int, default=15, help="fresh interpreters importing function_app")
    parser.add_argument("--starts", type=int, default=5, help="fresh devhost processes, each given a first execute")
    parser.add_argument("--top", type=int, default=12, help="packages listed by import self time")
    parser.add_argument("--cached-bytecode", action="store_true", help="measure with the .pyc files cached")
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (1/5/15 min), Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-pyc-") as pycache:
        if args.cached_bytecode:
            os.environ["PYTHONPYCACHEPREFIX"] = pycache  # the devhost processes inherit it too
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
            subprocess.run([sys.executable, "-c", WARM_BYTECODE], cwd=ROOT, env=_env(), check=True)
            print("bytecode: cached (written once by importing every broker module, before measuring)")
        elif os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("bytecode: not written (PYTHONDONTWRITEBYTECODE): each process compiles the broker from source")
        else:
            print("bytecode: written where the folders allow it")
        return measure(args)


def measure(args: argparse.Namespace) -> int:

    imports = timed_imports(args.imports)
    print(f"\nimport function_app, {args.imports} fresh interpreters:")
    for name, samples in imports.items():
        print(line(name, samples))
    print("  by package (one -X importtime run, self time):")
    print("   " + ", ".join(f"{name} {ms:.0f}" for name, ms in by_package(args.top)) + " (ms)")
    met = statistics.median(imports["import"]) <= TARGET_SECONDS

    if args.starts:
        calls = first_calls(args.starts)
        print(f"\nfresh devhost, {args.starts} starts (the first execute builds the broker):")
        for name, samples in calls.items():
            print(line(name, samples))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"target import function_app <= {TARGET_SECONDS:g} s (median): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
