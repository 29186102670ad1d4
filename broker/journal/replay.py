"""Replay: journal records back as a person would read a terminal session (or as JSON for tools).

Each intent is shown with its outcome (matched by the outcome's ``intent`` id), so a session
reads prompt, command, masked result; an intent with no outcome is shown as such, never hidden.
Events other than ``execute.*`` get one summary line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from broker.journal.reader import StoredRecord
from broker.journal.records import Event

MAX_ROWS = 200
MAX_CELL = 48
OPEN_INTENT = ("no outcome recorded: the broker stopped, or could not journal the outcome; "
               "the command may or may not have run")


_COMMAND_EVENTS = (Event.EXECUTE_INTENT, Event.EXECUTE_OUTCOME, Event.EXECUTE_DENIED)


@dataclass
class Step:
    """One command (an intent with its outcome, a refusal, or an outcome whose intent is outside the
    window) or one other event."""

    main: StoredRecord
    outcome: StoredRecord | None = None

    @property
    def is_command(self) -> bool:
        return self.main.record.event in _COMMAND_EVENTS

    @property
    def is_open(self) -> bool:
        return self.main.record.event == Event.EXECUTE_INTENT and self.outcome is None

    @property
    def result(self) -> StoredRecord | None:
        """The record holding the step's outcome (None while an intent has none)."""
        if self.outcome is not None:
            return self.outcome
        return None if self.is_open else self.main


def steps(records: list[StoredRecord]) -> list[Step]:
    """Pair each intent with its outcome; everything else is a step of its own (in time order)."""
    outcomes = {str(r.record.outcome.get("intent")): r for r in records if r.record.event == Event.EXECUTE_OUTCOME}
    paired: set[str] = set()
    out: list[Step] = []
    for r in records:
        if r.record.event == Event.EXECUTE_INTENT:
            outcome = outcomes.get(r.id)
            if outcome is not None:
                paired.add(outcome.id)
            out.append(Step(r, outcome))
        elif r.id not in paired:
            out.append(Step(r))
    return out


# --- text --------------------------------------------------------------------------------------
def replay_text(records: list[StoredRecord], title: str = "") -> str:
    all_steps = steps(records)
    if not all_steps:
        return f"# journal replay{': ' + title if title else ''}: no records"
    first, last = records[0].at, records[-1].at
    commands = sum(1 for s in all_steps if s.is_command)
    head = f"# journal replay{': ' + title if title else ''} · {commands} command{'s' if commands != 1 else ''}" \
           f" · {_when(first)} .. {_when(last)}"
    return "\n\n".join([head, *(_render(s) for s in all_steps)]) + "\n"


def _when(at: str) -> str:
    return at.replace("T", " ")[:23] + "Z"


def _who(record: Any) -> str:
    p = record.principal or {}
    return str(p.get("display_name") or p.get("object_id") or "?")


def _render(step: Step) -> str:
    main = step.main.record
    if not step.is_command:
        detail = ", ".join(f"{k}={v}" for k, v in (("target", main.target), ("status", main.outcome.get("status")),
                                                     ("code", main.outcome.get("code"))) if v)
        return f"[{_when(step.main.at)}] {_who(main)} · {main.event}" + (f" · {detail}" if detail else "")
    lines = [_header(step.main.at, main), *_prompt(main)]
    if main.event == Event.EXECUTE_DENIED:
        lines.append(f"✗ refused: {main.outcome.get('code', 'refused')}"
                     + (f" — {main.decision.get('reason')}" if main.decision.get("reason") else ""))
    elif step.is_open:
        lines.append(f"⚠ {OPEN_INTENT}")
    elif step.result is not None:
        lines += _result(step.result.record)
    return "\n".join(lines)


