"""The broker's error catalogue: every refusal an agent can receive, as RFC 9457 problem details.

Agents act on ``code``; people read ``title`` and ``detail``; a denial carries a ``remedy``.
Domain modules raise these; the HTTP adapter turns them into ``application/problem+json``.

    BrokerError
    ├── BadRequest            400  invalid_json, invalid_request, unsupported_command,
    │                              body_too_deep, number_too_long, invalid_text (api/_body.py)
    ├── Unauthenticated       401  missing_token, invalid_token
    ├── Forbidden             403  policy_denied, not_requester, not_auditor
    ├── NotFound              404  unknown_target, not_found
    ├── Conflict              409  already_decided, ...
    ├── Gone                  410  expired
    ├── PayloadTooLarge       413  body_too_large
    ├── UnsupportedMediaType  415  unsupported_media_type
    ├── CommandFailed         422  query_failed (the target refused the command)
    ├── Unavailable           503  journal_unavailable, secrets_unavailable, target_unavailable, engine_unavailable
    └── TimedOut              504  statement_timeout
"""

from __future__ import annotations

from typing import Any, ClassVar

from broker.problem_codes import CODES


class BrokerError(Exception):
    """A refusal with a machine-readable code; ``detail`` must never contain a secret."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        remedy: str | None = None,
        extra: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.remedy = remedy
        self.extra = dict(extra or {})
        self.retry_after = retry_after
        """Seconds after which the same call may succeed: sent as the ``Retry-After`` header."""
        self.operations: list[dict[str, Any]] = []
        """What a failing command had already done on the target (Kubernetes API calls): journaled
        with the error, never sent to the caller."""

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The problem+json body (RFC 9457) with the broker's extension members.

        ``type`` is the page for the code on the same broker (``/api/problems/{code}``): absolute
        when the request URL (``instance``) is known, else a relative reference.
        """
        origin = "/".join(instance.split("/")[:3]) if instance and "://" in instance else ""
        body: dict[str, Any] = {
            "type": f"{origin}/api/problems/{self.code}",  # served from broker.problem_codes
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        remedy = self.remedy or _catalogued_action(self.code)
        if remedy:
            body["remedy"] = remedy
        body.update(self.extra)
        return body


def _catalogued_action(code: str) -> str | None:
    """The catalogue's "what to do" for a code, so that every refusal tells the caller its next step
    even where the raising code gave no remedy of its own (an agent acts on ``remedy``)."""
    entry = CODES.get(code)
    return entry.action if entry else None


class BadRequest(BrokerError):
    status = 400
    default_code = "invalid_request"
    title = "Bad request"


def invalid_body(error: Any, contract: str) -> BadRequest:
    """A pydantic ``ValidationError`` on a request body, as 400 ``invalid_request`` naming each
    field and what is wrong with it (never the submitted value)."""
    problems = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
                for e in error.errors()]
    return BadRequest(f"The request body does not match the {contract} contract.", code="invalid_request",
                      extra={"errors": problems})


class Unauthenticated(BrokerError):
    status = 401
    default_code = "invalid_token"
    title = "Unauthenticated"


class Forbidden(BrokerError):
    status = 403
    default_code = "policy_denied"
    title = "Forbidden"


class NotFound(BrokerError):
    status = 404
    default_code = "not_found"
    title = "Not found"


class Conflict(BrokerError):
    status = 409
    default_code = "conflict"
    title = "Conflict"


class Gone(BrokerError):
    status = 410
    default_code = "expired"
    title = "Gone"


class PayloadTooLarge(BrokerError):
    status = 413
    default_code = "body_too_large"
    title = "Payload too large"


class TooManyRequests(BrokerError):
    status = 429
    default_code = "too_many_requests"
    title = "Too many requests"


class UnsupportedMediaType(BrokerError):
    status = 415
    default_code = "unsupported_media_type"
    title = "Unsupported media type"


class CommandFailed(BrokerError):
    status = 422
    default_code = "query_failed"
    title = "The target refused the command"


class Unavailable(BrokerError):
    status = 503
    default_code = "unavailable"
    title = "Service unavailable"


class TimedOut(BrokerError):
    status = 504
    default_code = "statement_timeout"
    title = "Timed out"
