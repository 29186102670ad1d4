"""Waiting for a pending request: polls ``GET /api/requests/{id}`` with a spinner and the time
left (on a terminal), or a line now and then (in a log), until the request ends."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from broker.cli._client import BrokerClient

WAITING = ("pending", "approved", "running", "active")
EXIT_CODES = {"done": 0, "active": 0, "revoked": 0, "denied": 3, "expired": 4, "failed": 5, "cancelled": 6}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def _left(expires_at: str) -> str:
    try:
        seconds = int((datetime.fromisoformat(expires_at) - datetime.now(UTC)).total_seconds())
    except ValueError:
        return "?"
    minutes, secs = divmod(max(0, seconds), 60)
    return f"{minutes}:{secs:02d}"


def describe(status: dict[str, Any]) -> str:
    state = status.get("status", "?")
    approvals = sum(1 for d in status.get("decisions", []) if d.get("verdict") == "approve")
    if state == "pending":
        return (f"waiting for approval ({approvals} of {status.get('quorum', 1)}) · "
                f"{_left(status.get('expires_at', ''))} left")
    return {"approved": "approved, starting", "running": "approved, running"}.get(state, state)


def wait(client: BrokerClient, request_id: str, *, until: tuple[str, ...] = WAITING, interval: float = 0.5,
         out: TextIO = sys.stderr, timeout: float | None = None) -> dict[str, Any]:
    """Poll until the request leaves ``until``; returns its last status."""
    spinner = itertools.cycle(SPINNER)
    tty = out.isatty()
    started = time.monotonic()
    last_line = 0.0
    while True:
        _, status = client.request("GET", f"/api/requests/{request_id}")
        if status.get("status") not in until:
            if tty:
                out.write("\r\033[K")
                out.flush()
            return status
        if timeout is not None and time.monotonic() - started > timeout:
            return status
        text = f"{describe(status)} · request {request_id}"
        if tty:
            out.write(f"\r\033[K{next(spinner)} {text}")
            out.flush()
        elif time.monotonic() - last_line > 10:
            out.write(text + "\n")
            out.flush()
            last_line = time.monotonic()
        time.sleep(interval)


def ended(status: dict[str, Any]) -> str:
    """A one-line account of how a request ended (for people)."""
    state = status.get("status", "?")
    decided = ", ".join(f"{d['approver']} ({d['verdict']})" for d in status.get("decisions", []))
    if state == "done":
        return f"approved by {decided}; ran once"
    if state == "denied":
        said = f"\napprover's comment: {status['approver_comment']}" if status.get("approver_comment") else ""
        step = f"\nnext: {status['next_step']}" if status.get("next_step") else ""
        return f"denied by {status.get('ended_by', {}).get('name') or decided or '?'}; nothing ran{said}{step}"
    if state == "cancelled":
        return f"cancelled by {status.get('ended_by', {}).get('name') or '?'}; nothing ran"
    if state == "expired":
        return "nobody approved in time; nothing ran"
    if state == "failed":
        error = status.get("error", {})
        return f"failed: {error.get('code', '?')}: {error.get('detail', '')}".rstrip(": ")
    if state == "active":
        return f"grant active until {status.get('grant', {}).get('expires_at', '?')} (approved by {decided})"
    return state


def settle(client: BrokerClient, pending: dict[str, Any], *, as_json: bool, no_wait: bool,
           render: Callable[[dict[str, Any]], Any]) -> int:
    """A 202 from ``/api/execute``: print where to look (``no_wait``), or wait and show how it ended."""
    import json

    if no_wait:
        keys = ("status", "request_id", "status_url", "expires_at")
        print(json.dumps({k: pending.get(k) for k in keys}, indent=2) if as_json else
              f"pending approval: request {pending['request_id']}\nstatus: {pending['status_url']}\n"
              f"expires: {pending['expires_at']}")
        return 0
    if not as_json:
        print(f"approval needed ({pending.get('risk')} on {pending.get('target')}): request "
              f"{pending['request_id']}, expires {pending['expires_at']}", flush=True)
    status = wait(client, pending["request_id"])
    if as_json:
        print(json.dumps(status, indent=2, ensure_ascii=False))
    else:
        print(ended(status))
        if status.get("status") == "done" and status.get("result"):
            render(status["result"])
    return EXIT_CODES.get(status.get("status", ""), 1)
