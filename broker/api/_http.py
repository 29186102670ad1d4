"""Request parsing and response rendering shared by the HTTP functions."""

from __future__ import annotations

import inspect
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func

from broker.api._body import parse_json
from broker.problems import BadRequest, BrokerError, NotFound, PayloadTooLarge, UnsupportedMediaType
from broker.runtime import get_broker

if TYPE_CHECKING:  # the domain loads with the broker (first call), not when the host indexes the app
    from broker.execute import CallContext
    from broker.identity import Principal
    from broker.runtime import Broker

log = logging.getLogger("broker.api")

JSON = "application/json"
PROBLEM = "application/problem+json"
# What the broker mints (uuid4, lower case); the OpenAPI RequestId parameter says the same.
REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status_code=status,
                             mimetype=JSON, headers={**_SECURITY_HEADERS, **(headers or {})})


def problem_response(error: BrokerError, instance: str | None = None,
                     headers: dict[str, str] | None = None) -> func.HttpResponse:
    """problem+json for ``error``; ``headers`` are added last (an ``Allow``, a route's own challenge)."""
    sent = dict(_SECURITY_HEADERS)
    if error.status == 401:
        sent["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{error.code}"'
    if error.retry_after is not None:
        sent["Retry-After"] = str(error.retry_after)
    return func.HttpResponse(json.dumps(error.to_problem(instance), ensure_ascii=False), status_code=error.status,
                             mimetype=PROBLEM, headers={**sent, **(headers or {})})


def route_request_id(req: func.HttpRequest, what: str = "request") -> str:
    """The ``{request_id}`` route segment, or 404 before any storage lookup with a key nobody minted."""
    rid = req.route_params.get("request_id", "")
    if not REQUEST_ID.fullmatch(rid):
        raise NotFound(f"No such {what}.", code="not_found")
    return rid


def read_json(req: func.HttpRequest, max_bytes: int) -> Any:
    """The body as JSON, refusing oversized, non-JSON, malformed and hostile bodies precisely (``_body``)."""
    declared = req.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The body is larger than {max_bytes} bytes.")
    raw = req.get_body() or b""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The body is larger than {max_bytes} bytes.")
    ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != JSON and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Send the body as {JSON}, not {ctype}.")
    if not raw:
        raise BadRequest("The request has no body; send a JSON object.", code="invalid_json")
    return parse_json(raw)


def call_context(req: func.HttpRequest) -> CallContext:
    from broker.execute import CallContext

    # The platform's front end appends the peer it saw; earlier hops are caller-supplied claims.
    forwarded = [hop.strip() for hop in req.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    ip = forwarded[-1] if forwarded else req.headers.get("x-client-ip", "")
    return CallContext(client_ip=ip[:64], forwarded_for=", ".join(forwarded)[:256],
                       user_agent=(req.headers.get("user-agent") or "")[:200],
                       http_request_id=(req.headers.get("x-request-id") or str(uuid.uuid4()))[:64])


Handler = Callable[[func.HttpRequest, "Broker", "Principal"], func.HttpResponse]


def refusal_response(error: Exception, req: func.HttpRequest, handler_name: str) -> func.HttpResponse:
    """Any exception a handler let through, as problem+json: a BrokerError as itself, anything
    else as an internal error whose details stay in the log (never in the answer)."""
    if isinstance(error, BrokerError):
        if error.status >= 500:
            log.warning("refused with %s: %s", error.code, error.detail)
        return problem_response(error, instance=req.url.split("?")[0])
    log.error("unhandled error in %s", handler_name, exc_info=error)
    return problem_response(BrokerError("The broker hit an internal error; nothing was returned.",
                                        code="internal_error"))


def authenticated(handler: Handler) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Wraps a handler: builds the broker, validates the bearer token, renders any refusal."""

    def wrapper(req: func.HttpRequest, *args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            broker = get_broker()
            principal = broker.validator.principal_from_header(req.headers.get("authorization"))
            return handler(req, broker, principal, *args, **kwargs)
        except Exception as error:
            return refusal_response(error, req, handler.__name__)

    # The Functions worker binds parameters by name: expose the handler's signature without the
    # two parameters this wrapper supplies.
    signature = inspect.signature(handler)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for name, p in signature.parameters.items() if name not in ("broker", "principal")])
    wrapper.__name__ = handler.__name__
    wrapper.__qualname__ = handler.__qualname__
    wrapper.__doc__ = handler.__doc__
    wrapper.__module__ = handler.__module__
    return wrapper
