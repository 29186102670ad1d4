"""T-SQL reads resolved through the views, functions and synonyms they reach (issue 14).

No SQL Server runs here: the catalog is ``mssql_catalog.SqlServerCatalog``, a stand-in that answers
the resolver's queries as SQL Server's catalog views do for a role (and never more permissively).
The engine path (a read-intent pyodbc connection, pooling, errors) runs through a pyodbc-shaped
connection over the same stand-in; the query texts are checked to parse as T-SQL."""

from __future__ import annotations

from typing import Any

import pyodbc
import pytest
import sqlglot
from sqlglot import exp

from broker.catalog import Target
from broker.guard import Risk
from broker.guard.sql_tsql_resolve import (
    CONTEXT_SQL,
    EXPRESSIONS_SQL,
    MAX_DEPTH,
    OBJECTS_SQL,
    ModuleResolver,
    split_name,
)
from broker.problems import Unavailable
from broker.secrets import SecretValue
from broker.targets.base import Command, ExecutionLimits
from broker.targets.mssql import AzureSqlEngine
from tests.targets.mssql_catalog import CatalogConnection, Obj, Role, SqlServerCatalog

TARGET = Target(name="shop-sql", engine="mssql", connection={"host": "shop.database.windows.net", "database": "Shop"},
                credential={"source": "managed-identity", "scope": "https://database.windows.net/.default"})
DRIVER = "ODBC Driver 18 for SQL Server"

SHELL = ("CREATE FUNCTION [dbo].[Shell](@c nvarchar(4000)) RETURNS int\nAS\nBEGIN\n  DECLARE @r int\n"
         "  EXEC @r = master..xp_cmdshell @c, no_output\n  RETURN @r\nEND")


