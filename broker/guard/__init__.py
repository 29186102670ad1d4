"""Risk classification of commands, fail closed: anything not positively a plain read is not a read.

One module per command language (``sql``, later ``kubernetes``) behind one result type,
``Classification``. The policy decides on the ``risk`` class; people read the ``reason`` on the
approval page. Unparsable, unknown or ambiguous input is the highest risk, never a read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Risk(StrEnum):
    """Risk classes, in increasing severity (``severity`` gives the order).

    read         a plain read: nothing changes, no lock is taken, no code runs outside the query
    read-secret  a read of secrets (Kubernetes Secrets)
    sensitive-predicate  a read where a sensitive column shapes the answer without being masked in it
                 (WHERE/ORDER BY/CASE/function arguments over it: an oracle; ``broker/lineage``)
    write        changes rows, takes row/table locks, advances sequences, sends notifications
    session      changes session or transaction state (SET, RESET, BEGIN, PREPARE, LISTEN, USE)
    schema       changes the schema (CREATE, ALTER, COMMENT, SELECT INTO a new table)
    exec         runs code the broker cannot inspect (DO, CALL, EXEC, unknown functions, pod exec)
    privilege    changes who may do what (GRANT, REVOKE, roles, SET ROLE)
    hidden-text  any of the above, but the command holds invisible or bidi characters or
                 mixed-script identifiers: it reads differently from what runs (``guard.hidden``)
    destructive  removes objects or all rows (DROP, TRUNCATE, DELETE/UPDATE without a real WHERE)
    admin        operates the server (VACUUM, KILL, server files, backend termination, settings)
    unknown      not understood: unparsable, more than one statement, or unrecognised
    """

    READ = "read"
    READ_SECRET = "read-secret"
    SENSITIVE_PREDICATE = "sensitive-predicate"
    WRITE = "write"
    SESSION = "session"
    SCHEMA = "schema"
    EXEC = "exec"
    PRIVILEGE = "privilege"
    HIDDEN_TEXT = "hidden-text"
    DESTRUCTIVE = "destructive"
    ADMIN = "admin"
    UNKNOWN = "unknown"

    @property
    def severity(self) -> int:
        return _ORDER.index(self)


_ORDER = list(Risk)


@dataclass(frozen=True)
class Classification:
    """What a command is, as far as the broker can prove it."""

    risk: Risk
    reason: str
    language: str  # "sql" | "kubernetes"
    statement: str = ""  # e.g. "SELECT", "DELETE", "get pods"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def read_only(self) -> bool:
        return self.risk in (Risk.READ, Risk.SENSITIVE_PREDICATE)

    def to_dict(self) -> dict[str, Any]:
        return {"risk": self.risk.value, "read_only": self.read_only, "reason": self.reason,
                "language": self.language, "statement": self.statement, **self.details}


def riskiest(*items: Classification) -> Classification:
    """The most cautious of several answers (used when two parsers disagree)."""
    return max(items, key=lambda c: c.risk.severity)
