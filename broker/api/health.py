"""``GET /api/health``: what is reachable, without leaking configuration. No authentication."""

from __future__ import annotations

import threading
import time
from typing import Any

import azure.functions as func

from broker.api._http import json_response
from broker.problems import BrokerError
from broker.runtime import get_broker

bp = func.Blueprint()

_CACHE_SECONDS = 10.0
_cache: tuple[float, dict[str, Any]] | None = None
_lock = threading.Lock()


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
    checks: dict[str, Any] = {
        "configuration": "ok",
        "journal": _check(broker.journal_storage.probe),
        "key_vault": _check(broker.execute.masker.get),
    }
    targets = {}
    for target in broker.catalog.targets.values():
        engine = broker.engines[target.engine]
        targets[target.name] = _check(
            lambda t=target, e=engine: e.check(t, broker.credentials.resolve(t.credential)))
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
        if _cache is None or now - _cache[0] > _CACHE_SECONDS:
            _cache = (now, _run_checks())
        body = _cache[1]
    return json_response(body, status=200 if body["status"] != "unhealthy" else 503)