def _objects() -> list[Obj]:
    view = "CREATE VIEW {} AS {}".format
    return [
        Obj("dbo", "Orders", "U", computed=["([amount]*(2))"]),
        Obj("dbo", "customers", "U"),
        Obj("sales", "Regions", "U"),
        Obj("dbo", "Paid", "V", view("dbo.Paid", "SELECT id, amount FROM dbo.Orders WHERE status = N'paid'")),
        Obj("dbo", "paid_total", "V", view("[dbo].[paid_total]", "SELECT SUM(amount) AS total FROM Paid")),
        Obj("dbo", "Shell", "FN", SHELL),
        Obj("dbo", "calls_shell", "V", view("dbo.calls_shell", "SELECT dbo.Shell(N'whoami') AS r")),
        Obj("dbo", "wraps_shell", "V", view("dbo.wraps_shell", "SELECT r FROM calls_shell")),
        Obj("dbo", "add_one", "FN", "CREATE FUNCTION dbo.add_one(@x int) RETURNS int WITH SCHEMABINDING, "
                                    "EXECUTE AS OWNER AS BEGIN DECLARE @y int; SET @y = ISNULL(@x, 0) + 1; "
                                    "RETURN @y END"),
        Obj("dbo", "uses_add_one", "V", view("dbo.uses_add_one", "SELECT dbo.add_one(id) AS n FROM dbo.Orders")),
        Obj("dbo", "next_order", "V", view("dbo.next_order", "SELECT NEXT VALUE FOR dbo.order_ids AS n")),
        Obj("dbo", "remote", "V", view("dbo.remote", "SELECT * FROM OPENQUERY(linked, 'SELECT 1')")),
        Obj("dbo", "file", "V", view("dbo.file", "SELECT * FROM OPENROWSET('MSOLEDBSQL', 'Server=x;', 'SELECT 1')")),
        Obj("dbo", "ds", "V", view("dbo.ds", "SELECT * FROM OPENDATASOURCE('MSOLEDBSQL', 'Data Source=x;').d.dbo.t")),
        Obj("dbo", "four_part", "V", view("dbo.four_part", "SELECT * FROM srv.db.dbo.t")),
        Obj("dbo", "locker", "V", view("dbo.locker", "SELECT id FROM dbo.Orders WITH (UPDLOCK, HOLDLOCK)")),
        Obj("dbo", "encrypted", "V", view("dbo.encrypted", "SELECT 1 AS one"), encrypted=True),
        Obj("dbo", "Clr_Hash", "FS"),
        Obj("dbo", "clr_rows", "FT"),
        Obj("dbo", "via_clr", "V", view("dbo.via_clr", "SELECT dbo.Clr_Hash(id) AS h FROM dbo.Orders")),
        Obj("dbo", "via_clr_rows", "V", view("dbo.via_clr_rows", "SELECT * FROM dbo.clr_rows(1)")),
        Obj("dbo", "rows_of", "IF", "CREATE FUNCTION dbo.rows_of(@n int)\nRETURNS TABLE\nAS\nRETURN\n"
                                    "(SELECT r FROM dbo.calls_shell WHERE @n > 0)"),
        Obj("dbo", "harmless_rows", "IF", "CREATE FUNCTION dbo.harmless_rows(@n int) RETURNS TABLE AS RETURN "
                                          "SELECT id FROM dbo.Orders WHERE id > @n"),
        Obj("dbo", "via_tvf", "V", view("dbo.via_tvf", "SELECT * FROM dbo.rows_of(1)")),
        Obj("dbo", "via_harmless_tvf", "V", view("dbo.via_harmless_tvf", "SELECT * FROM dbo.harmless_rows(1) AS h")),
        Obj("dbo", "opens", "TF", "CREATE FUNCTION dbo.opens() RETURNS @t TABLE (a nvarchar(max)) AS BEGIN "
                                  "INSERT INTO @t SELECT BulkColumn FROM OPENROWSET(BULK 'c:\\secret.txt', "
                                  "SINGLE_CLOB) AS x RETURN END"),
        Obj("dbo", "via_opens", "V", view("dbo.via_opens", "SELECT * FROM dbo.opens()")),
        Obj("dbo", "waits", "FN", "CREATE FUNCTION dbo.waits() RETURNS int AS BEGIN WAITFOR DELAY '00:00:05' "
                                  "RETURN 1 END"),
        Obj("dbo", "via_waits", "V", view("dbo.via_waits", "SELECT dbo.waits() AS w")),
        Obj("dbo", "applock", "FN", "CREATE FUNCTION dbo.applock() RETURNS int AS BEGIN DECLARE @r int "
                                    "EXEC @r = sp_getapplock 'job', 'Exclusive' RETURN @r END"),
        Obj("dbo", "via_applock", "V", view("dbo.via_applock", "SELECT dbo.applock() AS r")),
        Obj("dbo", "reads_locker", "FN", "CREATE FUNCTION dbo.reads_locker() RETURNS int AS BEGIN "
                                         "RETURN (SELECT COUNT(*) FROM dbo.locker) END"),
        Obj("dbo", "via_reads_locker", "V", view("dbo.via_reads_locker", "SELECT dbo.reads_locker() AS n")),
        Obj("dbo", "clr_inside", "FN", "CREATE FUNCTION dbo.clr_inside(@x int) RETURNS varbinary(32) AS BEGIN "
                                       "RETURN dbo.Clr_Hash(@x) END"),
        Obj("dbo", "via_clr_inside", "V", view("dbo.via_clr_inside", "SELECT dbo.clr_inside(1) AS h")),
        Obj("dbo", "loop", "FN", "CREATE FUNCTION dbo.loop(@x int) RETURNS int AS BEGIN "
                                 "RETURN CASE WHEN @x > 0 THEN dbo.loop(@x - 1) ELSE 0 END END"),
        Obj("dbo", "via_loop", "V", view("dbo.via_loop", "SELECT dbo.loop(3) AS z")),
        Obj("dbo", "calls_missing", "V", view("dbo.calls_missing", "SELECT dbo.gone(1) AS g")),
        Obj("dbo", "reads_missing", "V", view("dbo.reads_missing", "SELECT * FROM dbo.no_such_table")),
        Obj("dbo", "other_db", "V", view("dbo.other_db", "SELECT * FROM Archive.dbo.orders")),
        Obj("dbo", "ext", "ET"),
        Obj("dbo", "Point2", "UT"),
        Obj("dbo", "Money2", "AT"),
        Obj("dbo", "clr_cast", "V", view("dbo.clr_cast", "SELECT CAST(N'1,2' AS dbo.Point2) AS p")),
        Obj("dbo", "clr_var", "FN", "CREATE FUNCTION dbo.clr_var() RETURNS int AS BEGIN DECLARE @p dbo.Point2 "
                                    "RETURN 1 END"),
        Obj("dbo", "via_clr_var", "V", view("dbo.via_clr_var", "SELECT dbo.clr_var() AS v")),
        Obj("dbo", "via_ext", "V", view("dbo.via_ext", "SELECT * FROM dbo.ext")),
        Obj("dbo", "shell_syn", "SN", base="[dbo].[calls_shell]"),
        Obj("dbo", "paid_syn", "SN", base="[Shop].[dbo].[Paid]"),
        Obj("dbo", "linked_syn", "SN", base="[srv].[db].[dbo].[t]"),
        Obj("dbo", "archive_syn", "SN", base="[Archive].[dbo].[orders]"),
        Obj("dbo", "dangling_syn", "SN", base="[dbo].[dropped_view]"),
        Obj("sales", "local_shell", "V", view("sales.local_shell", "SELECT dbo.Shell('x') AS r FROM Regions")),
        Obj("dbo", "Guarded", "U", predicates=["([dbo].[rows_of]([id]))"]),
        Obj("dbo", "shell_column", "U", computed=["([dbo].[Shell](N'whoami'))"]),
        Obj("dbo", "rls_ok", "U", predicates=["[dbo].[harmless_rows]([id])"]),
        Obj("dbo", "checked", "V", "CREATE VIEW dbo.checked AS SELECT id FROM dbo.Orders WHERE id > 0 "
                                   "WITH CHECK OPTION"),
        Obj("dbo", "commented", "V", "/* audit */ CREATE   OR ALTER VIEW [dbo].[commented] (n) WITH SCHEMABINDING AS "
                                     "-- the count\nSELECT COUNT_BIG(*) AS n FROM dbo.Orders"),
        *[Obj("dbo", f"deep{i}", "V", view(f"dbo.deep{i}", f"SELECT * FROM dbo.deep{i + 1}"))
          for i in range(MAX_DEPTH + 2)],
        Obj("dbo", f"deep{MAX_DEPTH + 2}", "V", view(f"dbo.deep{MAX_DEPTH + 2}", "SELECT 1 AS one")),
    ]


