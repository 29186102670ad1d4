"""``import function_app`` loads only what the host needs to index the app: the Functions and Durable
SDKs, the adapters (``broker.api``, ``broker.workflows``) and the settings telemetry reads. The domain
and its heavy libraries (SQL parsers, database drivers, storage and identity SDKs, templates) load
when the broker is built, on the first call (``broker/runtime.py``).

A behaviour test, not a timing test: each case runs in a fresh interpreter and names the modules
that should not be there. The time itself is in ``benchmarks/cold_start.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Packages the broker uses only once it is built (each a package or a dotted prefix).
NOT_AT_INDEXING = (
    "sqlglot", "sqlglotc", "pglast", "psycopg", "psycopg_pool", "pymysql", "pyodbc", "kubernetes", "mcp",
    "starlette", "yaml", "jinja2", "jwt", "cryptography", "httpx", "requests", "jsonschema", "msal", "rfc8785",
    "phonenumbers", "stdnum", "hyperscan", "ahocorasick", "azure.identity", "azure.keyvault", "azure.storage",
    "azure.data.tables", "azure.communication", "azure.monitor",
)
# The broker modules indexing needs: the adapters and what they name at import.
BROKER_AT_INDEXING = ("broker.api", "broker.workflows", "broker.problems", "broker.problem_codes",
                      "broker.runtime", "broker.settings", "broker.telemetry")

LOADED = """
    import json, sys
    print(json.dumps(sorted(sys.modules)))
"""


def loaded_after(code: str) -> set[str]:
    """The module names in ``sys.modules`` after ``code`` ran in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "BROKER_"))}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + textwrap.dedent(LOADED)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def too_early(modules: set[str]) -> list[str]:
    """What indexing should not have loaded: a deferred package, or a domain module."""
    deferred = {name for name in modules for package in NOT_AT_INDEXING
                if name == package or name.startswith(package + ".")}
    domain = {name for name in modules if name.startswith("broker.")
              and not any(name == allowed or name.startswith(allowed + ".") for allowed in BROKER_AT_INDEXING)}
    return sorted(deferred | domain)


AS_THE_HOST_DOES = {
    "import": "import function_app\n",
    # as on Azure: Microsoft's worker imports the app, then validates every function's annotations
    "worker index": "from devhost.worker_index import index_with_worker\nindex_with_worker('function_app')\n",
}
LATE = ["sqlglot", "azure.storage.blob", "broker.execute", "jinja2"]


@pytest.fixture(scope="module")
def after_import() -> dict[str, frozenset[str]]:
    """One fresh interpreter: ``sys.modules`` after ``import function_app`` (key ``""``), then after
    each of ``LATE`` imported next to it in turn (one interpreter start each cost ~1 s)."""
    steps = [("", "")] + [(late, f"import {late}\n") for late in LATE]
    code = AS_THE_HOST_DOES["import"] + "".join(step + textwrap.dedent(LOADED) for _, step in steps)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "BROKER_"))}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()[-len(steps):]
    return {name: frozenset(json.loads(line)) for (name, _), line in zip(steps, lines, strict=True)}


@pytest.mark.parametrize("how", AS_THE_HOST_DOES)
def test_indexing_the_app_loads_neither_the_domain_nor_its_libraries(how: str, after_import) -> None:
    modules = after_import[""] if how == "import" else loaded_after(AS_THE_HOST_DOES[how])
    assert "function_app" in modules
    assert too_early(set(modules)) == []


@pytest.mark.parametrize("late", LATE)
def test_the_check_sees_a_module_that_came_back(late: str, after_import) -> None:
    """The checker itself: a module imported next to the app is reported."""
    assert late not in after_import[""] and late in too_early(set(after_import[late]))
