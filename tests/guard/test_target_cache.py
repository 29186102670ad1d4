"""The catalog resolvers' per-target cache: TTL, forget, and a load that a write overtook."""

from __future__ import annotations

import pytest

from broker.guard._target_cache import TargetCache
from broker.guard.sql_tsql_resolve import ModuleResolver


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_kept_for_its_ttl_per_target_and_forgotten_on_demand() -> None:
    clock, loads = Clock(), []
    cache: TargetCache[str] = TargetCache(60, clock)
    load = lambda name: lambda: loads.append(name) or f"{name}-{len(loads)}"  # noqa: E731
    assert cache.get("a", load("a")) == "a-1"
    assert cache.get("a", load("a")) == "a-1" and cache.get("b", load("b")) == "b-2"
    clock.now += 61
    assert cache.get("a", load("a")) == "a-3"
    cache.forget("a")
    assert cache.get("a", load("a")) == "a-4" and cache.get("b", load("b")) == "b-5"


def test_a_load_that_a_forget_overtook_is_not_stored() -> None:
    """A read loads the old catalog while a write replaces a view and forgets: the next read must
    load again, not reuse what the first read saw before the write."""
    cache: TargetCache[str] = TargetCache(60, Clock())

    def old_catalog() -> str:
        cache.forget("t")  # the write lands while this load is under way
        return "old"

    assert cache.get("t", old_catalog) == "old"  # the read that began before the write gets what it read
    assert cache.get("t", lambda: "new") == "new"


def test_a_failed_load_stores_nothing() -> None:
    cache: TargetCache[str] = TargetCache(60, Clock())

    def failing() -> str:
        raise OSError("catalog down")

    with pytest.raises(OSError):
        cache.get("t", failing)
    assert cache.get("t", lambda: "up") == "up"


@pytest.mark.parametrize("sql", ["SELECT 1", "SELECT 1 AS a, N'x' AS b", "SELECT GETDATE()"])
def test_a_tsql_read_that_names_no_object_needs_no_catalog(sql: str) -> None:
    def query(text: str, params: object) -> list:
        raise AssertionError("the catalog was read for a statement that names nothing")

    assert ModuleResolver().findings("t", sql, query) == []
