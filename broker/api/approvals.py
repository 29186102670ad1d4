"""Approvers' endpoints: this module only translates HTTP into an ``Inbound`` decision and the
channel's answer back into HTML or JSON; who decides is proven in ``broker.approvals.channels``.

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
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import azure.durable_functions as df
import azure.functions as func

from broker.api._body import parse_json
from broker.api._durable import blocking, durable_route
from broker.api._http import call_context, json_response, route_request_id
from broker.problems import BadRequest, BrokerError, PayloadTooLarge, UnsupportedMediaType
from broker.runtime import get_broker
from broker.workflows.wait import decision_event

if TYPE_CHECKING:  # the domain loads with the broker (first call), not when the host indexes the app
    from broker.approvals import Accepted
    from broker.approvals.channels import ApprovalChannels
    from broker.execute import CallContext
    from broker.identity import Principal
    from broker.runtime import Broker

bp = df.Blueprint()
MAX_FORM_BYTES = 16 * 1024


def _html(body: str, status: int, headers: dict[str, str]) -> func.HttpResponse:
    return func.HttpResponse(body, status_code=status, headers=headers, mimetype="text/html", charset="utf-8")


def _refusal_page(error: BrokerError) -> func.HttpResponse:
    from broker.approvals import page

    html, headers = page.refusal(error)
    return _html(html, error.status, headers)


def _request_id(req: func.HttpRequest) -> str:
    return route_request_id(req, "approval request")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _channels(broker: Broker) -> ApprovalChannels:
    return broker.approvals.channels  # built once, in the composition root


def _headers(req: func.HttpRequest) -> dict[str, str]:
    return {name.lower(): value for name, value in req.headers.items()}


@bp.route(route="approvals/{request_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def approval_page(req: func.HttpRequest) -> func.HttpResponse:
    try:
        rid = _request_id(req)
        broker = get_broker()
        from broker.approvals import page

        token = req.params.get("t", "")
        view = _channels(broker).link.show(rid, token, call_context(req))
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
        broker = await blocking(get_broker)  # imports the domain off the event loop on a cold start
        from broker.approvals import page
        from broker.approvals.channels import Inbound

        channels = _channels(broker)
        ctx = call_context(req)
        inbound = Inbound(rid, ctx, _form(req), headers=_headers(req), cookie_nonce=_cookie(req),
                          page_origin=_origin(broker.settings.public_base_url or req.url))
        accepted = await blocking(channels.link.receive, inbound)
        await _deliver(durable, channels, accepted, ctx)
        html, headers = page.outcome(accepted, await blocking(channels.approvals, rid))
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
    from broker.approvals import page

    try:
        jar = SimpleCookie(req.headers.get("cookie") or "")
    except CookieError:
        return ""
    morsel = jar.get(page.NONCE_COOKIE)
    return morsel.value if morsel else ""


async def _deliver(client: df.DurableOrchestrationClient, channels: ApprovalChannels, accepted: Accepted,
                   ctx: CallContext) -> None:
    """Hand the decision to the waiting orchestration; undo it if that fails, so it can be retried."""
    try:
        await client.raise_event(accepted.request.request_id, decision_event(accepted.approver), accepted.event())
    except Exception as exc:
        raise await blocking(channels.withdraw, accepted, ctx) from exc


@bp.route(route="approvals/{request_id}/decision", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@durable_route(authenticate=False)
async def approval_decision(req: func.HttpRequest, client: df.DurableOrchestrationClient, broker: Broker,
                            principal: Principal | None) -> func.HttpResponse:
    from broker.approvals.channels import Inbound

    rid = _request_id(req)
    ctx = call_context(req)
    raw = req.get_body() or b""
    if len(raw) > broker.settings.max_body_bytes:
        raise PayloadTooLarge(f"The body is larger than {broker.settings.max_body_bytes} bytes.")
    body = parse_json(raw) if raw else None
    if not isinstance(body, dict):
        raise BadRequest("Send a JSON object: {\"verdict\": \"approve\"|\"deny\", \"approver\": {...}}.",
                         code="invalid_json")
    channels = _channels(broker)
    inbound = Inbound(rid, ctx, body, raw, _headers(req))
    accepted = await blocking(channels.for_decision(inbound).receive, inbound)
    await _deliver(client, channels, accepted, ctx)
    return json_response({"request_id": rid, "recorded": True, "verdict": accepted.verdict, "via": accepted.via,
                          "approvals": await blocking(channels.approvals, rid), "quorum": accepted.request.quorum})