def _catalog(role: Role | None = None) -> SqlServerCatalog:
    return SqlServerCatalog("Shop", _objects(), role)


def _resolve(sql: str, catalog: SqlServerCatalog | None = None) -> list[tuple[Risk, str]]:
    catalog = catalog or _catalog()
    return [(f.risk, f.reason) for f in ModuleResolver().findings("shop-sql", sql, catalog.query)]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM calls_shell",
    "SELECT r FROM dbo.calls_shell",
    "SELECT * FROM [dbo].[calls_shell]",
    'SELECT * FROM "dbo"."calls_shell"',
    "SELECT * FROM CALLS_SHELL",
    "SELECT * FROM [DBO].[Calls_Shell]",
    "SELECT * FROM Shop.dbo.calls_shell",
    "SELECT * FROM [shop]..[calls_shell]",
    "SELECT * FROM wraps_shell",
    "SELECT o.id FROM dbo.Orders o JOIN calls_shell c ON c.r = o.id",
    "SELECT id FROM dbo.Orders WHERE id IN (SELECT r FROM calls_shell)",
    "SELECT id FROM dbo.Orders WHERE EXISTS (SELECT 1 FROM calls_shell)",
    "WITH x AS (SELECT * FROM calls_shell) SELECT * FROM x",
    "SELECT * FROM (SELECT * FROM calls_shell) AS sub",
    "SELECT 1 AS r UNION ALL SELECT r FROM calls_shell",
    "SELECT * FROM dbo.Orders CROSS APPLY (SELECT r FROM calls_shell) AS c",
    "SELECT * FROM shell_syn",
    "SELECT * FROM via_tvf",
    "SELECT * FROM next_order",
    "SELECT * FROM remote",
    "SELECT * FROM file",
    "SELECT * FROM ds",
    "SELECT * FROM four_part",
    "SELECT * FROM locker",
    "SELECT * FROM encrypted",
    "SELECT * FROM via_clr",
    "SELECT * FROM via_clr_rows",
    "SELECT * FROM via_opens",
    "SELECT * FROM via_waits",
    "SELECT * FROM via_applock",
    "SELECT * FROM via_reads_locker",
    "SELECT * FROM via_clr_inside",
    "SELECT * FROM calls_missing",
    "SELECT * FROM reads_missing",
    "SELECT * FROM other_db",
    "SELECT * FROM via_ext",
    "SELECT * FROM linked_syn",
    "SELECT * FROM archive_syn",
    "SELECT * FROM dangling_syn",
    "SELECT * FROM no_such_object",
    "SELECT * FROM Archive.dbo.orders",
    "SELECT * FROM Guarded",
    "SELECT * FROM shell_column",
    "SELECT * FROM deep0",
])
def test_what_a_read_reaches_through_the_catalog_is_judged(sql: str) -> None:
    findings = _resolve(sql)
    assert findings, f"{sql} stayed a read"
    assert all(risk is not Risk.READ for risk, _ in findings)


