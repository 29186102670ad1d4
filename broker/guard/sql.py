"""SQL risk classification for ``postgres``, ``mysql`` and ``tsql``, fail closed.

Order: refuse what parsers would not see as the server does (``sql_prefilter``); parse exactly
one statement with sqlglot and walk every node (``sql_sqlglot``); for PostgreSQL also with
PostgreSQL's own grammar through pglast (``sql_pglast``). Every reason found is kept and the most
severe wins, so when the parsers disagree the more cautious answer is the answer. A statement is
``read`` only when every finding says so. Any exception inside the classifier is ``unknown``.
"""

from __future__ import annotations

from typing import Any

from broker.guard import Classification, Risk, sql_pglast, sql_sqlglot
from broker.guard.sql_prefilter import prefilter
from broker.guard.sql_rules import SqlFinding

DIALECTS = ("postgres", "mysql", "tsql")
ALIASES = {"postgresql": "postgres", "pg": "postgres", "mariadb": "mysql", "mssql": "tsql",
           "sqlserver": "tsql", "azuresql": "tsql", "azure-sql": "tsql"}
_MAX_DETAILS = 8


def classify_sql(sql: str, dialect: str) -> Classification:
    """Classify one SQL statement; anything not positively a plain read is not a read."""
    dialect = ALIASES.get(dialect, dialect)
    if dialect not in DIALECTS:
        return _result([SqlFinding(Risk.UNKNOWN, f"unknown SQL dialect {dialect!r}")], "", dialect, ())
    if not isinstance(sql, str):
        return _result([SqlFinding(Risk.UNKNOWN, "the command is not text")], "", dialect, ())
    parsers = ("sqlglot", "pglast") if dialect == "postgres" else ("sqlglot",)
    try:
        refused = prefilter(sql, dialect)
        if refused is not None:
            return _result([refused], "", dialect, ())
        name, findings = sql_sqlglot.walk_sqlglot(sql, dialect)
        if dialect == "postgres":
            pg_name, pg_findings = sql_pglast.walk_pglast(sql)
            name, findings = pg_name or name, pg_findings + findings  # PostgreSQL's reasons first
    except Exception as exc:  # a classifier bug must never let a statement through as a read
        return _result([SqlFinding(Risk.UNKNOWN, f"the classifier failed ({type(exc).__name__})")], "", dialect,
                       parsers)
    if not findings:
        findings = [SqlFinding(Risk.UNKNOWN, "the classifier found nothing to go on")]
    return _result(findings, name, dialect, parsers)


def _result(findings: list[SqlFinding], statement: str, dialect: str, parsers: tuple[str, ...]) -> Classification:
    ranked = sorted(findings, key=lambda f: -f.risk.severity)  # stable: the first reason of a class wins
    worst = ranked[0]
    reasons: list[str] = []
    for finding in ranked:
        if finding.risk is not Risk.READ and finding.reason not in reasons:
            reasons.append(f"{finding.risk.value}: {finding.reason}")
    details: dict[str, Any] = {"dialect": dialect, "parsers": list(parsers)}
    if len(reasons) > 1:
        details["findings"] = reasons[:_MAX_DETAILS]
    invalid = _invalid(findings, dialect)
    if invalid is not None:
        details["invalid"] = invalid
    return Classification(risk=worst.risk, reason=worst.reason, language="sql", statement=statement,
                          details=details)


def _invalid(findings: list[SqlFinding], dialect: str) -> dict[str, Any] | None:
    """Why the text is not one valid statement, for the caller to fix (None when it is one).

    For PostgreSQL only PostgreSQL's own grammar (pglast, whose findings come first) can call a
    statement invalid: when sqlglot alone fails, the statement stays ``unknown`` for the policy.
    """
    for finding in findings:
        if not finding.problem:
            continue
        if dialect == "postgres" and finding.reason.startswith("sqlglot") and finding.problem == "invalid_sql":
            continue
        body: dict[str, Any] = {"code": finding.problem, "message": finding.reason}
        if finding.position is not None:
            body["position"] = finding.position
        return body
    return None


def escalate(classification: Classification, findings: list[SqlFinding], source: str) -> Classification:
    """``classification`` made at least as severe as ``findings`` (found by ``source``, e.g. the
    target's catalog); unchanged when they add nothing worse."""
    worse = [f for f in findings if f.risk.severity > Risk.READ.severity]
    if not worse:
        return classification
    worst = max(worse, key=lambda f: f.risk.severity)
    if worst.risk.severity <= classification.risk.severity:
        return classification
    reasons = [f"{f.risk.value}: {f.reason}" for f in sorted(worse, key=lambda f: -f.risk.severity)]
    details = {**classification.details, "resolved_by": source,
               "findings": list(dict.fromkeys(reasons))[:_MAX_DETAILS]}
    return Classification(risk=worst.risk, reason=worst.reason, language=classification.language,
                          statement=classification.statement, details=details)
