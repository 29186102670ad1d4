"""Kubernetes API failures as the broker's problems, with the API server's own message."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from broker.problems import BrokerError, CommandFailed, Conflict, NotFound, TimedOut, Unavailable


def api_message(exc: ApiException) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])[:1000]
    return str(getattr(exc, "reason", "") or "no message")[:1000]


def api_error(exc: Exception, target: str) -> BrokerError:
    """Map a client exception; the message may quote values, and CommandFailed details get masked."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message = api_message(exc)
        if status == 0:
            return Unavailable(f"Target {target} is unreachable: {message}", code="target_unavailable")
        if status == 401:
            return Unavailable(f"Target {target} refused the broker's credential.", code="target_auth_failed")
        if status == 403:
            return CommandFailed(f"The cluster does not let the broker's identity do this: {message}",
                                 code="kubernetes_forbidden")
        if status == 404:
            return NotFound(f"Kubernetes: {message}", code="kubernetes_not_found")
        if status == 409:
            return Conflict(f"Kubernetes: {message}", code="kubernetes_conflict")
        if status in (400, 405, 415, 422):
            return CommandFailed(f"The API server refused the request: {message}", code="kubernetes_invalid")
        if status == 504:
            return TimedOut(f"The API server timed out: {message}", code="kubernetes_timeout")
        if status == 429 or status >= 500:
            return Unavailable(f"Target {target} answered {status}: {message}", code="target_unavailable")
        return CommandFailed(f"Kubernetes answered {status}: {message}", code="kubernetes_error")
    if isinstance(exc, (Urllib3Error, OSError)):
        if "timed out" in str(exc).lower():
            return TimedOut(f"Target {target} did not answer in time.", code="kubernetes_timeout")
        return Unavailable(f"Target {target} is unreachable.", code="target_unavailable")
    return Unavailable(f"Target {target}: the Kubernetes client failed ({type(exc).__name__}).",
                       code="target_unavailable")
