"""The execute path: decide, journal the intent, run with the broker's credential, mask, journal
the outcome, answer. The order is the invariant: nothing runs before its intent is durable, and
nothing is answered before its (masked) outcome is durable.

``submit`` is the one use case every entry point (REST, MCP) calls: it answers ``Done`` (the masked
result) or ``Pending`` (held for people through the approval port, its workflow started); the
adapters only translate. The approval workflow later calls ``preview_held`` and ``run_approved``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from broker.admission import Admission
from broker.catalog import Catalog, Target
from broker.execute.masking import MaskerSource, api_calls, mask_result, masked_failure, names_missing, response_of
from broker.execute.outcome import ApprovalNeeded, CommandPreview, Done, ExecuteResult, Pending
from broker.execute.ports import APPROVAL_ORCHESTRATOR, ApprovalDesk, GrantLookup, WorkflowStarter, start_or_abandon
from broker.execute.request import CallContext, ExecuteBody
from broker.guard import Classification, Risk
from broker.guard.hidden import with_hidden_text
from broker.guard.languages import LANGUAGES, SQL, CommandLanguage
from broker.identity import Principal
from broker.impact import ImpactMeasurer
from broker.journal import JournalWriter
from broker.journal import events as journaled
from broker.journal.events import Subject
from broker.journal.records import utc_now_iso
from broker.lineage import Schema, Sensitivity
from broker.lineage.guard import LineageGuard, withhold
from broker.policy import Decision, Policy
from broker.policy.match import ROWS_CHANGED
from broker.problems import BadRequest, BrokerError, Forbidden, Unavailable
from broker.secrets import CredentialResolver
from broker.targets import Command, ExecutionLimits, TargetEngine
from broker.targets.base import DryRun, ImpactBound, ImpactTrial, SchemaSource


def decided(subject: Subject, target: Target, command: Command, classification: Classification,
            decision: Decision) -> Subject:
    """The call's subject once the target is known and the command classified and decided."""
    return subject.refined(target=target.name, command=command.canonical(), command_digest=command.digest,
                           classification=classification.to_dict(), decision=decision.to_dict())


