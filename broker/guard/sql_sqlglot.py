"""The sqlglot walker: one statement, every node visited, every reason it is not a read collected.

sqlglot serves all three dialects (for PostgreSQL it is the second opinion beside pglast). It is
lenient where a server is strict — T-SQL ``SELECT 1 DELETE FROM t`` parses as a SELECT with a
column alias ``DELETE``, yet SQL Server runs two statements — so the walker also refuses statement
keywords used as bare names, and a "read" whose tokens still contain a write keyword.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError
from sqlglot.tokens import Token, TokenType

from broker.guard import Risk
from broker.guard.sql_bounded import UNBOUNDED, sqlglot_bounded
from broker.guard.sql_rules import SqlFinding, function_finding, procedure_finding, words

# sqlglot logs a warning whenever it falls back to an opaque Command; the walker handles those.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_DIALECTS = {name: Dialect.get_or_raise(name) for name in ("postgres", "mysql", "tsql")}

# Unquoted names that are really statement keywords: a lenient parse swallowed a statement.
STATEMENT_WORDS = words("""
SELECT INSERT UPDATE DELETE MERGE REPLACE UPSERT DROP TRUNCATE ALTER CREATE GRANT REVOKE DENY EXEC EXECUTE
CALL DO COPY LOAD HANDLER KILL SHUTDOWN VACUUM NOTIFY LISTEN UNLISTEN PREPARE DEALLOCATE BEGIN COMMIT ROLLBACK
SAVEPOINT SET RESET USE WAITFOR BULK DBCC BACKUP RESTORE RECONFIGURE CHECKPOINT DECLARE RAISERROR THROW FLUSH
PURGE INSTALL UNINSTALL LOCK UNLOCK RENAME OPTIMIZE REPAIR DISCARD INTO OUTFILE DUMPFILE GO SHOW EXPLAIN
DESCRIBE XA REVERT OPENROWSET OPENDATASOURCE OPENQUERY
""")

# Words that never occur in a plain read, unless followed by "(" (MySQL REPLACE(), INSERT(), TRUNCATE()).
_WRITE_WORDS = words("""
INSERT UPDATE DELETE MERGE REPLACE UPSERT DROP TRUNCATE ALTER CREATE GRANT REVOKE DENY EXEC EXECUTE CALL
INTO OUTFILE DUMPFILE KILL SHUTDOWN WAITFOR BULK DBCC HANDLER LOAD VACUUM NOTIFY PREPARE COMMIT ROLLBACK
""")
_QUOTED = {TokenType.STRING, TokenType.NATIONAL_STRING, TokenType.IDENTIFIER, TokenType.RAW_STRING,
           TokenType.BIT_STRING, TokenType.HEX_STRING, TokenType.BYTE_STRING, TokenType.HEREDOC_STRING,
           TokenType.UNICODE_STRING}

# T-SQL table hints that take no lock beyond a plain read's (anything else holds or escalates locks).
_READ_HINTS = frozenset({"NOLOCK", "READUNCOMMITTED", "READCOMMITTED", "READPAST", "NOWAIT", "INDEX",
                         "FORCESEEK", "FORCESCAN", "NOEXPAND", "SNAPSHOT", "READCOMMITTEDLOCK"})

_SESSION = SqlFinding(Risk.SESSION, "{} changes session or transaction state, which the broker manages itself")
_COMMANDS: dict[str, SqlFinding] = {
    "CALL": SqlFinding(Risk.EXEC, "CALL runs a stored procedure the broker cannot inspect"),
    "DO": SqlFinding(Risk.EXEC, "DO runs code the broker cannot inspect"),
    "EXECUTE": SqlFinding(Risk.EXEC, "EXECUTE runs a prepared statement whose text the broker cannot see"),
    "EXEC": SqlFinding(Risk.EXEC, "EXEC runs code the broker cannot inspect"),
    "LOCK": SqlFinding(Risk.WRITE, "LOCK takes table locks"),
    "REPLACE": SqlFinding(Risk.WRITE, "REPLACE inserts or overwrites rows"),
    "NOTIFY": SqlFinding(Risk.WRITE, "NOTIFY sends a message to other sessions"),
    "REFRESH": SqlFinding(Risk.WRITE, "REFRESH rewrites a materialized view"),
    "HANDLER": SqlFinding(Risk.SESSION, "HANDLER opens a table cursor in the session"),
    "RENAME": SqlFinding(Risk.SCHEMA, "RENAME changes the schema"),
    "IMPORT": SqlFinding(Risk.SCHEMA, "IMPORT FOREIGN SCHEMA changes the schema"),
    "COMMENT": SqlFinding(Risk.SCHEMA, "COMMENT changes the schema's documentation"),
    "GRANT": SqlFinding(Risk.PRIVILEGE, "GRANT changes privileges"),
    "REVOKE": SqlFinding(Risk.PRIVILEGE, "REVOKE changes privileges"),
    "DENY": SqlFinding(Risk.PRIVILEGE, "DENY changes privileges"),
    "REASSIGN": SqlFinding(Risk.PRIVILEGE, "REASSIGN OWNED changes ownership"),
    "SECURITY": SqlFinding(Risk.PRIVILEGE, "SECURITY LABEL changes access labels"),
    "REVERT": SqlFinding(Risk.PRIVILEGE, "REVERT switches the execution context"),
    "TRUNCATE": SqlFinding(Risk.DESTRUCTIVE, "TRUNCATE removes every row"),
    "BULK": SqlFinding(Risk.ADMIN, "BULK INSERT loads rows from a file on the server"),
    "LOAD": SqlFinding(Risk.ADMIN, "LOAD reads a file on the server (data or a shared library)"),
    **{word: SqlFinding(Risk.ADMIN, f"{word} operates the server") for word in (
        "VACUUM", "CLUSTER", "REINDEX", "CHECKPOINT", "OPTIMIZE", "REPAIR", "CHECKSUM", "CHECK", "KILL",
        "SHUTDOWN", "FLUSH", "PURGE", "INSTALL", "UNINSTALL", "BACKUP", "RESTORE", "DBCC", "RECONFIGURE",
        "ANALYZE", "BINLOG", "CACHE", "RESTART")},
    **{word: SqlFinding(Risk.SESSION, _SESSION.reason.format(word)) for word in (
        "PREPARE", "DEALLOCATE", "LISTEN", "UNLISTEN", "RESET", "DISCARD", "SET", "BEGIN", "START", "COMMIT",
        "ROLLBACK", "SAVEPOINT", "RELEASE", "ABORT", "END", "XA", "USE", "DECLARE", "WAITFOR", "PRINT",
        "CLOSE", "FETCH", "MOVE", "OPEN")},
}
_BEGIN_TRANSACTION = {"", "TRAN", "TRANSACTION", "WORK", "DISTRIBUTED", "ISOLATION", "READ", "DEFERRABLE", "NOT"}
_CREATE_KINDS = {"USER": Risk.PRIVILEGE, "ROLE": Risk.PRIVILEGE, "LOGIN": Risk.PRIVILEGE, "GROUP": Risk.PRIVILEGE,
                 "POLICY": Risk.PRIVILEGE, "DATABASE": Risk.ADMIN, "EXTENSION": Risk.ADMIN, "SERVER": Risk.ADMIN,
                 "TABLESPACE": Risk.ADMIN, "SUBSCRIPTION": Risk.ADMIN, "PUBLICATION": Risk.ADMIN,
                 "PLUGIN": Risk.ADMIN, "SYSTEM": Risk.ADMIN}
_EXPLAIN_OPTIONS = re.compile(r"^\s*(?:\((?:[^()]|\([^()]*\))*\)\s*|(?:ANALY[SZ]E|VERBOSE)\b\s*)*", re.IGNORECASE)


def walk_sqlglot(sql: str, dialect: str) -> tuple[str, list[SqlFinding]]:
    """The statement's name and every finding about it (a READ finding when it is a plain read)."""
    try:
        tokens = _DIALECTS[dialect].tokenize(sql)
    except SqlglotError as exc:
        return "", [SqlFinding(Risk.UNKNOWN, f"sqlglot could not read the command ({_first_line(exc)})",
                            problem="invalid_sql")]
    for token in tokens:
        if any("/*" in comment for comment in token.comments):
            return "", [SqlFinding(Risk.UNKNOWN, "nested block comments are refused (servers disagree on them)")]
    try:
        trees = [t for t in _DIALECTS[dialect].parser(error_level=ErrorLevel.IMMEDIATE).parse(tokens, sql)
                 if t is not None and not isinstance(t, exp.Semicolon)]  # a comment after the last ';'
    except SqlglotError as exc:
        return "", [SqlFinding(Risk.UNKNOWN, f"sqlglot could not parse the command ({_first_line(exc)})",
                            problem="invalid_sql", position=_error_offset(sql, exc))]
    except RecursionError:
        return "", [SqlFinding(Risk.UNKNOWN, "the command nests too deeply to parse")]
    if len(trees) != 1:
        return "", [SqlFinding(Risk.UNKNOWN, f"expected exactly one statement, found {len(trees)}",
                            problem="multiple_statements" if trees else "invalid_sql")]
    root = trees[0]
    name, findings = _statement(root, dialect, tokens)
    findings += _walk(root, dialect)
    if name != "SHOW" and all(f.risk is Risk.READ for f in findings):
        findings += _unexplained_write_words(tokens)
    return name, findings


