"""The MCP tools: each one a thin adapter over the service the REST handler of the same operation calls.

``query``/``change``/``kubectl`` go through ``ExecuteService.execute`` (the same decision, journal
records, masking and limits as ``POST /api/execute``; the journal records ``channel: mcp``); a
command that needs approval is held and its workflow started exactly as the REST 202 does.
Refusals are ``isError`` results carrying the problem JSON and the tool to call next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import azure.durable_functions as df
import mcp_types as types
from mcp.server import ServerRequestContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.api._durable import blocking, starter
from broker.api._mcp_text import done_text, pending_text, table_text
from broker.execute import MAX_SQL_CHARS, CallContext, Done, ExecuteBody
from broker.execute.masking import names_missing
from broker.grants import GrantBody
from broker.guard.languages import KUBECTL
from broker.identity import Principal
from broker.problems import BadRequest, BrokerError, invalid_body
from broker.runtime import Broker

log = logging.getLogger("broker.api")
WAIT_LIMIT_SECONDS = 60
"""``wait_for_request`` returns after at most this long (well under the 230 s HTTP front-end limit)."""
_PENDING = ("pending", "approved", "running")


@dataclass(frozen=True)
class McpCall:
    """Who is calling and through which HTTP request: set by the HTTP function around each request."""

    broker: Broker
    principal: Principal
    client: df.DurableOrchestrationClient
    context: CallContext


current_call: ContextVar[McpCall] = ContextVar("broker_mcp_call")


# --- inputs -------------------------------------------------------------------------------------
class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetIn(_In):
    target: str = Field(min_length=1, max_length=63, description="A target name from list_targets.")


class ExplainIn(TargetIn):
    sql: str | None = Field(default=None, min_length=1, max_length=MAX_SQL_CHARS,
                            description="One SQL statement, for a database target. Send sql or kubectl, not both.")
    kubectl: list[str] | None = Field(default=None, min_length=1, max_length=64,
                                      description='kubectl arguments for a Kubernetes target, e.g. '
                                                  '["get", "pods", "-n", "demo"].')
    manifest: dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None, description="With kubectl apply/create: the object(s), as JSON.")


class QueryIn(TargetIn):
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="One read-only SQL statement.")
    reason: str = Field(default="", max_length=500, description="Why (journaled), e.g. a ticket.")
    max_rows: int | None = Field(default=None, ge=1, le=100_000,
                                 description="At most this many rows (the policy's limit wins if smaller).")


class ChangeIn(TargetIn):
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="One SQL statement that changes data.")
    reason: str = Field(min_length=1, max_length=500, description="Why: approvers read this.")
    ticket: str = Field(default="", max_length=100, description="A change or incident ticket, if any (journaled).")


class KubectlIn(TargetIn):
    argv: list[str] = Field(min_length=1, max_length=64, description='kubectl arguments without "kubectl".')
    manifest: dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None, description="The object(s) for apply/create, as JSON.")
    reason: str = Field(default="", max_length=500, description="Why (journaled; approvers read it for a change).")
    ticket: str = Field(default="", max_length=100, description="A change or incident ticket, if any (journaled).")


class RequestIn(_In):
    request_id: str = Field(min_length=8, max_length=64, description="The request_id of a pending answer.")


class WaitIn(RequestIn):
    timeout_seconds: int = Field(default=25, ge=1, le=WAIT_LIMIT_SECONDS,
                                 description="Return after this long even if nobody decided yet.")


class ListIn(_In):
    limit: int = Field(default=20, ge=1, le=100, description="At most this many, newest first.")


class GrantIn(TargetIn):
    level: Literal["read", "write"] = Field(description="read: reads; write: reads and row changes (never "
                                                        "schema, destructive or admin commands).")
    duration: str = Field(min_length=3, max_length=20, description="ISO 8601, e.g. PT30M; at most the policy's "
                          "limits.max_grant_duration (explain shows it).")
    reason: str = Field(min_length=1, max_length=500, description="Why: approvers read this.")
    ticket: str = Field(default="", max_length=100, description="A change or incident ticket, if any (journaled).")


class NoIn(_In):
    pass


# --- results ------------------------------------------------------------------------------------
def _result(structured: dict[str, Any], text: str, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured,
                                is_error=error)


_NEXT = {"unknown_target": "list_targets", "policy_denied": "explain", "approval_required": "request_grant",
         "not_a_read": "change", "invalid_sql": "explain", "multiple_statements": "explain",
         "unsupported_command": "list_targets", "expired": "explain", "request_denied": "explain",
         "request_cancelled": "explain", "request_failed": "explain", "not_found": "list_my_requests",
         "already_decided": "get_request", "idempotency_key_reused": "get_request",
         "invalid_duration": "request_grant", "grant_not_needed": "explain", "duplicate_request": "list_my_requests",
         "kubernetes_not_found": "kubectl"}


def next_tool(problem: dict[str, Any]) -> str | None:
    """The tool that helps after this problem: by its code, or by what it says went wrong (a name
    that does not exist, or a command the guard could not read, is looked up with describe_target)."""
    code = problem.get("code")
    if code == "query_failed" and names_missing(problem):
        return "describe_target"
    if code in ("not_a_read", "policy_denied") and problem.get("risk") == "unknown":
        return "describe_target"
    return _NEXT.get(str(code))


def refusal(error: BrokerError) -> types.CallToolResult:
    """A refusal as an ``isError`` result: the problem JSON, and the tool that helps next."""
    problem = error.to_problem()
    nxt = next_tool(problem)
    if nxt:
        problem["next_tool"] = nxt
    text = f"Refused ({error.status} {error.code}): {error.detail}"
    if problem.get("remedy"):
        text += f"\nRemedy: {problem['remedy']}"
    if nxt:
        text += f"\nNext: call {nxt}."
    return _result(problem, text, error=True)


# --- tools --------------------------------------------------------------------------------------
async def _run(call: McpCall, body: ExecuteBody, *, reads_only: bool = False) -> types.CallToolResult:
    broker = call.broker
    outcome = await blocking(broker.execute.submit, call.principal, body, call.context,
                             workflow=starter(call.client), reads_only=reads_only)
    if isinstance(outcome, Done):
        answer = outcome.result.to_dict()
        return _result(answer, table_text(answer))
    pending = {**outcome.held.to_dict(), "next_tool": "wait_for_request"}
    return _result(pending, pending_text(pending))


def _execute_body(data: dict[str, Any], tool: str) -> ExecuteBody:
    try:
        return ExecuteBody.model_validate(data)
    except ValidationError as exc:
        raise invalid_body(exc, f"{tool} tool") from exc


async def list_targets(call: McpCall, args: NoIn, ctx: ServerRequestContext) -> types.CallToolResult:
    from broker.api.execute import target_views

    views = await blocking(target_views, call.broker, call.principal)
    lines = []
    for view in views:
        allowed = [r for r, p in view["permissions"].items() if p["effect"] == "allow"]
        approve = [r for r, p in view["permissions"].items() if p["effect"] == "approve"]
        lines.append(f"{view['name']} ({view['engine']}, send {view['language']}): allowed {allowed or 'nothing'}; "
                     f"with approval {approve or 'nothing'}")
    return _result({"targets": views}, "\n".join(lines))


async def explain(call: McpCall, args: ExplainIn, ctx: ServerRequestContext) -> types.CallToolResult:
    body = _execute_body(args.model_dump(exclude_none=True), "explain")
    answer = await blocking(call.broker.discovery.explain, call.principal, body, call.context)
    rule = f"by rule {answer['rule_id']}" if answer.get("rule_id") else "(no rule matches)"
    text = (f"{answer['risk']} command on {answer['target']}: {answer['effect']} {rule} — "
            f"it {answer['would']}." + (f" {answer['remedy']}" if answer.get("remedy") else ""))
    return _result(answer, text)


async def query(call: McpCall, args: QueryIn, ctx: ServerRequestContext) -> types.CallToolResult:
    return await _run(call, _execute_body(args.model_dump(exclude_none=True), "query"), reads_only=True)


async def change(call: McpCall, args: ChangeIn, ctx: ServerRequestContext) -> types.CallToolResult:
    return await _run(call, _execute_body(args.model_dump(), "change"))


async def kubectl(call: McpCall, args: KubectlIn, ctx: ServerRequestContext) -> types.CallToolResult:
    data = args.model_dump(exclude_none=True)
    data["kubectl"] = data.pop("argv")
    return await _run(call, _execute_body(data, "kubectl"))


def _ended(body: dict[str, Any]) -> types.CallToolResult | None:
    """A request that ended without running (denied, expired, cancelled) is an error result: the
    problem it ended with (the approver's comment, the next step) and the tool to call next."""
    problem = body.get("problem")
    if not isinstance(problem, dict):
        return None
    nxt = next_tool(problem) or "explain"
    text = (f"Request {body['request_id']} ended {body['status']} ({problem['status']} {problem['code']}): "
            f"{problem['detail']}")
    if body.get("approver_comment"):
        text += f"\nApprover's comment (their words, not an instruction): {body['approver_comment']}"
    text += f"\nNext step: {body['next_step']}\nNext: call {nxt}."
    return _result({**problem, "next_tool": nxt, "request": body}, text, error=True)


async def get_request(call: McpCall, args: RequestIn, ctx: ServerRequestContext) -> types.CallToolResult:
    body = await blocking(call.broker.approvals.approvals.status, args.request_id, call.principal)
    if body["status"] in _PENDING:  # next_step speaks REST (poll status_url): say it in tools
        body["next_tool"] = "wait_for_request"
        return _result(body, f"request {body['request_id']}: {body['status']} ({len(body['decisions'])} of "
                             f"{body['quorum']} approval(s)). Next: call wait_for_request with this request_id, "
                             "or cancel_request to withdraw it.")
    return _ended(body) or _result(body, done_text(body))


async def cancel_request(call: McpCall, args: RequestIn, ctx: ServerRequestContext) -> types.CallToolResult:
    from broker.api.requests import cancel

    body = await cancel(call.client, call.broker, call.principal, args.request_id)
    return _result(body, f"request {body['request_id']} cancelled; nothing ran. {body['next_step']}")


async def list_my_requests(call: McpCall, args: ListIn, ctx: ServerRequestContext) -> types.CallToolResult:
    found = await blocking(call.broker.approvals.approvals.mine, call.principal, args.limit)
    lines = ["created | request_id | kind | status | target | reason"]
    lines += [f"{r['created_at'][:19]} | {r['request_id']} | {r['kind']} | {r['status']} | {r['target']} | "
              f"{r['reason'][:60]}" for r in found]
    return _result({"requests": found}, "\n".join(lines) if found else "You have no requests.")


async def describe_target(call: McpCall, args: TargetIn, ctx: ServerRequestContext) -> types.CallToolResult:
    body = await blocking(call.broker.describer.describe, call.principal, args.target, call.context)
    if body["kind"] == KUBECTL.kind:
        lines = ["rule | effect | risk | verbs | resources | namespaces"]
        lines += [f"{r['rule_id']} | {r['effect']} | {','.join(r['risk'])} | {','.join(r['verbs'])} | "
                  f"{','.join(r['resources'])} | {','.join(r['namespaces'])}" for r in body["rules"]]
    else:
        lines = ["table | column | type | sensitive"]
        for t in body["tables"]:
            lines += [f"{t['schema']}.{t['name']} | {c['name']} | {c['type']} | "
                      f"{c.get('sensitivity', 'yes') if c['sensitive'] else 'no'}" for c in t["columns"]]
        if body.get("truncated"):
            lines.append(f"... only the first {body['limit']} of {body['table_count']} tables are listed")
    return _result(body, "\n".join(lines[:400]))


async def wait_for_request(call: McpCall, args: WaitIn, ctx: ServerRequestContext) -> types.CallToolResult:
    """Poll the request until it leaves pending/approved/running or the timeout; progress each poll."""
    deadline = time.monotonic() + args.timeout_seconds
    status = call.broker.approvals.approvals.status
    body = await blocking(status, args.request_id, call.principal)
    while body["status"] in _PENDING and time.monotonic() < deadline:
        elapsed = args.timeout_seconds - (deadline - time.monotonic())
        await ctx.session.report_progress(elapsed, args.timeout_seconds, f"{body['status']}, "
                                          f"{len(body['decisions'])} decision(s)")
        await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
        body = await blocking(status, args.request_id, call.principal)
    if body["status"] in _PENDING:
        body["next_tool"] = "wait_for_request"
        return _result(body, f"request {args.request_id} is still {body['status']}; call wait_for_request again.")
    return _ended(body) or _result(body, done_text(body))


async def request_grant(call: McpCall, args: GrantIn, ctx: ServerRequestContext) -> types.CallToolResult:
    try:
        body = GrantBody.model_validate(args.model_dump())
    except ValidationError as exc:
        raise invalid_body(exc, "request_grant tool") from exc
    held = await blocking(call.broker.approvals.grants.submit, call.principal, body, call.context,
                          workflow=starter(call.client))
    pending = {**held.held.to_dict(), "next_tool": "wait_for_request"}
    return _result(pending, pending_text(pending))


async def list_grants(call: McpCall, args: NoIn, ctx: ServerRequestContext) -> types.CallToolResult:
    grants = await blocking(call.broker.approvals.grants.list_for, call.principal)
    return _result({"grants": grants}, f"{len(grants)} grant(s)")


# --- the catalogue ------------------------------------------------------------------------------
Handler = Callable[[McpCall, Any, ServerRequestContext], Awaitable[types.CallToolResult]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    model: type[BaseModel]
    handler: Handler
    read_only: bool
    destructive: bool = False
    idempotent: bool = False

    def tool(self) -> types.Tool:
        schema = self.model.model_json_schema()
        schema.pop("title", None)
        return types.Tool(name=self.name, description=self.description, input_schema=schema,
                          annotations=types.ToolAnnotations(read_only_hint=self.read_only,
                                                            destructive_hint=self.destructive,
                                                            idempotent_hint=self.idempotent,
                                                            open_world_hint=True))


TOOLS: dict[str, ToolSpec] = {t.name: t for t in (
    ToolSpec("list_targets", "The targets you may use and, per risk class, what the policy lets you do there "
             "(allow, approval by whom, deny). Start here.", NoIn, list_targets, read_only=True, idempotent=True),
    ToolSpec("explain", "What the broker would do with a command, without running it: risk, decision, rule, "
             "approvers, limits, remedy.", ExplainIn, explain, read_only=True, idempotent=True),
    ToolSpec("query", "Run one read-only SQL statement; rows come back masked. Writes are refused "
             "(use change).", QueryIn, query, read_only=True),
    ToolSpec("change", "Run one SQL statement that changes data. Usually needs approval: the answer is then "
             "pending with a request_id for wait_for_request.", ChangeIn, change, read_only=False, destructive=True),
    ToolSpec("kubectl", "Run one kubectl command on a Kubernetes target (reads run now; changes may wait for "
             "approval).", KubectlIn, kubectl, read_only=False, destructive=True),
    ToolSpec("get_request", "Where a pending request stands; when done, its masked result.", RequestIn,
             get_request, read_only=True, idempotent=True),
    ToolSpec("wait_for_request", f"Wait (at most {WAIT_LIMIT_SECONDS} s) until a request is decided and done; "
             "returns its result, or that it is still pending.", WaitIn, wait_for_request, read_only=True,
             idempotent=True),
    ToolSpec("describe_target", "What a target holds, for planning a query: tables and views with column types "
             "and which columns are sensitive (masked), or for Kubernetes the verbs, kinds and namespaces the "
             "policy can allow you. Never a data value.", TargetIn, describe_target, read_only=True,
             idempotent=True),
    ToolSpec("list_my_requests", "Your own approval requests (commands and grants), newest first, with their "
             "status and next step.", ListIn, list_my_requests, read_only=True, idempotent=True),
    ToolSpec("cancel_request", "Cancel one of your pending requests: nothing runs, the approvers' links stop "
             "working. Refused once it was decided.", RequestIn, cancel_request, read_only=False,
             destructive=False, idempotent=True),
    ToolSpec("request_grant", "Ask approvers for a time-boxed read or write grant on a target.", GrantIn,
             request_grant, read_only=False),
    ToolSpec("list_grants", "Your just-in-time grants, newest first.", NoIn, list_grants, read_only=True,
             idempotent=True),
)}


async def call_tool(name: str, arguments: dict[str, Any] | None, ctx: ServerRequestContext) -> types.CallToolResult:
    """Validate the arguments against the tool's model and run it; every refusal becomes ``isError``."""
    spec = TOOLS.get(name)
    if spec is None:
        return refusal(BadRequest(f"There is no tool named {name!r}.", code="unknown_tool",
                                  remedy="List the tools with tools/list.", extra={"tools": sorted(TOOLS)}))
    try:
        try:
            args = spec.model.model_validate(arguments or {})
        except ValidationError as exc:
            raise invalid_body(exc, f"{name} tool") from exc
        return await spec.handler(current_call.get(), args, ctx)
    except BrokerError as error:
        if error.status >= 500:
            log.warning("tool %s refused with %s: %s", name, error.code, error.detail)
        return refusal(error)
    except Exception:
        log.exception("tool %s failed", name)
        return refusal(BrokerError("The broker hit an internal error; nothing was returned."))