class ExecuteService:
    def __init__(self, *, catalog: Catalog, policy: Policy, engines: dict[str, TargetEngine],
                 credentials: CredentialResolver, masker: MaskerSource, journal: JournalWriter,
                 grants: GrantLookup | None = None, admission: Admission | None = None,
                 lineage: LineageGuard | None = None, approvals: ApprovalDesk | None = None) -> None:
        self._catalog = catalog
        self._approvals = approvals
        self._lineage = lineage or LineageGuard()
        self._admission = admission or Admission()
        self._grants = grants
        self._policy = policy
        self._engines = engines
        self._credentials = credentials
        self._masker = masker
        self._journal = journal
        self._impact = ImpactMeasurer(engines=engines, credentials=credentials, journal=journal,
                                      lineage=self._lineage, masker=masker.get, mask=mask_result)

    @property
    def masker(self) -> MaskerSource:
        return self._masker

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def language_of(self, target: Target) -> CommandLanguage:
        """What the target takes (``guard/languages.py``: ``sql`` or ``kubectl``)."""
        return LANGUAGES[self._engines[target.engine].language]

    def schema_of(self, target_name: str) -> tuple[Target, Schema, Sensitivity] | None:
        """The target's (cached) schema and its sensitive columns, as lineage sees them; None for a
        target whose engine cannot list columns (Kubernetes). Nothing of the data is read."""
        target = self._catalog.get(target_name)
        engine = self._engines[target.engine]
        if not isinstance(engine, SchemaSource):
            return None
        reason = engine.unavailable_reason()
        if reason is not None:
            raise Unavailable(f"Target {target.name} cannot be reached from here: {reason}", code="engine_unavailable")
        schema = self._lineage.schema(target, lambda: engine.read_schema(
            target, self._credentials.resolve(target.credential)))
        return target, schema, self._lineage.sensitivity(target, schema)

    # --- the two halves, usable separately (the approval workflow runs the second later) ---
    def evaluate(self, principal: Principal, body: ExecuteBody) -> tuple[Target, Command, Classification, Decision]:
        target = self._catalog.get(body.target)
        engine = self._engines[target.engine]
        command = body.command()
        if command.language != engine.language:
            raise BadRequest(f"Target {target.name} is a {target.engine} target; send "
                             f"'{engine.language}', not '{command.language}'.", code="unsupported_command")
        classification = engine.classify(command)
        invalid = classification.details.get("invalid")
        if invalid:
            raise _invalid_command(invalid)
        classification = self._refine(engine, target, command, classification)
        decision = self._policy.decide(principal, target, classification)
        if self._grants is not None and decision.effect == "approve":
            # A grant can only turn "approve" into "allow": only such a command costs a grant lookup.
            grants = self._grants(principal.key, target.name)
            if grants:
                decision = self._policy.decide(principal, target, classification, grants=grants)
        return target, command, classification, decision

    def _classify(self, engine: TargetEngine, target: Target, command: Command) -> Classification:
        """The guard's answer, refined by what the target's catalog resolves (functions, views)."""
        return self._refine(engine, target, command, engine.classify(command))

    def _refine(self, engine: TargetEngine, target: Target, command: Command,
                classification: Classification) -> Classification:
        """Refined by the target's catalog (functions, views), then by column lineage: which outputs
        derive from sensitive columns, and whether one shapes the answer (``broker/lineage``)."""
        classification = engine.resolve(target, command, classification,
                                        lambda: self._credentials.resolve(target.credential))
        classification = with_hidden_text(classification, command.canonical())
        walled = target.sensitive.database_masking
        if walled is not None and command.language == SQL.name:  # journaled with the decision, for auditors
            classification = replace(classification, details={
                **classification.details, "database_masking": {"kind": walled.kind, "role": walled.role}})
        if command.language != SQL.name or not self._lineage.applies(target, engine.dialect):
            return classification
        if engine.unavailable_reason() is not None:  # it cannot run here: the run refuses it (journaled)
            return classification
        if not isinstance(engine, SchemaSource):  # an SQL engine that cannot list columns: all masked
            details = {**classification.details, "lineage": {"touches_sensitive": True,
                                                             "unresolved": "the engine cannot list its columns"}}
            return replace(classification, details=details)
        return self._lineage.refine(target, engine.dialect, command.sql, classification,
                                    lambda: engine.read_schema(target, self._credentials.resolve(target.credential)))

    def submit(self, principal: Principal, body: ExecuteBody, ctx: CallContext, *, workflow: WorkflowStarter,
               reads_only: bool = False) -> Done | Pending:
        """The agent's call, whole: ``Done`` with the masked result, or ``Pending`` once the command is
        held for people and their workflow started (a resubmission answers with the request already
        open and starts nothing). Refusals raise ``BrokerError``, journaled.

        ``reads_only`` refuses (journaled, 400 ``not_a_read``) anything the guard does not classify
        as a read: the MCP ``query`` tool promises clients that it changes nothing.
        """
        outcome = self._decide_and_run(principal, body, ctx, reads_only=reads_only)
        if isinstance(outcome, ExecuteResult):
            return Done(outcome)
        desk = self._approvals
        if desk is None:  # nobody can hold it here: refused like a command that needs approval
            self._journal.write(journaled.execute_denied(outcome.subject, "approval_required"))
            raise Forbidden("This command needs an approval, and no approval desk is configured.",
                            code="approval_required")
        held = desk.hold(outcome, ctx)
        if not held.resubmitted:
            start_or_abandon(workflow, desk, APPROVAL_ORCHESTRATOR, held)
        return Pending(held)

    def _decide_and_run(self, principal: Principal, body: ExecuteBody, ctx: CallContext, *,
                        reads_only: bool = False) -> ExecuteResult | ApprovalNeeded:
        """Run an allowed command now; a command that needs approval comes back as ``ApprovalNeeded``."""
        request_id = str(uuid.uuid4())
        subject = Subject(request_id=request_id, principal=principal.describe(), client=ctx.to_dict(),
                          reason=body.reason, ticket=body.ticket, received_at=utc_now_iso())
        started = time.perf_counter()
        try:
            target, command, classification, decision = self.evaluate(principal, body)
            if reads_only and classification.risk not in (Risk.READ, Risk.READ_SECRET, Risk.SENSITIVE_PREDICATE):
                raise _not_a_read(classification)
        except BrokerError as refusal:
            self._journal.write(journaled.execute_denied(
                subject.refined(target=body.target, command=_journaled_refusal(body.command(), refusal)),
                refusal.code))
            raise
        subject = decided(subject, target, command, classification, decision)
        if decision.effect == "approve" and decision.approval is not None:
            return ApprovalNeeded(request_id, principal, target, command, classification, decision, body, subject)
        if decision.effect != "allow":
            code = "policy_denied" if decision.effect == "deny" else "approval_required"
            self._journal.write(journaled.execute_denied(subject, code))
            raise Forbidden(
                f"Policy does not allow this {classification.risk.value} command on {target.name}: "
                f"{decision.reason}.", code=code, remedy=_denial_remedy(classification, decision.remedy),
                extra={"risk": classification.risk.value, "risk_reason": classification.reason,
                       "rule_id": decision.rule_id, "policy_version": decision.policy_version})
        if body.max_rows is not None and body.max_rows < decision.limits.max_rows:
            decision = replace(decision, limits=decision.limits.model_copy(update={"max_rows": body.max_rows}))
            subject = subject.refined(decision=decision.to_dict())
        decide_ms = (time.perf_counter() - started) * 1000
        try:
            bound = self._impact.bound(self._engines[target.engine], command, classification, decision, None)
        except BrokerError as refusal:
            self._journal.write(journaled.execute_denied(subject, refusal.code))
            raise
        result = self.run(principal, target, command, classification, decision, subject, bound=bound)
        result.timings = {"decide": decide_ms, **result.timings}
        return result

    def run_approved(self, requester: Principal, target_name: str, command: Command, digest: str,
                     request_id: str, approvals: list[dict[str, Any]], reason: str = "",
                     ticket: str = "", impact: dict[str, Any] | None = None) -> ExecuteResult:
        """Run a command that people approved: the exact one (digest), under today's policy.

        The policy is asked again: a rule that now denies wins over an old approval; the
        classification is recomputed from the stored text, never taken from the request. A measured
        ``impact`` (what approvers were shown) bounds the run: past it, it rolls back (``impact_exceeded``).
        """
        if command.digest != digest:
            raise Forbidden("The stored command does not match the approved digest; it will not run.",
                            code="digest_mismatch")
        target = self._catalog.get(target_name)
        engine = self._engines[target.engine]
        classification = self._classify(engine, target, command)
        decision = self._policy.decide(requester, target, classification)
        subject = decided(Subject(request_id=request_id, principal=requester.describe(), reason=reason,
                                  ticket=ticket), target, command, classification, decision)
        subject = subject.refined(decision={**subject.decision, "approved_by": approvals})
        if decision.effect == "deny":
            self._journal.write(journaled.execute_denied(subject, "policy_denied"))
            raise Forbidden(f"The policy now denies this command: {decision.reason}.", code="policy_denied")
        try:
            bound = self._impact.bound(engine, command, classification, decision, impact)
        except BrokerError as refusal:
            self._journal.write(journaled.execute_denied(subject, refusal.code))
            raise
        if bound is not None:
            subject = subject.refined(decision={**subject.decision, "impact_bound": {
                "rows": bound.rows, "tables": bound.tables, "max_rows_changed": bound.max_rows_changed}})
        return self.run(requester, target, command, classification, decision, subject, bound=bound)

    def run(self, principal: Principal, target: Target, command: Command, classification: Classification,
            decision: Decision, subject: Subject, *, bound: ImpactBound | None = None) -> ExecuteResult:
        """Take a fair-share slot of the target, journal the intent, run once, mask, journal the
        outcome. Raises BrokerError on refusal (a caller over its limit is refused before the intent)."""
        queued = time.perf_counter()
        try:
            slot = self._admission.admit(target.name, principal.key, per_caller=decision.limits.max_concurrent,
                                         capacity=target.max_concurrency)
        except BrokerError as busy:
            self._journal.write(journaled.execute_denied(subject, busy.code))
            raise
        admitted_ms = (time.perf_counter() - queued) * 1000  # the wait for one of the target's slots
        with slot:
            result = self._run_admitted(target, command, classification, decision, subject, bound)
        result.timings = {"admission": admitted_ms, **result.timings}
        return result

    def _run_admitted(self, target: Target, command: Command, classification: Classification,
                      decision: Decision, subject: Subject, bound: ImpactBound | None = None) -> ExecuteResult:
        mark = time.perf_counter()
        intent_id = self._journal.write(journaled.execute_intent(subject))
        started = time.perf_counter()
        started_at = utc_now_iso()
        timings = {"journal-intent": (started - mark) * 1000}
        try:
            masker = self._masker.get()
            secret = self._credentials.resolve(target.credential)
            limits = ExecutionLimits(decision.limits.max_rows, decision.limits.max_bytes,
                                     decision.limits.statement_timeout_ms)
            engine = self._engines[target.engine]
            read_only = classification.read_only or target.read_only
            if bound is not None and isinstance(engine, ImpactTrial) and not read_only:
                result = engine.execute_bounded(target, command, secret, limits, bound)
            else:
                result = engine.execute(target, command, secret, limits, read_only=read_only)
            ran = time.perf_counter()
            masked_counts = mask_result(engine, masker, result, target, classification.details.get("lineage"))
            timings["run"], timings["mask"] = (ran - started) * 1000, (time.perf_counter() - ran) * 1000
        except BrokerError as failure:
            if _undefined_name(failure):
                self._lineage.forget(target.name)
            failure = masked_failure(failure, self._masker, withhold=withhold(classification))
            elapsed = (time.perf_counter() - started) * 1000
            error: dict[str, Any] = {"intent": intent_id, "status": "error", "code": failure.code,
                                     "detail": failure.detail, "duration_ms": round(elapsed, 2)}
            if failure.operations:
                error["operations"] = failure.operations
            self._journal.write(journaled.execute_outcome(subject, error, started_at=started_at,
                                                          ended_at=utc_now_iso()))
            raise failure from None
        elapsed = (time.perf_counter() - started) * 1000
        ended_at = utc_now_iso()
        outcome: dict[str, Any] = {"intent": intent_id, "status": "ok", "rows": result.row_count,
                                   "bytes": result.bytes, "truncated": result.truncated, "masked": masked_counts,
                                   "command_status": result.status, "affected": result.affected,
                                   "duration_ms": round(elapsed, 2)}
        operations = api_calls(result)
        if operations:
            outcome["operations"] = operations
        if result.cut_cells:
            outcome["cut_cells"] = len(result.cut_cells)
        mark = time.perf_counter()
        outcome_id = self._journal.write(journaled.execute_outcome(subject, outcome, started_at=started_at,
                                                                   ended_at=ended_at, response=response_of(result)))
        timings["journal-outcome"] = (time.perf_counter() - mark) * 1000
        return ExecuteResult(subject.request_id, outcome_id, target.name, result, masked_counts, elapsed,
                             classification, decision, timings=timings)

    def preview_held(self, requester: Principal, target_name: str, command: Command,
                     request_id: str) -> CommandPreview | None:
        """The dry run of a command held for approval, under today's policy and classification."""
        target = self._catalog.get(target_name)
        engine = self._engines[target.engine]
        classification = self._classify(engine, target, command)
        decision = self._policy.decide(requester, target, classification)
        if command.language == SQL.name:
            subject = decided(Subject(request_id=request_id, principal=requester.describe()), target, command,
                              classification, decision)
            impact = self._impact.measure(subject, target, command, classification, decision)
            if impact is None:
                return None
            return CommandPreview(None, {}, "", impact=impact,
                                  measured_decision=self._decide_measured(requester, target, classification,
                                                                          decision, impact))
        return self.preview(requester, target, command, decision, request_id)

    def _decide_measured(self, requester: Principal, target: Target, classification: Classification,
                         decision: Decision, impact: dict[str, Any]) -> Decision | None:
        """The policy's answer once the rows are known, when it differs from ``decision``: rules
        with ``rows_changed_over`` can only match now. Never looser than asking: an allow keeps the
        approval that was asked for."""
        if not impact.get("measured"):
            return None
        measured = replace(classification, details={**classification.details, ROWS_CHANGED: int(impact["changed"])})
        again = self._policy.decide(requester, target, measured)
        if again.effect == "allow" or (again.effect, again.rule_id) == (decision.effect, decision.rule_id):
            return None
        return again

    # --- kubernetes (issue 5): what a changing command would do, for approvers ---
    def preview(self, principal: Principal, target: Target, command: Command, decision: Decision,
                request_id: str) -> CommandPreview | None:
        """A masked server-side dry run of ``command`` (a unified diff), journaled as ``execute.preview``.

        None when the engine has no dry run for the command (SQL, reads, exec). Nothing is persisted
        on the target. Raises BrokerError when the dry run itself is refused (e.g. an invalid manifest).
        """
        engine = self._engines[target.engine]
        if not isinstance(engine, DryRun):
            return None
        limits = ExecutionLimits(decision.limits.max_rows, decision.limits.max_bytes,
                                 decision.limits.statement_timeout_ms)
        masker = self._masker.get()
        result = engine.preview(target, command, self._credentials.resolve(target.credential), limits)
        if result is None:
            return None
        counts = mask_result(engine, masker, result, target)
        subject = Subject(request_id=request_id, principal=principal.describe(), target=target.name,
                          command=command.canonical(), command_digest=command.digest, decision=decision.to_dict())
        record_id = self._journal.write(journaled.execute_preview(subject, {
            "status": "ok", "masked": counts, "operations": api_calls(result), "command_status": result.status},
            response=response_of(result)))
        return CommandPreview(result.text or "", counts, record_id)


