"""``data``: discover which columns of an SQL target hold secrets or personal data (operators).

``data classify TARGET`` samples every base table of the target (``--sample N`` rows each, in a
read-only transaction with a statement timeout, with the broker's own credential), runs the
masking detectors over the values and stores, signed, which columns held what (evidence: hits per
values sampled), journaled as ``classify.intent``/``classify.outcome`` (counts, never values).
Lineage then treats a free-text column in which the sample found secrets or PII as sensitive:
masked whole when transformed, an oracle when it shapes the answer.

``data show TARGET`` prints the stored result for review, with what decides each column: the
catalog (``sensitive.columns``, ``not_sensitive``), a name rule, or discovery. The catalog wins.

Runs with the broker's settings (``BROKER_*``, as the Function app has them; the operator's Azure
login reaches Key Vault, storage and the target); without them, the dev stack's.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="discover and review sensitive columns of SQL targets (operators)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    classify = dsub.add_parser("classify", help="sample a target's tables and store which columns are sensitive",
                               description="Sample every base table of TARGET and store the findings (signed).")
    classify.add_argument("target")
    classify.add_argument("--sample", type=int, metavar="N",
                          help="rows per table (default BROKER_CLASSIFICATION_SAMPLE_ROWS, 100)")
    classify.add_argument("--json", action="store_true", help="print the run as JSON")
    classify.set_defaults(func=run_classify)
    show = dsub.add_parser("show", help="the stored classification of a target, for review",
                           description="Every stored column with its evidence and what decides it (catalog wins).")
    show.add_argument("target")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_show)


def _broker(target: str) -> Any:
    """The operator's broker; the catalogue and the target's name are checked first, so a typo is
    refused before the drivers, storage and Key Vault are set up."""
    from broker.catalog import load_catalog
    from broker.cli._client import operator_broker, operator_settings

    settings = operator_settings()
    load_catalog(settings.catalog_path).get(target)
    return operator_broker(settings)


def _operator() -> dict[str, Any]:
    import getpass
    import socket

    return {"kind": "operator", "display_name": f"{getpass.getuser()}@{socket.gethostname()}",
            "object_id": "", "tenant_id": "", "via": "python -m broker data classify"}


def _refused(error: Exception) -> int:
    print(f"error: {getattr(error, 'detail', error)} ({getattr(error, 'code', type(error).__name__)})",
          file=sys.stderr)
    return 2


def run_classify(args: argparse.Namespace) -> int:
    from broker.problems import BrokerError

    try:
        broker = _broker(args.target)
    except (BrokerError, ValueError, OSError) as exc:
        return _refused(exc)
    try:
        run = broker.classifier.classify(args.target, _operator(), rows=args.sample)
    except BrokerError as error:
        return _refused(error)
    finally:
        broker.close()
    if args.json:
        print(json.dumps({"target": run.target, "run_id": run.run_id, "classified_at": run.classified_at,
                          "by": run.by, **run.counts()}, indent=2, ensure_ascii=False))
        return 0
    counts = run.counts()
    print(f"classified {run.target}: {counts['tables']} tables, {counts['columns']} columns, "
          f"{counts['sensitive']} sensitive (sample {run.sample_rows} rows per table), run {run.run_id}")
    for column in run.sensitive:
        print(f"  {'.'.join(column.key)}: {_types(column.types)} in {column.hits}/{column.sampled} values")
    for table, code in run.skipped.items():
        print(f"  skipped {table}: {code}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from broker.problems import BrokerError

    try:
        broker = _broker(args.target)
    except (BrokerError, ValueError, OSError) as exc:
        return _refused(exc)
    from broker.classification.review import review

    try:
        target = broker.catalog.get(args.target)
        report = review(target, broker.classifier.store.load(target.name))
    except BrokerError as error:
        return _refused(error)
    finally:
        broker.close()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0 if report["status"] != "tampered" else 1
    print(render(report))
    return 0 if report["status"] != "tampered" else 1


def _types(types: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(types.items())) or "-"


def render(report: dict[str, Any]) -> str:
    """The review as text: one line per column, sensitive ones first."""
    lines = [f"target {report['target']}: {report['status']}"]
    run = report.get("run")
    if run:
        by = run["by"].get("display_name") or run["by"].get("kind", "?")
        lines.append(f"run {run['run_id']} at {run['classified_at']} by {by}, sample {run['sample_rows']} rows "
                     "per table")
        lines.extend(f"skipped {table}: {code}" for table, code in run["skipped"].items())
    if report["status"] == "tampered":
        lines.append("the stored result does not verify: every column is treated as free text until the next run")
    lines.append(f"{'column':<40} {'sensitive as':<14} {'decided by':<14} {'evidence':<10} types")
    for c in report["columns"]:
        evidence = f"{c['hits']}/{c['sampled']}"
        flag = "" if c["verified"] else "  (row does not verify)"
        lines.append(f"{c['column']:<40} {c['kind'] or '-':<14} {c['decided_by']:<14} {evidence:<10} "
                     f"{_types(c['types'])}{flag}")
    return "\n".join(lines)
