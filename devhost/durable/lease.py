"""One devhost per task hub: a blob lease, so two processes never run the same pending work.

Without it, two devhosts pointed at the same Azurite and task hub would both recover the same
unfinished activities and run them twice. The lease is renewed every few seconds; a devhost that
was killed leaves it behind, and the next one on the same machine takes it over as soon as it sees
that the recorded process is gone (otherwise it waits for the lease to expire).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobLeaseClient, ContainerClient

log = logging.getLogger("devhost.durable")
LEASE_SECONDS = 15


class HubBusyError(RuntimeError):
    """Another live devhost holds this task hub."""


class HubLease:
    def __init__(self, container: ContainerClient, hub: str) -> None:
        self.container = container
        self.blob = container.get_blob_client(f"{hub}/owner.json")
        self.lease: BlobLeaseClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, timeout: float = LEASE_SECONDS + 5) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()
        if not self.blob.exists():
            with contextlib.suppress(ResourceExistsError, HttpResponseError):
                self.blob.upload_blob(b"{}", overwrite=False)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.lease = self.blob.acquire_lease(lease_duration=LEASE_SECONDS)
                break
            except HttpResponseError as exc:
                if getattr(exc, "status_code", None) != 409:
                    raise
            owner = self._owner()
            if owner.get("host") == socket.gethostname():
                if _alive(owner.get("pid")):
                    raise HubBusyError(f"task hub is in use by another devhost (pid {owner.get('pid')}); "
                                       "stop it first")
                log.info("taking over task hub from devhost pid %s, which is gone", owner.get("pid"))
                BlobLeaseClient(self.blob).break_lease(lease_break_period=0)
                continue
            if time.monotonic() > deadline:
                raise HubBusyError(f"task hub is in use by another devhost (pid {owner.get('pid')} on "
                                   f"{owner.get('host')}); stop it first")
            time.sleep(1)
        self.blob.upload_blob(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}), overwrite=True,
                              lease=self.lease)
        self._thread = threading.Thread(target=self._renew, name="devhost-durable-lease", daemon=True)
        self._thread.start()

    def _owner(self) -> dict[str, object]:
        try:
            return json.loads(self.blob.download_blob().readall() or b"{}")
        except (HttpResponseError, ValueError):
            return {}

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            try:
                assert self.lease is not None
                self.lease.renew()
            except HttpResponseError:
                log.exception("could not renew the task hub lease")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self.lease is not None:
            with contextlib.suppress(HttpResponseError):
                self.lease.release()
            self.lease = None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
