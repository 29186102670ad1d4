"""The schema cache lineage reads (a TTL, and a refresh when a statement names what it lacks) and the
``data_classify`` timer (every SQL target in turn; one failure does not stop the others)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from broker.catalog import Target
from broker.guard.sql import classify_sql
from broker.lineage import Schema, SchemaCache
from broker.lineage.guard import LineageGuard
from broker.problems import BrokerError

TARGET = Target.model_validate({"name": "db", "engine": "postgres",
                                "credential": {"source": "key-vault", "secret": "s"}})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_reads_once_per_ttl_and_forgets_on_demand() -> None:
    clock, reads = Clock(), []
    cache = SchemaCache(ttl=60, clock=clock)

    def read() -> Schema:
        reads.append(clock.now)
        return Schema({("public", "t"): ("id",)})

    cache.get("db", read)
    clock.now = 59
    cache.get("db", read)
    assert reads == [0]
    clock.now = 61
    cache.get("db", read)
    cache.invalidate("db")
    cache.get("db", read)
    assert reads == [0, 61, 61]


def test_a_table_the_cache_lacks_is_read_again_once_then_masked_by_lineage() -> None:
    """The agent names a table created after the schema was cached: one refresh finds it and its
    sensitive column (``email`` by the name rule) is masked; without the refresh it would be unresolved."""
    schemas = [Schema({("public", "t"): ("id",)}),
               Schema({("public", "t"): ("id",), ("public", "new"): ("id", "email")})]
    reads: list[int] = []

    def read() -> Schema:
        reads.append(1)
        return schemas[min(len(reads), len(schemas)) - 1]

    guard = LineageGuard(ttl=3600)
    guard.schema(TARGET, read)  # warm, without the new table
    sql = "SELECT email FROM new"
    lineage = guard.refine(TARGET, "postgres", sql, classify_sql(sql, "postgres"), read).details["lineage"]
    assert len(reads) == 2 and [o["mask"] for o in lineage["outputs"]] == ["email"]
    again = guard.refine(TARGET, "postgres", "SELECT email FROM nowhere", classify_sql(sql, "postgres"), read)
    assert len(reads) == 2  # at most one refresh per REFRESH_SECONDS: a typo does not re-read each time
    assert again.details["lineage"]["touches_sensitive"] and "outputs" not in again.details["lineage"]


def test_the_timer_classifies_every_target_and_survives_one_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from broker.api import classification

    ran: list[tuple[str, Any]] = []

    class Classifier:
        def targets(self) -> list[SimpleNamespace]:
            return [SimpleNamespace(name="down"), SimpleNamespace(name="up")]

        def classify(self, name: str, by: dict[str, Any]) -> SimpleNamespace:
            ran.append((name, by["kind"]))
            if name == "down":
                raise BrokerError("unreachable", code="target_unavailable")
            return SimpleNamespace(columns=[1, 2], sensitive=[1])

    monkeypatch.setattr(classification, "get_broker", lambda: SimpleNamespace(classifier=Classifier()))
    classification.data_classify._function._func(SimpleNamespace(past_due=False))  # type: ignore[attr-defined]
    assert ran == [("down", "timer"), ("up", "timer")]
