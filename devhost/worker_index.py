"""Index an app with Microsoft's own Python worker library, exactly as Azure does at start-up.

On Azure, the Python worker imports ``function_app.py``, finds the one ``FunctionRegister``,
and validates every function's parameters, annotations and bindings before the host registers
anything; one rejected function and the host serves nothing. The devhost used to skip that step
and so could be greener than Azure. ``index_with_worker`` runs the worker library's own entry
points (``worker_init_request``, then ``functions_metadata_request``) on the app and raises
``WorkerIndexError`` with the worker's own message when it refuses.

The library is ``azure-functions-runtime`` from PyPI (the v2-model worker; it declares Python
3.13+, and its indexing code runs unchanged on 3.11: ``make setup`` installs it with
``--ignore-requires-python --no-deps``, see ``requirements-worker.txt``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from devhost.worker_protocol import HostRequest, StatusResult

INSTALL_HINT = ("Microsoft's Python worker library is not installed (azure-functions-runtime); "
                "run `make setup` (it installs requirements-worker.txt)")


class WorkerIndexError(RuntimeError):
    """The worker refused the app: on Azure, the host would register no function at all."""


@dataclass(frozen=True)
class WorkerIndex:
    """What the worker reported (``metadata``) and the SDK function objects it indexed them from
    (``functions``: ``FunctionApp.get_functions`` may be called only once per app)."""

    metadata: list[IndexedFunction]
    functions: list[Any]


@dataclass(frozen=True)
class IndexedFunction:
    """One function as the worker reports it to the host (``RpcFunctionMetadata``)."""

    name: str
    function_id: str
    script_file: str
    raw_bindings: tuple[str, ...]
    retry_options: Any = None


def _worker() -> ModuleType:
    try:
        from azure_functions_runtime import handle_event
    except ImportError as exc:  # pragma: no cover - exercised only on a machine without `make setup`
        raise WorkerIndexError(INSTALL_HINT) from exc
    return handle_event


def _app_file(module: ModuleType | str) -> tuple[Path, ModuleType | None]:
    """The app's file, and the module object when it must be reused rather than imported by the
    worker: a top-level module not yet imported is left to the worker, as on Azure (worker
    start-up first, then the app's import); a dotted test module is imported here once."""
    if isinstance(module, str):
        if "." not in module and module not in sys.modules:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.origin:
                raise WorkerIndexError(f"no module {module!r} to index")
            return Path(spec.origin).resolve(), None
        module = importlib.import_module(module)
    return Path(module.__file__ or "").resolve(), module


@contextlib.contextmanager
def _as_worker_sees_it(path: Path, module: ModuleType | None) -> Iterator[tuple[str, str]]:
    """The worker imports ``<dir>/<script>`` by file stem from the app directory; point both at
    the module already imported, if any (no second import, no second app object)."""
    stem, directory = path.stem, str(path.parent)
    saved_module = sys.modules.get(stem)
    saved_script = os.environ.get("PYTHON_SCRIPT_FILE_NAME")
    if module is not None:
        sys.modules[stem] = module
    os.environ["PYTHON_SCRIPT_FILE_NAME"] = path.name
    added_path = directory not in sys.path
    if added_path:
        sys.path.insert(0, directory)
    try:
        yield directory, path.name
    finally:
        if added_path:
            sys.path.remove(directory)
        if saved_script is None:
            os.environ.pop("PYTHON_SCRIPT_FILE_NAME", None)
        else:
            os.environ["PYTHON_SCRIPT_FILE_NAME"] = saved_script
        if module is not None:
            if saved_module is None:
                sys.modules.pop(stem, None)
            else:
                sys.modules[stem] = saved_module


def _run(coro: Any) -> Any:
    """Run one of the worker's async handlers to completion, also from inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def index_with_worker(module: ModuleType | str) -> WorkerIndex:
    """The functions the worker indexes in ``module`` (a module or its name), or ``WorkerIndexError``."""
    worker = _worker()
    path, loaded = _app_file(module)
    from azure_functions_runtime.functions import Registry

    indexed: list[Any] = []
    original = worker.index_function_app

    def keep_result(function_path: str) -> Any:
        functions = original(function_path)
        indexed.extend(functions)
        return functions

    with _as_worker_sees_it(path, loaded) as (directory, _script):
        worker._functions = Registry()  # one indexing per call, as in a fresh worker process
        worker._metadata_result = None
        worker.index_function_app = keep_result
        try:
            init = _run(worker.worker_init_request(HostRequest.worker_init(directory)))
        finally:
            worker.index_function_app = original
        if init.result.status != StatusResult.Success:
            message = init.result.exception.message if init.result.exception else "worker init failed"
            raise WorkerIndexError(f"Microsoft's Python worker refused {path.name}: {message}")
        metadata = _run(worker.functions_metadata_request(HostRequest.functions_metadata(directory)))
    if metadata.result.status != StatusResult.Success:  # pragma: no cover - the library always succeeds here
        raise WorkerIndexError("the worker's functions_metadata_request failed")
    return WorkerIndex([IndexedFunction(m.name, m.function_id, m.script_file, tuple(m.raw_bindings or ()),
                                        m.retry_options)
                        for m in metadata.function_metadata_results or ()], indexed)