def _header(at: str, r: Any) -> str:
    parts = [f"[{_when(at)}] {_who(r)} @ {r.target or '?'}"]
    if r.classification.get("risk"):
        parts.append(str(r.classification["risk"]))
    d = r.decision
    if d.get("effect"):
        rule = ", ".join(x for x in (f"rule {d['rule_id']}" if d.get("rule_id") else "",
                                     f"policy {str(d['policy_version'])[:8]}" if d.get("policy_version") else "") if x)
        parts.append(f"{d['effect']}" + (f" ({rule})" if rule else ""))
    if r.reason or r.ticket:
        parts.append("reason: " + " ".join(x for x in (r.ticket, r.reason) if x))
    return " · ".join(parts)


def _prompt(r: Any) -> list[str]:
    command = r.command or {}
    if command.get("sql") is not None:
        sql_lines = str(command["sql"]).splitlines() or [""]
        target = r.target or "db"
        return [f"{target}=> {sql_lines[0]}", *(f"{target}-> {line}" for line in sql_lines[1:])]
    if command.get("argv") is not None:
        return ["$ kubectl " + " ".join(str(a) for a in command["argv"])]
    return ["> " + json.dumps(command, ensure_ascii=False)] if command else []


def _result(r: Any) -> list[str]:
    o = r.outcome
    if o.get("status") == "error":
        return [f"ERROR ({o.get('code', 'error')}): {o.get('detail', '')}"]
    lines: list[str] = []
    response = r.response
    if isinstance(response, dict) and "columns" in response:
        lines += _table(response.get("columns") or [], response.get("rows") or [])
    elif isinstance(response, dict) and response.get("text") is not None:
        lines.append(str(response["text"]).rstrip("\n"))
    elif response is not None:
        lines.append(json.dumps(response, indent=2, ensure_ascii=False))
    facts = []
    if o.get("rows") is not None:
        facts.append(f"{o['rows']} row{'s' if o['rows'] != 1 else ''}")
    if o.get("affected") is not None:
        facts.append(f"{o['affected']} affected")
    if o.get("truncated"):
        facts.append("truncated")
    masked = o.get("masked") or {}
    if masked:
        facts.append("masked: " + ", ".join(f"{k} {v}" for k, v in sorted(masked.items())))
    if o.get("duration_ms") is not None:
        facts.append(f"{o['duration_ms']} ms")
    if facts:
        lines.append("(" + " · ".join(facts) + ")")
    return lines


def _cell(value: Any) -> str:
    text = "" if value is None else (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def _table(columns: list[Any], rows: list[Any]) -> list[str]:
    """psql's aligned format: a header, a rule, the rows."""
    names = [str(c.get("name") if isinstance(c, dict) else c) for c in columns]
    cells = [[_cell(v) for v in row] for row in rows[:MAX_ROWS]]
    widths = [max([len(n)] + [len(row[i]) for row in cells if i < len(row)]) for i, n in enumerate(names)]
    lines = [" " + " | ".join(n.center(w) for n, w in zip(names, widths, strict=True)),
             "-" + "-+-".join("-" * w for w in widths) + "-"]
    lines += [" " + " | ".join(row[i].ljust(w) if i < len(row) else " " * w for i, w in enumerate(widths))
              for row in cells]
    if len(rows) > MAX_ROWS:
        lines.append(f"… {len(rows) - MAX_ROWS} more rows")
    return [line.rstrip() for line in lines]


# --- json --------------------------------------------------------------------------------------
def replay_json(records: list[StoredRecord]) -> list[dict[str, Any]]:
    """One object per step: the command, who, the decision, the outcome and masked response."""
    out = []
    for step in steps(records):
        main = step.main
        r = main.record
        result = step.result.record if step.result is not None else None
        out.append({
            "at": main.at, "event": r.event, "record_id": main.id, "request_id": r.request_id,
            "session_id": r.session, "who": _who(r), "principal": r.principal, "target": r.target,
            "command": r.command, "risk": r.classification.get("risk"), "decision": r.decision,
            "outcome_record_id": step.outcome.id if step.outcome is not None else None,
            "outcome": result.outcome if result is not None else None,
            "response": result.response if result is not None else None,
            "open": step.is_open,
        })
    return out
