"""A small Durable Functions app that exercises every feature of the devhost's engine.

Served by ``python -m devhost serve --app tests.devhost.sample_app`` in the end-to-end tests and
imported directly by the unit tests. Activities leave traces in ``$DURABLE_SAMPLE_DIR`` (a log
line per call, attempt counters, gates the tests open), so tests can count what ran.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _dir() -> Path:
    path = Path(os.environ.get("DURABLE_SAMPLE_DIR", "/tmp/durable-sample"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _log(line: str) -> None:
    with open(_dir() / "calls.log", "a") as f:
        f.write(line + "\n")


# --- activities -------------------------------------------------------------------------------
@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    _log(f"say_hello:{name}")
    return f"Hello {name}!"


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    _log(f"double:{value}")
    return value * 2


@app.activity_trigger(input_name="payload")
def record(payload: dict) -> dict:
    """A side effect that must happen once: appends to the call log."""
    _log(f"record:{json.dumps(payload, sort_keys=True)}")
    return {"recorded": payload}


@app.activity_trigger(input_name="job")
def flaky(job: dict) -> str:
    """Fails until it has been called ``succeed_on`` times for ``job['key']``."""
    counter = _dir() / f"attempts-{job['key']}"
    attempts = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempts))
    _log(f"flaky:{job['key']}:{attempts}")
    if attempts < job["succeed_on"]:
        raise RuntimeError(f"attempt {attempts} failed")
    return f"ok after {attempts}"


@app.activity_trigger(input_name="key")
async def gate(key: str) -> str:
    """Waits until the test opens ``gate-<key>`` (an async activity, run on the devhost's loop)."""
    import asyncio

    _log(f"gate-start:{key}")
    deadline = time.monotonic() + 30
    while not (_dir() / f"gate-{key}").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {key} never opened")
        await asyncio.sleep(0.02)
    _log(f"gate-end:{key}")
    return key


# --- orchestrators ----------------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    names = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for name in names:
        results.append((yield context.call_activity("say_hello", name)))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input() or 5
    values = yield context.task_all([context.call_activity("double", i) for i in range(count)])
    return sum(values)


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    job = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=job.get("interval_ms", 1000),
                              max_number_of_attempts=job["max_attempts"])
    try:
        result = yield context.call_activity_with_retry("flaky", options, job)
    except Exception as exc:
        context.set_custom_status({"gave_up": str(exc).splitlines()[0]})
        raise
    return result


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    seconds = context.get_input() or 3600
    context.set_custom_status("sleeping")
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    return "woke up"


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    """The approval shape: notify, race a decision against a deadline, act once or expire."""
    request = context.get_input()
    yield context.call_activity("record", {"step": "notify", "id": request["id"]})
    context.set_custom_status("waiting")
    decision = context.wait_for_external_event("decision")
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=request["timeout_s"]))
    winner = yield context.task_any([decision, deadline])
    if winner == decision:
        deadline.cancel()
        answer = json.loads(decision.result) if isinstance(decision.result, str) else decision.result
        if answer.get("approved"):
            context.set_custom_status("running")
            result = yield context.call_activity("record", {"step": "run", "id": request["id"]})
            return {"outcome": "done", "result": result, "by": answer.get("by")}
        return {"outcome": "denied", "by": answer.get("by")}
    return {"outcome": "expired"}


@app.orchestration_trigger(context_name="context")
def late_listener(context: df.DurableOrchestrationContext):
    """Sleeps first, then waits: events raised meanwhile must be waiting for it."""
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=60))
    first = yield context.wait_for_external_event("ping")
    return first


@app.orchestration_trigger(context_name="context")
def gated(context: df.DurableOrchestrationContext):
    key = context.get_input()
    yield context.call_activity("gate", key)
    yield context.call_activity("record", {"step": "after-gate", "key": key})
    return key