@pytest.mark.parametrize(("sql", "risk", "words"), [
    ("SELECT * FROM wraps_shell", Risk.EXEC, "view dbo.wraps_shell: view dbo.calls_shell: function dbo.Shell: "
                                             "xp_cmdshell runs an operating-system command"),
    ("SELECT * FROM next_order", Risk.WRITE, "NEXT VALUE FOR advances a sequence"),
    ("SELECT * FROM via_applock", Risk.EXEC, "sp_getapplock takes or releases an application lock"),
    ("SELECT * FROM via_waits", Risk.ADMIN, "WAITFOR"),
    ("SELECT * FROM locker", Risk.WRITE, "UPDLOCK"),
    ("SELECT * FROM via_clr", Risk.EXEC, "CLR function dbo.Clr_Hash"),
    ("SELECT * FROM encrypted", Risk.UNKNOWN, "VIEW DEFINITION"),
    ("SELECT * FROM calls_missing", Risk.UNKNOWN, "dbo.gone() is neither a built-in"),
    ("SELECT * FROM reads_missing", Risk.UNKNOWN, "dbo.no_such_table is not a table, view or synonym"),
    ("SELECT * FROM other_db", Risk.UNKNOWN, "in database Archive"),
    ("SELECT * FROM linked_syn", Risk.EXEC, "linked server"),
    ("SELECT * FROM via_ext", Risk.EXEC, "external table"),
    ("SELECT * FROM Guarded", Risk.EXEC, "table dbo.Guarded: function dbo.rows_of: view dbo.calls_shell"),
    ("SELECT * FROM deep0", Risk.UNKNOWN, f"more than {MAX_DEPTH} deep"),
    ("SELECT * FROM via_opens", Risk.EXEC, "function dbo.opens: openrowset()"),
])
def test_each_reason_names_the_path_and_the_cause(sql: str, risk: Risk, words: str) -> None:
    findings = _resolve(sql)
    assert any(r is risk and words.lower() in reason.lower() for r, reason in findings), findings


@pytest.mark.parametrize("sql", [
    "SELECT * FROM Paid",
    "SELECT total FROM dbo.paid_total",
    "SELECT * FROM paid_syn",
    "SELECT * FROM uses_add_one",
    "SELECT * FROM via_harmless_tvf",
    "SELECT * FROM via_loop",
    "SELECT * FROM checked",
    "SELECT * FROM commented",
    "SELECT * FROM rls_ok",
    "SELECT c.id, COUNT(*) FROM customers AS c JOIN dbo.Orders AS o ON o.id = c.id GROUP BY c.id",
    "SELECT * FROM dbo.Orders WITH (NOLOCK)",
    "SELECT name FROM sys.objects WHERE type = 'V'",
    "SELECT * FROM INFORMATION_SCHEMA.TABLES",
    "SELECT * FROM master.sys.databases",
    "SELECT * FROM #work",
    "WITH calls_shell AS (SELECT 1 AS r) SELECT r FROM calls_shell",  # a CTE, not the view
    "SELECT value FROM STRING_SPLIT('a,b', ',')",
])
def test_ordinary_reads_and_harmless_objects_stay_reads(sql: str) -> None:
    assert _resolve(sql) == []


