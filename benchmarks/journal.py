"""Journal benchmark: what one write costs, how many records/s the journal sustains, and its share
of the execute path's latency.

    .venv/bin/python benchmarks/journal.py [--seconds 5] [--threads 1,4,16,32] [--processes 2] [--no-execute]

Runs against its own Azurite (free ports, in memory) unless BROKER_STORAGE_CONNECTION_STRING is
set. Prints figures; asserts nothing (speed targets live here, not in tests).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.journal import Event, JournalRecord, JournalStorage, JournalWriter
from broker.journal._canonical import canonical, normalize, sha256_hex
from broker.journal.envelope import GENESIS, Envelope, assemble_blob, encode_row, record_hash
from broker.settings import Settings

PRINCIPAL = {"tenant_id": "8f0d5c1e-0000-4000-8000-000000000de0", "object_id": str(uuid.UUID(int=1)),
             "app_id": str(uuid.UUID(int=2)), "display_name": "Devin (dev agent)", "kind": "app",
             "roles": ["Broker.Caller"], "groups": ["agents"]}


def _base(request_id: str) -> dict[str, Any]:
    return {"request_id": request_id, "principal": PRINCIPAL, "target": "demo-postgres",
            "command": {"language": "sql", "sql": "SELECT id, name, email FROM customers ORDER BY id LIMIT 20"},
            "command_digest": "sha256:" + "ab" * 32,
            "classification": {"risk": "read", "reason": "SELECT only", "read_only": True},
            "decision": {"effect": "allow", "rule_id": "agents-read", "reason": "agents may read",
                         "policy_version": "3fa2c1d0e9b8a7f6", "trace": ["agents-read: matched"]},
            "client": {"ip": "10.0.0.7", "forwarded_for": "10.0.0.7", "user_agent": "devin/1.0",
                       "http_request_id": str(uuid.uuid4())}, "reason": "INC-123"}


def intent() -> JournalRecord:
    return JournalRecord(event=Event.EXECUTE_INTENT, **_base(str(uuid.uuid4())))


def outcome(intent_id: str, request_id: str) -> JournalRecord:
    rows = [[i, f"[name:{i:06x}]", f"[email:{i * 7:06x}]"] for i in range(20)]
    return JournalRecord(event=Event.EXECUTE_OUTCOME, response={"columns": ["id", "name", "email"], "rows": rows},
                         outcome={"intent": intent_id, "status": "ok", "rows": 20, "bytes": 900, "truncated": False,
                                  "masked": {"email": 20, "name": 20}, "duration_ms": 3.1}, **_base(request_id))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def fmt(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5):6.2f} ms  p95 {pct(values, 0.95):6.2f} ms  p99 {pct(values, 0.99):6.2f} ms"


def cpu_per_record(n: int = 2000) -> float:
    """The journal's own work per outcome record (normalise, RFC 8785, SHA-256, row and blob)."""
    start = time.process_time()
    for _ in range(n):
        record = outcome("x", "y")
        body = normalize(record.to_dict())
        response = canonical(body.pop("response"))
        env = Envelope(id="20250101-0123456789abcdef-0000000001", chain="20250101-0123456789abcdef", seq=1,
                       prev=GENESIS, at="2025-01-01T00:00:00.000000Z", record=body,
                       response_sha256=sha256_hex(response), response_chars=len(response))
        data = env.canonical()
        digest = record_hash(data)
        encode_row(env, data, digest, response.decode())
        assemble_blob(data, digest, response)
    return (time.process_time() - start) / n * 1000


def sdk_baseline(storage: JournalStorage, n: int = 300) -> tuple[list[float], list[float]]:
    """One Table insert and one Blob put through the same clients: the storage's own latency."""
    table, blob = [], []
    for _ in range(n):
        t = time.perf_counter()
        storage.table.create_entity({"PartitionKey": "bench", "RowKey": uuid.uuid4().hex, "x": "y" * 1500})
        table.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        storage.container.upload_blob(f"bench/{uuid.uuid4().hex}", b"y" * 3000, overwrite=False)
        blob.append((time.perf_counter() - t) * 1000)
    return table, blob


def pairs(writer: JournalWriter, n: int = 300) -> tuple[list[float], list[float]]:
    """Intent then outcome, as the execute path writes them: per-write and per-pair latency."""
    single, pair = [], []
    for _ in range(n):
        rec = intent()
        t0 = time.perf_counter()
        intent_id = writer.write(rec)
        t1 = time.perf_counter()
        writer.write(outcome(intent_id, rec.request_id))
        t2 = time.perf_counter()
        single += [(t1 - t0) * 1000, (t2 - t1) * 1000]
        pair.append((t2 - t0) * 1000)
    return single, pair


