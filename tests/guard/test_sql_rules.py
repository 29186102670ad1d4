"""The per-dialect function and procedure tables, and the classifier's fail-closed edges."""

from __future__ import annotations

import pytest

from broker.guard import Risk, riskiest
from broker.guard import sql as sql_module
from broker.guard.sql import classify_sql
from broker.guard.sql_pg_builtins import STABLE, VOLATILE
from broker.guard.sql_rules import (
    MYSQL_DANGEROUS,
    PG_DANGEROUS,
    PG_HARMLESS_VOLATILE,
    TSQL_DANGEROUS,
    TSQL_PROCEDURES,
)


@pytest.mark.parametrize(("dialect", "table"), [("postgres", PG_DANGEROUS), ("mysql", MYSQL_DANGEROUS),
                                                ("tsql", TSQL_DANGEROUS)])
def test_every_dangerous_function_gets_its_class(dialect: str, table: dict) -> None:
    for name, finding in table.items():
        got = classify_sql(f"SELECT {name}('x', 1)", dialect)
        assert got.risk is finding.risk, (name, got.reason)
        assert not got.read_only


def test_every_volatile_postgres_builtin_is_not_a_read_unless_reviewed_harmless() -> None:
    for name in sorted(VOLATILE - PG_HARMLESS_VOLATILE):
        got = classify_sql(f"SELECT {name}()", "postgres")
        assert not got.read_only, name


@pytest.mark.parametrize("call", ["lower('x')", "jsonb_typeof('1')", "md5('x')", "date_part('year', now())",
                                  "array_length(ARRAY[1], 1)", "format_type(23, NULL)", "pg_get_viewdef('v')",
                                  "has_table_privilege('t', 'SELECT')", "to_tsvector('x')", "inet_client_addr()"])
def test_stable_postgres_builtins_are_reads(call: str) -> None:
    assert call.split("(")[0] in STABLE
    assert classify_sql(f"SELECT {call}", "postgres").read_only


def test_a_builtin_name_in_a_user_schema_is_a_user_function() -> None:
    got = classify_sql("SELECT app.lower('X')", "postgres")
    assert got.risk is Risk.EXEC and "app.lower()" in got.reason
    assert classify_sql("SELECT pg_catalog.lower('X')", "postgres").read_only


@pytest.mark.parametrize(("name", "risk"), [(name, f.risk) for name, f in TSQL_PROCEDURES.items()]
                         + [("xp_dirtree", Risk.EXEC), ("dbo.any_proc", Risk.EXEC)])
def test_tsql_procedures(name: str, risk: Risk) -> None:
    got = classify_sql(f"EXEC {name} 'x'", "tsql")
    assert got.risk is risk, got.reason


def test_a_classifier_bug_is_unknown_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from broker.guard import sql_sqlglot as walker

    def broken(sql: str, dialect: str) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(walker, "walk_sqlglot", broken)
    got = sql_module.classify_sql("SELECT 1", "postgres")
    assert got.risk is Risk.UNKNOWN and "classifier failed (KeyError)" in got.reason


def test_input_that_is_not_text_or_nests_absurdly_is_unknown() -> None:
    assert classify_sql(None, "postgres").risk is Risk.UNKNOWN  # type: ignore[arg-type]
    for dialect in ("postgres", "mysql", "tsql"):
        deep = classify_sql("SELECT " + "(" * 3000 + "1" + ")" * 3000, dialect)
        assert deep.risk is Risk.UNKNOWN and "deep" in deep.reason


def test_unknown_dialect_and_aliases() -> None:
    assert classify_sql("SELECT 1", "oracle").risk is Risk.UNKNOWN
    assert classify_sql("SELECT 1", "mariadb").details["dialect"] == "mysql"
    assert classify_sql("SELECT 1", "azuresql").details["dialect"] == "tsql"


def test_when_the_parsers_disagree_the_cautious_answer_wins_and_both_are_kept() -> None:
    got = classify_sql("LISTEN orders_changed", "postgres")
    assert got.risk is Risk.UNKNOWN  # sqlglot reads no statement here
    assert any(f.startswith("session: LISTEN") for f in got.details["findings"])  # PostgreSQL's grammar does
    assert got.details["parsers"] == ["sqlglot", "pglast"]


def test_every_reason_is_kept_for_the_approval_page() -> None:
    got = classify_sql("WITH d AS (DELETE FROM a RETURNING *) SELECT nextval('s'), pg_read_file('f') FROM d "
                       "FOR UPDATE", "postgres")
    assert got.risk is Risk.ADMIN and got.statement == "SELECT"
    kinds = {f.split(":")[0] for f in got.details["findings"]}
    assert {"admin", "destructive", "write"} <= kinds
    assert got.to_dict()["read_only"] is False


def test_riskiest_picks_the_most_severe() -> None:
    read, write = classify_sql("SELECT 1", "postgres"), classify_sql("DELETE FROM t WHERE a = 1", "postgres")
    assert riskiest(read, write) is write
    assert [r.severity for r in Risk] == sorted(r.severity for r in Risk)
