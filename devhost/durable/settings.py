"""Engine settings: host.json's ``extensions.durableTask`` plus the devhost's own variables.

From host.json (as the Functions host reads it): ``hubName`` (``%SETTING%`` resolved from the
environment), ``storageProvider.connectionStringName``/``connectionName`` (default
``AzureWebJobsStorage``), ``maxConcurrentOrchestratorFunctions``,
``maxConcurrentActivityFunctions`` and ``functionTimeout``.

Devhost-only environment variables:

``DEVHOST_DURABLE_CLOCK``           ``wall`` (default) or ``manual`` (moves only when advanced)
``DEVHOST_DURABLE_KEY``             the system key for the webhook and admin endpoints
                                    (default: generated once, kept in storage)
``DEVHOST_DURABLE_RPC_PORT``        port of the local management API (default: a free port)
``DEVHOST_DURABLE_REPLAY_TIMEOUT``  seconds an orchestrator replay may take (default 60)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.host_json import HostJsonError, load_host_json

DEFAULT_HUB = "TestHubName"
_HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$")
_DEV_STORAGE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
                "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;")


class SettingsError(ValueError):
    """The app's Durable configuration cannot work (the devhost refuses to start)."""


@dataclass(frozen=True)
class EngineSettings:
    task_hub: str
    connection_string: str
    connection_name: str = "AzureWebJobsStorage"
    clock: str = "wall"
    system_key: str | None = None
    rpc_port: int = 0
    orchestrator_workers: int = 4
    activity_workers: int = 8
    function_timeout: float = 300.0
    replay_timeout: float = 60.0

    @classmethod
    def from_host(cls, app_root: Path, environ: Mapping[str, str] | None = None) -> EngineSettings:
        env = os.environ if environ is None else environ
        host = _read_host_json(app_root)
        durable = host.get("extensions", {}).get("durableTask", {})
        hub = _resolve(str(durable.get("hubName") or DEFAULT_HUB), env)
        if not _HUB_NAME.match(hub):
            raise SettingsError(f"task hub name {hub!r} is invalid: 3-45 letters and digits, starting with a letter")
        provider = durable.get("storageProvider", {})
        connection_name = provider.get("connectionStringName") or provider.get("connectionName") \
            or "AzureWebJobsStorage"
        connection = env.get(connection_name, "")
        if connection.strip().lower() == "usedevelopmentstorage=true":
            connection = _DEV_STORAGE
        if not connection:
            raise SettingsError(f"the Durable engine needs a storage connection string in {connection_name}")
        clock = env.get("DEVHOST_DURABLE_CLOCK", "wall").strip().lower() or "wall"
        if clock not in ("wall", "manual"):
            raise SettingsError(f"DEVHOST_DURABLE_CLOCK must be 'wall' or 'manual', not {clock!r}")
        return cls(task_hub=hub, connection_string=connection, connection_name=connection_name, clock=clock,
                   system_key=env.get("DEVHOST_DURABLE_KEY") or None,
                   rpc_port=int(env.get("DEVHOST_DURABLE_RPC_PORT") or 0),
                   orchestrator_workers=int(durable.get("maxConcurrentOrchestratorFunctions") or 4),
                   activity_workers=int(durable.get("maxConcurrentActivityFunctions") or 8),
                   function_timeout=_seconds(host.get("functionTimeout")) or 300.0,
                   replay_timeout=float(env.get("DEVHOST_DURABLE_REPLAY_TIMEOUT") or 60))


def _read_host_json(app_root: Path) -> dict[str, Any]:
    try:
        return load_host_json(app_root)
    except HostJsonError as exc:
        raise SettingsError(str(exc)) from exc


def _resolve(value: str, env: Mapping[str, str]) -> str:
    """``%NAME%`` -> the app setting NAME, as the host resolves binding expressions."""
    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise SettingsError(f"host.json refers to app setting {name!r}, which is not set")
        return env[name]

    return re.sub(r"%([^%]+)%", setting, value)


def _seconds(timespan: Any) -> float | None:
    if not timespan:
        return None
    match = _TIMESPAN.match(str(timespan))
    if not match:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
