"""The execute path: decide, journal the intent, run with the broker's credential, mask, journal
the outcome, answer. The order is the invariant: nothing runs before its intent is durable, and
nothing is answered before its (masked) outcome is durable.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from broker.admission import Admission
from broker.catalog import Catalog, Target
from broker.guard import Classification, Risk
from broker.guard.hidden import with_hidden_text
from broker.identity import Principal
from broker.impact import ImpactMeasurer
from broker.journal import Event, JournalRecord, JournalWriter
from broker.journal.records import utc_now_iso
from broker.lineage import Schema, Sensitivity
from broker.lineage.guard import LineageGuard, mask_outputs, withhold
from broker.masking import Masker, MaskingRules
from broker.policy import Decision, Grant, Policy
from broker.problems import BadRequest, BrokerError, CommandFailed, Forbidden, Unavailable, invalid_body
from broker.secrets import CredentialResolver
from broker.targets import Command, ExecutionLimits, ResultSet, TargetEngine
from broker.targets.base import DryRun, ImpactBound, ImpactTrial, SchemaSource

MAX_SQL_CHARS = 100_000


class ExecuteBody(BaseModel):
    """The JSON an agent posts to ``/api/execute``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    target: str = Field(min_length=1, max_length=63)
    sql: str | None = Field(default=None, min_length=1, max_length=MAX_SQL_CHARS)
    kubectl: list[str] | None = Field(default=None, min_length=1, max_length=64)
    manifest: dict[str, Any] | list[dict[str, Any]] | None = None
    reason: str = Field(default="", max_length=500)
    ticket: str = Field(default="", max_length=100)
    max_rows: int | None = Field(default=None, ge=1, le=100_000)
    """At most this many rows (never more than the policy's limit, which wins when smaller)."""
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    """The caller's own name for this submission (or the ``Idempotency-Key`` header): sent again with
    the same command while its request lives, the answer is that request instead of a second one."""

    @model_validator(mode="after")
    def _one_command(self) -> ExecuteBody:
        if (self.sql is None) == (self.kubectl is None):
            raise ValueError("send exactly one of 'sql' or 'kubectl'")
        if self.manifest is not None and self.kubectl is None:
            raise ValueError("'manifest' goes with a 'kubectl' command")
        return self

    def command(self) -> Command:
        if self.sql is not None:
            return Command("sql", sql=self.sql)
        return Command("kubectl", argv=tuple(self.kubectl or ()), manifest=self.manifest)

    @classmethod
    def parse(cls, data: Any) -> ExecuteBody:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_body(exc, "execute") from exc


@dataclass(frozen=True)
class CallContext:
    """Where a call came from, as the journal records it."""

    client_ip: str = ""
    forwarded_for: str = ""
    user_agent: str = ""
    http_request_id: str = ""
    channel: Literal["http", "mcp"] = "http"
    """Which front door the call came through: the REST API or the MCP server (``/api/mcp``)."""

    def to_dict(self) -> dict[str, str]:
        return {"ip": self.client_ip, "forwarded_for": self.forwarded_for, "user_agent": self.user_agent,
                "http_request_id": self.http_request_id, "channel": self.channel}


