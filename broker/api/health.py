"""``GET /api/health``: what is reachable, without leaking configuration. No authentication."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import azure.functions as func

from broker.api._http import json_response
from broker.problems import BrokerError
from broker.runtime import get_broker

bp = func.Blueprint()

_CACHE_SECONDS = {"ok": 10.0, "degraded": 2.0, "unhealthy": 2.0}
_cache: tuple[float, dict[str, Any]] | None = None
_lock = threading.Lock()


_BUDGET_SECONDS = 4.0
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")


def _check(fn: Any) -> str:
    try:
        fn()
        return "ok"
    except BrokerError as error:
        return error.code
    except Exception:
        return "unreachable"


def _run_checks() -> dict[str, Any]:
    try:
        broker = get_broker()
    except Exception:
        return {"status": "unhealthy", "checks": {"configuration": "invalid"}}
    probes: dict[str, Any] = {"journal": broker.journal_storage.probe, "key_vault": broker.execute.masker.get}
    unavailable: dict[str, str] = {}
    for target in broker.catalog.targets.values():
        engine = broker.engines[target.engine]
        if engine.unavailable_reason():  # e.g. no ODBC driver on this plan: say so, do not try
            unavailable[target.name] = "engine_unavailable"
            continue
        probes[f"target:{target.name}"] = (
            lambda t=target, e=engine: e.check(t, broker.credentials.resolve(t.credential)))
    # all probes at once, within one budget: a dead dependency must not make health itself hang
    futures = {name: _pool.submit(_check, probe) for name, probe in probes.items()}
    done, _ = wait(futures.values(), timeout=_BUDGET_SECONDS)
    results = {name: (f.result() if f in done else "timeout") for name, f in futures.items()}
    checks: dict[str, Any] = {"configuration": "ok", "journal": results["journal"],
                              "key_vault": results["key_vault"]}
    targets = {name.split(":", 1)[1]: value for name, value in results.items() if name.startswith("target:")}
    targets.update(unavailable)
    checks["targets"] = targets
    core_ok = all(v == "ok" for k, v in checks.items() if k != "targets")
    status = "ok" if core_ok and all(v == "ok" for v in targets.values()) else (
        "degraded" if core_ok else "unhealthy")
    return {"status": status, "checks": checks}


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Cached for a few seconds so an unauthenticated caller cannot hammer Key Vault or targets."""
    global _cache
    with _lock:
        now = time.monotonic()
        if _cache is None or now - _cache[0] > _CACHE_SECONDS[_cache[1]["status"]]:
            _cache = (now, _run_checks())
        body = _cache[1]
    return json_response(body, status=200 if body["status"] != "unhealthy" else 503)


_OPENAPI = Path(__file__).with_name("openapi.yaml")


@bp.route(route="openapi.yaml", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The API's OpenAPI document, so agents and tools can discover the contract."""
    return func.HttpResponse(_OPENAPI.read_bytes(), mimetype="application/yaml",
                             headers={"Cache-Control": "public, max-age=300"})
