"""The short text the MCP tools put beside their structured content: a table of the first rows, what a
pending request waits for, how a request ended. The structured content has everything; this is
what a client that shows only text (or a model that reads only text) sees."""

from __future__ import annotations

import json
from typing import Any

TEXT_ROWS = 20


def table_text(body: dict[str, Any]) -> str:
    """A short text rendering of an execute answer (the structured content has everything)."""
    lines = [f"{body['status']} on {body['target']}: {body.get('command_status', '')} "
             f"(risk {body['risk']}, request {body['request_id']})"]
    kind = body.get("result_kind", "rows")
    if kind == "rows" and body.get("columns"):
        lines.append(" | ".join(c["name"] for c in body["columns"]))
        for row in body["rows"][:TEXT_ROWS]:
            lines.append(" | ".join("NULL" if v is None else str(v) for v in row))
        if not body["rows"]:
            lines.append("(no rows)")
        if body["row_count"] > TEXT_ROWS:
            lines.append(f"... {body['row_count'] - TEXT_ROWS} more rows in structuredContent")
    elif kind == "document":
        lines.append(json.dumps(body["document"], ensure_ascii=False)[:2000])
    elif body.get("text"):
        lines.append(body["text"][:2000])
    if body.get("truncation"):
        t = body["truncation"]
        lines.append(f"truncated by {t['reason']} (limit {t['limit']}): {t['remedy']}")
        if t.get("cells"):  # a withheld cell shows as NULL above: say it is not one
            lines.append("withheld cells (row, column, bytes), NULL above but not NULL: "
                         + ", ".join(f"({c['row']}, {c['column']}, {c['bytes']})" for c in t["cells"][:20]))
    if body.get("masked"):
        lines.append("masked: " + ", ".join(f"{k} {v}" for k, v in sorted(body["masked"].items())))
    return "\n".join(lines)


def pending_text(body: dict[str, Any]) -> str:
    return (f"Waiting for approval (request {body['request_id']}, expires {body['expires_at']}). "
            f"Call wait_for_request with this request_id.")


def done_text(body: dict[str, Any]) -> str:
    """A request that got somewhere (done, an active or ended grant): its status, the next step, the result."""
    text = f"request {body['request_id']}: {body['status']}. {body['next_step']}"
    if isinstance(body.get("result"), dict) and "columns" in body["result"]:
        text += "\n" + table_text({**body["result"], "status": body["status"], "target": body["target"],
                                    "risk": body.get("risk"), "request_id": body["request_id"]})
    return text