@dataclass
class ExecuteResult:
    """What the agent receives for a command that ran (already masked)."""

    request_id: str
    record_id: str
    target: str
    result: ResultSet
    masked: dict[str, int]
    duration_ms: float
    classification: Classification
    decision: Decision
    status: Literal["done"] = "done"
    extra: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds per phase (``Server-Timing``): decide, journal-intent, run, mask, journal-outcome."""

    def server_timing(self) -> str:
        return ", ".join(f"{name};dur={ms:.2f}" for name, ms in self.timings.items())

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        body: dict[str, Any] = {
            "status": self.status,
            "request_id": self.request_id,
            "record_id": self.record_id,
            "target": self.target,
            "columns": [{"name": c.name, "type": c.type} for c in r.columns],
            "result_kind": result_kind(r),
            "rows": r.rows,
            "row_count": r.row_count,
            "truncated": r.truncated,
            "masked": self.masked,
            "command_status": r.status,
            "duration_ms": round(self.duration_ms, 2),
            "risk": self.classification.risk.value,
            "decision": {"effect": self.decision.effect, "rule_id": self.decision.rule_id,
                         "policy_version": self.decision.policy_version},
        }
        if self.decision.grant_id:
            body["decision"]["grant_id"] = self.decision.grant_id
        if r.truncated:
            body["truncation"] = truncation(r, self.decision)
        if r.affected is not None:
            body["affected_rows"] = r.affected
        if r.document is not None:
            body["document"] = r.document
        if r.text is not None:
            body["text"] = r.text
        return body


def result_kind(result: ResultSet) -> Literal["rows", "document", "text"]:
    """Which field carries the answer: ``rows`` (with ``columns``), ``document`` (e.g. ``kubectl get
    -o json``: the rows are empty, that is not "nothing found") or ``text``."""
    if result.document is not None:
        return "document"
    if result.text is not None and not result.columns:
        return "text"
    return "rows"


def truncation(result: ResultSet, decision: Decision) -> dict[str, Any]:
    """Why the answer stopped early and at which limit, so the caller knows what to narrow."""
    reason = result.truncated_by or ("max_rows" if result.row_count >= decision.limits.max_rows else "max_bytes")
    limits = {"max_rows": decision.limits.max_rows, "max_bytes": decision.limits.max_bytes,
              "timeout": decision.limits.statement_timeout_ms}
    hints = {"max_rows": "Narrow the query (WHERE, LIMIT, fewer items) or page through the result.",
             "max_bytes": "Select fewer or smaller columns (a single cell larger than the limit is never sent).",
             "timeout": "The command ran out of time; narrow it."}
    return {"reason": reason, "limit": limits.get(reason), "returned_rows": result.row_count,
            "returned_bytes": result.bytes, "remedy": hints.get(reason, "")}


@dataclass(frozen=True)
class ApprovalNeeded:
    """The policy wants a human: what the approval workflow needs to hold the command for them."""

    request_id: str
    principal: Principal
    target: Target
    command: Command
    classification: Classification
    decision: Decision
    body: ExecuteBody
    record: dict[str, Any]


GrantLookup = Callable[[str, str], Sequence[Grant]]
"""(principal key, target name) -> the caller's active grants on that target."""


class MaskerSource:
    """The masker keyed by the current masking key (a Key Vault secret, rotated by version)."""

    def __init__(self, credentials: CredentialResolver, secret_name: str) -> None:
        from broker.catalog import KeyVaultCredential

        self._credential = KeyVaultCredential(secret=secret_name)
        self._credentials = credentials
        self._cached: tuple[str, Masker] | None = None

    def get(self) -> Masker:
        secret = self._credentials.resolve(self._credential)
        cached = self._cached
        if cached is None or cached[0] != secret.version:
            cached = (secret.version, Masker(secret.value.encode("utf-8")))
            self._cached = cached
        return cached[1]


