"""A tiny Function app with timer triggers, for the devhost timer tests."""

from __future__ import annotations

import threading

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
RUNS: list[tuple[str, bool]] = []
RAN = threading.Condition()


def _ran(name: str, timer: func.TimerRequest) -> None:
    with RAN:
        RUNS.append((name, timer.past_due))
        RAN.notify_all()


@app.timer_trigger(arg_name="tick", schedule="* * * * * *")
def every_second(tick: func.TimerRequest) -> None:
    _ran("every_second", tick)


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *")
def yearly(timer: func.TimerRequest) -> None:
    _ran("yearly", timer)


@app.timer_trigger(arg_name="timer", schedule="%JOURNAL_TEST_SCHEDULE%")
async def configured(timer: func.TimerRequest) -> None:
    _ran("configured", timer)


@app.timer_trigger(arg_name="timer", schedule="0 */5 * * *")
def five_fields(timer: func.TimerRequest) -> None:
    _ran("five_fields", timer)


@app.route(route="hello", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hi")