def test_unqualified_names_resolve_in_the_default_schema_then_dbo() -> None:
    sales = _catalog(Role(default_schema="sales"))
    assert _resolve("SELECT * FROM Regions", sales) == []
    assert _resolve("SELECT * FROM Paid", sales) == []  # not in sales: dbo
    assert any(r is Risk.EXEC for r, _ in _resolve("SELECT * FROM local_shell", sales))
    assert any(r is Risk.UNKNOWN for r, _ in _resolve("SELECT * FROM Regions"))  # a dbo user: no dbo.Regions


def test_a_role_without_view_definition_reads_nothing_as_a_read_that_needs_it() -> None:
    blind = _catalog(Role(view_definition=False))
    for sql in ["SELECT * FROM Paid", "SELECT * FROM dbo.Orders", "SELECT * FROM shell_syn"]:
        findings = _resolve(sql, blind)
        assert findings and all(r is Risk.UNKNOWN for r, _ in findings), (sql, findings)
        assert any("VIEW DEFINITION" in reason for _, reason in findings)


def test_a_function_hidden_by_deny_execute_is_unknown_not_skipped() -> None:
    # Without VIEW DEFINITION, a scalar function under DENY EXECUTE is not in sys.objects at all;
    # with it, the definition is read. Either way the view is not a read.
    blind = _catalog(Role(view_definition=False))
    assert _resolve("SELECT * FROM calls_shell", blind)
    assert any("xp_cmdshell" in reason for _, reason in _resolve("SELECT * FROM calls_shell"))


def test_the_catalog_is_cached_per_target_for_the_ttl() -> None:
    catalog = _catalog()
    resolver = ModuleResolver(ttl=3600)
    assert resolver.findings("a", "SELECT * FROM Paid", catalog.query) == []
    catalog.objects = [o for o in catalog.objects if o.name != "Paid"] + [
        Obj("dbo", "Paid", "V", "CREATE VIEW dbo.Paid AS SELECT dbo.Shell('x') AS id")]
    assert resolver.findings("a", "SELECT * FROM Paid", catalog.query) == []  # cached within the TTL
    assert resolver.findings("b", "SELECT * FROM Paid", catalog.query)  # another target reads its own
    resolver.forget("a")
    assert resolver.findings("a", "SELECT * FROM Paid", catalog.query)
    assert catalog.queries.count(OBJECTS_SQL) == 3
    expired = ModuleResolver(ttl=0)
    expired.findings("a", "SELECT * FROM Paid", catalog.query)  # ("SELECT 1" names nothing: no catalog)
    expired.findings("a", "SELECT * FROM Paid", catalog.query)
    assert catalog.queries.count(OBJECTS_SQL) == 5


def test_synonym_base_names_split_like_sql_server_quotes_them() -> None:
    assert split_name("[dbo].[paid]") == ("dbo", "paid")
    assert split_name("[srv].[db].[dbo].[t]") == ("srv", "db", "dbo", "t")
    assert split_name("[a]]b].[c.d]") == ("a]b", "c.d")
    assert split_name('"x"."y"') == ("x", "y")
    assert split_name("[db]..[t]") == ("db", "", "t")
    assert split_name("dbo.t") == ("dbo", "t")