class ExecuteService:
    def __init__(self, *, catalog: Catalog, policy: Policy, engines: dict[str, TargetEngine],
                 credentials: CredentialResolver, masker: MaskerSource, journal: JournalWriter,
                 grants: GrantLookup | None = None, admission: Admission | None = None,
                 lineage: LineageGuard | None = None) -> None:
        self._catalog = catalog
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

    def language_of(self, target: Target) -> str:
        """What the target takes: ``sql`` or ``kubectl``."""
        return self._engines[target.engine].language

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
        if command.language != "sql" or not self._lineage.applies(target, engine.dialect):
            return classification
        if engine.unavailable_reason() is not None:  # it cannot run here: the run refuses it (journaled)
            return classification
        if not isinstance(engine, SchemaSource):  # an SQL engine that cannot list columns: all masked
            details = {**classification.details, "lineage": {"touches_sensitive": True,
                                                             "unresolved": "the engine cannot list its columns"}}
            return replace(classification, details=details)
        return self._lineage.refine(target, engine.dialect, command.sql, classification,
                                    lambda: engine.read_schema(target, self._credentials.resolve(target.credential)))

    def execute(self, principal: Principal, body: ExecuteBody, ctx: CallContext, *,
                reads_only: bool = False) -> ExecuteResult | ApprovalNeeded:
        """Run an allowed command now; a command that needs approval comes back as ``ApprovalNeeded``.

        ``reads_only`` refuses (journaled, 400 ``not_a_read``) anything the guard does not classify
        as a read: the MCP ``query`` tool promises clients that it changes nothing.
        """
        request_id = str(uuid.uuid4())
        base = {"request_id": request_id, "principal": principal.describe(), "client": ctx.to_dict(),
                "reason": body.reason, "ticket": body.ticket, "received_at": utc_now_iso()}
        decided = time.perf_counter()
        try:
            target, command, classification, decision = self.evaluate(principal, body)
            if reads_only and classification.risk not in (Risk.READ, Risk.READ_SECRET, Risk.SENSITIVE_PREDICATE):
                raise BadRequest(f"This is a {classification.risk.value} command, not a read: "
                                 f"{classification.reason}.", code="not_a_read",
                                 remedy="Send it with the change tool (or POST /api/execute), with a reason.")
        except BrokerError as refusal:
            self._journal.write(JournalRecord(event=Event.EXECUTE_DENIED, target=body.target,
                                              command=_journaled_refusal(body.command(), refusal),
                                              outcome={"status": "refused", "code": refusal.code}, **base))
            raise
        record = {**base, "target": target.name, "command": command.canonical(),
                  "command_digest": command.digest, "classification": classification.to_dict(),
                  "decision": decision.to_dict()}
        if decision.effect == "approve" and decision.approval is not None:
            return ApprovalNeeded(request_id, principal, target, command, classification, decision, body, record)
        if decision.effect != "allow":
            code = "policy_denied" if decision.effect == "deny" else "approval_required"
            self._journal.write(JournalRecord(event=Event.EXECUTE_DENIED,
                                              outcome={"status": "refused", "code": code}, **record))
            raise Forbidden(
                f"Policy does not allow this {classification.risk.value} command on {target.name}: "
                f"{decision.reason}.", code=code, remedy=decision.remedy,
                extra={"risk": classification.risk.value, "risk_reason": classification.reason,
                       "rule_id": decision.rule_id, "policy_version": decision.policy_version})
        if body.max_rows is not None and body.max_rows < decision.limits.max_rows:
            decision = replace(decision, limits=decision.limits.model_copy(update={"max_rows": body.max_rows}))
            record["decision"] = decision.to_dict()
        decide_ms = (time.perf_counter() - decided) * 1000
        try:
            bound = self._impact.bound(self._engines[target.engine], command, classification, decision, None)
        except BrokerError as refusal:
            self._journal.write(JournalRecord(event=Event.EXECUTE_DENIED,
                                              outcome={"status": "refused", "code": refusal.code}, **record))
            raise
        result = self.run(principal, target, command, classification, decision, record, bound=bound)
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
        record = {"request_id": request_id, "principal": requester.describe(), "reason": reason, "ticket": ticket,
                  "target": target.name, "command": command.canonical(), "command_digest": digest,
                  "classification": classification.to_dict(),
                  "decision": {**decision.to_dict(), "approved_by": approvals}}
        if decision.effect == "deny":
            self._journal.write(JournalRecord(event=Event.EXECUTE_DENIED,
                                              outcome={"status": "refused", "code": "policy_denied"}, **record))
            raise Forbidden(f"The policy now denies this command: {decision.reason}.", code="policy_denied")
        try:
            bound = self._impact.bound(engine, command, classification, decision, impact)
        except BrokerError as refusal:
            self._journal.write(JournalRecord(event=Event.EXECUTE_DENIED,
                                              outcome={"status": "refused", "code": refusal.code}, **record))
            raise
        if bound is not None:
            record["decision"]["impact_bound"] = {"rows": bound.rows, "tables": bound.tables,
                                                  "max_rows_changed": bound.max_rows_changed}
        return self.run(requester, target, command, classification, decision, record, bound=bound)

    def run(self, principal: Principal, target: Target, command: Command, classification: Classification,
            decision: Decision, record: dict[str, Any], *, bound: ImpactBound | None = None) -> ExecuteResult:
        """Take a fair-share slot of the target, journal the intent, run once, mask, journal the
        outcome. Raises BrokerError on refusal (a caller over its limit is refused before the intent)."""
        try:
            slot = self._admission.admit(target.name, principal.key, per_caller=decision.limits.max_concurrent,
                                         capacity=target.max_concurrency)
        except BrokerError as busy:
            self._journal.write(JournalRecord(event=Event.EXECUTE_DENIED,
                                              outcome={"status": "refused", "code": busy.code}, **record))
            raise
        with slot:
            return self._run_admitted(principal, target, command, classification, decision, record, bound)

    def _run_admitted(self, principal: Principal, target: Target, command: Command,
                      classification: Classification, decision: Decision, record: dict[str, Any],
                      bound: ImpactBound | None = None) -> ExecuteResult:
        mark = time.perf_counter()
        intent_id = self._journal.write(JournalRecord(event=Event.EXECUTE_INTENT, **record))
        started = time.perf_counter()
        timings = {"journal-intent": (started - mark) * 1000}
        outcome_base = {**record, "outcome": {"intent": intent_id}, "started_at": utc_now_iso()}
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
            failure = _masked_failure(failure, self._masker, withhold=withhold(classification))
            elapsed = (time.perf_counter() - started) * 1000
            outcome_base["outcome"] = {"intent": intent_id, "status": "error", "code": failure.code,
                                       "detail": failure.detail, "duration_ms": round(elapsed, 2)}
            if getattr(failure, "operations", None):
                outcome_base["outcome"]["operations"] = failure.operations  # type: ignore[attr-defined]
            outcome_base["ended_at"] = utc_now_iso()
            self._journal.write(JournalRecord(event=Event.EXECUTE_OUTCOME, **outcome_base))
            raise failure from None
        elapsed = (time.perf_counter() - started) * 1000
        outcome_base["ended_at"] = utc_now_iso()
        outcome_base["outcome"] = {"intent": intent_id, "status": "ok", "rows": result.row_count,
                                   "bytes": result.bytes, "truncated": result.truncated,
                                   "masked": masked_counts, "command_status": result.status,
                                   "affected": result.affected, "duration_ms": round(elapsed, 2)}
        if result.operations:
            outcome_base["outcome"]["operations"] = result.operations
        mark = time.perf_counter()
        outcome_id = self._journal.write(JournalRecord(event=Event.EXECUTE_OUTCOME, response=_response(result),
                                                       **outcome_base))
        timings["journal-outcome"] = (time.perf_counter() - mark) * 1000
        return ExecuteResult(record["request_id"], outcome_id, target.name, result, masked_counts, elapsed,
                             classification, decision, timings=timings)

    def preview_held(self, requester: Principal, target_name: str, command: Command,
                     request_id: str) -> CommandPreview | None:
        """The dry run of a command held for approval, under today's policy and classification."""
        target = self._catalog.get(target_name)
        engine = self._engines[target.engine]
        classification = self._classify(engine, target, command)
        decision = self._policy.decide(requester, target, classification)
        if command.language == "sql":
            impact = self._impact.measure(requester, target, command, classification, decision, request_id)
            return None if impact is None else CommandPreview(None, {}, "", impact=impact)
        return self.preview(requester, target, command, decision, request_id)

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
        record_id = self._journal.write(JournalRecord(
            event=Event.EXECUTE_PREVIEW, request_id=request_id, principal=principal.describe(), target=target.name,
            command=command.canonical(), command_digest=command.digest, decision=decision.to_dict(),
            outcome={"status": "ok", "masked": counts, "operations": result.operations,
                     "command_status": result.status}, response=_response(result)))
        return CommandPreview(result.text or "", counts, record_id)


