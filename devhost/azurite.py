"""Azurite (Blob, Queue, Table emulator) from the repository's npm install, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

ACCOUNT = "devstoreaccount1"
# Azurite's published well-known development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def find_azurite(repo_root: Path) -> str:
    local = repo_root / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if not found:
        raise FileNotFoundError("Azurite is not installed: run `make setup` (npm ci) first")
    return found


class Azurite:
    def __init__(self, repo_root: Path, location: Path, blob_port: int, queue_port: int, table_port: int,
                 *, in_memory: bool = True) -> None:
        self.repo_root = repo_root
        self.location = location
        self.ports = {"blob": blob_port, "queue": queue_port, "table": table_port}
        self.in_memory = in_memory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        b, q, t = self.ports["blob"], self.ports["queue"], self.ports["table"]
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{b}/{ACCOUNT};QueueEndpoint=http://127.0.0.1:{q}/{ACCOUNT};"
                f"TableEndpoint=http://127.0.0.1:{t}/{ACCOUNT};")

    def start(self, timeout: float = 30.0) -> Azurite:
        self.location.mkdir(parents=True, exist_ok=True)
        cmd = [find_azurite(self.repo_root), "--silent", "--skipApiVersionCheck", "--disableProductStyleUrl",
               "--disableTelemetry",  # no calls home (and a graceful stop exits at once instead of lingering)
               "--blobHost", "127.0.0.1", "--blobPort", str(self.ports["blob"]),
               "--queueHost", "127.0.0.1", "--queuePort", str(self.ports["queue"]),
               "--tableHost", "127.0.0.1", "--tablePort", str(self.ports["table"])]
        # In memory by default (fast, nothing left behind); on disk when state must outlive Azurite.
        cmd += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.location)]
        log = open(self.location / "azurite.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        for port in self.ports.values():
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"Azurite exited early; see {self.location / 'azurite.log'}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"Azurite did not open port {port}") from None
                    time.sleep(0.1)
        return self

    def stop(self) -> None:
        """Stop Azurite. In memory there is nothing to flush, so it is killed at once (a graceful
        stop waits seconds for idle keep-alive connections); on disk it gets two seconds."""
        if self.process and self.process.poll() is None:
            if not self.in_memory:
                self.process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(2)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
        self.process = None
