"""How long SQL classification takes, per statement and dialect, on a realistic mix.

The mix is what an agent sends: mostly reads (joins, CTEs, aggregates, catalog queries), some
writes, a few statements that are refused. It is drawn from the guard's case tables
(``tests/guard/cases``), weighted 70 % reads, 20 % writes and schema changes, 10 % the rest,
plus one long (about 6 KB) reporting query. Prints median and p99 in microseconds.

    .venv/bin/python benchmarks/classify.py [--rounds 3000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.guard.sql import classify_sql  # noqa: E402

WEIGHTS = {"read": 0.7, "write": 0.15, "schema": 0.05}  # everything else shares the remaining 0.1


def long_query(dialect: str) -> str:
    columns = ", ".join(f"sum(CASE WHEN o.status = 'status_{i}' THEN o.amount ELSE 0 END) AS total_{i}"
                        for i in range(60))
    limit = "" if dialect == "tsql" else " LIMIT 100"
    return (f"WITH recent AS (SELECT * FROM orders WHERE placed_at > '2024-01-01') SELECT c.id, c.name, {columns} "
            "FROM customers c JOIN recent o ON o.customer_id = c.id GROUP BY c.id, c.name ORDER BY c.id" + limit)


def mix(dialect: str, size: int, rng: random.Random) -> list[str]:
    table = yaml.safe_load((ROOT / "tests" / "guard" / "cases" / f"{dialect}.yaml").read_text())
    pools = {k: [s for s in v if s.strip()] for k, v in table.items()}
    rest = [s for k, v in pools.items() if k not in WEIGHTS for s in v]
    chosen = []
    for _ in range(size):
        roll, acc = rng.random(), 0.0
        for kind, weight in WEIGHTS.items():
            acc += weight
            if roll < acc:
                chosen.append(rng.choice(pools[kind]))
                break
        else:
            chosen.append(rng.choice(rest))
    return chosen


def measure(statements: list[str], dialect: str) -> list[float]:
    timings = []
    for sql in statements:
        started = time.perf_counter_ns()
        classify_sql(sql, dialect)
        timings.append((time.perf_counter_ns() - started) / 1000)
    return timings


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3000, help="statements per dialect (default 3000)")
    args = parser.parse_args()
    rng = random.Random(4)
    print(f"{'dialect':9} {'statements':>10} {'median µs':>10} {'p99 µs':>9} {'mean µs':>9}   "
          "long query (6 KB) median µs")
    for dialect in ("postgres", "mysql", "tsql"):
        statements = mix(dialect, args.rounds, rng)
        measure(statements[:200], dialect)  # warm up imports and caches
        timings = measure(statements, dialect)
        long = measure([long_query(dialect)] * 50, dialect)
        print(f"{dialect:9} {len(timings):>10} {statistics.median(timings):>10.0f} {p99(timings):>9.0f} "
              f"{statistics.fmean(timings):>9.0f}   {statistics.median(long):.0f}")


if __name__ == "__main__":
    main()
