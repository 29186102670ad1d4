"""What a T-SQL view, function, computed column or security predicate runs, read from its definition.

``sql_tsql_resolve`` asks this module two things about a text: the reasons it is not a read by the
static T-SQL rules, and every object it names (tables, views, synonyms, functions) so that those
can be resolved in turn. A view or inline table-valued function is one SELECT: its body is judged
by the classifier's own rules (``sql_sqlglot``), and what it names comes from sqlglot's tree. A
scalar or multi-statement function is a ``BEGIN ... END`` block the parser does not take, so its
tokens are scanned instead, over-approximating: every name in it that matches a catalog object is
resolved (a column that happens to share a view's name costs a look-up, never a miss), ``EXEC``
(only extended procedures are allowed in a function), ``WAITFOR``, ``NEXT VALUE FOR``, lock hints
and the rowset functions (``OPENROWSET``/``OPENQUERY``/``OPENDATASOURCE``) are reasons, and a call
of anything that is neither a known built-in nor in the catalog is not a read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from broker.guard import Risk
from broker.guard.sql_prefilter import prefilter
from broker.guard.sql_rules import (
    TSQL_BUILTINS,
    TSQL_DANGEROUS,
    SqlFinding,
    function_finding,
    procedure_finding,
    words,
)
from broker.guard.sql_sqlglot import walk_sqlglot

_TSQL = Dialect.get_or_raise("tsql")
_TEXT = {TokenType.STRING, TokenType.NATIONAL_STRING, TokenType.NUMBER, TokenType.HEX_STRING,
         TokenType.BIT_STRING, TokenType.BYTE_STRING, TokenType.UNICODE_STRING}
_NAMES = {TokenType.VAR, TokenType.IDENTIFIER}
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#@]*$")
_CHECK_OPTION = re.compile(r"\bWITH\s+CHECK\s+OPTION\s*;?\s*$", re.IGNORECASE)
# Words sqlglot's tokenizer leaves as plain names although they are keywords before "(".
_NOT_CALLS = words("""
return if while values in exists and or not on as over within table key into when then else apply from select
where by case top end begin declare set insert update delete output option with inserted deleted
""")
_SYSTEM_TYPES = frozenset({"hierarchyid", "geometry", "geography", "sysname", "sql_variant", "xml"})
_TABLE_ARGUMENT = frozenset({"containstable", "freetexttable"})
_LOCK_HINTS = frozenset({"UPDLOCK", "XLOCK", "TABLOCK", "TABLOCKX", "HOLDLOCK", "SERIALIZABLE", "REPEATABLEREAD",
                         "PAGLOCK", "ROWLOCK"})


@dataclass(frozen=True)
class Reference:
    """One object a text names: its name parts as written (unquoted; ``""`` for ``db..t``)."""

    parts: tuple[str, ...]
    call: bool = False
    """Written as a call, ``name(...)``: a function (or a synonym of one)."""
    otherwise: SqlFinding | None = None
    """For a call: the static reason to report when the catalog has no such function (None: a
    built-in, looked up only in case a user function of the same name shadows it)."""
    maybe: bool = False
    """Found by the token scan: may be a column or an alias, so nothing by this name is no finding."""
    cast: bool = False
    """A cast to a user-defined type: a CLR type's ``Parse`` is .NET code (looked up in ``sys.types``)."""


@dataclass(frozen=True)
class Analysis:
    findings: tuple[SqlFinding, ...] = ()
    """The reasons the text itself is not a read (static rules), other than the functions it calls."""
    references: tuple[Reference, ...] = ()


def _unknown(reason: str) -> Analysis:
    return Analysis((SqlFinding(Risk.UNKNOWN, reason),))


