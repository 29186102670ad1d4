"""The engine's clock: wall time, or a manual clock that tests move forward.

Every time the engine stamps (OrchestratorStarted, so ``context.current_utc_datetime``; status
times; when a timer is due) comes from here. The manual clock stands still until advanced through
the admin endpoint, and its reading is kept in storage, so a deadline set before a devhost restart
is still "24 h from then" afterwards.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient


class Clock(Protocol):
    manual: bool

    def now(self) -> datetime: ...

    def on_change(self, listener: Callable[[], None]) -> None: ...


class WallClock:
    manual = False

    def now(self) -> datetime:
        return datetime.now(UTC)

    def on_change(self, listener: Callable[[], None]) -> None:
        pass  # wall time changes by itself; the timer thread sleeps until the next deadline


class ManualClock:
    """A clock that only moves when told to; its reading survives restarts (a blob)."""

    manual = True

    def __init__(self, container: ContainerClient, blob: str = "clock.json") -> None:
        self._blob = container.get_blob_client(blob)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        try:
            self._now = datetime.fromisoformat(json.loads(self._blob.download_blob().readall())["now"])
        except ResourceNotFoundError:
            self._now = datetime.now(UTC).replace(microsecond=0)
            self._save()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._now += by
            self._save()
            now = self._now
        for listener in list(self._listeners):
            listener()
        return now

    def set(self, moment: datetime) -> datetime:
        return self.advance(moment - self.now())

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _save(self) -> None:
        self._blob.upload_blob(json.dumps({"now": self._now.isoformat()}), overwrite=True)
