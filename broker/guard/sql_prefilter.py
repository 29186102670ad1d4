"""Refuse, before any parser looks, what a parser would not see the way the server does.

A parser and a server that disagree on where a comment, a string or a batch ends is the classic
way to smuggle a write past a classifier. So input the broker never needs is refused outright:
NUL and other control bytes, lone carriage returns, psql/mysql/sqlcmd client meta-commands,
T-SQL ``GO`` batch separators, MySQL/MariaDB executable comments (``/*! ... */``, ``/*M! ... */``)
and oversized text. Nested block comments are refused after tokenising (``sql_sqlglot``).
"""

from __future__ import annotations

import re

from broker.guard import Risk
from broker.guard.sql_rules import SqlFinding

MAX_SQL_CHARS = 100_000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LONE_CR = re.compile(r"\r(?!\n)")
_META_LINE = re.compile(r"^[ \t]*\\", re.MULTILINE)  # psql / mysql client: \! \copy \i \G ...
_SQLCMD_LINE = re.compile(r"^[ \t]*(?::[a-z!]|!!)", re.MULTILINE | re.IGNORECASE)  # sqlcmd :r :!! !!
_GO_LINE = re.compile(r"^[ \t]*go(?:[ \t]+\d+)?[ \t]*;?[ \t]*(?:--[^\n]*)?\r?$", re.MULTILINE | re.IGNORECASE)
_MYSQL_EXECUTABLE = re.compile(r"/\*[mM]?!")
_UNICODE_SPACE = re.compile(r"[\u0085\u00a0\u1680\u2000-\u200f\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]")


def prefilter(sql: str, dialect: str) -> SqlFinding | None:
    """None when the text may go to the parsers, else why it is refused (always ``unknown``)."""
    if not sql.strip():
        return SqlFinding(Risk.UNKNOWN, "the command is empty", problem="invalid_sql")
    if len(sql) > MAX_SQL_CHARS:
        return SqlFinding(Risk.UNKNOWN, f"the command is longer than {MAX_SQL_CHARS} characters")
    if "\x00" in sql:
        return SqlFinding(Risk.UNKNOWN, "the command contains a NUL byte")
    if _CONTROL.search(sql):
        return SqlFinding(Risk.UNKNOWN, "the command contains a control character")
    if _LONE_CR.search(sql):
        return SqlFinding(Risk.UNKNOWN, "the command contains a carriage return without a line feed "
                                     "(parsers disagree on where such a line ends)")
    if _UNICODE_SPACE.search(sql):
        return SqlFinding(Risk.UNKNOWN, "the command contains invisible or non-ASCII white space")
    if _META_LINE.search(sql):
        return SqlFinding(Risk.UNKNOWN, "a line starts with a backslash: client meta-commands "
                                     "(psql \\! or \\copy, mysql \\G) are not SQL")
    if dialect == "tsql":
        if _GO_LINE.search(sql):
            return SqlFinding(Risk.UNKNOWN, "GO separates batches (more than one statement); send one statement",
                           problem="multiple_statements")
        if _SQLCMD_LINE.search(sql):
            return SqlFinding(Risk.UNKNOWN, "a line starts with a sqlcmd command (:r, :!!, !!), which is not SQL")
    if dialect == "mysql" and _MYSQL_EXECUTABLE.search(sql):
        return SqlFinding(Risk.UNKNOWN, "MySQL executable comments (/*! ... */) run code that parsers "
                                     "treat as a comment")
    return None
