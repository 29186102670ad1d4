"""broker/telemetry.py: off (and free) without a connection string; with one, spans reach the
ingestion endpoint with a managed-identity token, as in Azure where local auth is off.

Each case runs in a fresh interpreter: OpenTelemetry's providers are process-wide and set once.
The configured case talks only to stand-ins on 127.0.0.1: the dev issuer's App Service
managed-identity endpoint and an HTTPS ingestion endpoint that records what it receives.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from devhost._http import Request, Response, StandInServer
from devhost.certs import DevCertificates
from devhost.oidc import issuer_server

ROOT = Path(__file__).resolve().parents[2]
IKEY = "00000000-0000-4000-8000-000000000001"
CLIENT_ID = "11111111-2222-4333-8444-555555555555"


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("APPLICATIONINSIGHTS_", "OTEL_", "IDENTITY_", "MSI_", "AZURE_"))}
    # No resource detector may probe a cloud metadata endpoint, and no SDK self-telemetry leaves.
    clean.update({"OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel", "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
                  "PYTHONPATH": str(ROOT)})
    clean.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=clean, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_without_a_connection_string_nothing_is_configured_or_imported() -> None:
    result = run_python("""
        import sys
        from opentelemetry import trace
        from broker.telemetry import configure_telemetry, span
        assert configure_telemetry() is False
        assert "azure.monitor.opentelemetry" not in sys.modules
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        with span("target.run", target="t") as s:
            assert not s.is_recording()
        print("ok")
    """, {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


class Ingestion:
    """Records the telemetry envelopes posted to ``/v2.1/track`` with their Authorization header."""

    def __init__(self, certs: DevCertificates) -> None:
        self.posts: list[tuple[str, list[dict]]] = []
        self.arrived = threading.Event()
        self.server = StandInServer("127.0.0.1", 0, [("POST", re.compile(r"/v2\.1/track"), self.track)],
                                    tls=certs.server_context())

    def track(self, req: Request) -> Response:
        body = req.body
        if req.headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        text = body.decode()
        items = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines()]
        self.posts.append((req.headers.get("authorization", ""), items))
        self.arrived.set()
        return Response(200, {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})


@pytest.fixture
def azure_like(tmp_path: Path) -> Iterator[tuple[dict[str, str], Ingestion]]:
    certs = DevCertificates(tmp_path)
    identity_server, issuer = issuer_server(tmp_path)
    identity_server.start_background()
    ingestion = Ingestion(certs)
    ingestion.server.start_background()
    connection_string = f"InstrumentationKey={IKEY};IngestionEndpoint={ingestion.server.base_url}/"
    env = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string,
        "AZURE_CLIENT_ID": CLIENT_ID,
        "IDENTITY_ENDPOINT": f"{identity_server.base_url}/msi/token",
        "IDENTITY_HEADER": issuer.managed_identity_secret,
        "REQUESTS_CA_BUNDLE": str(certs.bundle_path),
        "TMPDIR": str(tmp_path),  # the exporter's offline retry store
        # The distro's default sampler allows 5 traces/s and may drop the very first one.
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    try:
        yield env, ingestion
    finally:
        ingestion.server.stop()
        identity_server.stop()


def test_with_a_connection_string_spans_reach_ingestion_with_an_identity_token(
        azure_like: tuple[dict[str, str], Ingestion]) -> None:
    env, ingestion = azure_like
    result = run_python("""
        from opentelemetry import trace
        from broker.telemetry import configure_telemetry, span
        assert configure_telemetry() is True
        assert configure_telemetry() is True  # once per process
        with span("target.run", target="orders-db", engine="postgres") as s:
            assert s.is_recording()
        trace.get_tracer_provider().force_flush(20000)
        trace.get_tracer_provider().shutdown()
        print("ok")
    """, env)
    assert result.returncode == 0, result.stderr
    assert ingestion.arrived.wait(10), "no telemetry reached the ingestion endpoint"

    spans = [(auth, item) for auth, items in ingestion.posts for item in items
             if item.get("data", {}).get("baseData", {}).get("name") == "target.run"]
    assert spans, [item.get("name") for _, items in ingestion.posts for item in items]
    auth, item = spans[0]
    assert item["iKey"] == IKEY
    assert item["data"]["baseData"]["properties"] == {"target": "orders-db", "engine": "postgres"}
    # Entra authentication: a bearer token from the managed identity, for Azure Monitor.
    scheme, _, token = auth.partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"].rstrip("/") == "https://monitor.azure.com"


def test_the_deployed_settings_leave_azure_monitor_to_the_app_and_it_takes_effect(
        azure_like: tuple[dict[str, str], Ingestion]) -> None:
    """One path, chosen and checked with Microsoft's worker code: the worker starts first (its
    ``worker_init_request``), then imports function_app.py, whose ``configure_telemetry`` installs
    the exporter with the managed identity. With the app settings infra/ deploys, the worker only
    propagates the host's trace context (PYTHON_ENABLE_OPENTELEMETRY) and does not configure Azure
    Monitor itself (that is PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY, which would configure it
    first, without the identity, and make the app's own configuration a refused second provider)."""
    from test_app_settings import app_settings

    deployed = app_settings()
    assert deployed.get("PYTHON_ENABLE_OPENTELEMETRY") == "true"
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" not in deployed
    env, ingestion = azure_like
    env = {**env, "PYTHON_ENABLE_OPENTELEMETRY": "true"}
    result = run_python("""
        import sys
        from opentelemetry import trace
        from azure_functions_runtime.otel import otel_manager
        from devhost.worker_index import index_with_worker
        index_with_worker("function_app")  # as on Azure: the worker starts, then imports the app
        assert "function_app" in sys.modules
        assert otel_manager.get_azure_monitor_available() is False  # the worker left it to the app
        assert otel_manager.get_trace_context_propagator() is not None  # but carries the host's context
        from broker.telemetry import span
        with span("worker.indexed", target="orders-db") as s:
            assert s.is_recording()
        trace.get_tracer_provider().force_flush(20000)
        print("ok")
    """, env)
    assert result.returncode == 0, result.stderr
    assert ingestion.arrived.wait(10)
    names = [item.get("data", {}).get("baseData", {}).get("name") for _, items in ingestion.posts for item in items]
    assert "worker.indexed" in names
    assert all(auth.startswith("Bearer ") for auth, _ in ingestion.posts)


def test_if_the_worker_configured_azure_monitor_first_the_app_does_not_add_a_second(
        azure_like: tuple[dict[str, str], Ingestion]) -> None:
    env, _ = azure_like
    env = {**env, "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true"}
    result = run_python("""
        import logging
        logging.basicConfig(level=logging.WARNING)
        from azure_functions_runtime.otel import initialize_azure_monitor, otel_manager
        initialize_azure_monitor()  # what worker_init_request does with this setting, before the app loads
        assert otel_manager.get_azure_monitor_available() is True
        from broker.telemetry import configure_telemetry
        assert configure_telemetry() is False
        print("ok")
    """, env)
    assert result.returncode == 0, result.stderr
    assert "already configured" in result.stderr
