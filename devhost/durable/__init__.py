"""A local Durable Functions runtime for the devhost (no Functions host, no .NET).

It runs the app's orchestrators through the ``azure-functions-durable`` SDK's own entry point,
replays their actions the way the Durable extension does (task ids, retries, timers, external
events, determinism checks), keeps instances and histories in Table storage (Azurite), runs
activities and fires timers from background threads, and serves the management API the SDK's
``DurableOrchestrationClient`` calls. See docs/devhost.md for what it implements and guarantees.

Layout: ``history`` (event shapes) · ``payloads`` (JSON conventions) · ``replay`` (the
extension's half of a replay) · ``worker`` (invoking functions like the Python worker) ·
``model`` (instance state, messages, work) · ``episode`` (one orchestration step, pure) ·
``store`` (Table storage) · ``dispatcher`` (work loops, recovery) · ``clock`` · ``lease`` (one
devhost per task hub) · ``api`` (HTTP) · ``errors`` · ``engine`` (wiring) · ``settings`` ·
``testing`` (``OrchestrationHarness`` for unit tests of orchestrators).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devhost.durable.engine import DurableEngine
from devhost.durable.settings import EngineSettings, SettingsError

if TYPE_CHECKING:
    from devhost.server import FunctionsHttpServer

__all__ = ["DurableEngine", "EngineSettings", "SettingsError", "start_for"]


def start_for(server: FunctionsHttpServer) -> DurableEngine | None:
    """Start the engine for the app the server serves, if the app uses Durable Functions."""
    if not server.index.uses_durable:
        return None
    settings = EngineSettings.from_host(server.index.root)
    engine = DurableEngine(server.index, settings, server.runner.run, server.base_url).start()
    engine.attach(server)
    return engine