def test_the_catalog_queries_parse_as_tsql_and_select_what_the_resolver_reads() -> None:
    expected = {
        OBJECTS_SQL: (["schema_name", "object_name", "object_type", "definition", "base_object_name"],
                      {"sys.objects", "sys.schemas", "sys.sql_modules", "sys.synonyms"}),
        EXPRESSIONS_SQL: (["schema_name", "object_name", "definition"],
                          {"sys.computed_columns", "sys.objects", "sys.schemas", "sys.security_predicates",
                           "sys.security_policies"}),
        CONTEXT_SQL: (["database_name", "default_schema", "view_definition"], set()),
    }
    for sql, (columns, tables) in expected.items():
        tree = sqlglot.parse_one(sql, dialect="tsql")
        first = tree.left if isinstance(tree, exp.Union) else tree
        assert isinstance(first, exp.Select)
        assert first.named_selects == columns
        if isinstance(tree, exp.Union):
            assert len(tree.right.selects) == len(columns)
        assert {f"{t.db}.{t.name}" for t in tree.find_all(exp.Table)} - {"sys.types"} == tables
    objects = sqlglot.parse_one(OBJECTS_SQL, dialect="tsql")
    assert isinstance(objects, exp.Union) and not objects.args.get("distinct")
    types = objects.right
    assert {f"{t.db}.{t.name}" for t in types.find_all(exp.Table)} == {"sys.types", "sys.schemas"}
    assert "t.is_user_defined = 1" in types.sql(dialect="tsql")
    objects = objects.left
    definition = objects.selects[3].this
    assert isinstance(definition, exp.Case)  # a definition only for V, FN, IF, TF: CLR code is never read
    assert {lit.name for lit in definition.find_all(exp.Literal)} == {"V", "FN", "IF", "TF"}
    assert "o.parent_object_id = 0" in objects.sql(dialect="tsql")
    assert not (tables := {f"{t.db}.{t.name}" for t in objects.find_all(exp.Table)}) - {
        "sys.objects", "sys.schemas", "sys.sql_modules", "sys.synonyms"}, tables
    union = sqlglot.parse_one(EXPRESSIONS_SQL, dialect="tsql")
    assert isinstance(union, exp.Union) and not union.args.get("distinct")  # UNION ALL
    assert "p.is_enabled = 1" in union.expression.sql(dialect="tsql")


# --- the engine: resolve on a read-intent connection ------------------------------------------------
def _engine(catalog: SqlServerCatalog, record: list[str] | None = None) -> AzureSqlEngine:
    def connect(conn_str: str, attrs_before: Any = None, autocommit: bool = False, timeout: int = 0) -> Any:
        if record is not None:
            record.append(conn_str)
        return CatalogConnection(catalog)

    return AzureSqlEngine(connect=connect, drivers=lambda: [DRIVER])


def _classify(engine: AzureSqlEngine, sql: str) -> Any:
    command = Command("sql", sql=sql)
    return engine.resolve(TARGET, command, engine.classify(command), lambda: SecretValue("tok", "exp-1"))


def test_the_engine_escalates_a_read_through_the_catalog_and_pools_its_connection() -> None:
    record: list[str] = []
    catalog = _catalog()
    engine = _engine(catalog, record)
    verdict = _classify(engine, "SELECT * FROM [dbo].[wraps_shell]")
    assert verdict.risk is Risk.EXEC and verdict.details["resolved_by"] == "catalog"
    assert "xp_cmdshell" in verdict.reason
    assert _classify(engine, "SELECT * FROM Paid").risk is Risk.READ
    assert len(record) == 1 and "ApplicationIntent=ReadOnly" in record[0]  # one pooled read-intent connection
    assert catalog.queries == [CONTEXT_SQL, OBJECTS_SQL, EXPRESSIONS_SQL]  # read once, then cached


def test_the_engine_does_not_look_up_what_is_not_a_read() -> None:
    record: list[str] = []
    engine = _engine(_catalog(), record)
    secrets: list[int] = []
    command = Command("sql", sql="DELETE FROM dbo.Orders WHERE id = 1")
    verdict = engine.resolve(TARGET, command, engine.classify(command), lambda: secrets.append(1) or SecretValue("t"))
    assert verdict.risk is Risk.WRITE and record == [] and secrets == []


