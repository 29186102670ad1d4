"""One table says when a database's refusal means "that name does not exist": the agent's remedy
and the schema cache's refresh read it the same way, for every engine."""

from __future__ import annotations

import pytest

from broker.execute.masking import names_missing, query_failed_remedy


@pytest.mark.parametrize(("problem", "relation"), [
    ({"sqlstate": "42P01"}, True), ({"sqlstate": "42703"}, True),  # PostgreSQL table, column
    ({"errno": 1146}, True), ({"errno": 1054}, True),  # MySQL/MariaDB table, column
    ({"native_error": 208, "sqlstate": "42S02"}, True), ({"native_error": 207, "sqlstate": "42S22"}, True),
    ({"sqlstate": "42S02"}, True),  # SQL Server through ODBC, the state alone
    ({"sqlstate": "42883"}, False), ({"sqlstate": "3F000"}, False),  # a function, a schema
    ({"errno": 1305}, False), ({"errno": 1049}, False), ({"native_error": 2812}, False),
])
def test_each_engines_missing_name_is_recognised(problem: dict, relation: bool) -> None:
    assert names_missing(problem)
    assert names_missing(problem, relations_only=True) is relation
    assert "does not exist" in (query_failed_remedy(problem) or "")


@pytest.mark.parametrize("problem", [{"sqlstate": "42501"}, {"errno": 1062}, {"native_error": 2627}, {},
                                     {"sqlstate": "22P02"}])
def test_other_refusals_are_not_missing_names(problem: dict) -> None:
    assert not names_missing(problem) and not names_missing(problem, relations_only=True)
