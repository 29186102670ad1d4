"""The pglast walker: PostgreSQL's own grammar (libpg_query), every node visited.

Every statement node type PostgreSQL has is named in ``_STATEMENTS`` with its risk class; a type
not listed (a newer PostgreSQL) is ``unknown``. Statement nodes are judged wherever they appear
(a ``DELETE`` in a CTE, the query of ``EXPLAIN`` or ``PREPARE``), and so are ``SELECT ... INTO``,
row locks and every function call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from pglast import ast
from pglast.parser import ParseError, parse_sql_json

from broker.guard import Risk
from broker.guard.sql_bounded import UNBOUNDED, pg_bounded
from broker.guard.sql_rules import SqlFinding, function_finding, pg_attribute_finding, words


def _f(risk: Risk, reason: str) -> SqlFinding:
    return SqlFinding(risk, reason)


_SESSION = "changes session or transaction state, which the broker manages itself"
_STATEMENTS: dict[str, SqlFinding] = {
    "VariableShowStmt": _f(Risk.READ, "SHOW reads a setting"),
    "InsertStmt": _f(Risk.WRITE, "INSERT adds rows"),
    "MergeStmt": _f(Risk.WRITE, "MERGE changes rows"),
    "LockStmt": _f(Risk.WRITE, "LOCK takes table locks"),
    "NotifyStmt": _f(Risk.WRITE, "NOTIFY sends a message to other sessions"),
    "RefreshMatViewStmt": _f(Risk.WRITE, "REFRESH MATERIALIZED VIEW rewrites a view's rows"),
    "TransactionStmt": _f(Risk.SESSION, f"transaction control {_SESSION}"),
    "PrepareStmt": _f(Risk.SESSION, f"PREPARE {_SESSION}"),
    "DeallocateStmt": _f(Risk.SESSION, f"DEALLOCATE {_SESSION}"),
    "DiscardStmt": _f(Risk.SESSION, f"DISCARD {_SESSION}"),
    "ListenStmt": _f(Risk.SESSION, f"LISTEN {_SESSION}"),
    "UnlistenStmt": _f(Risk.SESSION, f"UNLISTEN {_SESSION}"),
    "DeclareCursorStmt": _f(Risk.SESSION, f"DECLARE CURSOR {_SESSION}"),
    "FetchStmt": _f(Risk.SESSION, f"FETCH / MOVE {_SESSION}"),
    "ClosePortalStmt": _f(Risk.SESSION, f"CLOSE {_SESSION}"),
    "ConstraintsSetStmt": _f(Risk.SESSION, f"SET CONSTRAINTS {_SESSION}"),
    "DoStmt": _f(Risk.EXEC, "DO runs an anonymous code block the broker cannot inspect"),
    "CallStmt": _f(Risk.EXEC, "CALL runs a procedure the broker cannot inspect"),
    "ExecuteStmt": _f(Risk.EXEC, "EXECUTE runs a prepared statement whose text the broker cannot see"),
    "CreateTableAsStmt": _f(Risk.SCHEMA, "CREATE TABLE AS / SELECT INTO creates a table"),
    **{name: _f(Risk.SCHEMA, "changes the schema") for name in words(
        "AlterCollationStmt AlterDomainStmt AlterEnumStmt AlterFunctionStmt AlterObjectDependsStmt "
        "AlterObjectSchemaStmt AlterOpFamilyStmt AlterOperatorStmt AlterSeqStmt AlterStatsStmt "
        "AlterTSConfigurationStmt AlterTSDictionaryStmt AlterTableStmt AlterTypeStmt CommentStmt "
        "CompositeTypeStmt CreateCastStmt CreateConversionStmt CreateDomainStmt CreateEnumStmt "
        "CreateForeignTableStmt CreateFunctionStmt CreateOpClassStmt CreateOpFamilyStmt CreateRangeStmt "
        "CreateSchemaStmt CreateSeqStmt CreateStatsStmt CreateStmt CreateTransformStmt CreateTrigStmt "
        "DefineStmt IndexStmt RenameStmt ReplicaIdentityStmt RuleStmt ViewStmt ImportForeignSchemaStmt")},
    **{name: _f(Risk.PRIVILEGE, "changes roles, ownership or privileges") for name in words(
        "AlterDefaultPrivilegesStmt AlterOwnerStmt AlterPolicyStmt AlterRoleSetStmt AlterRoleStmt "
        "CreatePolicyStmt CreateRoleStmt GrantRoleStmt GrantStmt ReassignOwnedStmt SecLabelStmt "
        "AlterUserMappingStmt CreateUserMappingStmt")},
    **{name: _f(Risk.DESTRUCTIVE, "removes objects or all their rows") for name in words(
        "DropStmt DropOwnedStmt DropRoleStmt DropSubscriptionStmt DropTableSpaceStmt DropUserMappingStmt "
        "DropdbStmt TruncateStmt")},
    **{name: _f(Risk.ADMIN, "operates the server") for name in words(
        "AlterDatabaseRefreshCollStmt AlterDatabaseSetStmt AlterDatabaseStmt AlterEventTrigStmt "
        "AlterExtensionStmt AlterExtensionContentsStmt AlterFdwStmt AlterForeignServerStmt AlterPublicationStmt "
        "AlterSubscriptionStmt AlterSystemStmt AlterTableMoveAllStmt AlterTableSpaceOptionsStmt CheckPointStmt "
        "ClusterStmt CreateAmStmt CreateEventTrigStmt CreateExtensionStmt CreateFdwStmt CreateForeignServerStmt "
        "CreatePLangStmt CreatePublicationStmt CreateSubscriptionStmt CreateTableSpaceStmt CreatedbStmt "
        "LoadStmt ReindexStmt")},
}
_KEYWORDS = {  # for the reason text: node type -> what a person typed
    "DropStmt": "DROP", "DropOwnedStmt": "DROP OWNED", "DropRoleStmt": "DROP ROLE", "DropdbStmt": "DROP DATABASE",
    "TruncateStmt": "TRUNCATE", "GrantStmt": "GRANT/REVOKE", "GrantRoleStmt": "GRANT/REVOKE role",
    "CreateRoleStmt": "CREATE ROLE", "AlterRoleStmt": "ALTER ROLE", "CreatedbStmt": "CREATE DATABASE",
    "AlterSystemStmt": "ALTER SYSTEM", "CreateExtensionStmt": "CREATE EXTENSION", "LoadStmt": "LOAD",
    "CheckPointStmt": "CHECKPOINT", "ClusterStmt": "CLUSTER", "ReindexStmt": "REINDEX", "IndexStmt": "CREATE INDEX",
    "CreateStmt": "CREATE TABLE", "ViewStmt": "CREATE VIEW", "CommentStmt": "COMMENT", "RenameStmt": "RENAME",
    "AlterTableStmt": "ALTER TABLE", "CreateFunctionStmt": "CREATE FUNCTION", "CreateTrigStmt": "CREATE TRIGGER",
    "RuleStmt": "CREATE RULE", "CreateSchemaStmt": "CREATE SCHEMA", "AlterOwnerStmt": "ALTER ... OWNER",
}
_PRIVILEGED_SETTINGS = {"role", "session_authorization"}


def walk_pglast(sql: str) -> tuple[str, list[SqlFinding]]:
    """The statement's name and every finding about it (a READ finding when it is a plain read)."""
    try:
        parsed = json.loads(parse_sql_json(sql))
    except ParseError as exc:
        message, position = (*exc.args, None, None)[:2]
        return "", [SqlFinding(Risk.UNKNOWN, f"PostgreSQL's grammar rejects the command ({message})",
                            problem="invalid_sql", position=position if isinstance(position, int) else None)]
    except RecursionError:
        return "", [SqlFinding(Risk.UNKNOWN, "the command nests too deeply to parse")]
    statements = parsed.get("stmts") or []
    if len(statements) != 1:
        return "", [SqlFinding(Risk.UNKNOWN, f"expected exactly one statement, found {len(statements)}",
                            problem="multiple_statements" if statements else "invalid_sql")]
    root = _wrapped(statements[0].get("stmt"))
    if root is None:
        return "", [SqlFinding(Risk.UNKNOWN, "PostgreSQL's parse tree has an unexpected shape")]
    findings: list[SqlFinding] = []
    for kind, fields in _nodes(*root):
        found = _node(kind, fields)
        if found is not None:
            findings.append(found)
    name = _statement_name(root[0])
    if not findings:
        findings.append(SqlFinding(Risk.UNKNOWN, f"{name} is not a statement the broker recognises"))
    return name, findings


