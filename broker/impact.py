"""Measured impact of an SQL change, for approvers, and the bound that holds the approved run to it.

Before approvers are asked, the held statement runs once inside a transaction that is always rolled
back (the engine's ``ImpactTrial``), under the policy's statement timeout and a lock timeout; what it
would change (rows per statement and per table, each table's size, a few changed rows, masked) is
journaled (``execute.preview``: an intent before the trial, the outcome after) and kept with the
request. A measured change already past the policy's ``max_rows_changed`` fails the request before
anyone is asked (``impact_exceeded``). When the approved command runs, it runs in one transaction that
commits only if it changes no more than was measured, nor more than the policy's ``max_rows_changed``;
else it rolls back and the request fails ``impact_exceeded``.

The trial never runs when it could have effects a rollback does not undo: a function the guard
found with side effects (sequences, notifications, advisory locks, other connections, code it cannot
inspect) refuses it here; the engine refuses triggers, non-transactional tables and sequence draws.
Approvers then read "impact not measured" and why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.catalog import Target
from broker.guard import Classification
from broker.guard.languages import SQL
from broker.journal import JournalWriter
from broker.journal import events as journaled
from broker.journal.events import Subject
from broker.lineage.guard import LineageGuard, withhold
from broker.lineage.schema import Schema
from broker.masking import Masker
from broker.policy import Decision
from broker.problems import BrokerError, Forbidden
from broker.secrets import CredentialResolver
from broker.targets import Command, ExecutionLimits, TargetEngine
from broker.targets.base import Impact, ImpactBound, ImpactTrial, SchemaSource

SAMPLE_ROWS = 10
"""Changed rows shown to approvers (masked) when the change is small."""

_OUTSIDE = ("exec", "admin", "privilege", "session", "unknown")


def trial_refusal(classification: Classification) -> str:
    """Why the guard's findings forbid a trial run ('' when they do not): a function call with an
    effect (every function finding of risk write or above) or code the broker cannot inspect."""
    for finding in classification.details.get("findings", []):
        risk, _, reason = str(finding).partition(": ")
        if risk in _OUTSIDE or (risk != "read" and "()" in reason):
            return reason
    return ""


def not_measured(reason: str) -> dict[str, Any]:
    return {"measured": False, "reason": reason, "tables": [], "notes": []}


class ImpactMeasurer:
    """The trial for the approval workflow and the bound for the run (``ExecuteService`` owns one)."""

    def __init__(self, *, engines: dict[str, TargetEngine], credentials: CredentialResolver,
                 journal: JournalWriter, lineage: LineageGuard, masker: Callable[[], Masker],
                 mask: Callable[[TargetEngine, Masker, Any, Target, dict[str, Any] | None], dict[str, int]]) -> None:
        self._engines = engines
        self._credentials = credentials
        self._journal = journal
        self._lineage = lineage
        self._masker = masker
        self._mask = mask

    def measure(self, subject: Subject, target: Target, command: Command, classification: Classification,
                decision: Decision) -> dict[str, Any] | None:
        """The masked impact (kept with the request, shown to approvers), or None for an engine
        without a trial. Journaled: the trial's intent before it runs, its outcome after."""
        engine = self._engines[target.engine]
        if command.language != SQL.name or not isinstance(engine, ImpactTrial):
            return None
        why = trial_refusal(classification)
        if why:
            shown = not_measured(f"the trial was not run: {why}")
            self._journal.write(journaled.execute_preview(subject, {"status": "not_measured", "impact": shown}))
            return shown
        self._journal.write(journaled.execute_preview(subject, {"status": "trial"}))
        limits = ExecutionLimits(decision.limits.max_rows, decision.limits.max_bytes,
                                 decision.limits.statement_timeout_ms)
        masker = self._masker()
        impact = engine.measure_impact(target, command, self._credentials.resolve(target.credential), limits,
                                       sample_rows=SAMPLE_ROWS)
        shown, counts, response = self._shown(engine, masker, impact, target, command, classification)
        maximum = decision.limits.max_rows_changed
        if maximum is not None:
            shown["max_rows_changed"] = maximum
            if impact.measured:  # approvers are not asked about a change the run would refuse anyway
                per_table = {t.table: t.changed for t in impact.tables}
                shown["exceeds"] = ImpactBound(max_rows_changed=maximum).excess(impact.rows, per_table) or ""
        self._journal.write(journaled.execute_preview(subject, {
            "status": "ok" if impact.measured else ("error" if impact.error else "not_measured"),
            "impact": {k: v for k, v in shown.items() if k != "sample"}, "masked": counts}, response=response))
        return shown

    def _shown(self, engine: TargetEngine, masker: Masker, impact: Impact, target: Target, command: Command,
               classification: Classification) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
        shown: dict[str, Any] = {
            "measured": impact.measured, "statement_rows": impact.rows, "changed": impact.changed,
            "tables": [t.to_dict() for t in impact.tables], "notes": list(impact.notes), "reason": impact.reason}
        counts: dict[str, int] = {}
        response: dict[str, Any] = {}
        if impact.error:
            shown["error"] = (masker.mask_text(impact.error) if not withhold(classification) else
                              f"the statement failed in the trial (error {impact.error_code or 'unknown'}); its "
                              "message is withheld because the statement reads a sensitive column")
            shown["error_code"] = impact.error_code
        if impact.sample is not None and impact.sample.rows:
            lineage = self._sample_lineage(engine, target, impact)
            counts = self._mask(engine, masker, impact.sample, target, lineage)
            shown["sample"] = {"columns": [c.name for c in impact.sample.columns], "rows": impact.sample.rows,
                               "of": impact.changed}
            response = {"columns": shown["sample"]["columns"], "rows": impact.sample.rows}
        return shown, counts, response

    def _sample_lineage(self, engine: TargetEngine, target: Target, impact: Impact) -> dict[str, Any] | None:
        """Which sample columns derive from sensitive ones: the sample is a table's rows, so it is masked as
        reading them would be (unknown lineage masks every column)."""
        if not self._lineage.applies(target, engine.dialect):
            return None
        if not isinstance(engine, SchemaSource) or not impact.sample_source:
            return {"applies": True, "outputs": None}
        try:
            def read() -> Schema:
                return engine.read_schema(target, self._credentials.resolve(target.credential))

            found = self._lineage.lineage(target, engine.dialect, impact.sample_source, read)
        except BrokerError:
            return {"applies": True, "outputs": None}
        return found.to_dict()

    def bound(self, engine: TargetEngine, command: Command, classification: Classification, decision: Decision,
              previewed: dict[str, Any] | None) -> ImpactBound | None:
        """What the run may change: the measured impact (approved commands) and the policy maximum.
        None when nothing bounds it. An engine that cannot hold a run to a bound refuses the run."""
        if command.language != SQL.name or classification.read_only:
            return None
        measured = previewed if previewed and previewed.get("measured") else None
        maximum = decision.limits.max_rows_changed
        if measured is None and maximum is None:
            return None
        if not isinstance(engine, ImpactTrial):
            raise Forbidden("The policy bounds the rows this change may touch, but this target's engine cannot "
                            "hold a run to a bound; it does not run.", code="impact_not_measured",
                            remedy="Ask an operator to lift max_rows_changed for this target.")
        if measured is None:
            return ImpactBound(max_rows_changed=maximum)
        return ImpactBound(rows=measured.get("statement_rows"),
                           tables={t["table"]: int(t["changed"]) for t in measured.get("tables", [])},
                           max_rows_changed=maximum)