_CHECK_NAMES = ("describe_target (GET /api/targets/{name}) lists the tables, views and columns the target has; "
                "explain shows how the broker reads the statement.")


def _denial_remedy(classification: Classification, remedy: str | None) -> str | None:
    """A denial of a command the guard could not read (``unknown``: often a misspelt name) says so
    before the policy's remedy: asking an operator for a rule is not what fixes a typo."""
    if classification.risk is not Risk.UNKNOWN:
        return remedy
    return f"The broker could not tell what this command does (risk_reason). If a name is misspelt: {_CHECK_NAMES}" + (
        f" Otherwise: {remedy}" if remedy else "")


def _not_a_read(classification: Classification) -> BadRequest:
    """The query tool's refusal of what is not a read. A command the guard cannot read (``unknown``:
    a name that is not visible on the target, say) is not a write either: sending it with the change
    tool would only be denied, so the remedy points at the names instead."""
    risk = classification.risk.value
    article = "an" if risk[0] in "aeiou" else "a"
    remedy = (f"Check the names it uses: {_CHECK_NAMES}" if classification.risk is Risk.UNKNOWN else
              "Send it with the change tool (or POST /api/execute), with a reason.")
    return BadRequest(f"This is {article} {risk} command, not a read: {classification.reason}.", code="not_a_read",
                      remedy=remedy, extra={"risk": risk, "risk_reason": classification.reason})


def _journaled_refusal(command: Command, refusal: BrokerError) -> dict[str, Any]:
    """A refused command as journaled; one refused for carrying secret values keeps only its verb."""
    canonical = command.canonical()
    if refusal.code == "secret_values_in_command":
        canonical = {"language": command.language, "argv": [*command.argv[:1], "[withheld: it carried secret values]"]}
    return canonical


def _undefined_name(failure: BrokerError) -> bool:
    """The target named an undefined column or table: the cached schema is stale."""
    return names_missing(failure.extra or {}, relations_only=True)


def _invalid_command(invalid: dict[str, Any]) -> BadRequest:
    """The guard found no single valid statement: say what to fix (the policy is never asked)."""
    if invalid["code"] == "multiple_statements":
        return BadRequest(f"The command holds more than one statement ({invalid['message']}).",
                          code="multiple_statements", remedy="Send one statement per call.",
                          extra={"parser_message": invalid["message"]})
    extra: dict[str, Any] = {"parser_message": invalid["message"]}
    if "position" in invalid:
        extra["position"] = invalid["position"]
    return BadRequest(f"The SQL does not parse: {invalid['message']}.", code="invalid_sql",
                      remedy="Fix the statement's syntax (see parser_message and position) and send it again.",
                      extra=extra)