def references(tree: exp.Expression) -> list[Reference]:
    """Every relation and function call in a parsed statement (CTE names where their CTE is in
    scope, temp tables and table variables excluded: none of them can be a view or a function)."""
    found: list[Reference] = []
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Anonymous):  # FROM dbo.f(1): a table-valued function
            parts = [p for p in (table.catalog, table.db) if p] + [table.this.name]
            found.append(Reference(tuple(parts), call=True))
            continue
        if isinstance(table.this, exp.Dot):  # four or more parts: a linked server
            found.append(Reference(tuple(i.name for i in [table.args.get("catalog"), table.args.get("db"),
                                                            *table.this.flatten()] if i is not None)))
            continue
        ident = table.this
        if not isinstance(ident, exp.Identifier) or ident.args.get("temporary") or ident.args.get("global_"):
            continue  # @table variable, #temp or ##global temp table
        name = table.name
        if not name or (not table.db and not table.catalog and _cte_in_scope(table, name)):
            continue
        if table.catalog:
            found.append(Reference((table.catalog, table.db, name)))
        else:
            found.append(Reference((table.db, name) if table.db else (name,)))
    for datatype in tree.find_all(exp.DataType):
        if datatype.this is exp.DataType.Type.USERDEFINED:
            name = str(datatype.args.get("kind") or datatype.sql(dialect="tsql"))
            if name.strip("[]").lower() not in _SYSTEM_TYPES:  # "dbo.Point2" (a dot in [a.b]: not found)
                found.append(Reference(tuple(p.strip("[]") for p in name.split(".")), cast=True))
    for func in tree.find_all(exp.Func):  # a built-in table-valued function sqlglot models (GENERATE_SERIES):
        if not isinstance(func, exp.Anonymous) and isinstance(func.parent, (exp.Table, exp.Lateral)):
            found.append(Reference((func.sql_name(),), call=True))  # below compat level 160 a user TVF wins
    for call in tree.find_all(exp.Anonymous):
        parent = call.parent
        if call.name.lower() in _TABLE_ARGUMENT and call.expressions:  # CONTAINSTABLE(view, ...) reads it
            first = call.expressions[0]
            if isinstance(first, exp.Column):
                found.append(Reference(tuple(p.name for p in first.parts)))
        if isinstance(parent, exp.Table) and parent.this is call:
            continue  # counted above
        if isinstance(parent, exp.Dot) and parent.expression is call:
            prefix = [i.name for i in parent.this.flatten()] if isinstance(parent.this, exp.Dot) else [
                parent.this.name]
            found.append(Reference((*prefix, call.name), call=True))
        else:
            found.append(Reference((call.name,), call=True))
    return found


def _cte_in_scope(table: exp.Table, name: str) -> bool:
    """Whether a CTE of this name is attached to a statement that encloses ``table``."""
    lower = name.lower()
    node: exp.Expression | None = table
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")  # sqlglot's key (renamed across versions)
        if isinstance(with_, exp.With) and any(c.alias_or_name.lower() == lower for c in with_.expressions):
            return True
        node = node.parent
    return False


def analyse_select(text: str) -> Analysis:
    """A SELECT (a view's body, an inline function's, an expression wrapped in one): its static
    findings and what it names. A call the static rules refuse only for not being a built-in is
    left to the resolver (``Reference.otherwise``), which reads that function's definition."""
    refused = prefilter(text, "tsql")
    if refused is not None:
        return Analysis((refused,))
    name, findings = walk_sqlglot(text, "tsql")
    static: list[SqlFinding] = []
    unresolved: dict[str, SqlFinding] = {}  # by function name: the tree gives each call's schema
    for finding in findings:
        if finding.risk is Risk.READ:
            continue
        if finding.function is not None:
            unresolved[finding.function[1].lower()] = finding
        else:
            static.append(finding)
    if not findings or (name != "SELECT" and not static):
        static.append(SqlFinding(Risk.UNKNOWN, f"the definition is not a single SELECT ({name or 'nothing'})"))
    try:
        tree = sqlglot.parse_one(text, dialect="tsql")
    except (SqlglotError, RecursionError):
        return Analysis((*static, SqlFinding(Risk.UNKNOWN, "the definition could not be parsed")))
    refs: list[Reference] = []
    matched: set[str] = set()
    for ref in references(tree):
        if ref.call:
            name = ref.parts[-1].lower()
            matched.add(name)
            ref = Reference(ref.parts, call=True, otherwise=unresolved.get(name))
        refs.append(ref)
    static += [f for name, f in unresolved.items() if name not in matched]  # not seen as a call: keep it
    return Analysis(tuple(static), tuple(refs))


