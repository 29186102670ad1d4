"""How the T-SQL resolver reads one definition (``sql_tsql_modules``): where a view's or inline
function's SELECT starts, what a multi-statement function's tokens say, what a statement names."""

from __future__ import annotations

import pytest
import sqlglot

from broker.guard import Risk
from broker.guard.sql_tsql_modules import analyse_expression, analyse_module, references


def _risks(analysis) -> set[Risk]:
    return {f.risk for f in analysis.findings}


@pytest.mark.parametrize("definition", [
    "CREATE VIEW dbo.v AS SELECT 1 AS one",
    "create view [dbo].[v] as select 1 as one",
    "CREATE OR ALTER VIEW \"dbo\".\"v\" (one) WITH SCHEMABINDING, VIEW_METADATA AS SELECT 1 AS one",
    "/* header */\r\nCREATE VIEW dbo.[AS] AS\r\n-- body\r\nSELECT 1 AS one WITH CHECK OPTION",
    "CREATE VIEW dbo.v AS WITH c AS (SELECT 1 AS one) SELECT one FROM c",
])
def test_a_harmless_view_body_is_found_and_is_a_read(definition: str) -> None:
    analysis = analyse_module("V", definition)
    assert analysis.findings == (), analysis


@pytest.mark.parametrize(("definition", "risk"), [
    ("CREATE VIEW dbo.v AS SELECT NEXT VALUE FOR dbo.s AS n", Risk.WRITE),
    ("CREATE VIEW dbo.v AS SELECT * FROM t WITH (TABLOCKX)", Risk.WRITE),
    ("CREATE VIEW dbo.v AS SELECT * FROM OPENQUERY(srv, 'SELECT 1')", Risk.EXEC),
    ("CREATE VIEW dbo.v AS SELECT * FROM srv.db.dbo.t", Risk.EXEC),
    ("CREATE VIEW dbo.v AS SELECT * FROM sys.fn_get_audit_file('x', default, default)", Risk.ADMIN),
    ("CREATE VIEW dbo.v AS SELECT 1 AS a /* /* */ */", Risk.UNKNOWN),
    ("CREATE VIEW dbo.v AS SELECT 1 AS a DELETE FROM t", Risk.UNKNOWN),
    ("CREATE VIEW dbo.v", Risk.UNKNOWN),
])
def test_a_view_body_is_judged_by_the_static_rules(definition: str, risk: Risk) -> None:
    assert risk in _risks(analyse_module("V", definition))


def test_a_user_function_in_a_view_is_left_to_the_resolver_with_its_static_reason() -> None:
    analysis = analyse_module("V", "CREATE VIEW dbo.v AS SELECT [dbo].[f](1) AS a, LEN('x') AS b FROM t "
                                   "CROSS APPLY GENERATE_SERIES(1, 3) AS g")
    assert analysis.findings == ()
    calls = {r.parts: r.otherwise for r in analysis.references if r.call}
    assert calls[("dbo", "f")] is not None and calls[("dbo", "f")].risk is Risk.EXEC
    assert calls[("GENERATE_SERIES",)] is None  # a built-in: looked up only in case a user TVF shadows it


def test_an_inline_function_body_starts_after_return() -> None:
    analysis = analyse_module("IF", "CREATE FUNCTION dbo.f(@n int = 1)\nRETURNS TABLE WITH SCHEMABINDING\nAS\n"
                                    "RETURN (SELECT id FROM dbo.t WHERE id > @n)")
    assert analysis.findings == ()
    assert [r.parts for r in analysis.references] == [("dbo", "t")]


@pytest.mark.parametrize(("body", "risk", "words"), [
    ("DECLARE @r int EXEC @r = master..xp_cmdshell 'dir' RETURN @r", Risk.EXEC, "xp_cmdshell"),
    ("DECLARE @r int EXECUTE master.dbo.xp_regread 'HKLM', 'x' RETURN 1", Risk.EXEC, "extended stored procedure"),
    ("EXEC sp_getapplock 'job', 'Exclusive' RETURN 1", Risk.EXEC, "application lock"),
    ("EXEC ('SELECT 1') RETURN 1", Risk.EXEC, "SQL text"),
    ("WAITFOR DELAY '00:00:05' RETURN 1", Risk.ADMIN, "WAITFOR"),
    ("RETURN NEXT VALUE FOR dbo.s", Risk.WRITE, "sequence"),
    ("RETURN (SELECT COUNT(*) FROM dbo.t WITH (XLOCK))", Risk.WRITE, "XLOCK"),
    ("RETURN (SELECT COUNT(*) FROM [OPENQUERY](srv, 'SELECT 1'))", Risk.EXEC, "openquery"),
    ("RETURN (SELECT COUNT(*) FROM sys.fn_trace_gettable('x', default))", Risk.ADMIN, "files"),
    ("/* a /* b */ */ RETURN 1", Risk.UNKNOWN, "nested"),
])
def test_a_scalar_function_body_is_scanned(body: str, risk: Risk, words: str) -> None:
    analysis = analyse_module("FN", f"CREATE FUNCTION dbo.f() RETURNS int AS BEGIN {body} END")
    assert any(f.risk is risk and words.lower() in f.reason.lower() for f in analysis.findings), analysis


def test_a_harmless_function_body_names_what_it_reads_and_calls() -> None:
    analysis = analyse_module("TF", "CREATE FUNCTION [dbo].[f](@x int) RETURNS @t TABLE (a int, b nvarchar(10)) "
                                    "WITH EXECUTE AS OWNER AS BEGIN INSERT INTO @t SELECT id, LEFT(name, 10) "
                                    "FROM dbo.customers AS c WHERE c.id = dbo.g(@x) RETURN END")
    assert analysis.findings == ()
    names = {r.parts for r in analysis.references}
    assert ("dbo", "customers") in names and ("c", "id") in names
    calls = {r.parts: r.otherwise for r in analysis.references if r.call}
    assert calls[("dbo", "g")] is not None
    assert all(not r.call for r in analysis.references if r.parts == ("dbo", "customers"))


def test_an_unknown_unqualified_call_in_a_function_keeps_its_static_reason() -> None:
    analysis = analyse_module("FN", "CREATE FUNCTION dbo.f() RETURNS int AS BEGIN RETURN mystery(1) END")
    calls = {r.parts: r.otherwise for r in analysis.references if r.call}
    assert calls[("mystery",)] is not None and calls[("mystery",)].risk is Risk.EXEC


def test_expressions_are_judged_as_a_select() -> None:
    assert analyse_expression("([a]*(2))").findings == ()
    assert Risk.WRITE in _risks(analyse_expression("(NEXT VALUE FOR [dbo].[s])"))
    refs = analyse_expression("([dbo].[pred]([owner]))").references
    assert any(r.call and r.parts == ("dbo", "pred") for r in refs)


def test_statement_references_skip_ctes_temp_tables_and_table_variables() -> None:
    tree = sqlglot.parse_one("WITH c AS (SELECT 1 AS a) SELECT * FROM c, #t, ##g, @v, dbo.c, db..x, s.db2.dbo.y, "
                             "dbo.tvf(1) AS f CROSS APPLY other.g(2) AS h", dialect="tsql")
    names = {(r.parts, r.call) for r in references(tree)}
    assert names == {(("dbo", "c"), False), (("db", "", "x"), False), (("s", "db2", "dbo", "y"), False),
                     (("dbo", "tvf"), True), (("other", "g"), True)}
