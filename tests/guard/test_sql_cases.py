"""The adversarial case tables (``cases/<dialect>.yaml``): every statement gets exactly its risk
class, and so does every disguise of it (case, comments, white space, a trailing semicolon).
Nothing that writes is ever ``read_only``; ordinary reads always are."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from broker.guard import Risk
from broker.guard.sql import classify_sql

CASES = Path(__file__).parent / "cases"


def _load() -> list[tuple[str, str, str]]:
    rows = []
    for path in sorted(CASES.glob("*.yaml")):
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
        for risk, statements in table.items():
            assert risk in {r.value for r in Risk}, f"{path.name}: unknown class {risk}"
            for sql in statements:
                assert isinstance(sql, str), f"{path.name}: {sql!r} is not a string (quote it)"
                rows.append((path.stem, risk, sql))
    return rows


ROWS = _load()


def _disguises(sql: str) -> dict[str, str]:
    return {
        "as written": sql,
        "lower case": sql.lower(),
        "upper case": sql.upper(),
        "leading block comment": f"/* harmless */ {sql}",
        "trailing line comment": f"{sql} -- harmless",
        "surrounding white space": f"\n\t  {sql}  \n",
        "trailing semicolon": f"{sql};",
    }


def _id(row: tuple[str, str, str]) -> str:
    return f"{row[0]}-{row[1]}-{row[2][:50]!r}"


@pytest.mark.parametrize(("dialect", "risk", "sql"), ROWS, ids=[_id(r) for r in ROWS])
def test_case_is_classified_exactly(dialect: str, risk: str, sql: str) -> None:
    for disguise, text in _disguises(sql).items():
        if risk != "unknown" and not text.strip(" \n\t;"):
            continue
        got = classify_sql(text, dialect)
        assert got.risk.value == risk, f"{disguise}: {text!r} -> {got.risk.value} ({got.reason})"
        assert got.read_only is (risk == "read"), f"{disguise}: {text!r}"
        assert got.reason, "every classification carries a reason a person can read"


def test_tables_are_broad() -> None:
    per_dialect = {d: sum(1 for r in ROWS if r[0] == d) for d in ("postgres", "mysql", "tsql")}
    assert all(n >= 100 for n in per_dialect.values()), per_dialect
    for dialect in per_dialect:
        classes = {r[1] for r in ROWS if r[0] == dialect}
        assert {"read", "write", "session", "exec", "privilege", "destructive", "admin", "unknown"} <= classes
