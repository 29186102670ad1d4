"""How much memory a huge value costs the broker: the devhost process's peak RSS while it answers
a read of a 200 MB cell (text, bytea, jsonb) and of 400 rows of 900 kB, next to what the same read
costs a plain psycopg client that materialises it (this script's own process). Then MariaDB (when
installed): the MySQL engine's ``tracemalloc`` peak per result size, in this process, next to a
plain PyMySQL read of the same statement. Writes that return a 200 MB value (``UPDATE ... RETURNING``
on PostgreSQL, ``INSERT/DELETE ... RETURNING`` on MariaDB) through each engine's write path, in
this process, next to the plain client's cost of the same statement.

    .venv/bin/python benchmarks/wire_memory.py

Starts its own dev stack on free ports in a temporary folder and stops it at the end. The peak is
``VmHWM`` from ``/proc/<pid>/status``, reset before each read (``clear_refs``), minus the RSS at
that moment. Target: growth far below the value (< 100 MB for 200 MB).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx
import psycopg
import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker.catalog import Target
from broker.secrets import SecretValue
from broker.targets import Command, ExecutionLimits
from broker.targets.mysql import MySQLEngine
from broker.targets.postgres import PostgresEngine
from devhost import mariadb
from devhost.stack import DEMO_SECRET, DevStack, Ports, free_port

MB = 1024 * 1024
VALUE = "repeat('0123456789abcdef', 12500000)"  # 200 MB
READS = {
    "text 200 MB": f"SELECT {VALUE} AS big",
    "bytea 200 MB": f"SELECT convert_to({VALUE}, 'UTF8') AS big",
    "jsonb 40 MB": "SELECT to_jsonb(repeat('0123456789abcdef', 2500000)) AS big",  # 200 MB: over the 5 s timeout
    "400 rows x 900 kB": "SELECT g, repeat('y', 900000) FROM generate_series(1, 400) AS g",
}


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak(pid: int, run) -> tuple[float, float, object]:
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = status_kb(pid, "VmRSS")
    answer = run()
    return before / 1024, (status_kb(pid, "VmHWM") - before) / 1024, answer


PG_WRITES = {
    "UPDATE RETURNING 200 MB": f"UPDATE orders SET status = status WHERE id = 1000001 RETURNING id, {VALUE} AS big",
    "UPDATE 480 rows RETURNING 900 kB": "UPDATE orders SET status = status RETURNING id, repeat('y', 900000)",
}


def pg_write_figures(stack: DevStack, credential: dict[str, str]) -> None:
    """The PostgreSQL engine's write path in this process (peak RSS growth: libpq's buffers are not
    Python allocations), next to plain psycopg running the same statement."""
    target = Target(name="bench-pg", engine="postgres", credential={"source": "key-vault", "secret": "x"},
                    connection={"host": "127.0.0.1", "port": stack.ports.postgres, "database": "demo",
                                "sslmode": "disable"})
    secret = SecretValue(json.dumps(credential), "v1")
    engine = PostgresEngine(pool_max_size=1)
    limits = ExecutionLimits(timeout_ms=30_000)
    engine.execute(target, Command("sql", sql="SELECT 1"), secret, limits, read_only=False)  # warm
    print(f"PostgreSQL writes: engine peak RSS growth in this process (cap {limits.max_bytes} bytes), "
          "and plain psycopg's")
    for name, sql in PG_WRITES.items():
        t = time.perf_counter()
        _, growth, result = peak(os.getpid(), lambda sql=sql: engine.execute(
            target, Command("sql", sql=sql), secret, limits, read_only=False))
        took = time.perf_counter() - t
        with psycopg.connect(host="127.0.0.1", port=stack.ports.postgres, dbname="demo",
                             user=credential["username"], password=credential["password"]) as direct:
            _, plain, _ = peak(os.getpid(), lambda sql=sql, d=direct: d.execute(sql).fetchall())
        print(f"  {name:<34} {took:5.1f} s, {result.status}, rows {result.row_count}, withheld cells "
              f"{len(result.cut_cells)}, engine +{growth:6.1f} MB; plain psycopg +{plain:6.1f} MB")
    engine.close()


MARIA_WRITES = {
    "INSERT RETURNING 200 MB": "INSERT INTO w (id) VALUES (1) RETURNING id, REPEAT('0123456789abcdef', 12500000)",
    "DELETE RETURNING 200 MB": "DELETE FROM w RETURNING id, REPEAT('0123456789abcdef', 12500000)",
}

MARIA_READS = {
    "1 MB cell": "SELECT REPEAT('x', 1000000) AS v",
    "15 MB cell": "SELECT REPEAT('x', 15000000) AS v",
    "200 MB cell": "SELECT REPEAT('0123456789abcdef', 12500000) AS v",
    "400 rows x 900 kB": "SELECT seq, REPEAT('y', 900000) FROM seq_1_to_400",
}


def traced(run) -> tuple[float, object]:
    tracemalloc.start()
    try:
        answer = run()
        return tracemalloc.get_traced_memory()[1] / MB, answer
    finally:
        tracemalloc.stop()


def maria_figures(tmp: Path) -> None:
    if not mariadb.available():
        print("MariaDB is not installed: skipped (scripts/system-deps.sh)")
        return
    password = secrets.token_urlsafe(12)
    server = mariadb.EmbeddedMariaDB(tmp / "mariadb", free_port()).start()
    try:
        with server.admin() as admin, admin.cursor() as cur:
            cur.execute("SET GLOBAL max_allowed_packet = 268435456")  # else no value over 16 MB is built
            cur.execute("CREATE DATABASE bench")
            cur.execute("CREATE USER 'bench'@'127.0.0.1' IDENTIFIED BY %s", (password,))
            cur.execute("GRANT SELECT ON bench.* TO 'bench'@'127.0.0.1'")
            cur.execute("CREATE TABLE bench.w (id INT PRIMARY KEY) ENGINE=InnoDB")
            cur.execute("GRANT INSERT, DELETE ON bench.w TO 'bench'@'127.0.0.1'")
        target = Target(name="bench-maria", engine="mysql", credential={"source": "key-vault", "secret": "x"},
                        connection={"host": "127.0.0.1", "port": server.port, "database": "bench"})
        secret = SecretValue(json.dumps({"username": "bench", "password": password}), "v1")
        engine = MySQLEngine(pool_max_size=1)
        limits = ExecutionLimits(timeout_ms=30_000)
        print(f"MariaDB: MySQL engine tracemalloc peak per read (cap {limits.max_bytes} bytes), and plain PyMySQL's")
        for name, sql in MARIA_READS.items():
            t = time.perf_counter()
            held, result = traced(lambda sql=sql: engine.execute(target, Command("sql", sql=sql), secret, limits,
                                                                 read_only=True))
            took = time.perf_counter() - t
            with pymysql.connect(host="127.0.0.1", port=server.port, user="bench", password=password,
                                 database="bench") as direct, direct.cursor() as cur:
                plain, _ = traced(lambda cur=cur, sql=sql: (cur.execute(sql), cur.fetchall()))
            print(f"  {name:<18} {took:5.1f} s, rows {result.row_count}, truncated by {result.truncated_by}, "
                  f"engine peak {held:7.2f} MB; plain PyMySQL {plain:7.1f} MB")
        print("MariaDB writes: the engine's write path (committed), and plain PyMySQL's (rolled back)")
        for name, sql in MARIA_WRITES.items():
            t = time.perf_counter()
            held, result = traced(lambda sql=sql: engine.execute(target, Command("sql", sql=sql), secret, limits,
                                                                 read_only=False))
            took = time.perf_counter() - t
            with pymysql.connect(host="127.0.0.1", port=server.port, user="bench", password=password,
                                 database="bench") as direct, direct.cursor() as cur:
                cur.execute("INSERT INTO w (id) VALUES (3)")  # a row for the DELETE (all rolled back)
                again = sql.replace("VALUES (1)", "VALUES (2)")
                plain, _ = traced(lambda cur=cur, again=again: (cur.execute(again), cur.fetchall()))
                direct.rollback()
            print(f"  {name:<24} {took:5.1f} s, {result.status}, rows {result.row_count}, truncated by "
                  f"{result.truncated_by}, engine peak {held:7.2f} MB; plain PyMySQL {plain:7.1f} MB")
        engine.close()
    finally:
        server.destroy()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        stack = DevStack(Path(tmp), Ports.free())
        stack.start()
        try:
            credential = json.loads(stack.keyvault.store.get(DEMO_SECRET, None)["value"])
            http = httpx.Client(base_url=stack.base_url, timeout=120,
                                headers={"Authorization": f"Bearer {stack.token()}"})
            pid = stack.devhost.pid
            http.post("/api/execute", json={"target": "demo-postgres", "sql": "SELECT 1"})  # warm: imports, pools
            print("devhost peak RSS growth per read (MB), and a plain psycopg client's for comparison")
            for name, sql in READS.items():
                t = time.perf_counter()
                rss, growth, r = peak(pid, lambda sql=sql: http.post("/api/execute", json={"target": "demo-postgres",
                                                                                          "sql": sql}))
                took = time.perf_counter() - t
                body = r.json()
                cells = len(body.get("truncation", {}).get("cells", []))
                with psycopg.connect(host="127.0.0.1", port=stack.ports.postgres, dbname="demo",
                                     user=credential["username"], password=credential["password"]) as direct:
                    _, plain, _ = peak(os.getpid(), lambda sql=sql, d=direct: d.execute(sql).fetchall())
                print(f"  {name:<18} HTTP {r.status_code} in {took:5.1f} s, withheld cells {cells}, "
                      f"devhost RSS {rss:6.1f} -> +{growth:6.1f} MB; plain psycopg +{plain:6.1f} MB")
            pg_write_figures(stack, credential)
        finally:
            stack.stop()
        maria_figures(Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