def test_an_unreadable_catalog_is_unavailable_and_its_connection_discarded() -> None:
    catalog = _catalog()
    conn = CatalogConnection(catalog)

    def failing(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        raise pyodbc.OperationalError("08S01", "[08S01] [Microsoft][ODBC Driver 18 for SQL Server]"
                                               "Communication link failure (0) (SQLExecDirectW)")

    catalog.query = failing  # type: ignore[method-assign]
    engine = AzureSqlEngine(connect=lambda *a, **k: conn, drivers=lambda: [DRIVER])
    with pytest.raises(Unavailable) as caught:
        _classify(engine, "SELECT * FROM Paid")
    assert caught.value.code == "target_unavailable" and conn.closed


def test_a_failure_of_the_analysis_is_not_a_read_and_not_blamed_on_the_target(monkeypatch) -> None:
    """A bug (or an input the analysis does not know) while judging what a read reaches: the read is
    `unknown`, never 503 "the catalog could not be read"; the connection still goes back to the pool."""
    from broker.guard import sql_tsql_resolve

    record: list[str] = []
    engine = _engine(_catalog(), record)

    def broken(self: object, refs: object) -> object:
        raise RuntimeError("an analysis bug")

    monkeypatch.setattr(sql_tsql_resolve._Walk, "run", broken)
    verdict = _classify(engine, "SELECT * FROM Paid")
    assert verdict.risk is Risk.UNKNOWN and "could not analyse" in verdict.reason
    monkeypatch.undo()
    engine._modules.forget(TARGET.name)  # so the next read needs a connection again
    assert _classify(engine, "SELECT * FROM Paid").risk is Risk.READ
    assert len(record) == 1  # the first read's connection was released to the pool and taken again


@pytest.mark.parametrize("sql", ["SELECT * FROM generate_series(1, 3)", "SELECT value FROM STRING_SPLIT('a,b', ',')",
                                 "SELECT * FROM dbo.Orders CROSS APPLY string_split(N'a', N',') AS s"])
def test_a_user_function_that_shadows_a_built_in_tvf_is_resolved(sql: str) -> None:
    # Below compatibility level 160 (130 for STRING_SPLIT) these names are not built-ins, and an
    # unqualified table-valued function resolves to the user's own.
    catalog = _catalog()
    body = ("CREATE FUNCTION dbo.{}(@a nvarchar(max), @b nvarchar(10) = NULL) RETURNS TABLE AS RETURN "
            "SELECT r AS value FROM dbo.calls_shell")
    catalog.objects += [Obj("dbo", "generate_series", "IF", body.format("generate_series")),
                        Obj("dbo", "String_Split", "IF", body.format("String_Split"))]
    assert any(r is Risk.EXEC for r, _ in _resolve(sql, catalog))


def test_without_a_driver_resolution_is_left_to_the_run_which_refuses_it() -> None:
    record: list[str] = []
    engine = AzureSqlEngine(connect=lambda *a, **k: record.append("connect"), drivers=lambda: [])
    assert _classify(engine, "SELECT * FROM calls_shell").risk is Risk.READ and record == []


@pytest.mark.parametrize("sql", [
    "SELECT * FROM [calls_shell ]",  # trailing spaces do not count in SQL Server's comparisons
    "SELECT * FROM [ｃａｌｌｓ＿ｓｈｅｌｌ]",  # _CI_AS is width-insensitive: full-width letters match
    "SELECT * FROM [ＤＢＯ].[calls_shell]",
    "SELECT * FROM [ｓｙｓ].[objects]",  # not the system schema: resolved (nothing there: unknown)
    "SELECT * FROM [ｓｈｏｐ].[dbo].[Paid]",  # not exactly this database's name: another database
    "SELECT * FROM CONTAINSTABLE(calls_shell, r, 'x') AS k",
    "SELECT * FROM FREETEXTTABLE(dbo.calls_shell, *, 'x')",
    "SELECT * FROM (SELECT 1 AS r) AS x WHERE EXISTS (SELECT 1 FROM calls_shell)",
])
def test_names_are_matched_loosely_and_skipped_strictly(sql: str) -> None:
    findings = _resolve(sql)
    assert findings and all(r is not Risk.READ for r, _ in findings), findings


def test_a_cte_hides_a_view_only_where_it_is_in_scope() -> None:
    assert _resolve("WITH calls_shell AS (SELECT 1 AS r) SELECT r FROM calls_shell UNION "
                    "SELECT r FROM calls_shell") == []
    assert _resolve("WITH calls_shell AS (SELECT 1 AS r) SELECT r FROM dbo.calls_shell")


def test_two_functions_of_one_name_in_two_schemas_are_each_resolved() -> None:
    catalog = _catalog()
    catalog.objects += [Obj("dbo", "twice", "V", "CREATE VIEW dbo.twice AS SELECT dbo.add_one(1) AS a, "
                                                  "other.add_one(2) AS b")]
    findings = _resolve("SELECT * FROM twice", catalog)
    assert any(r is Risk.UNKNOWN and "other.add_one()" in reason for r, reason in findings), findings


class _AnyStatement(CatalogConnection):
    """Answers the catalog queries from the stand-in and every other statement with no rows."""

    description = None
    rowcount = 1

    def execute(self, sql: str, *params: Any) -> CatalogConnection:
        catalog_query = sql in (CONTEXT_SQL, OBJECTS_SQL, EXPRESSIONS_SQL)
        self._rows = self.catalog.query(sql, params) if catalog_query else []
        return self


def test_a_write_through_the_engine_drops_the_cached_catalog() -> None:
    catalog = _catalog()
    engine = AzureSqlEngine(connect=lambda *a, **k: _AnyStatement(catalog), drivers=lambda: [DRIVER])
    assert _classify(engine, "SELECT * FROM Paid").risk is Risk.READ
    catalog.objects = [o for o in catalog.objects if o.name != "Paid"] + [
        Obj("dbo", "Paid", "V", "CREATE VIEW dbo.Paid AS SELECT dbo.Shell('x') AS id")]
    assert _classify(engine, "SELECT * FROM Paid").risk is Risk.READ  # cached
    engine.execute(TARGET, Command("sql", sql="ALTER VIEW dbo.Paid AS SELECT dbo.Shell('x') AS id"),
                   SecretValue("tok", "exp-1"), ExecutionLimits(), read_only=False)
    assert _classify(engine, "SELECT * FROM Paid").risk is Risk.EXEC


@pytest.mark.parametrize(("sql", "risk"), [
    ("SELECT CAST(N'1,2' AS dbo.Point2)", Risk.EXEC),  # a CLR type's Parse() is .NET code
    ("SELECT TRY_CAST(N'1,2' AS [DBO].[point2])", Risk.EXEC),
    ("SELECT CONVERT(Point2, N'1,2')", Risk.EXEC),
    ("SELECT * FROM clr_cast", Risk.EXEC),
    ("SELECT * FROM via_clr_var", Risk.EXEC),
    ("SELECT CAST(1 AS dbo.NoSuchType)", Risk.UNKNOWN),
])
def test_a_cast_to_a_clr_or_unknown_type_is_not_a_read(sql: str, risk: Risk) -> None:
    findings = _resolve(sql)
    assert any(r is risk for r, _ in findings) and all(r is not Risk.READ for r, _ in findings), findings


def test_casts_to_built_in_and_alias_types_stay_reads() -> None:
    assert _resolve("SELECT CAST(id AS bigint), CONVERT(nvarchar(10), id), CAST(NULL AS geography), "
                    "CAST(NULL AS hierarchyid), CAST(N'x' AS sysname), CAST(id AS dbo.Money2), "
                    "TRY_CAST(id AS Money2) FROM dbo.Orders") == []
    blind = _catalog(Role(view_definition=False))
    assert _resolve("SELECT CAST(1 AS dbo.Money2)", blind)  # a type the role cannot see: unknown


def test_a_cached_catalog_costs_no_connection_and_no_credential() -> None:
    record: list[str] = []
    engine = _engine(_catalog(), record)
    secrets: list[int] = []

    def secret() -> SecretValue:
        secrets.append(1)
        return SecretValue("tok", "exp-1")

    for sql in ["SELECT * FROM Paid", "SELECT * FROM calls_shell", "SELECT 1"]:
        command = Command("sql", sql=sql)
        engine.resolve(TARGET, command, engine.classify(command), secret)
    assert secrets == [1] and len(record) == 1
