"""What ``verify`` can find, and its report. Every finding names a kind, a place and a sentence.

Kinds (severity ``error`` unless noted):

    edited          a Table row's content or a column differs from the hashed record / its copy
    deleted         a record is gone from the Table (its copy or a seal proves it existed)
    inserted        a record that was never written by the journal (no copy, or not in a seal
                    whose period it claims, or a key the writer never makes)
    reordered       records moved to other positions of their chain
    broken_chain    a record does not link to its predecessor
    blob_replaced   an immutable copy differs from what was written
    blob_missing    an immutable copy is gone
    truncated       a chain ends before the point a seal recorded
    seal_broken     a seal was edited or replaced, or does not chain to its predecessor
    seal_missing    a seal is missing from the sequence
    copy_lost       (warning) a row whose immutable copy a crash lost (a host killed with copies
                    queued), exactly as the sealer's ``journal.copies_lost`` record names it
    open_intent     (warning) an intent without outcome: the broker stopped, or could not
                    journal the outcome, after the intent; the command may or may not have run
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class IntegrityFinding:
    kind: str
    where: str
    detail: str
    severity: str = "error"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.severity.upper():<7} {self.kind:<13} {self.where}: {self.detail}"


@dataclass
class VerifyReport:
    since: str
    until: str
    records: int = 0
    copies: int = 0
    chains: int = 0
    seals: int = 0
    sealed_until: str = ""
    unsealed: int = 0
    findings: list[IntegrityFinding] = field(default_factory=list)
    _index: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def add(self, kind: str, where: str, detail: str, severity: str = "error") -> None:
        """Record a finding; the same kind at the same place is one finding with every reason."""
        at = self._index.get((kind, where))
        if at is None:
            self._index[(kind, where)] = len(self.findings)
            self.findings.append(IntegrityFinding(kind, where, detail, severity))
        elif detail not in self.findings[at].detail:
            old = self.findings[at]
            self.findings[at] = IntegrityFinding(kind, where, f"{old.detail}; {detail}", old.severity)

    @property
    def intact(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def copies_lost(self) -> int:
        """Rows whose immutable copy a crash lost (recorded, not tampered with)."""
        return sum(1 for f in self.findings if f.kind == "copy_lost")

    def exit_code(self) -> int:
        """0 intact; 1 altered; 3 intact, but some rows lost their copy in a crash (2 is a failed run)."""
        if not self.intact:
            return 1
        return 3 if self.copies_lost else 0

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(f.kind for f in self.findings).items()))

    def to_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "copies_lost": self.copies_lost, "since": self.since, "until": self.until,
                "records": self.records,
                "copies": self.copies, "chains": self.chains, "seals": self.seals,
                "sealed_until": self.sealed_until, "unsealed": self.unsealed, "counts": self.counts(),
                "findings": [f.to_dict() for f in self.findings]}

    def render(self, max_findings: int = 200) -> str:
        lines = [f"journal {self.since or 'beginning'} .. {self.until}: {self.records} records in {self.chains} "
                 f"chains, {self.copies} immutable copies, {self.seals} seals"
                 + (f" (sealed until {self.sealed_until}; {self.unsealed} records newer)" if self.seals else "")]
        shown = sorted(self.findings, key=lambda f: (f.severity != "error", f.where))
        lines += [f.line() for f in shown[:max_findings]]
        if len(shown) > max_findings:
            lines.append(f"... and {len(shown) - max_findings} more findings")
        if self.findings:
            lines.append("findings: " + ", ".join(f"{k} {n}" for k, n in self.counts().items()))
        if not self.intact:
            lines.append("NOT INTACT: the journal was altered (see above)")
        elif self.copies_lost:
            lines.append(f"INTACT, but {self.copies_lost} rows lost their immutable copy in a crash (recorded by "
                         "journal.copies_lost; see above)")
        else:
            lines.append("INTACT")
        return "\n".join(lines)
