"""Traces, logs and metrics to Application Insights through OpenTelemetry, only where configured.

``configure_telemetry()`` is called once from ``function_app.py``. Without
``APPLICATIONINSIGHTS_CONNECTION_STRING`` (locally, in tests) it returns at once and imports
nothing, so cold starts outside Azure pay nothing. In Azure it installs the Azure Monitor
distro: HTTP (httpx, requests, urllib3) and Azure SDK calls (Key Vault, Table, Blob) become
dependency spans, logs become traces, and the Python worker parents every span to the host's
request (``PYTHON_ENABLE_OPENTELEMETRY``). Ingestion is authenticated with the managed identity:
the App Insights component accepts no instrumentation-key-only telemetry.

``span()`` lets target engines and workflows mark their own work (e.g. one span per target call);
it is a no-op until telemetry is configured. Span attributes must never carry a command's result,
a credential or an unmasked value: they leave the broker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from broker.settings import TelemetrySettings

LOGGER_NAME = "broker"
"""Records of this logger (and its children) are exported; the host already exports its own."""

# Instrumentations for libraries the broker does not use stay off (fewer imports at cold start).
_UNUSED_INSTRUMENTATIONS = ("django", "fastapi", "flask", "psycopg2")

_configured = False
_lock = threading.Lock()
_tracer = trace.get_tracer("broker")


def configure_telemetry(settings: TelemetrySettings | None = None) -> bool:
    """Install the Azure Monitor exporter once; True when telemetry is (now) being exported."""
    global _configured
    settings = settings or TelemetrySettings()
    connection_string = settings.applicationinsights_connection_string.get_secret_value()
    if not connection_string:
        return False
    with _lock:
        if _configured:
            return True
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            # The Python worker configured Azure Monitor before loading the app (the app setting
            # PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY): a second configuration would be refused
            # by OpenTelemetry anyway, and the worker's has no managed identity. One path: ours.
            logging.getLogger(LOGGER_NAME).warning(
                "telemetry already configured by the Python worker; leave PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY "
                "unset so the broker exports with its managed identity")
            return False
        from azure.identity import ManagedIdentityCredential
        from azure.monitor.opentelemetry import configure_azure_monitor

        credential = ManagedIdentityCredential(client_id=settings.azure_client_id or None)
        configure_azure_monitor(
            connection_string=connection_string,
            credential=credential,
            logger_name=LOGGER_NAME,
            enable_live_metrics=False,
            instrumentation_options={name: {"enabled": False} for name in _UNUSED_INSTRUMENTATIONS},
        )
        _configured = True
        return True


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span around a unit of broker work; attributes are plain identifiers (target, engine, rule)."""
    with _tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current