@app.orchestration_trigger(context_name="context")
def forever(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting forever")
    yield context.wait_for_external_event("never")
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def drifting(context: df.DurableOrchestrationContext):
    """Deliberately non-deterministic: the activity it calls comes from a file the test changes."""
    name = (_dir() / "drift-mode").read_text().strip()
    yield context.call_activity(name, "x")
    yield context.wait_for_external_event("go")
    return name


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    state = context.get_input() or {"n": 0, "until": 3}
    value = yield context.call_activity("double", state["n"])
    if state["n"] + 1 < state["until"]:
        context.continue_as_new({"n": state["n"] + 1, "until": state["until"], "last": value})
        return None
    return {"n": state["n"], "last": value}


@app.orchestration_trigger(context_name="context")
def quorum_shared_timer(context: df.DurableOrchestrationContext):
    """A known pitfall: re-racing one deadline timer; in Azure the expiry path stalls."""
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=60))
    votes = []
    while len(votes) < 2:
        vote = context.wait_for_external_event("vote")
        winner = yield context.task_any([vote, deadline])
        if winner == deadline:
            yield context.call_activity("record", {"step": "expired"})
            return "expired"
        votes.append(vote.result)
    return votes


@app.orchestration_trigger(context_name="context")
def forgets_timer(context: df.DurableOrchestrationContext):
    """Wins the race against a deadline but never cancels it: the instance stays Running."""
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=60))
    winner = yield context.task_any([context.wait_for_external_event("go"), deadline])
    return "event" if winner != deadline else "deadline"


@app.orchestration_trigger(context_name="context")
def big(context: df.DurableOrchestrationContext):
    """Inputs and results larger than a table property (they go to blobs)."""
    text = context.get_input()
    echoed = yield context.call_activity("echo", text)
    return {"length": len(echoed)}


@app.activity_trigger(input_name="text")
def echo(text: str) -> str:
    return text


# --- HTTP functions with the durable client ---------------------------------------------------
def _json(body: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@app.route(route="orchestrators/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["name"], req.route_params.get("instance_id"),
                                         json.loads(body) if body else None)
    return client.create_check_status_response(req, instance_id)


@app.route(route="instances/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    history = req.params.get("history") == "1"
    found = await client.get_status(req.route_params["instance_id"], show_history=history,
                                    show_history_output=history, show_input=True)
    if not found:
        return _json({"found": False}, 404)
    body = found.to_json()
    body["historyEvents"] = getattr(found, "historyEvents", None)
    return _json(body)


@app.route(route="instances/{instance_id}/events/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        await client.raise_event(req.route_params["instance_id"], req.route_params["event"], req.get_json())
    except Exception as exc:
        return _json({"error": str(exc)}, 409)
    return _json({"raised": True}, 202)


@app.route(route="instances/{instance_id}/terminate", methods=["POST"])
@app.durable_client_input(client_name="client")
async def terminate(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.terminate(req.route_params["instance_id"], req.params.get("reason", "stopped by test"))
    return _json({"terminated": True}, 202)


@app.route(route="instances/{instance_id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def purge(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    result = await client.purge_instance_history(req.route_params["instance_id"])
    return _json({"instancesDeleted": result.instances_deleted})


@app.route(route="instances", methods=["GET"])
@app.durable_client_input(client_name="client")
async def query(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    wanted = [df.OrchestrationRuntimeStatus(s) for s in req.params.get("status", "").split(",") if s]
    found = await client.get_status_by(runtime_status=wanted or None)
    return _json([s.to_json() for s in found])


@app.orchestration_trigger(context_name="context")
def uses_http(context: df.DurableOrchestrationContext):
    yield context.call_http("GET", "https://example.invalid/")
    return "unreachable"



@app.orchestration_trigger(context_name="context")
def two_pings(context: df.DurableOrchestrationContext):
    """Waits twice for the same event name after sleeping (see the SDK quirk test)."""
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=60))
    first = yield context.wait_for_external_event("ping")
    second = yield context.wait_for_external_event("ping")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def mixed_fan_out(context: df.DurableOrchestrationContext):
    """Retrying and plain activities in one task_all, then a race with a retrying activity."""
    job = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
    results = yield context.task_all([context.call_activity_with_retry("flaky", options, job),
                                      context.call_activity("double", 21)])
    racer = context.call_activity_with_retry("flaky", options, {**job, "key": job["key"] + "-2"})
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    winner = yield context.task_any([racer, timer])
    if winner == racer:
        timer.cancel()
    return [*results, "racer" if winner == racer else "timer"]
