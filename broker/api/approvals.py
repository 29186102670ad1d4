"""Approvers' endpoints.

``GET  /api/approvals/{id}?t=<link token>``  shows the approval page; decides nothing (mail
                                             scanners and link previews open every link).
``POST /api/approvals/{id}``                 the page's form: link token + CSRF nonce (form field
                                             and SameSite=Strict cookie) + Origin check.
``POST /api/approvals/{id}/decision``        an approver's own Entra token (channel ``entra``), an
                                             app with the delegate role naming the approver it acts
                                             for (``entra-app``), or an HMAC-signed body (``hmac``).
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.durable_functions as df
import azure.functions as func

from broker.api._body import parse_json
from broker.api._durable import blocking, durable_route
from broker.api._http import call_context, json_response, route_request_id
from broker.approvals import Accepted, page
from broker.approvals import signature as hmac_signature
from broker.approvals.independence import CALLER_ROLE, Actor, approver_key
from broker.execute import CallContext
from broker.identity import Principal
from broker.problems import (
    BadRequest,
    BrokerError,
    Forbidden,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
)
from broker.runtime import Broker, get_broker
from broker.workflows.wait import decision_event

bp = df.Blueprint()
MAX_FORM_BYTES = 16 * 1024


def _html(body: str, status: int, headers: dict[str, str]) -> func.HttpResponse:
    return func.HttpResponse(body, status_code=status, headers=headers, mimetype="text/html", charset="utf-8")


def _refusal_page(error: BrokerError) -> func.HttpResponse:
    html, headers = page.refusal(error)
    return _html(html, error.status, headers)


def _request_id(req: func.HttpRequest) -> str:
    return route_request_id(req, "approval request")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@bp.route(route="approvals/{request_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def approval_page(req: func.HttpRequest) -> func.HttpResponse:
    try:
        rid = _request_id(req)
        broker = get_broker()
        token = req.params.get("t", "")
        view = broker.approvals.desk.view(rid, token, call_context(req))
        html, headers = page.page(view, action=f"/api/approvals/{rid}", token=token)
        if view.state == "open":
            secure = broker.settings.public_base_url.lower().startswith("https://")
            headers["Set-Cookie"] = page.nonce_cookie(rid, view.nonce, broker.settings.approval_form_seconds, secure)
        return _html(html, 200, headers)
    except BrokerError as error:
        return _refusal_page(error)
    except Exception:
        return _refusal_page(BrokerError("The broker hit an internal error; nothing was decided."))


@bp.route(route="approvals/{request_id}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def approval_form(req: func.HttpRequest, client: str) -> func.HttpResponse:
    durable: df.DurableOrchestrationClient = client  # type: ignore[assignment]  # the df middleware built it
    try:
        rid = _request_id(req)
        broker = await blocking(get_broker)
        ctx = call_context(req)
        form = _form(req)
        expected = _origin(broker.settings.public_base_url or req.url)
        origin = (req.headers.get("origin") or "").lower()
        if origin and origin != "null" and origin != expected:
            await blocking(broker.approvals.desk.refuse, Forbidden(
                "The decision was posted from another site.", code="csrf_failed"), rid, ctx, "link")
        accepted = await blocking(broker.approvals.desk.decide_by_link, rid, form, _cookie(req), ctx)
        await _deliver(durable, broker, accepted, ctx)
        approvals = sum(d.verdict == "approve" for d in await blocking(broker.approvals.approvals.store.decisions, rid))
        html, headers = page.outcome(accepted, approvals)
        headers["Set-Cookie"] = page.nonce_cookie(rid, "", 0, False)
        return _html(html, 200, headers)
    except BrokerError as error:
        return _refusal_page(error)
    except Exception:
        return _refusal_page(BrokerError("The broker hit an internal error; your decision was not counted."))


def _form(req: func.HttpRequest) -> dict[str, str]:
    ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("Decide through the approval page's form.")
    raw = req.get_body() or b""
    if len(raw) > MAX_FORM_BYTES:
        raise BadRequest("The form is too large.", code="invalid_request")
    try:
        form = dict(parse_qsl(raw.decode("ascii"), max_num_fields=10, errors="strict"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The form is malformed.", code="invalid_request") from exc
    if any("\x00" in k or "\x00" in v for k, v in form.items()):
        raise BadRequest("A form field contains a NUL character, which is not text.", code="invalid_text")
    return form


def _cookie(req: func.HttpRequest) -> str:
    try:
        jar = SimpleCookie(req.headers.get("cookie") or "")
    except CookieError:
        return ""
    morsel = jar.get(page.NONCE_COOKIE)
    return morsel.value if morsel else ""


async def _deliver(client: df.DurableOrchestrationClient, broker: Broker, accepted: Accepted, ctx: CallContext) -> None:
    """Hand the decision to the waiting orchestration; undo it if that fails, so it can be retried."""
    try:
        await client.raise_event(accepted.request.request_id, decision_event(accepted.approver), accepted.event())
    except Exception as exc:
        await blocking(broker.approvals.approvals.store.release, accepted.request.request_id, accepted.token_id,
                       accepted.approver)
        error = Unavailable("Your decision could not be delivered to the waiting request; it was not counted. "
                            "Try again.", code="workflow_unavailable")
        await blocking(broker.approvals.desk.journal_refusal, error, accepted.request.request_id, ctx,
                       accepted.via, accepted.approver, accepted.name)
        raise error from exc


@bp.route(route="approvals/{request_id}/decision", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@durable_route(authenticate=False)
async def approval_decision(req: func.HttpRequest, client: df.DurableOrchestrationClient, broker: Broker,
                            principal: Principal | None) -> func.HttpResponse:
    rid = _request_id(req)
    ctx = call_context(req)
    desk = broker.approvals.desk
    raw = req.get_body() or b""
    if len(raw) > broker.settings.max_body_bytes:
        raise PayloadTooLarge(f"The body is larger than {broker.settings.max_body_bytes} bytes.")
    signed = req.headers.get(hmac_signature.HEADER)
    body = parse_json(raw) if raw else None
    if not isinstance(body, dict):
        raise BadRequest("Send a JSON object: {\"verdict\": \"approve\"|\"deny\", \"approver\": {...}}.",
                         code="invalid_json")
    named = body.get("approver") if isinstance(body.get("approver"), dict) else {}
    name = str(named.get("name", ""))[:100]
    actor: Actor | None = None
    if signed is not None:
        try:
            if not named:
                raise BadRequest("A signed decision names its approver: {\"approver\": {\"tenant_id\", "
                                 "\"object_id\", \"name\"}}.", code="invalid_request")
            key = await blocking(broker.credentials.resolve, broker.approvals.hmac_key)
            mac = hmac_signature.verify(key.value.encode(), signed, raw,
                                        window_seconds=broker.settings.approval_hmac_window_seconds)
            approver = approver_key(named.get("tenant_id"), named.get("object_id"))
            if not await blocking(broker.approvals.approvals.store.use_token, rid, f"sig-{mac}", approver):
                raise Forbidden("This signed decision was used already (a replay).", code="signature_replayed")
        except BrokerError as error:
            await blocking(desk.refuse, error, rid, ctx, "hmac", "", name)
        via = "hmac"
    else:
        try:
            principal = await blocking(broker.validator.principal_from_header, req.headers.get("authorization"))
        except BrokerError as error:
            await blocking(desk.refuse, error, rid, ctx, "entra")
        actor = Actor(principal.tenant_id, principal.object_id, principal.app_id, principal.kind,
                      principal.display_name, principal.roles)
        try:
            approver, via = _entra_approver(principal, named)
        except BrokerError as error:
            await blocking(desk.refuse, error, rid, ctx, "entra", principal.key, principal.display_name, actor)
        name = name if via == "entra-app" else principal.display_name
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        await blocking(desk.refuse, BadRequest("The comment must be a string.", code="invalid_request"), rid, ctx, via,
                       approver, name, actor)
    accepted = await blocking(desk.decide_by_automation, rid, approver, name, str(body.get("verdict", "")), via, ctx,
                              actor, comment)
    await _deliver(client, broker, accepted, ctx)
    decisions = await blocking(broker.approvals.approvals.store.decisions, rid)
    return json_response({"request_id": rid, "recorded": True, "verdict": accepted.verdict, "via": via,
                          "approvals": sum(d.verdict == "approve" for d in decisions),
                          "quorum": accepted.request.quorum})


def _entra_approver(principal: Principal, named: dict[str, Any]) -> tuple[str, str]:
    """A person decides as themself (``entra``); naming someone else is deciding on their behalf
    (``entra-app``), which the desk allows only to an application holding the delegate role."""
    if CALLER_ROLE in principal.roles:
        raise Forbidden(f"An identity holding {CALLER_ROLE} (an agent) never decides approvals, not even for "
                        "someone it names.", code="caller_cannot_approve")
    own = approver_key(principal.tenant_id, principal.object_id)
    if named:
        key = approver_key(named.get("tenant_id"), named.get("object_id"))
        if key != own:
            return key, "entra-app"
    if principal.kind != "user":
        raise Forbidden("An application is not an approver; with the delegate role it names the person it "
                        "decides for.", code="not_an_approver")
    return own, "entra"
