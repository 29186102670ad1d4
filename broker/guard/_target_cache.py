"""One value per target, kept for a TTL, loaded on demand: the catalog resolvers' cache.

Why a generation per target: a write through the broker may replace a view or function and then
calls ``forget``; a read that began loading the catalog before that write finished must not
store what it read afterwards, or the old definition would be cached for another TTL. ``forget``
bumps the target's generation, and a load stores its result only if the generation it started
with is still current (the caller still gets what it loaded: it began before the write).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TargetCache(Generic[T]):
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._values: dict[str, tuple[float, T]] = {}
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, target: str, load: Callable[[], T]) -> T:
        """The target's cached value, or ``load()``'s (its errors propagate, nothing is stored)."""
        now = self._clock()
        with self._lock:
            cached = self._values.get(target)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
            generation = self._generations.get(target, 0)
        value = load()
        with self._lock:
            if self._generations.get(target, 0) == generation:
                self._values[target] = (now, value)
        return value

    def forget(self, target: str) -> None:
        """Drop the target's value; a load already under way will not store its (older) result."""
        with self._lock:
            self._values.pop(target, None)
            self._generations[target] = self._generations.get(target, 0) + 1