@dataclass(frozen=True)
class CommandPreview:
    """What approvers read before they decide: a masked dry-run diff (Kubernetes) or the measured
    impact of an SQL change (``broker/impact.py``)."""

    diff: str | None
    masked: dict[str, int]
    record_id: str
    impact: dict[str, Any] | None = None


def mask_result(engine: TargetEngine, masker: Masker, result: ResultSet, target: Target,
                lineage: dict[str, Any] | None = None) -> dict[str, int]:
    """Mask every output shape in place: first each output column that lineage derives from a sensitive
    column (whole, one placeholder per value), then rows, the document and text (the generic scan, then
    the engine's structural rules, e.g. Kubernetes Secret values, which must not be undone or re-scanned),
    then render text from the masked document. Values the engine knows are secret (``result.known``) are
    masked before all of that. Returns the counts by kind."""
    overrides = target.masking
    rules = MaskingRules(overrides.columns, overrides.column_patterns, overrides.keep_columns,
                         keep_card_last_four=overrides.keep_card_last_four, ip_addresses=overrides.ip_addresses)
    counts: Counter[str] = Counter()
    known = result.known
    if known is not None:  # known plaintext first: the whole value becomes one placeholder
        result.rows = known.mask_rows(result.rows, masker, counts)
        result.document = known.mask_document(result.document, masker, counts)
        result.text = known.mask_text(result.text, masker, counts) if result.text is not None else None
    mask_outputs(lineage, len(result.columns), result.rows, masker, counts)
    table = masker.mask_table([c.name for c in result.columns], result.rows, rules)
    result.rows = table.rows
    counts.update(table.counts)
    structure = getattr(engine, "mask_structure", None)
    if result.document is not None:
        document = masker.mask_document(result.document, counts, rules)
        result.document = structure(document, masker, counts) if structure else document
    if result.text is not None:
        text = masker.mask_text(result.text, counts, rules)
        result.text = structure(text, masker, counts) if structure else text
    if result.render is not None:
        result.text = result.render(result.document)
        if known is not None:
            result.text = known.mask_text(result.text, masker, counts)
        if not result.keep_document:
            result.document = None
    return dict(counts)


