"""Fixtures for the Durable engine's end-to-end tests: one Azurite, one devhost serving the sample
app (manual clock), and helpers that talk to it the way an app does (its HTTP functions use the
real ``DurableOrchestrationClient``) or the way a test does (admin endpoints: clock, idle)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.azurite import Azurite
from devhost.stack import REPO_ROOT, free_port

KEY = "test-system-key"


class SampleHost:
    """A ``python -m devhost serve --app tests.devhost.sample_app`` process that tests can kill."""

    def __init__(self, azurite: Azurite, workdir: Path) -> None:
        self.azurite = azurite
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        self.log_path = workdir / "devhost.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sample_dir(self) -> Path:
        return self.workdir / "sample"

    def env(self) -> dict[str, str]:
        return {**os.environ, "AzureWebJobsStorage": self.azurite.connection_string,
                "DURABLE_TEST_HUB": "samplehub", "DEVHOST_DURABLE_CLOCK": "manual", "DEVHOST_DURABLE_KEY": KEY,
                "DURABLE_SAMPLE_DIR": str(self.sample_dir), "DEVHOST_DURABLE_REPLAY_TIMEOUT": "10",
                "PYTHONUNBUFFERED": "1"}

    def start(self, timeout: float = 30) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "serve", "--app", "tests.devhost.sample_app", "--port", str(self.port)],
            cwd=REPO_ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"devhost exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if self.admin("GET", "/clock").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("devhost did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything (a crash)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    # --- as a test ---------------------------------------------------------------------------
    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"/admin/durable{path}", headers={"x-functions-key": KEY}, **kwargs)

    def advance(self, seconds: float) -> None:
        assert self.admin("POST", "/clock/advance", json={"seconds": seconds}).status_code == 200
        self.idle()

    def idle(self, timeout: float = 20) -> None:
        response = self.admin("POST", f"/idle?timeout={timeout}")
        assert response.status_code == 200, response.text

    def calls(self) -> list[str]:
        path = self.sample_dir / "calls.log"
        return path.read_text().splitlines() if path.exists() else []

    # --- as the app (HTTP functions using DurableOrchestrationClient) ----------------------------
    def start_instance(self, name: str, input_: Any = None, instance_id: str | None = None) -> httpx.Response:
        path = f"/api/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
        return self.http.post(path, json=input_) if input_ is not None else self.http.post(path)

    def start_and_settle(self, name: str, input_: Any = None, instance_id: str | None = None) -> str:
        response = self.start_instance(name, input_, instance_id)
        assert response.status_code == 202, response.text
        self.idle()
        return response.json()["id"]

    def status(self, instance_id: str, history: bool = False) -> dict[str, Any]:
        response = self.http.get(f"/api/instances/{instance_id}", params={"history": "1"} if history else None)
        return response.json()

    def raise_event(self, instance_id: str, name: str, data: Any) -> httpx.Response:
        response = self.http.post(f"/api/instances/{instance_id}/events/{name}", json=data)
        self.idle()
        return response


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(REPO_ROOT, tmp_path_factory.mktemp("azurite"), free_port(), free_port(), free_port()).start()
    yield server
    # In memory, nothing to flush: Azurite lingers ~10 s after SIGTERM, so end it at once.
    if server.process is not None:
        server.process.kill()
        server.process.wait(5)
        server.process = None


@pytest.fixture(scope="session")
def sample_host(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleHost]:
    host = SampleHost(azurite, tmp_path_factory.mktemp("devhost"))
    host.start()
    yield host
    host.stop()
    host.http.close()


@pytest.fixture
def host(sample_host: SampleHost) -> SampleHost:
    """The running devhost (restarted if a previous test left it stopped)."""
    if sample_host.process is None or sample_host.process.poll() is not None:
        sample_host.start()
    return sample_host
