"""The language-worker side: invoke orchestrator and activity functions as the Python worker does.

Orchestrators get the JSON context through ``azure.functions``' own OrchestrationTrigger
converter and the function the app registered (the SDK's ``Orchestrator.create`` handle), so
the SDK's real replay runs; activities get their input through the ActivityTrigger converter and
their result is encoded by it. Failures are reported the way the extension sees them: an
orchestrator's exception carries the SDK state after ``$OutOfProcData$:``, an activity's becomes
TaskFailed's reason and details.
"""

from __future__ import annotations

import ctypes
import inspect
import json
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter, OrchestrationTriggerConverter

from devhost.durable.history import Event
from devhost.functions import TriggeredFunction, bind_arguments

OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
Providers = dict[str, Callable[[Any, Any], Any]]
AsyncRunner = Callable[[Any], Any]


class InvocationTimeout(BaseException):
    """Raised inside a function that ran past the timeout (BaseException: user code can't swallow it)."""


@dataclass
class OrchestratorOutcome:
    state: dict[str, Any] | None  # the SDK's OrchestratorState (isDone, actions, output, customStatus)
    error: str | None = None

    @property
    def actions(self) -> list[dict[str, Any]]:
        if not self.state:
            return []
        actions = self.state.get("actions") or []
        if self.state.get("schemaVersion") is None:  # V1 payload: one list per episode
            return [a for group in actions for a in group]
        return list(actions[0]) if actions else []

    @property
    def done(self) -> bool:
        return bool(self.state and self.state.get("isDone"))


@dataclass
class ActivityOutcome:
    result: str | None = None
    reason: str | None = None
    details: str | None = None

    @property
    def failed(self) -> bool:
        return self.reason is not None


# AzureStorageDurabilityProvider: MaximumDelayTime and LongRunningTimerIntervalLength (.NET TimeSpan "c")
MAXIMUM_SHORT_TIMER_DURATION = "6.00:00:00"
LONG_RUNNING_TIMER_INTERVAL = "3.00:00:00"


def orchestration_context(instance_id: str, history: list[Event], input_: Any, replaying: bool) -> str:
    """The context JSON the extension sends (``OrchestrationContextToString``)."""
    return json.dumps({
        "history": history,
        "input": input_,
        "instanceId": instance_id,
        "isReplaying": replaying,
        "parentInstanceId": None,
        "upperSchemaVersion": 1,  # the extension sends SchemaVersion.V2 ...
        "upperSchemaVersionNew": 3,  # ... and V4, which the SDK caps to its newest (V3)
        # The Azure Storage provider's timer limits, as the extension sends them: the SDK splits a
        # timer longer than 6 days into 3-day timers (LongTimerTask), exactly as on Azure.
        "maximumShortTimerDuration": MAXIMUM_SHORT_TIMER_DURATION,
        "longRunningTimerIntervalDuration": LONG_RUNNING_TIMER_INTERVAL,
    })


def run_orchestrator(function: TriggeredFunction, context_json: str, timeout: float) -> OrchestratorOutcome:
    datum = meta.Datum(type="string", value=context_json)
    context = OrchestrationTriggerConverter.decode(datum, trigger_metadata=None)
    try:
        value = call_with_timeout(lambda: function.function(**{function.trigger_param: context}), timeout,
                                  f"orchestrator {function.name!r}")
    except InvocationTimeout as exc:
        return OrchestratorOutcome(None, str(exc))
    except Exception as exc:
        message = str(exc)
        if OUT_OF_PROC_MARKER in message:
            head, _, data = message.partition(OUT_OF_PROC_MARKER)
            try:
                state = json.loads(data)
            except ValueError:
                return OrchestratorOutcome(None, head)
            return OrchestratorOutcome(state, state.get("error") or head)
        return OrchestratorOutcome(None, f"{type(exc).__name__}: {exc}")
    encoded = OrchestrationTriggerConverter.encode(value, expected_type=None).value
    state = json.loads(encoded) if isinstance(encoded, str | bytes) else encoded
    return OrchestratorOutcome(state)


def run_activity(function: TriggeredFunction, name: str, input_text: str | None, providers: Providers,
                 run_async: AsyncRunner, timeout: float) -> ActivityOutcome:
    datum = meta.Datum(type="json", value=input_text if input_text is not None else "null")
    try:
        value = ActivityTriggerConverter.decode(datum, trigger_metadata=None)
        kwargs = bind_arguments(function.function, function.bindings, function.trigger_param, value, providers)

        def invoke() -> Any:
            result = function.function(**kwargs)
            return run_async(result) if inspect.isawaitable(result) else result

        result = call_with_timeout(invoke, timeout, f"activity {name!r}")
        encoded = ActivityTriggerConverter.encode(result, expected_type=None)
        return ActivityOutcome(result=encoded.value)
    except InvocationTimeout as exc:
        return ActivityOutcome(reason=f"Activity function '{name}' failed: {exc}", details=None)
    except Exception as exc:
        return ActivityOutcome(reason=f"Activity function '{name}' failed: {type(exc).__name__}: {exc}",
                               details="".join(traceback.format_exception(exc)).strip())


def call_with_timeout(target: Callable[[], Any], timeout: float, what: str) -> Any:
    """Run ``target`` in this thread; past ``timeout`` seconds, raise :class:`InvocationTimeout` in it.

    The Functions host stops an invocation at ``functionTimeout``; a runaway replay (e.g. a loop
    over an event the SDK keeps re-delivering) would otherwise hold a worker thread forever. The
    exception lands at the next Python bytecode, so a call blocked in C returns first.
    """
    if timeout <= 0:
        return target()
    thread_id = threading.get_ident()
    fired = threading.Event()
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(timeout):
            fired.set()
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(InvocationTimeout))

    guard = threading.Thread(target=watchdog, name="devhost-durable-watchdog", daemon=True)
    guard.start()
    try:
        return target()
    except InvocationTimeout:
        raise InvocationTimeout(f"Timeout value of {timeout:g} s was exceeded by {what}.") from None
    finally:
        done.set()
        if fired.is_set():  # the async exception may still be pending: clear it
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
