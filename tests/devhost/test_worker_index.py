"""The app as Azure's Python worker indexes it: Microsoft's worker library (azure-functions-runtime,
installed from PyPI by `make setup`) loads function_app.py, validates every function and reports
their metadata; the devhost refuses exactly what the worker refuses."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from devhost.functions import FunctionIndex
from devhost.worker_index import WorkerIndexError, index_with_worker

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app_index() -> FunctionIndex:
    # FunctionApp.get_functions() runs once per app object; another test in this process may have
    # used it (Azure's worker, in its own process, is the only caller): forget the names it saw.
    if "function_app" in sys.modules:
        sys.modules["function_app"].app.functions_bindings = {}
    return FunctionIndex("function_app")


def test_the_worker_indexes_every_function_the_devhost_serves(app_index: FunctionIndex) -> None:
    names = {f.name for f in app_index.worker_functions}
    assert names == app_index.served
    http = {r.name for r in app_index.http}
    durable = set(app_index.orchestrators) | set(app_index.activities)
    assert http | durable | {fn.get_function_name() for fn in app_index.by_trigger.get("timerTrigger", [])} \
        == names
    # the worker's view of each function is what the host registers: ids and raw bindings
    execute = next(f for f in app_index.worker_functions if f.name == "execute")
    assert execute.function_id == str(uuid.uuid5(uuid.NAMESPACE_OID, "execute"))
    assert execute.script_file == "function_app.py"
    bindings = [json.loads(b) for b in execute.raw_bindings]
    assert {b["type"] for b in bindings} == {"httpTrigger", "http", "durableClient"}
    assert {"approval_orchestrator", "approval_conclude", "grant_orchestrator", "grant_end"} <= names


def _write_app(tmp_path: Path, name: str, body: str, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return name


def _reverted_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    """Today's bug, put back: the approval workflow with the parametrised annotation."""
    source = (REPO / "broker/workflows/approval.py").read_text()
    fixed = "def approval_conclude(outcome: dict)"
    assert fixed in source
    reverted = source.replace(fixed, "def approval_conclude(outcome: dict[str, Any])")
    (tmp_path / f"{name}_approval.py").write_text(reverted)
    return _write_app(tmp_path, name, f"""
        import azure.durable_functions as df
        import azure.functions as func
        import {name}_approval
        app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
        app.register_functions({name}_approval.bp)
    """, monkeypatch)


def test_reverting_the_annotation_fix_is_refused_with_the_workers_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(_reverted_workflow(tmp_path, monkeypatch, "reverted_app_a"))
    with pytest.raises(WorkerIndexError) as caught:
        index_with_worker(module)
    assert ("FunctionLoadError: cannot load the approval_conclude function: binding outcome has invalid "
            "non-type annotation dict[str, typing.Any]") in str(caught.value)


def test_the_devhost_refuses_the_reverted_app_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _reverted_workflow(tmp_path, monkeypatch, "reverted_app_b")
    with pytest.raises(WorkerIndexError, match="invalid non-type annotation"):
        FunctionIndex(name)
    # and the devhost process itself exits instead of serving a subset
    proc = subprocess.run([sys.executable, "-m", "devhost", "serve", "--port", "0", "--app", name, "--no-timers"],
                          cwd=REPO, env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "invalid non-type annotation dict[str, typing.Any]" in proc.stderr


# Each app breaks one rule of the worker's validation; each spelling is one the devhost used to serve.
REFUSED = {
    "list_annotation": ("""
        @app.activity_trigger(input_name="items")
        def collect(items: list[str]) -> str:
            return ""
    """, "binding items has invalid non-type annotation list[str]"),
    "tuple_annotation": ("""
        @app.activity_trigger(input_name="pair")
        def pair(pair: tuple[int, int]) -> str:
            return ""
    """, "binding pair has invalid non-type annotation tuple[int, int]"),
    "missing_binding_parameter": ("""
        @app.activity_trigger(input_name="payload")
        def lonely(payload: str, extra: str) -> str:
            return ""
    """, "declared in Python but not in the function definition"),
    "binding_without_parameter": ("""
        @app.route(route="x")
        @app.durable_client_input(client_name="client")
        def handler(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("")
    """, "are declared as bindings but are not present in Python"),
    "context_of_the_wrong_type": ("""
        @app.route(route="y")
        def handler(req: func.HttpRequest, context: str) -> func.HttpResponse:
            return func.HttpResponse("")
    """, 'the "context" parameter is expected to be of type azure.functions.Context'),
    "duplicate_function_name": ("""
        @app.route(route="a")
        @app.function_name("same")
        def one(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("")

        @app.route(route="b")
        @app.function_name("same")
        def two(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("")
    """, "does not have a unique function name"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_devhost_refuses_what_the_worker_refuses(case: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    body, message = REFUSED[case]
    name = _write_app(tmp_path, f"refused_{case}", "import azure.durable_functions as df\n"
                      "import azure.functions as func\n"
                      "app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n" + textwrap.dedent(body),
                      monkeypatch)
    with pytest.raises(WorkerIndexError) as caught:
        FunctionIndex(name)
    assert message in str(caught.value)


def test_bare_containers_and_sdk_types_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _write_app(tmp_path, "accepted_app", """
        import azure.durable_functions as df
        import azure.functions as func
        app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

        @app.activity_trigger(input_name="payload")
        def act(payload: dict) -> dict:
            return payload

        @app.orchestration_trigger(context_name="context")
        def orch(context: df.DurableOrchestrationContext):
            yield context.call_activity("act", {})

        @app.route(route="z")
        @app.durable_client_input(client_name="client")
        async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
            return func.HttpResponse("")
    """, monkeypatch)
    assert FunctionIndex(name).served == {"act", "orch", "start"}


def test_an_app_with_two_function_apps_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _write_app(tmp_path, "two_apps", """
        import azure.functions as func
        app = func.FunctionApp()
        other = func.FunctionApp()
    """, monkeypatch)
    with pytest.raises(WorkerIndexError, match="More than one"):
        FunctionIndex(name)
