"""The policy language as typed models (the JSON Schema next to this file says the same, for editors
and for precise start-up errors; a test keeps the two in step)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from broker.guard import Risk

Effect = Literal["allow", "deny", "approve"]
AccessLevel = Literal["read", "write"]
RiskName = Literal["read", "read-secret", "sensitive-predicate", "write", "session", "schema", "exec", "privilege",
                   "hidden-text", "destructive", "admin", "unknown"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Durable timers carry approval deadlines and grant expiries. On the Azure Storage provider a
# timer longer than maximumShortTimerDuration (6 days) becomes a chain of 3-day timers that the
# Python SDK cannot cancel, so a decided request would keep its instance Running for days: both
# stay well below it.
MAX_WORKFLOW_SECONDS = 5 * 86400
# An HTTP-triggered function must answer within 230 s on Azure (the front end's idle timeout); the
# statement runs inside the execute call, next to two journal writes, the pool and masking.
MAX_STATEMENT_TIMEOUT_MS = 200_000


def parse_duration(value: Any) -> Any:
    """``90``, ``"90s"``, ``"15m"``, ``"4h"``, ``"1d"`` -> seconds; anything else is left to validation."""
    if isinstance(value, str):
        match = re.fullmatch(r"([0-9]+)([smhd])", value.strip())
        if match:
            return int(match.group(1)) * _UNITS[match.group(2)]
    return value


Seconds = Annotated[int, BeforeValidator(parse_duration)]


def _within_timer_limit(seconds: int) -> int:
    if seconds > MAX_WORKFLOW_SECONDS:
        raise ValueError(f"{seconds} s is longer than {MAX_WORKFLOW_SECONDS} s (5 days): a Durable timer of more than "
                         "6 days cannot be cancelled on Azure, so the request would stay open after its decision")
    return seconds


# A duration a Durable timer waits for: an approval deadline or a grant's lifetime.
TimerSeconds = Annotated[int, BeforeValidator(parse_duration), AfterValidator(_within_timer_limit)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Frozen):
    max_rows: int = Field(default=1000, ge=1, le=100_000)
    max_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    statement_timeout_ms: int = Field(default=5000, ge=100, le=MAX_STATEMENT_TIMEOUT_MS)
    max_grant_duration: TimerSeconds = Field(default=3600, ge=1)
    """Seconds: the longest just-in-time grant a decision by this rule lets someone hold."""
    max_concurrent: int = Field(default=2, ge=1, le=64)
    """Commands one caller may run at once on the target (fair share; ``broker/admission.py``)."""
    max_rows_changed: int | None = Field(default=None, ge=0, le=1_000_000_000)
    """Rows one SQL change may change in all (cascades included); a run past it rolls back and fails
    ``impact_exceeded``. None: only an approval's measured impact bounds it (``broker/impact.py``)."""


class ApprovalRequirement(_Frozen):
    """Who must approve, how many, and how long they have (then: default deny)."""

    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ("Broker.Approver",)
    quorum: int = Field(default=1, ge=1, le=10)
    timeout_seconds: TimerSeconds = Field(default=900, ge=30)
    require_sign_in: bool = False
    """Count only approvals from approvers who signed in themselves (their own Entra token); approvals
    through a mailed link, a delegate app or a signed body are refused (denials still count)."""

    @model_validator(mode="before")
    @classmethod
    def _timeout_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "timeout" in data:
            data = dict(data)
            data["timeout_seconds"] = data.pop("timeout")
        return data

    def describe(self) -> str:
        who = [f"group {g}" for g in self.groups] + [f"role {r}" for r in self.roles]
        return f"{self.quorum} approver(s) from {' or '.join(who) or 'anyone'}"


class KubernetesMatch(_Frozen):
    verbs: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()


class Match(_Frozen):
    """Conditions on the caller, the target and the command; all listed ones must hold."""

    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    object_ids: tuple[str, ...] = ()
    app_ids: tuple[str, ...] = ()
    kinds: tuple[Literal["app", "user"], ...] = ()
    targets: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    labels: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    risk: tuple[RiskName, ...] = ()
    rows_changed_over: int | None = Field(default=None, ge=0)
    """The change's measured impact touches more rows than this; unknown until the trial run (then
    the approval workflow asks the policy again, with the rows measured)."""
    kubernetes: KubernetesMatch | None = None

    @model_validator(mode="before")
    @classmethod
    def _label_alternatives(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("labels"), dict):
            data = dict(data)
            data["labels"] = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in data["labels"].items()}
        return data


class Rule(_Frozen):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    description: str = ""
    when: Match = Match()
    unless: Match | None = None
    effect: Effect
    limits: dict[str, Any] | None = None
    """Only the limits this rule sets; the rest come from ``defaults`` (see ``Policy.limits_for``)."""
    approval: ApprovalRequirement | None = None
    remedy: str = ""

    @model_validator(mode="after")
    def _approval_goes_with_approve(self) -> Rule:
        if self.effect == "approve" and self.approval is None:
            raise ValueError(f"rule {self.id}: effect 'approve' needs an 'approval' block")
        if self.effect != "approve" and self.approval is not None:
            raise ValueError(f"rule {self.id}: 'approval' only goes with effect 'approve'")
        if self.limits is not None:
            Limits.model_validate(self.limits)
        return self


class GrantCoverage(_Frozen):
    """Which risk classes a just-in-time grant of each access level turns from approve into allow."""

    read: tuple[RiskName, ...] = ("read",)
    write: tuple[RiskName, ...] = ("read", "write")

    def covers(self, level: str, risk: Risk) -> bool:
        return risk.value in getattr(self, level, ())


class PolicyDocument(_Frozen):
    version: Literal[1] = 1
    defaults: Limits = Limits()
    grants: GrantCoverage = GrantCoverage()
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> PolicyDocument:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice; ids name decisions in the journal")
            seen.add(rule.id)
        return self

    def limits_for(self, rule: Rule | None) -> Limits:
        if rule is None or not rule.limits:
            return self.defaults
        return Limits.model_validate({**self.defaults.model_dump(), **rule.limits})
