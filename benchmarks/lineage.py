"""Column lineage cost per statement (``broker/lineage``), with a warm schema cache.

Prints p50/p95 of ``analyse`` over a mix of ordinary and adversarial statements against a schema the
size of a small application plus the PostgreSQL system catalogs' column count, and the cost of
masking a 500-row result's derived outputs whole. Target: p50 <= 1 ms per statement.

    .venv/bin/python benchmarks/lineage.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.lineage import Schema, Sensitivity, analyse
from broker.lineage.guard import mask_outputs
from broker.masking import Masker

TABLES = {("public", "customers"): ("id", "name", "email", "phone", "card_number", "notes", "created_at"),
          ("public", "orders"): ("id", "customer_id", "amount", "status", "items", "tags", "placed_at")}
for i in range(200):  # a few hundred more relations, as information_schema shows on a real target
    TABLES[("pg_catalog", f"pg_rel_{i}")] = tuple(f"col_{j}" for j in range(12))
SCHEMA = Schema(TABLES, ("pg_catalog", "public"))
SENSITIVE = Sensitivity({("public", "customers", "email"): "email", ("public", "customers", "phone"): "phone",
                         ("public", "customers", "card_number"): "card",
                         ("public", "customers", "notes"): "free_text"})
STATEMENTS = [
    "SELECT * FROM customers LIMIT 50",
    "SELECT id, name FROM customers WHERE id = 7",
    "SELECT status, count(*), sum(amount) FROM orders GROUP BY status",
    "SELECT c.id, count(o.id) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id",
    "WITH big AS (SELECT * FROM orders WHERE amount > 100) SELECT status, avg(amount) FROM big GROUP BY status",
    "SELECT reverse(email) FROM customers",
    "SELECT id FROM customers WHERE email LIKE 'a%' ORDER BY email",
    "SELECT substr(c.email, g, 1) FROM customers c, LATERAL generate_series(1, 40) g",
    "SELECT json_agg(c) FROM customers c",
    "SELECT id, rank() OVER (PARTITION BY status ORDER BY amount DESC) FROM orders",
]


def main() -> None:
    for sql in STATEMENTS:  # warm-up: imports, the mapping schema
        analyse(sql, "postgres", SCHEMA, SENSITIVE)
    times: list[float] = []
    per: dict[str, list[float]] = {}
    for _ in range(60):
        for sql in STATEMENTS:
            start = time.perf_counter()
            analyse(sql, "postgres", SCHEMA, SENSITIVE)
            elapsed = (time.perf_counter() - start) * 1000
            times.append(elapsed)
            per.setdefault(sql, []).append(elapsed)
    times.sort()
    print(f"lineage per statement (warm schema cache, {len(times)} runs): "
          f"p50 {statistics.median(times):.3f} ms, p95 {times[int(len(times) * 0.95)]:.3f} ms")
    for sql, values in per.items():
        print(f"  {statistics.median(values):7.3f} ms  {sql[:80]}")
    lineage = analyse("SELECT id, email, reverse(email), notes FROM customers", "postgres", SCHEMA,
                      SENSITIVE).to_dict()
    masker = Masker(b"k" * 32)
    rows = [[i, f"user{i}@example.com", f"moc.elpmaxe@{i}resu", "free text"] for i in range(500)]
    start = time.perf_counter()
    for _ in range(20):
        mask_outputs(lineage, 4, [list(r) for r in rows], masker, Counter())
    print(f"masking derived outputs whole: {(time.perf_counter() - start) / 20 * 1000:.2f} ms per 500-row result")


if __name__ == "__main__":
    main()
