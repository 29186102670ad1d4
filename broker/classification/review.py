"""What ``data show`` prints: each stored column with its evidence and what decides its
sensitivity today (``broker/lineage/sensitivity.py``'s order: the catalog wins over discovery)."""

from __future__ import annotations

from typing import Any

from broker.catalog import Target
from broker.classification.store import Stored
from broker.lineage.sensitivity import FREE_TEXT, column_sensitivity


def review(target: Target, stored: Stored) -> dict[str, Any]:
    """A JSON-ready report: ``status`` is ``unclassified``, ``verified`` or ``tampered``."""
    status = "tampered" if stored.tampered else ("verified" if stored.run is not None else "unclassified")
    found = {c.key for c in stored.run.sensitive} if stored.run is not None and stored.verified else set()
    columns = []
    for row in sorted(stored.columns, key=lambda r: (not r.finding.sensitive, r.finding.key)):
        key = row.finding.key
        discovered = FREE_TEXT if (key in found or status == "tampered") else None
        kind, source = column_sensitivity(target, key, discovered)
        columns.append({**row.finding.to_dict(), "column": ".".join(key), "name": key[2], "kind": kind,
                        "decided_by": source, "verified": row.verified, "run_id": row.run_id})
    run = stored.run
    return {"target": target.name, "status": status,
            "run": None if run is None else {"run_id": run.run_id, "classified_at": run.classified_at, "by": run.by,
                                             "sample_rows": run.sample_rows, "skipped": run.skipped,
                                             "verified": stored.verified},
            "columns": columns}
