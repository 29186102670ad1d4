"""Shared fixtures: one real local stack per test session (Azurite, embedded PostgreSQL with the
demo data, the OIDC issuer, the Key Vault stand-in, the devhost serving function_app.py)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.stack import DevStack, Ports


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    state = tmp_path_factory.mktemp("stack")
    dev = DevStack(state, Ports.free(), log_statements=True)
    dev.start()
    yield dev
    dev.stop()


class Api:
    """A thin HTTP client for the broker under test."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.base_url, timeout=30)

    def token(self, identity: str = "devin", **kwargs: object) -> str:
        return self.stack.token(identity, **kwargs)

    def execute(self, body: object, identity: str | None = "devin", token: str | None = None,
                **kwargs: object) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
        if token is None and identity is not None:
            token = self.token(identity)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.post("/api/execute", json=body, headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def api(stack: DevStack) -> Iterator[Api]:
    client = Api(stack)
    yield client
    client.http.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    # One temp root per checkout: every pytest start chmods /tmp/pytest-of-<user> to 0700, which
    # locks the embedded PostgreSQL's system user out of a data folder that another checkout's
    # run (a second clone, a helper's) is still using.
    checkout = hashlib.sha256(str(config.rootpath).encode()).hexdigest()[:8]
    root = Path(tempfile.gettempdir()) / f"bt-{checkout}"  # short: PostgreSQL sockets live under it (107 bytes)
    root.mkdir(exist_ok=True)
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(root))