def _response(result: ResultSet) -> dict[str, Any]:
    """The masked response as journaled."""
    response: dict[str, Any] = {"columns": [c.name for c in result.columns], "rows": result.rows}
    if result.document is not None:
        response["document"] = result.document
    if result.text is not None:
        response["text"] = result.text
    return response


def _journaled_refusal(command: Command, refusal: BrokerError) -> dict[str, Any]:
    """A refused command as journaled; one refused for carrying secret values keeps only its verb."""
    canonical = command.canonical()
    if refusal.code == "secret_values_in_command":
        canonical = {"language": command.language, "argv": [*command.argv[:1], "[withheld: it carried secret values]"]}
    return canonical


_UNDEFINED = {"42703", "42P01", "42S22", "42S02", "1054", "1146", "207", "208"}


def _undefined_name(failure: BrokerError) -> bool:
    """The target named an undefined column or table: the cached schema is stale."""
    extra = failure.extra or {}
    return str(extra.get("sqlstate") or extra.get("errno") or "") in _UNDEFINED


def _masked_failure(failure: BrokerError, masker: MaskerSource, *, withhold: bool = False) -> BrokerError:
    """A target's error message can quote row data (a duplicate key, a bad value): mask it too. When the
    statement reads a sensitive column the message is withheld: only its SQLSTATE (or error number) and a
    generic sentence (``withhold``: ``a cast of a transformed value echoes it``)."""
    if isinstance(failure, CommandFailed) and withhold and failure.code == "query_failed":
        extra = failure.extra or {}
        state = extra.get("sqlstate") or extra.get("errno") or "unknown"
        failure.detail = (f"The target refused the command (error {state}); its message is withheld because "
                          "the statement reads a sensitive column.")
        failure.args = (failure.detail,)
        return failure
    if isinstance(failure, CommandFailed):
        try:
            failure.detail = masker.get().mask_text(failure.detail)
        except BrokerError:
            failure.detail = "The target refused the command (its message could not be masked)."
        failure.args = (failure.detail,)
    return failure


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