# --- walking libpg_query's JSON tree ------------------------------------------------------------
# Parsing to JSON and walking dicts is an order of magnitude faster than building pglast's Python
# objects. In that JSON a field of a generic type (``Node*``, lists) holds ``{"TypeName": {...}}``;
# a field of a specific pointer type (``SelectStmt* larg``) holds the fields directly, so pglast's
# slot types name those. Anything of another shape is still walked, as an anonymous container.
_CLASSES = frozenset(name for name, cls in vars(ast).items() if isinstance(cls, type) and issubclass(cls, ast.Node))
Node = tuple[str, dict[str, Any]]


@cache
def _typed_fields(kind: str) -> dict[str, str]:
    slots = getattr(getattr(ast, kind, None), "__slots__", None)
    if not isinstance(slots, dict):
        return {}
    typed = {}
    for field, info in slots.items():
        base = str(getattr(info, "c_type", "")).rstrip("*")
        if base in _CLASSES and base not in ("Node", "List", "Expr"):
            typed[field] = base
    return typed


def _wrapped(value: Any) -> Node | None:
    if isinstance(value, dict) and len(value) == 1:
        ((kind, fields),) = value.items()
        if kind in _CLASSES and isinstance(fields, dict):
            return kind, fields
    return None


def _nodes(kind: str, fields: dict[str, Any]) -> Iterator[Node]:
    stack: list[Node] = [(kind, fields)]
    while stack:
        kind, fields = stack.pop()
        yield kind, fields
        typed = _typed_fields(kind) if kind else {}
        for key, value in fields.items():
            if isinstance(value, dict):
                stack.append((typed[key], value) if key in typed else (_wrapped(value) or ("", value)))
            elif isinstance(value, list):
                stack.extend(_wrapped(item) or ("", item) for item in value if isinstance(item, dict))


