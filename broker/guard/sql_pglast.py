"""The pglast walker: PostgreSQL's own grammar (libpg_query), every node visited.

Every statement node type PostgreSQL has is named in ``_STATEMENTS`` with its risk class; a type
not listed (a newer PostgreSQL) is ``unknown``. Statement nodes are judged wherever they appear
(a ``DELETE`` in a CTE, the query of ``EXPLAIN`` or ``PREPARE``), and so are ``SELECT ... INTO``,
row locks and every function call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, BoolExprType
from pglast.parser import ParseError

from broker.guard import Risk
from broker.guard.sql_rules import Finding, function_finding, words


def _f(risk: Risk, reason: str) -> Finding:
    return Finding(risk, reason)


_SESSION = "changes session or transaction state, which the broker manages itself"
_STATEMENTS: dict[str, Finding] = {
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


def walk_pglast(sql: str) -> tuple[str, list[Finding]]:
    """The statement's name and every finding about it (a READ finding when it is a plain read)."""
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        return "", [Finding(Risk.UNKNOWN, f"PostgreSQL's grammar rejects the command ({exc})")]
    except RecursionError:
        return "", [Finding(Risk.UNKNOWN, "the command nests too deeply to parse")]
    if len(statements) != 1:
        return "", [Finding(Risk.UNKNOWN, f"expected exactly one statement, found {len(statements)}")]
    root = statements[0].stmt
    findings: list[Finding] = []
    for node in _nodes(root):
        found = _node(node)
        if found is not None:
            findings.append(found)
    name = _statement_name(root)
    if not findings:
        findings.append(Finding(Risk.UNKNOWN, f"{name} is not a statement the broker recognises"))
    return name, findings


def _nodes(root: ast.Node) -> Iterator[ast.Node]:
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Node):
            yield item
            stack.extend(getattr(item, slot, None) for slot in item.__slots__)
        elif isinstance(item, (tuple, list)):
            stack.extend(item)


def _node(node: ast.Node) -> Finding | None:
    kind = type(node).__name__
    if isinstance(node, ast.SelectStmt):
        if node.intoClause is not None:
            return Finding(Risk.SCHEMA, "SELECT ... INTO creates a table")
        if node.lockingClause:
            return Finding(Risk.WRITE, "FOR UPDATE / FOR SHARE locks the rows it reads")
        return Finding(Risk.READ, "a plain SELECT") if node.larg is None else None
    if isinstance(node, (ast.UpdateStmt, ast.DeleteStmt)):
        return _dml_with_where(node)
    if isinstance(node, ast.ExplainStmt):
        analyze = any(getattr(o, "defname", "") == "analyze" for o in node.options or ())
        return Finding(Risk.READ, "EXPLAIN ANALYZE of a read" if analyze else "EXPLAIN of a read")
    if isinstance(node, ast.CopyStmt):
        return _copy(node)
    if isinstance(node, ast.VariableSetStmt):
        if (node.name or "").lower() in _PRIVILEGED_SETTINGS:
            return Finding(Risk.PRIVILEGE, f"SET {node.name} changes the acting role")
        return Finding(Risk.SESSION, f"SET / RESET {_SESSION}")
    if isinstance(node, ast.VacuumStmt):
        return Finding(Risk.ADMIN, ("VACUUM reclaims storage" if node.is_vacuumcmd
                                    else "ANALYZE rewrites table statistics"))
    if isinstance(node, ast.AlterTableStmt):
        subtypes = {getattr(cmd, "subtype", None) for cmd in node.cmds or ()}
        if AlterTableType.AT_DropColumn in subtypes:
            return Finding(Risk.DESTRUCTIVE, "ALTER TABLE ... DROP COLUMN destroys the column's data")
        if AlterTableType.AT_ChangeOwner in subtypes:
            return Finding(Risk.PRIVILEGE, "ALTER ... OWNER TO changes ownership")
        return Finding(Risk.SCHEMA, "ALTER TABLE changes the schema")
    if isinstance(node, ast.FuncCall):
        parts = [getattr(p, "sval", "") for p in node.funcname]
        schema = parts[-2] if len(parts) >= 2 else None
        return function_finding("postgres", parts[-1], schema, len(node.args or ()))
    if kind.endswith("Stmt") and kind != "RawStmt":
        finding = _STATEMENTS.get(kind)
        if finding is None:
            return Finding(Risk.UNKNOWN, f"{kind} is not a statement the broker recognises")
        if finding.reason[0].islower():  # a group's reason: say which statement it is
            return Finding(finding.risk, f"{_keyword(kind)} {finding.reason}")
        return finding
    return None


def _dml_with_where(node: ast.UpdateStmt | ast.DeleteStmt) -> Finding:
    word = "UPDATE" if isinstance(node, ast.UpdateStmt) else "DELETE"
    where = node.whereClause
    if where is None:
        return Finding(Risk.DESTRUCTIVE, f"{word} without WHERE changes every row")
    if isinstance(where, ast.CurrentOfExpr):
        return Finding(Risk.WRITE, f"{word} changes the cursor's row")
    is_or = isinstance(where, ast.BoolExpr) and where.boolop == BoolExprType.OR_EXPR
    branches = list(where.args) if is_or else [where]
    if any(not any(isinstance(n, ast.ColumnRef) for n in _nodes(b)) for b in branches):
        return Finding(Risk.DESTRUCTIVE, f"{word} whose WHERE does not depend on any column changes every row")
    return Finding(Risk.WRITE, f"{word} changes rows")


def _copy(node: ast.CopyStmt) -> Finding:
    if node.is_program:
        return Finding(Risk.EXEC, "COPY ... PROGRAM runs a shell command on the database server")
    if node.filename:
        return Finding(Risk.ADMIN, "COPY reads or writes a file on the database server")
    if node.is_from:
        return Finding(Risk.WRITE, "COPY FROM loads rows")
    return Finding(Risk.ADMIN, "COPY TO STDOUT needs the copy protocol, which the broker does not relay; "
                               "use SELECT")


def _keyword(kind: str) -> str:
    """``AlterSeqStmt`` -> ``ALTER SEQ`` unless a person would have typed something else."""
    return _KEYWORDS.get(kind) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind.removesuffix("Stmt")).upper()


def _statement_name(root: ast.Node) -> str:
    kind = type(root).__name__
    if kind in _KEYWORDS:
        return _KEYWORDS[kind]
    plain = {"SelectStmt": "SELECT", "InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE",
             "MergeStmt": "MERGE", "ExplainStmt": "EXPLAIN", "VariableShowStmt": "SHOW", "VariableSetStmt": "SET",
             "CopyStmt": "COPY", "DoStmt": "DO", "CallStmt": "CALL", "TransactionStmt": "TRANSACTION",
             "PrepareStmt": "PREPARE", "ExecuteStmt": "EXECUTE", "VacuumStmt": "VACUUM/ANALYZE",
             "NotifyStmt": "NOTIFY", "ListenStmt": "LISTEN", "LockStmt": "LOCK"}
    return plain.get(kind) or _keyword(kind)