@lru_cache(maxsize=4096)
def analyse_module(kind: str, definition: str) -> Analysis:
    """A module's definition (``sys.sql_modules.definition``: the whole ``CREATE`` statement)."""
    try:
        tokens = _TSQL.tokenize(definition)
    except SqlglotError:
        return _unknown("the definition could not be tokenised")
    if kind == "V":
        start = _after(tokens, "VIEW", "AS")
        if start is None:
            return _unknown("the view's SELECT could not be found in its definition")
        return analyse_select(_CHECK_OPTION.sub("", definition[tokens[start].start:]))
    if kind == "IF":
        start = _after(tokens, "FUNCTION", "RETURN")
        if start is None:
            return _unknown("the inline function's SELECT could not be found in its definition")
        return analyse_select(definition[tokens[start].start:])
    start = _after_name(tokens, "FUNCTION")
    if start is None:
        return _unknown("the function's body could not be found in its definition")
    return scan(tokens, start)


@lru_cache(maxsize=4096)
def analyse_expression(expression: str) -> Analysis:
    """A computed column's or a security predicate's expression, judged as ``SELECT <expression>``."""
    return analyse_select(f"SELECT {expression}")


def _after(tokens: list[Token], keyword: str, word: str) -> int | None:
    """The index of the token after the first ``word`` outside parentheses that follows ``keyword``."""
    seen, depth = False, 0
    for index, token in enumerate(tokens):
        text = token.text.upper()
        if token.token_type is TokenType.L_PAREN:
            depth += 1
        elif token.token_type is TokenType.R_PAREN:
            depth -= 1
        elif not seen:
            seen = text == keyword and token.token_type not in _TEXT and token.token_type is not TokenType.IDENTIFIER
        elif depth == 0 and text == word and token.token_type is not TokenType.IDENTIFIER:
            return index + 1 if index + 1 < len(tokens) else None
    return None


def _after_name(tokens: list[Token], keyword: str) -> int | None:
    """The index of the token after the (possibly qualified) name that follows ``keyword``."""
    for index, token in enumerate(tokens):
        if token.text.upper() == keyword and token.token_type is not TokenType.IDENTIFIER:
            end = _name_end(tokens, index + 1)
            return end + 1 if end is not None and end + 1 < len(tokens) else None
    return None


def _word(token: Token) -> bool:
    return token.token_type in _NAMES or (token.token_type not in _TEXT and bool(_WORD.match(token.text)))


def _name_end(tokens: list[Token], index: int) -> int | None:
    """The index of the last token of the dotted name starting at ``index`` (None: no name there)."""
    if index >= len(tokens) or not _word(tokens[index]):
        return None
    end = index
    while end + 2 < len(tokens) and tokens[end + 1].token_type is TokenType.DOT:
        following = tokens[end + 2]
        if following.token_type is TokenType.DOT:
            end += 1  # db..name
        elif _word(following):
            end += 2
        else:
            break
    return end


def _parts(tokens: list[Token], start: int, end: int) -> tuple[str, ...]:
    parts: list[str] = []
    previous_dot = False
    for token in tokens[start:end + 1]:
        if token.token_type is TokenType.DOT:
            if previous_dot:
                parts.append("")
            previous_dot = True
        else:
            parts.append(token.text)
            previous_dot = False
    return tuple(parts)