def sustained(writer: JournalWriter, threads: int, seconds: float) -> tuple[int, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds

    def work(slot: int) -> None:
        while time.monotonic() < stop:
            t = time.perf_counter()
            writer.write(intent())
            latencies[slot].append((time.perf_counter() - t) * 1000)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    flat = [x for slot in latencies for x in slot]
    return len(flat), flat


def _process_worker(connection: str, table: str, container: str, threads: int, seconds: float) -> int:
    storage = JournalStorage.from_settings(Settings(storage_connection_string=connection, journal_table=table,
                                                    journal_container=container))
    writer = JournalWriter(storage)
    try:
        return sustained(writer, threads, seconds)[0]
    finally:
        writer.close()
        storage.close()


def execute_path(samples: int) -> list[float] | None:
    """POST /api/execute on a local stack (devhost, PostgreSQL, Key Vault stand-in, Azurite)."""
    import httpx

    from devhost.stack import DevStack, Ports

    stack = DevStack(Path(tempfile.mkdtemp(prefix="journal-bench-")), Ports.free(), quiet=True)
    try:
        stack.start()
        headers = {"Authorization": f"Bearer {stack.token('devin')}"}
        body = {"target": "demo-postgres", "sql": "SELECT id, name, email FROM customers ORDER BY id LIMIT 20"}
        with httpx.Client(base_url=stack.base_url, timeout=30, headers=headers) as http:
            for _ in range(20):
                http.post("/api/execute", json=body).raise_for_status()
            out = []
            for _ in range(samples):
                t = time.perf_counter()
                http.post("/api/execute", json=body).raise_for_status()
                out.append((time.perf_counter() - t) * 1000)
        return out
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per sustained run (default 5)")
    parser.add_argument("--threads", default="1,4,16,32", help="thread counts for sustained runs")
    parser.add_argument("--processes", type=int, default=2, help="writer processes for the multi-process run")
    parser.add_argument("--samples", type=int, default=300, help="latency samples")
    parser.add_argument("--no-execute", action="store_true", help="skip the execute-path comparison")
    args = parser.parse_args()

    azurite = None
    connection = os.environ.get("BROKER_STORAGE_CONNECTION_STRING", "")
    if not connection:
        from devhost.azurite import Azurite
        from devhost.stack import REPO_ROOT, free_port

        azurite = Azurite(REPO_ROOT, Path(tempfile.mkdtemp(prefix="journal-bench-")), free_port(), free_port(),
                          free_port()).start()
        connection = azurite.connection_string
    name = f"bench{uuid.uuid4().hex[:10]}"
    storage = JournalStorage.from_settings(Settings(storage_connection_string=connection, journal_table=name,
                                                    journal_container=name))
    storage.ensure()
    writer = JournalWriter(storage, max_lanes=64)
    try:
        print(f"journal benchmark on {os.cpu_count()} CPUs against "
              f"{'Azurite (local, in memory)' if azurite else 'the configured storage'}")
        print(f"  journal CPU per record (JCS + SHA-256 + row + blob): {cpu_per_record():.3f} ms")
        table, blob = sdk_baseline(storage, args.samples)
        print(f"  storage baseline  Table insert   {fmt(table)}")
        print(f"  storage baseline  Blob put       {fmt(blob)}")
        single, pair = pairs(writer, args.samples)
        print(f"  journal write (row durable, copy queued)  {fmt(single)}")
        print(f"  intent + outcome (the execute path's two) {fmt(pair)}")
        for threads in (int(t) for t in args.threads.split(",")):
            count, lat = sustained(writer, threads, args.seconds)
            writer.flush(60)  # each run starts with no copies pending: it measures rows and copies together
            print(f"  sustained {threads:>3} threads: {count / args.seconds:8.0f} records/s   {fmt(lat)}")
        if args.processes > 1:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.processes, mp_context=ctx) as pool:
                futures = [pool.submit(_process_worker, connection, name, name, 16, args.seconds)
                           for _ in range(args.processes)]
                total = sum(f.result() for f in futures)
            print(f"  sustained {args.processes} processes x 16 threads: {total / args.seconds:8.0f} records/s")
        if not args.no_execute:
            execute = execute_path(args.samples)
            if execute:
                share = statistics.median(pair) / statistics.median(execute) * 100
                print(f"  POST /api/execute end to end              {fmt(execute)}")
                print(f"  journal share of the execute p50: {statistics.median(pair):.2f} of "
                      f"{statistics.median(execute):.2f} ms ({share:.0f}%)")
    finally:
        writer.close()
        storage.close()
        if azurite is not None:
            if azurite.process is not None:
                azurite.process.kill()  # in memory: nothing to flush
                azurite.process.wait(5)
            azurite.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
