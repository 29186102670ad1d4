"""Masking throughput, in MB/s of JSON result data, on one core.

Prints, for the same >= 10 MB of rows: the broker's engine with Hyperscan and with ``re``,
Presidio's pattern-only AnalyzerEngine (spaCy model replaced by a blank pipeline; analysis only,
no anonymisation), and ``json.loads`` + ``json.dumps`` of the same rows as the floor. Three data
sets: a realistic result set (ids, timestamps, JSON metadata, notes; 5% of rows hold personal
data or a secret), the same table dense (every row holds at least one, mixed secrets and personal
data in free text: a customer table with emails in a notes column), and the labelled test corpus
(configs, Kubernetes objects, logs; several findings per row). Validator caches are cleared
before every run, so repeats do not measure them.

    .venv/bin/pip install -r requirements-bench.txt   # Presidio and spaCy, for the comparison only
    .venv/bin/python benchmarks/masking.py [--mb 10] [--presidio-mb 10] [--repeat 5]

Figures are CPU seconds of this process (``time.process_time``), so other load on the machine
moves them less than wall time; both are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.masking import Masker  # noqa: E402
from broker.masking.detectors.pii import clear_caches  # noqa: E402
from tests.masking import corpus_values as v  # noqa: E402
from tests.masking.corpus import generate  # noqa: E402
from tests.masking.families import FAMILIES  # noqa: E402

KEY = b"benchmark-key-0123456789"
RESULT_SET_ROWS = 2000  # rows per mask_table call, about 1 MB: the broker's default result cap

Table = tuple[list[str], list[list[Any]]]

REALISTIC_COLUMNS = ["id", "order_id", "customer", "status", "amount", "currency", "created_at", "updated_at",
                     "sku", "host", "release", "notes", "metadata", "contact"]


def realistic_rows(target_bytes: int, seed: int = 7, share: float = 0.05) -> list[Table]:
    """An orders/events table as an agent would query it; ``share`` of the rows (5%: the sparse
    set; 100%: the dense one) hold personal data or a secret somewhere in free text (a contact,
    a note, a log line in the metadata)."""
    rng = random.Random(seed)
    rows, size = [], 0
    while size < target_bytes:
        sensitive = rng.random() < share
        notes = rng.choice([f"shipped from {v.hostname(rng)} build {v.build_number(rng)}",
                            f"retry of {v.uuid_text(rng)} at {v.timestamp(rng)}", "gift wrap", "",
                            f"commit {v.git_sha(rng)} deployed as {v.version(rng)}"])
        contact = rng.choice(["web", "app", "store", f"agent {rng.randint(1, 99)}"])
        log = f"GET /api/orders/{rng.randint(1, 10**6)} 200 {rng.randint(1, 900)}ms trace={v.uuid_text(rng)}"
        if sensitive:
            which = rng.randrange(5)
            if which == 0:
                contact = f"{v.email(rng)}, {v.phone(rng)}"
            elif which == 1:
                notes = f"customer paid with {v.card(rng)}, refund to {v.iban(rng)}"
            elif which == 2:
                log = f"POST /hooks?token={v.opaque_token(rng)} 401 via postgres://app:{v.password(rng)}@db/x"
            elif which == 3:
                log = f"retry with {v.github_token(rng)} for {v.email(rng)}"
            else:
                family = rng.choice(list(FAMILIES))
                notes = f"customer {v.email(rng)} pasted {FAMILIES[family](rng)} into the ticket"
        row = [rng.randint(1, 10**9), v.uuid_text(rng), f"{rng.choice(v.FIRST).title()} {rng.choice(v.LAST).title()}",
               rng.choice(["paid", "shipped", "refunded", "pending"]), round(rng.random() * 900, 2),
               rng.choice(["EUR", "USD", "GBP"]), v.timestamp(rng), v.timestamp(rng),
               f"SKU-{rng.randint(10**5, 10**6)}", v.hostname(rng), v.version(rng), notes,
               {"source": rng.choice(["web", "ios", "android"]), "build": v.build_number(rng), "log": log,
                "tags": [rng.choice(["vip", "b2b", "promo", "eu"]) for _ in range(rng.randint(0, 3))],
                "weights": [rng.randint(1, 999) for _ in range(3)], "ip": v.ip_address(rng)},
               contact]
        rows.append(row)
        size += len(json.dumps(row))
    return [(REALISTIC_COLUMNS, rows[i:i + RESULT_SET_ROWS]) for i in range(0, len(rows), RESULT_SET_ROWS)]


def corpus_rows(target_bytes: int) -> list[Table]:
    """The labelled test corpus, grown until it reaches the size, grouped by table."""
    tables: dict[tuple[str, ...], list[list[Any]]] = {}
    size, seed = 0, 1
    while size < target_bytes:
        for row in generate(3000, seed=seed):
            tables.setdefault(tuple(row.columns), []).append(row.values)
            size += len(json.dumps(row.values))
        seed += 1
    return [(list(cols), rows[i:i + RESULT_SET_ROWS]) for cols, rows in tables.items()
            for i in range(0, len(rows), RESULT_SET_ROWS)]


def size_of(tables: list[Table]) -> int:
    return sum(len(json.dumps(rows).encode()) for _, rows in tables)


def run(label: str, fn: Callable[[], Any], megabytes: float, repeat: int) -> float:
    best_cpu, best_wall = float("inf"), float("inf")
    for _ in range(repeat):
        clear_caches()  # every run validates cold: repeats must not measure the caches
        cpu, wall = time.process_time(), time.perf_counter()
        fn()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    rate = megabytes / best_cpu
    print(f"  {label:46} {rate:9.2f} MB/s   ({best_cpu:6.2f} s CPU, {best_wall:6.2f} s wall, {megabytes:.1f} MB)",
          flush=True)
    return rate


def engine(scanner: str, tables: list[Table]) -> Callable[[], Any]:
    masker = Masker(KEY, scanner=scanner)
    return lambda: [masker.mask_table(columns, rows) for columns, rows in tables]


def json_floor(tables: list[Table]) -> Callable[[], Any]:
    texts = [json.dumps(rows) for _, rows in tables]
    return lambda: [json.dumps(json.loads(t)) for t in texts]


def presidio(tables: list[Table]) -> Callable[[], Any] | None:
    if importlib.util.find_spec("presidio_analyzer") is None or importlib.util.find_spec("spacy") is None:
        return None
    import spacy
    import tldextract.tldextract as tld
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=())  # its bundled suffix list: no network

    class BlankSpacy(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    nlp = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    nlp.load()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])

    def analyse() -> None:
        for _, rows in tables:
            for row in rows:
                for cell in row:
                    if isinstance(cell, str) and cell:
                        analyzer.analyze(text=cell, language="en")
                    elif isinstance(cell, dict | list):
                        analyzer.analyze(text=json.dumps(cell), language="en")
    return analyse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=10.0, help="size of each data set in MB (default 10)")
    parser.add_argument("--presidio-mb", type=float, default=10.0,
                        help="how much of the realistic set Presidio analyses (default 10; it is slow; 0 skips it)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure, best kept (default 5)")
    args = parser.parse_args()

    have_hyperscan = importlib.util.find_spec("hyperscan") is not None
    for name, tables in (("realistic result set (sparse: 5% of rows sensitive)", realistic_rows(int(args.mb * 1e6))),
                         ("dense result set (every row sensitive, in free text)",
                          realistic_rows(int(args.mb * 1e6), share=1.0)),
                         ("dense labelled corpus (test corpus: configs, k8s objects, logs)",
                          corpus_rows(int(args.mb * 1e6)))):
        mb = size_of(tables) / 1e6
        rows = sum(len(r) for _, r in tables)
        print(f"{name}: {rows} rows, {mb:.1f} MB of JSON, result sets of {RESULT_SET_ROWS} rows")
        if have_hyperscan:
            run("engine, hyperscan prefilter", engine("hyperscan", tables), mb, args.repeat)
        else:
            print("  engine, hyperscan prefilter: hyperscan is not installed (pip install hyperscan)")
        run("engine, re prefilter", engine("re", tables), mb, args.repeat)
        run("floor: json.loads + json.dumps", json_floor(tables), mb, args.repeat)
        if not name.startswith("dense labelled") and args.presidio_mb > 0:
            subset, size = [], 0.0
            for columns, rows_ in tables:
                if size >= args.presidio_mb * 1e6:
                    break
                subset.append((columns, rows_))
                size += len(json.dumps(rows_).encode())
            analyse = presidio(subset)
            if analyse is None:
                print("  presidio: NOT MEASURED, presidio-analyzer/spacy are not installed "
                      "(pip install -r requirements-bench.txt)")
            else:
                run("presidio AnalyzerEngine, patterns only", analyse, size / 1e6, 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