def _node(kind: str, fields: dict[str, Any]) -> SqlFinding | None:
    if kind == "SelectStmt":
        if "intoClause" in fields:
            return SqlFinding(Risk.SCHEMA, "SELECT ... INTO creates a table")
        if fields.get("lockingClause"):
            return SqlFinding(Risk.WRITE, "FOR UPDATE / FOR SHARE locks the rows it reads")
        return None if "larg" in fields else SqlFinding(Risk.READ, "a plain SELECT")
    if kind in ("UpdateStmt", "DeleteStmt"):
        return _dml_with_where("UPDATE" if kind == "UpdateStmt" else "DELETE", fields)
    if kind == "ExplainStmt":
        options = [_wrapped(o) for o in fields.get("options") or ()]
        analyze = any(o is not None and o[1].get("defname") == "analyze" for o in options)
        return SqlFinding(Risk.READ, "EXPLAIN ANALYZE of a read" if analyze else "EXPLAIN of a read")
    if kind == "CopyStmt":
        return _copy(fields)
    if kind == "VariableSetStmt":
        name = str(fields.get("name") or "")
        if name.lower() in _PRIVILEGED_SETTINGS:
            return SqlFinding(Risk.PRIVILEGE, f"SET {name} changes the acting role")
        return SqlFinding(Risk.SESSION, f"SET / RESET {_SESSION}")
    if kind == "VacuumStmt":
        return SqlFinding(Risk.ADMIN, ("VACUUM reclaims storage" if fields.get("is_vacuumcmd")
                                    else "ANALYZE rewrites table statistics"))
    if kind == "AlterTableStmt":
        subtypes = {(_wrapped(c) or ("", {}))[1].get("subtype") for c in fields.get("cmds") or ()}
        if "AT_DropColumn" in subtypes:
            return SqlFinding(Risk.DESTRUCTIVE, "ALTER TABLE ... DROP COLUMN destroys the column's data")
        if "AT_ChangeOwner" in subtypes:
            return SqlFinding(Risk.PRIVILEGE, "ALTER ... OWNER TO changes ownership")
        return SqlFinding(Risk.SCHEMA, "ALTER TABLE changes the schema")
    if kind == "FuncCall":
        parts = [str((_wrapped(p) or ("", {}))[1].get("sval", "")) for p in fields.get("funcname") or ()]
        schema = parts[-2] if len(parts) >= 2 else None
        return function_finding("postgres", parts[-1] if parts else "", schema, len(fields.get("args") or ()))
    if kind == "A_Indirection":  # (expr).name is name(expr) when expr has no field called name
        names = [n for n in (_wrapped(i) for i in fields.get("indirection") or ()) if n and n[0] == "String"]
        return next(filter(None, (pg_attribute_finding(str(n[1].get("sval", ""))) for n in names)), None)
    if kind == "ColumnRef":  # a.name is name(a) when a has no such column
        parts = [_wrapped(p) for p in fields.get("fields") or ()]
        last = parts[-1] if parts else None
        if len(parts) >= 2 and last is not None and last[0] == "String":
            return pg_attribute_finding(str(last[1].get("sval", "")))
        return None
    if kind.endswith("Stmt") and kind != "RawStmt":
        finding = _STATEMENTS.get(kind)
        if finding is None:
            return SqlFinding(Risk.UNKNOWN, f"{kind} is not a statement the broker recognises")
        if finding.reason[0].islower():  # a group's reason: say which statement it is
            return SqlFinding(finding.risk, f"{_keyword(kind)} {finding.reason}")
        return finding
    return None