def summary(impact: dict[str, Any]) -> list[str]:
    """The lines approvers read: "changes 240 of 240 rows in customers", or why it was not measured."""
    if not impact.get("measured"):
        bound = ([f"the policy lets it change at most {impact['max_rows_changed']} row(s)"]
                 if impact.get("max_rows_changed") is not None else [])
        if impact.get("error"):
            return [f"impact not measured: {impact['error']}", *bound]
        return [f"impact not measured: {impact.get('reason') or 'no trial was made'}", *bound]
    lines = []
    for t in impact.get("tables", []):
        total = "?" if t.get("total") is None else f"{'' if t.get('total_exact') else '~'}{t['total']}"
        verbs = ", ".join(f"{n} {w}" for n, w in ((t["updated"], "updated"), (t["deleted"], "deleted"),
                                                   (t["inserted"], "inserted")) if n)
        lines.append(f"changes {t['changed']} of {total} rows in {t['table']} ({verbs})")
    if not lines:
        lines.append(f"changes {impact.get('statement_rows') or 0} rows")
    elif impact.get("statement_rows") is not None and len(lines) > 1:
        lines.append(f"the statement itself reports {impact['statement_rows']} row(s)")
    if impact.get("max_rows_changed") is not None:
        lines.append(f"the policy lets it change at most {impact['max_rows_changed']} row(s)")
    return lines + list(impact.get("notes", []))
