"""An index of the functions an app registered, as the Functions host would see them."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

from devhost.host_json import load_host_json
from devhost.worker_index import IndexedFunction, WorkerIndexError, index_with_worker

_ROUTE_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?(\?)?\}")
_CONSTRAINTS = {"guid": r"[0-9a-fA-F-]{36}", "int": r"-?\d+", "alpha": r"[A-Za-z]+"}


@dataclass
class TriggeredFunction:
    """A non-HTTP function: its name, the user function, the trigger parameter, all bindings."""

    name: str
    function: Callable[..., Any]
    trigger_param: str
    bindings: list[Any] = field(default_factory=list)
    trigger: Any = None


@dataclass
class HttpRoute:
    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    function: Callable[..., Any]
    trigger_param: str
    bindings: list[Any] = field(default_factory=list)


def route_regex(template: str) -> re.Pattern[str]:
    """Compile a Functions route template (``items/{id:guid}``, ``files/{*path}``, ``{x?}``)."""
    out, pos = "", 0
    for m in _ROUTE_PARAM.finditer(template):
        out += re.escape(template[pos:m.start()])
        star, name, constraint, optional = m.groups()
        body = ".*" if star else _CONSTRAINTS.get(constraint or "", r"[^/]+")
        if optional:
            if out.endswith("/"):
                out = out[:-1] + f"(?:/(?P<{name}>{body}))?"
            else:
                out += f"(?P<{name}>{body})?"
        else:
            out += f"(?P<{name}>{body})"
        pos = m.end()
    out += re.escape(template[pos:])
    return re.compile(f"^{out}$", re.IGNORECASE)


def route_prefix(app_root: Path) -> str:
    prefix = load_host_json(app_root).get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return str(prefix).strip("/")


# Triggers the devhost can run; a function with any other trigger is refused at start-up, since
# the devhost would silently not serve what Azure would.
SERVED_TRIGGERS = frozenset({"httpTrigger", "orchestrationTrigger", "activityTrigger", "timerTrigger"})


class FunctionIndex:
    """Loads the app module as Azure's worker does (its own indexing and validation first) and
    indexes the functions by trigger type."""

    def __init__(self, module: str = "function_app") -> None:
        # Microsoft's worker starts, imports the app and validates every function before the host
        # registers any: refuse the app here exactly when Azure would (with the worker's message).
        worker = index_with_worker(module)
        mod = importlib.import_module(module)
        self.worker_functions: list[IndexedFunction] = worker.metadata
        # the worker took the module's one FunctionRegister, whatever its name
        self.app = next(v for v in vars(mod).values() if isinstance(v, func.FunctionRegister))
        self.root = Path(inspect.getfile(mod)).resolve().parent
        self.prefix = route_prefix(self.root)
        self.http: list[HttpRoute] = []
        self.by_name: dict[str, Any] = {}
        self.by_trigger: dict[str, list[Any]] = {}
        self.orchestrators: dict[str, TriggeredFunction] = {}
        self.activities: dict[str, TriggeredFunction] = {}
        self.uses_durable_client = False
        for fn in worker.functions:
            trigger = fn.get_trigger()
            self.by_name[fn.get_function_name()] = fn
            self.by_trigger.setdefault(trigger.get_binding_name(), []).append(fn)
            if any(b.get_binding_name() == "durableClient" for b in fn.get_bindings()):
                self.uses_durable_client = True
            kind = trigger.get_binding_name()
            if kind in ("orchestrationTrigger", "activityTrigger"):
                entry = TriggeredFunction(fn.get_function_name(), fn.get_user_function(), trigger.name,
                                          fn.get_bindings(), trigger)
                check_parameters(entry)
                # The host registers durable functions by function name (the trigger may rename).
                alias = getattr(trigger, "orchestration" if kind == "orchestrationTrigger" else "activity", None)
                registry = self.orchestrators if kind == "orchestrationTrigger" else self.activities
                registry[entry.name] = entry
                if alias:
                    registry[alias] = entry
            if trigger.get_binding_name() == "httpTrigger":
                route = trigger.route or fn.get_function_name()
                methods = frozenset(str(getattr(m, "value", m)).upper() for m in (trigger.methods or [])) \
                    or frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
                full = f"{self.prefix}/{route}" if self.prefix else route
                self.http.append(HttpRoute(fn.get_function_name(), route_regex(full.strip("/")), methods,
                                           fn.get_user_function(), trigger.name, fn.get_bindings()))

        unserved = sorted(n for n, fn in self.by_name.items()
                          if fn.get_trigger().get_binding_name() not in SERVED_TRIGGERS)
        if unserved:
            raise WorkerIndexError(f"the devhost cannot run the trigger of {unserved}; Azure would serve them")

    @property
    def served(self) -> frozenset[str]:
        """The names of every function this devhost dispatches: its HTTP routes, orchestrators,
        activities and timers (the tables requests and work items are looked up in)."""
        durable = {entry.name for entry in (*self.orchestrators.values(), *self.activities.values())}
        timers = {fn.get_function_name() for fn in self.by_trigger.get("timerTrigger", [])}
        return frozenset({route.name for route in self.http} | durable | timers)

    @property
    def uses_durable(self) -> bool:
        return bool(self.orchestrators or self.activities or self.uses_durable_client)

    def match(self, method: str, path: str) -> tuple[HttpRoute | None, dict[str, str], frozenset[str]]:
        """(route, route params, the methods this path allows when it matched but not this method)."""
        path = path.strip("/")
        allowed: set[str] = set()
        for route in self.http:
            m = route.pattern.match(path)
            if m:
                if method.upper() in route.methods:
                    return route, {k: v for k, v in m.groupdict().items() if v is not None}, frozenset()
                allowed |= route.methods
        return None, {}, frozenset(allowed)


def make_request(method: str, url: str, headers: dict[str, str], params: dict[str, str],
                 route_params: dict[str, str], body: bytes) -> func.HttpRequest:
    return func.HttpRequest(method=method.upper(), url=url, headers=headers, params=params,
                            route_params=route_params, body=body)


def check_parameters(entry: TriggeredFunction) -> None:
    """Like the Python worker at load time: every binding needs a parameter of that name."""
    params = inspect.signature(entry.function).parameters
    missing = [b.name for b in entry.bindings if b.name != "$return" and b.name not in params]
    if missing:
        raise TypeError(f"function {entry.name!r} has no parameter for binding(s) {missing}; "
                        f"its parameters are {list(params)}")


def bind_arguments(function: Callable[..., Any], bindings: list[Any], trigger_param: str, trigger_value: Any,
                   providers: dict[str, Callable[[Any, Any], Any]], request: Any = None) -> dict[str, Any]:
    """Keyword arguments for one invocation: the trigger value plus each input binding's value."""
    kwargs: dict[str, Any] = {}
    params = inspect.signature(function).parameters
    for binding in bindings:
        if binding.name == "$return" or binding.name not in params:
            continue
        if binding.name == trigger_param:
            kwargs[binding.name] = trigger_value
        else:
            provider = providers.get(binding.get_binding_name())
            if provider is None:
                raise RuntimeError(f"devhost cannot provide a {binding.get_binding_name()} binding")
            kwargs[binding.name] = provider(binding, request)
    if "context" in params and "context" not in kwargs:
        kwargs["context"] = None
    return kwargs