def _dml_with_where(word: str, fields: dict[str, Any]) -> SqlFinding:
    node = _wrapped(fields.get("whereClause"))
    if node is None:
        return SqlFinding(Risk.DESTRUCTIVE, f"{word} without WHERE changes every row")
    if node[0] == "CurrentOfExpr":
        return SqlFinding(Risk.WRITE, f"{word} changes the cursor's row")
    if not pg_bounded(fields, _nodes, _wrapped):
        return SqlFinding(Risk.DESTRUCTIVE, UNBOUNDED.format(word))
    return SqlFinding(Risk.WRITE, f"{word} changes rows")


def _copy(fields: dict[str, Any]) -> SqlFinding:
    if fields.get("is_program"):
        return SqlFinding(Risk.EXEC, "COPY ... PROGRAM runs a shell command on the database server")
    if fields.get("filename"):
        return SqlFinding(Risk.ADMIN, "COPY reads or writes a file on the database server")
    if fields.get("is_from"):
        return SqlFinding(Risk.WRITE, "COPY FROM loads rows")
    return SqlFinding(Risk.ADMIN, "COPY TO STDOUT needs the copy protocol, which the broker does not relay; "
                               "use SELECT")


def _keyword(kind: str) -> str:
    """``AlterSeqStmt`` -> ``ALTER SEQ`` unless a person would have typed something else."""
    return _KEYWORDS.get(kind) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind.removesuffix("Stmt")).upper()


def _statement_name(kind: str) -> str:
    if kind in _KEYWORDS:
        return _KEYWORDS[kind]
    plain = {"SelectStmt": "SELECT", "InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE",
             "MergeStmt": "MERGE", "ExplainStmt": "EXPLAIN", "VariableShowStmt": "SHOW", "VariableSetStmt": "SET",
             "CopyStmt": "COPY", "DoStmt": "DO", "CallStmt": "CALL", "TransactionStmt": "TRANSACTION",
             "PrepareStmt": "PREPARE", "ExecuteStmt": "EXECUTE", "VacuumStmt": "VACUUM/ANALYZE",
             "NotifyStmt": "NOTIFY", "ListenStmt": "LISTEN", "LockStmt": "LOCK"}
    return plain.get(kind) or _keyword(kind)