def _statement(root: exp.Expression, dialect: str, tokens: list[Token]) -> tuple[str, list[SqlFinding]]:
    if isinstance(root, (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)):
        return "SELECT", [SqlFinding(Risk.READ, "a plain SELECT")]
    if isinstance(root, exp.Show):
        return "SHOW", [SqlFinding(Risk.READ, "SHOW reads metadata")]
    if isinstance(root, exp.Describe):
        inner = root.this
        if isinstance(inner, (exp.Table, exp.Column, exp.Identifier, exp.Dot)):
            return "DESCRIBE", [SqlFinding(Risk.READ, "DESCRIBE reads metadata")]
        analyze = str(root.args.get("style") or "").upper() == "ANALYZE"
        return "EXPLAIN", [SqlFinding(Risk.READ, "EXPLAIN ANALYZE of a read" if analyze else "EXPLAIN of a read")]
    if isinstance(root, exp.Command):
        return _command(root, dialect, tokens)
    if isinstance(root, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        return root.key.upper(), []  # the walk judges every DML node, nested or not
    if isinstance(root, exp.Copy):  # PostgreSQL's grammar (pglast) says which kind of COPY exactly
        return "COPY", [SqlFinding(Risk.WRITE, "COPY moves rows between a table and a file, program or client")]
    if isinstance(root, exp.Create):
        kind = str(root.args.get("kind") or "").upper()
        return "CREATE", [SqlFinding(_CREATE_KINDS.get(kind, Risk.SCHEMA), f"CREATE {kind} changes the schema"
                                  if kind not in _CREATE_KINDS else f"CREATE {kind}")]
    if isinstance(root, exp.Alter):
        kind = str(root.args.get("kind") or "").upper()
        if kind in _CREATE_KINDS:
            return "ALTER", [SqlFinding(_CREATE_KINDS[kind], f"ALTER {kind}")]
        drops = [a for a in root.args.get("actions") or () if isinstance(a, exp.Drop)]
        if any(str(a.args.get("kind") or "").upper() == "COLUMN" for a in drops):
            return "ALTER", [SqlFinding(Risk.DESTRUCTIVE, "ALTER ... DROP COLUMN destroys the column's data")]
        return "ALTER", [SqlFinding(Risk.SCHEMA, f"ALTER {kind} changes the schema".replace("  ", " "))]
    if isinstance(root, exp.Drop):
        kind = str(root.args.get("kind") or "").upper()
        return "DROP", [SqlFinding(Risk.DESTRUCTIVE, f"DROP {kind} removes objects and their data".replace("  ", " "))]
    if isinstance(root, exp.TruncateTable):
        return "TRUNCATE", [SqlFinding(Risk.DESTRUCTIVE, "TRUNCATE removes every row")]
    if isinstance(root, (exp.Grant, exp.Revoke)):
        return root.key.upper(), [SqlFinding(Risk.PRIVILEGE, f"{root.key.upper()} changes privileges")]
    if isinstance(root, exp.Set):
        return "SET", [_set_finding(root)]
    if isinstance(root, (exp.Use, exp.Transaction, exp.Commit, exp.Rollback, exp.Declare)):
        word = root.key.upper()
        return word, [SqlFinding(Risk.SESSION, _SESSION.reason.format(word))]
    if isinstance(root, (exp.Execute, exp.ExecuteSql)):
        return "EXECUTE", []  # judged in the walk
    if isinstance(root, exp.Kill):
        return "KILL", [SqlFinding(Risk.ADMIN, "KILL ends another session or query")]
    if isinstance(root, exp.Analyze):
        return "ANALYZE", [SqlFinding(Risk.ADMIN, "ANALYZE rewrites table statistics")]
    if isinstance(root, exp.Comment):
        return "COMMENT", [SqlFinding(Risk.SCHEMA, "COMMENT changes the schema's documentation")]
    if isinstance(root, (exp.IfBlock, exp.WhileBlock)):
        return root.key.upper(), [SqlFinding(Risk.UNKNOWN, "control-of-flow blocks are not single statements")]
    return root.key.upper(), [SqlFinding(Risk.UNKNOWN, f"sqlglot read no statement here, only an expression "
                                                    f"({root.sql(dialect)[:40]})")]


def _command(root: exp.Command, dialect: str, tokens: list[Token]) -> tuple[str, list[SqlFinding]]:
    """sqlglot's opaque fallback: judged by its leading keyword(s), never guessed to be a read.

    Its text is opaque to sqlglot, so in T-SQL (which needs no ``;`` between statements and runs
    ``PRINT 'x' DELETE FROM t`` as two) a statement keyword after the first word is ``unknown``.
    """
    word = str(root.this).upper()
    rest = root.expression.name if isinstance(root.expression, exp.Literal) else str(root.expression or "")
    second = rest.split(None, 1)[0].upper() if rest.strip() else ""
    if dialect == "postgres" and word == "SHOW":
        return "SHOW", [SqlFinding(Risk.READ, "SHOW reads a setting")]
    if dialect == "tsql":
        try:  # sqlglot keeps a command's text as one opaque token: look inside it
            inner = _DIALECTS[dialect].tokenize(rest)
        except SqlglotError:
            return word, [SqlFinding(Risk.UNKNOWN, f"the text after {word} cannot be tokenised")]
        for token in [*tokens[1:], *inner]:
            if token.token_type not in _QUOTED and token.text.upper() in STATEMENT_WORDS:
                return word, [SqlFinding(Risk.UNKNOWN, f"{word} is followed by the statement keyword "
                                                    f"{token.text.upper()}: possibly a second statement")]
    if word == "BEGIN" and second not in _BEGIN_TRANSACTION:
        return word, [SqlFinding(Risk.UNKNOWN, "BEGIN ... END blocks hold several statements")]
    if dialect == "postgres" and word == "EXPLAIN":
        options = _EXPLAIN_OPTIONS.match(rest)
        analyze = bool(options and "ANALY" in options.group(0).upper())
        _, findings = walk_sqlglot(rest[options.end() if options else 0:], dialect)
        if all(f.risk is Risk.READ for f in findings):
            findings = [SqlFinding(Risk.READ, "EXPLAIN ANALYZE of a read" if analyze else "EXPLAIN of a read")]
        return "EXPLAIN", findings
    if word in ("CREATE", "ALTER") and second in _CREATE_KINDS:
        return word, [SqlFinding(_CREATE_KINDS[second], f"{word} {second}")]
    if word in ("CREATE", "ALTER", "COMMENT"):
        return word, [SqlFinding(Risk.SCHEMA, f"{word} {second} changes the schema")]
    if word == "DROP":
        return word, [SqlFinding(Risk.DESTRUCTIVE, f"DROP {second} removes objects")]
    if word == "SET" and second in ("ROLE", "SESSION") and ("AUTHORIZATION" in rest.upper() or second == "ROLE"):
        return word, [SqlFinding(Risk.PRIVILEGE, "SET ROLE / SESSION AUTHORIZATION changes the acting role")]
    if word == "EXECUTE" and dialect == "tsql":
        return word, [procedure_finding(dialect, second)]
    if word == "WAITFOR" and rest.lstrip().startswith("("):
        return word, [SqlFinding(Risk.WRITE, "WAITFOR (RECEIVE ...) removes messages from a queue")]
    finding = _COMMANDS.get(word)
    if finding is None:
        return word, [SqlFinding(Risk.UNKNOWN, f"{word} is not a statement the broker recognises")]
    return word, [finding]


def _set_finding(root: exp.Set) -> SqlFinding:
    for item in root.expressions:
        target = item.this.this if isinstance(item.this, exp.EQ) else item.this
        name = target.name.lower() if isinstance(target, exp.Expression) else ""
        if name in ("role", "session_authorization") or "authorization" in name:
            return SqlFinding(Risk.PRIVILEGE, "SET changes the acting role")
    return SqlFinding(Risk.SESSION, "SET changes session or transaction state, which the broker manages itself")


def _walk(root: exp.Expression, dialect: str) -> list[SqlFinding]:
    findings: list[SqlFinding] = []
    for node in root.walk():
        found = _node(node, dialect)
        if found:
            findings.append(found)
    return findings


def _node(node: exp.Expression, dialect: str) -> SqlFinding | None:
    handler = _handler(type(node))
    return handler(node, dialect) if handler else None


def _dml(node: exp.Expression, dialect: str) -> SqlFinding | None:
    if isinstance(node.parent, exp.When):
        return None  # a MERGE action: the MERGE is judged as a whole
    if isinstance(node, exp.Insert):
        return SqlFinding(Risk.WRITE, "INSERT adds rows")
    return _dml_with_where(node)  # type: ignore[arg-type]


def _into(node: exp.Into, dialect: str) -> SqlFinding:
    if isinstance(node.this, exp.Table) and not isinstance(node.this.this, exp.Parameter):
        return SqlFinding(Risk.SCHEMA, "SELECT ... INTO creates a table")
    return SqlFinding(Risk.SESSION, "SELECT ... INTO assigns variables")


def _table_hint(node: exp.WithTableHint, dialect: str) -> SqlFinding | None:
    for hint in node.expressions:
        word = (hint.name or hint.sql()).upper()
        if word not in _READ_HINTS:
            return SqlFinding(Risk.WRITE, f"the table hint {word} holds or escalates locks")
    return None


def _execute(node: exp.Execute, dialect: str) -> SqlFinding:
    if isinstance(node.this, exp.Table):
        return procedure_finding(dialect, node.this.sql(dialect))
    return SqlFinding(Risk.EXEC, "EXEC runs SQL text the broker cannot inspect")


def _nested_command(node: exp.Command, dialect: str) -> SqlFinding | None:
    if node.parent is None:
        return None  # the statement itself: judged by _command
    return SqlFinding(Risk.UNKNOWN, f"a nested {str(node.this).upper()} the parser did not understand")


def _func(node: exp.Func, dialect: str) -> SqlFinding | None:
    return None if node.find_ancestor(exp.WithTableHint) else _function(node, dialect)


def _identifier(node: exp.Identifier, dialect: str) -> SqlFinding | None:
    if node.quoted or node.name.upper() not in STATEMENT_WORDS:
        return None
    return SqlFinding(Risk.UNKNOWN, f"{node.name.upper()} is a statement keyword used as a name "
                                 "(quote it if it is one); servers may read a second statement here")


def _table(node: exp.Table, dialect: str) -> SqlFinding | None:
    if dialect == "tsql" and isinstance(node.this, exp.Dot):  # server.database.schema.object
        return SqlFinding(Risk.EXEC, "a four-part name queries another server through a linked server, "
                                     "outside the broker's view")
    return None


def _fixed(finding: SqlFinding) -> Callable[[exp.Expression, str], SqlFinding]:
    return lambda node, dialect: finding


# Node class -> rule; subclasses inherit their nearest ancestor's rule (see ``_handler``).
_RULES: dict[type[exp.Expression], Callable[[Any, str], SqlFinding | None]] = {
    exp.Update: _dml, exp.Delete: _dml, exp.Insert: _dml,
    exp.Merge: _fixed(SqlFinding(Risk.WRITE, "MERGE changes rows")),
    exp.Into: _into,
    exp.Lock: _fixed(SqlFinding(Risk.WRITE, "FOR UPDATE / FOR SHARE locks the rows it reads")),
    exp.WithTableHint: _table_hint,
    exp.NextValueFor: _fixed(SqlFinding(Risk.WRITE, "NEXT VALUE FOR advances a sequence")),
    exp.PropertyEQ: _fixed(SqlFinding(Risk.SESSION, "':=' assigns a session variable")),
    exp.Execute: _execute,
    exp.ExecuteSql: lambda node, dialect: procedure_finding(dialect, "sp_executesql"),
    exp.Command: _nested_command,
    exp.Func: _func,
    exp.Identifier: _identifier,
    exp.Table: _table,
}


@cache
def _handler(kind: type[exp.Expression]) -> Callable[[Any, str], SqlFinding | None] | None:
    for cls in kind.__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


# Reserved words PostgreSQL parses as constructs that sqlglot keeps as unknown calls; quoted
# (``"row"(1)``) they name a function and are judged as one.
_PG_SYNTAX_NOT_CALLS = frozenset({"ROW", "ALL", "SOME"})


def _function(node: exp.Func, dialect: str) -> SqlFinding | None:
    parent = node.parent
    schema = parent.this.name if isinstance(parent, exp.Dot) and parent.expression is node else None
    if isinstance(node, exp.Anonymous):
        if dialect == "postgres" and schema is None and isinstance(node.this, str) \
                and node.this.upper() in _PG_SYNTAX_NOT_CALLS:
            return None  # ROW(...), x = ALL/SOME(array): grammar, not a function (its arguments are walked)
        return function_finding(dialect, node.name, schema, len(node.expressions))
    if schema is not None:  # a known name, qualified by a user schema: a user-defined function
        return function_finding(dialect, node.sql_name().lower(), schema)
    return None  # a function sqlglot models is a built-in of the dialect


def _dml_with_where(node: exp.Update | exp.Delete) -> SqlFinding:
    word = node.key.upper()
    if node.args.get("where") is None:
        return SqlFinding(Risk.DESTRUCTIVE, f"{word} without WHERE changes every row")
    if not sqlglot_bounded(node):
        return SqlFinding(Risk.DESTRUCTIVE, UNBOUNDED.format(word))
    return SqlFinding(Risk.WRITE, f"{word} changes rows")


def _unexplained_write_words(tokens: list[Token]) -> list[SqlFinding]:
    for index, token in enumerate(tokens):
        if token.token_type in _QUOTED:
            continue
        word = token.text.upper()
        if word in _WRITE_WORDS:
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if following is not None and following.token_type is TokenType.L_PAREN and word in (
                    "REPLACE", "INSERT", "TRUNCATE"):
                continue
            return [SqlFinding(Risk.UNKNOWN, f"the word {word} appears outside any string, yet the parser "
                                          "found no such statement; refusing to guess")]
    return []


def _error_offset(sql: str, exc: Exception) -> int | None:
    """sqlglot's first error as a 0-based offset into ``sql`` (it reports a line and a column)."""
    errors = (exc.errors if isinstance(exc, ParseError) else None) or [{}]
    line, col = errors[0].get("line"), errors[0].get("col")
    if not isinstance(line, int) or not isinstance(col, int):
        return None
    lines = sql.split("\n")
    return sum(len(text) + 1 for text in lines[:max(line - 1, 0)]) + max(col - 1, 0)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