def scan(tokens: list[Token], start: int) -> Analysis:
    """A function body's tokens from ``start``: every reason and every name (see the module doc)."""
    findings: list[SqlFinding] = []
    refs: list[Reference] = []
    index = start
    while index < len(tokens):
        token = tokens[index]
        kind, text = token.token_type, token.text.upper()
        if any("/*" in comment for comment in token.comments):
            findings.append(SqlFinding(Risk.UNKNOWN, "nested block comments are refused (servers disagree on them)"))
        if kind in _TEXT:
            index += 1
        elif kind in (TokenType.PARAMETER, TokenType.HASH):  # @variable, #temp: skip the name after it
            index += 2
        elif kind is TokenType.EXECUTE or text in ("EXEC", "EXECUTE"):
            index = _execute(tokens, index + 1, findings)
        elif text == "WAITFOR":
            findings.append(SqlFinding(Risk.ADMIN, "WAITFOR only waits, holding a database connection"))
            index += 1
        elif kind is TokenType.NEXT and [t.text.upper() for t in tokens[index + 1:index + 3]] == ["VALUE", "FOR"]:
            findings.append(SqlFinding(Risk.WRITE, "NEXT VALUE FOR advances a sequence"))
            index += 3
        elif kind is TokenType.WITH and index + 1 < len(tokens) and tokens[index + 1].token_type is TokenType.L_PAREN:
            close = next((i for i in range(index + 2, len(tokens)) if tokens[i].token_type is TokenType.R_PAREN),
                         len(tokens))
            locks = [t.text.upper() for t in tokens[index + 2:close] if t.text.upper() in _LOCK_HINTS]
            if locks:
                findings.append(SqlFinding(Risk.WRITE, f"the table hint {locks[0]} holds or escalates locks"))
            index += 2
        elif _word(token):
            end = _name_end(tokens, index) or index
            parts = _parts(tokens, index, end)
            call = end + 1 < len(tokens) and tokens[end + 1].token_type is TokenType.L_PAREN
            if call:
                finding = _call(parts, token)
                if isinstance(finding, SqlFinding):
                    findings.append(finding)
                elif finding is not None:
                    refs.append(finding)
            else:
                refs.append(Reference(parts, maybe=True))
            index = end + 1
        else:
            index += 1
    return Analysis(tuple(findings), tuple(refs))


def _call(parts: tuple[str, ...], first: Token) -> SqlFinding | Reference | None:
    name = parts[-1].lower()
    if name in TSQL_DANGEROUS:
        return TSQL_DANGEROUS[name]
    if len(parts) == 1:
        if first.token_type not in _NAMES or name in TSQL_BUILTINS or name in _NOT_CALLS:
            return Reference(parts, call=True)  # a keyword or a built-in: only a shadowing function matters
        return Reference(parts, call=True, otherwise=function_finding("tsql", parts[-1]))
    schema = parts[-2]
    if schema.lower() == "sys":
        return function_finding("tsql", parts[-1], "sys")
    return Reference(parts, call=True, otherwise=function_finding("tsql", parts[-1], schema))


def _execute(tokens: list[Token], index: int, findings: list[SqlFinding]) -> int:
    """``EXEC [@status =] name ...`` inside a function (only extended procedures can run there);
    ``EXECUTE AS`` in a function's header only names its security context."""
    if index < len(tokens) and tokens[index].text.upper() == "AS":
        return index + 1
    if index + 2 < len(tokens) and tokens[index].token_type is TokenType.PARAMETER and (
            tokens[index + 2].token_type is TokenType.EQ):
        index += 3
    end = _name_end(tokens, index)
    if end is None:
        findings.append(SqlFinding(Risk.EXEC, "EXEC runs SQL text the broker cannot inspect"))
        return index
    findings.append(procedure_finding("tsql", ".".join(_parts(tokens, index, end))))
    return end + 1
