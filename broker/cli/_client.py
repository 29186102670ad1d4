"""The agent-side HTTP client: finds the broker (``BROKER_URL`` or the dev stack) and a token."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx

from broker.settings import ClientSettings, Settings


class ClientError(Exception):
    """A refusal from the broker (problem+json) or a transport failure, printable as is."""

    def __init__(self, code: str, detail: str, status: int = 0, body: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.status, self.body = code, detail, status, body or {}

    def render(self) -> str:
        lines = [f"error {self.code}" + (f" ({self.status})" if self.status else "") + f": {self.detail}"]
        if self.body.get("remedy"):
            lines.append(f"remedy: {self.body['remedy']}")
        for item in self.body.get("errors", []) or []:
            lines.append(f"  - {item.get('field')}: {item.get('problem')}")
        return "\n".join(lines)


def dev_stack(settings: ClientSettings) -> dict[str, Any] | None:
    path = Path(settings.dev_state_dir) / "stack.json"
    if path.exists():
        return json.loads(path.read_text())
    return None


def operator_settings() -> Settings:
    """The broker's settings for operators' commands: from ``BROKER_*``, or, when none are set, the
    running dev stack's (which this puts into the environment, its managed identity too)."""
    import os

    if not (os.environ.get("BROKER_CATALOG_PATH") or os.environ.get("BROKER_STORAGE_CONNECTION_STRING")
            or os.environ.get("BROKER_TABLE_ENDPOINT")):
        stack = dev_stack(ClientSettings())
        if stack and stack.get("broker_env"):
            os.environ.update(stack["broker_env"])  # the dev stack's app settings (its managed identity too)
    return Settings()


def operator_broker(settings: Settings | None = None) -> Any:
    """The broker as the Function app builds it, for operators' commands (``operator_settings``)."""
    from broker.runtime import Broker

    return Broker.from_settings(settings if settings is not None else operator_settings())


def dev_token(stack: dict[str, Any], identity: str = "devin", **extra: Any) -> str:
    try:
        r = httpx.post(f"{stack['issuer_url']}/dev/token", json={"identity": identity, **extra}, timeout=5)
    except httpx.HTTPError as exc:
        raise ClientError("dev_stack_down", f"the dev issuer at {stack['issuer_url']} is not answering; "
                          "is `python -m broker dev` running?") from exc
    if r.status_code != 200:
        raise ClientError("dev_token_failed", r.text, r.status_code)
    return r.json()["access_token"]


class BrokerClient:
    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {token}",
                                                            "User-Agent": "broker-cli/0.1"})

    @classmethod
    def from_env(cls, identity: str = "devin") -> BrokerClient:
        settings = ClientSettings()
        stack = dev_stack(settings)
        url = settings.url or (stack or {}).get("broker_url", "")
        if not url:
            raise ClientError("no_broker", "set BROKER_URL (or start the dev stack: python -m broker dev)")
        token = settings.token.get_secret_value()
        if not token:
            if not stack:
                raise ClientError("no_token", "set BROKER_TOKEN to an Entra ID access token for the broker")
            token = dev_token(stack, identity)
        return cls(url, token)

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            r = self._http.request(method, f"{self.url}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError("broker_unreachable", f"cannot reach the broker at {self.url}: {exc}") from exc
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text[:500]}
        if r.status_code >= 400:
            raise ClientError(body.get("code", "http_error"), body.get("detail", r.reason_phrase),
                              r.status_code, body)
        return r.status_code, body


def fail(error: ClientError, as_json: bool = False) -> int:
    if as_json:
        print(json.dumps({"error": error.code, "status": error.status, **error.body}), file=sys.stdout)
    else:
        print(error.render(), file=sys.stderr)
    return 1
