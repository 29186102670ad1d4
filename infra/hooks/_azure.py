"""What the azd hooks share: tokens from `azd auth token`, `azd env set`, and a small REST client.

Standard library only: the hooks run on the operator's machine (python3 from the PATH), before
any virtualenv exists. Tokens come from the azd login, so nothing else needs to be installed or
signed in. Never prints a token or a secret value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ARM = "https://management.azure.com"
GRAPH = "https://graph.microsoft.com"

TokenSource = Callable[[str], str]
EnvWriter = Callable[[str, str], None]


class HookError(RuntimeError):
    """A failure the operator must act on; the message says what to do."""


def azd_token(scope: str) -> str:
    """An access token for ``scope`` from the operator's azd login (`azd auth login`)."""
    azd = shutil.which("azd")
    if azd is None:
        raise HookError("azd is not on PATH; run this through `azd provision` / `azd up`.")
    result = subprocess.run([azd, "auth", "token", "--output", "json", "--scope", scope],
                            capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise HookError(f"`azd auth token` failed (run `azd auth login`): {result.stderr.strip()[:300]}")
    return json.loads(result.stdout)["token"]


def azd_env_set(key: str, value: str) -> None:
    """Persist a value in the current azd environment (.azure/<env>/.env)."""
    azd = shutil.which("azd") or "azd"
    subprocess.run([azd, "env", "set", key, value], check=True, capture_output=True, timeout=60)


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Rest:
    """JSON over HTTPS with a bearer token for one API (ARM or Microsoft Graph)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        url = f"{self.base_url}{path}"  # ARM or Graph over https (a local stand-in in tests)
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return Reply(response.status, _json(response.read()), dict(response.headers))
        except urllib.error.HTTPError as error:
            return Reply(error.code, _json(error.read()), dict(error.headers))

    def expect(self, reply: Reply, *ok: int, doing: str) -> Any:
        if reply.status not in ok:
            detail = reply.body.get("error", reply.body) if isinstance(reply.body, dict) else reply.body
            raise HookError(f"{doing} failed with HTTP {reply.status}: {json.dumps(detail)[:400]}")
        return reply.body


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def require_env(*names: str) -> dict[str, str]:
    missing = [name for name in names if not env(name)]
    if missing:
        raise HookError(f"missing azd environment values {missing}; run `azd provision` first.")
    return {name: env(name) for name in names}


def run(main: Callable[[], int]) -> None:
    """Run a hook's ``main``: a HookError ends it with its message and exit code 1."""
    try:
        sys.exit(main())
    except HookError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)
