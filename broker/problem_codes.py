"""The catalogue of problem codes: every ``code`` a refusal can carry, its HTTP status(es), what it
means and what the caller should do next.

One table feeds the OpenAPI document's ``Problem.code`` enum (a test keeps them equal), the pages
served at ``/api/problems/{code}`` (the problem ``type`` URI), and the README's table
(``python -m broker problems``). A test fails when the code raises a code that is not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProblemCode:
    code: str
    statuses: tuple[int, ...]
    meaning: str
    action: str


def _c(code: str, statuses: int | tuple[int, ...], meaning: str, action: str) -> ProblemCode:
    return ProblemCode(code, statuses if isinstance(statuses, tuple) else (statuses,), meaning, action)


_ALL = [
    # --- the request itself (400, 413, 415, 405) ---
    _c("invalid_json", 400, "The body is missing or is not strict UTF-8 JSON (no BOM, NaN or repeated keys).",
       "Send one JSON object."),
    _c("body_too_deep", 400, "Arrays/objects in the body nest more than 64 levels.", "Flatten the body."),
    _c("number_too_long", 400, "A number in the body has more than 64 characters or exceeds a double's range.",
       "Send such values as strings."),
    _c("invalid_text", 400, "A string in the body holds a NUL character or a lone surrogate.",
       "Remove the character."),
    _c("invalid_request", 400, "The body does not match the contract; `errors` names each field.",
       "Fix the fields listed in `errors` (the OpenAPI schema, or the MCP tool's inputSchema, gives each one's "
       "type and limits)."),
    _c("invalid_sql", 400, "The SQL does not parse; `parser_message` and `position` say where.",
       "Fix the syntax and send the statement again (explain checks it without running)."),
    _c("multiple_statements", 400, "The SQL holds more than one statement.", "Send one statement per call."),
    _c("not_a_read", 400, "The MCP query tool only runs reads; this command changes something, or the broker "
       "cannot tell what it reads (`risk` unknown: e.g. a name the target does not have).",
       "A change: use the change tool (or POST /api/execute) with a reason. Unknown: check the names with "
       "describe_target."),
    _c("unsupported_command", 400, "The command is not one the target's language accepts (SQL for databases, "
       "kubectl for clusters) or not a supported form.", "Check `language` in GET /api/targets."),
    _c("unsupported_verb", 400, "The kubectl verb is not supported; `supported_verbs` lists those that are.",
       "Use one of `supported_verbs`."),
    _c("unsupported_flag", 400, "A kubectl flag is not supported for this verb.",
       "Drop the flag; see docs/kubernetes.md."),
    _c("refused_argument", 400, "A kubectl argument picks a cluster, identity or file (`argument` names it).",
       "Remove it: the broker chooses cluster and credential."),
    _c("invalid_argument", 400, "A kubectl argument's value is malformed (`argument` names it).", "Fix the value."),
    _c("invalid_manifest", 400, "The manifest for apply/create is not a valid object list.",
       "Send Kubernetes objects (apiVersion, kind, metadata.name) as JSON."),
    _c("too_many_objects", 400, "The manifest holds more objects than one call may change.", "Split it."),
    _c("unknown_resource_type", 400, "The cluster does not serve this resource type.", "Check the type's name."),
    _c("ambiguous_resource_type", 400, "The resource type's short name matches several API groups.",
       "Use the full name, e.g. deployments.apps."),
    _c("secret_values_in_command", 400, "The command carries secret values; it is refused and not journaled "
       "verbatim.", "Never send secrets in a command; reference them."),
    _c("classification_mismatch", 400, "The command's risk changed between classification and run.",
       "Send the command again."),
    _c("invalid_duration", 400, "The grant duration is not ISO 8601 or exceeds the policy's maximum "
       "(`max_duration`).", "Send e.g. PT30M, at most `max_duration`."),
    _c("not_a_grant", 400, "The request id names a command request, not a grant.", "Use the grant's request id."),
    _c("invalid_query", 400, "A journal query parameter is malformed.", "Fix the parameter (see GET /api/journal)."),
    _c("unknown_tool", 400, "The MCP tool does not exist.", "List the tools (tools/list)."),
    _c("body_too_large", 413, "The body exceeds the broker's limit.", "Send a smaller body."),
    _c("unsupported_media_type", 415, "The body is not application/json.", "Send Content-Type: application/json."),
    _c("method_not_allowed", 405, "The path does not take this method; `Allow` lists those it takes.",
       "Use a method from the `Allow` header."),
    # --- who is calling (401, 403) ---
    _c("missing_token", 401, "No bearer token was sent (`WWW-Authenticate` says where to get one).",
       "Send Authorization: Bearer <Entra access token for the broker>."),
    _c("invalid_token", 401, "The token is invalid: signature, issuer, audience, tenant or expiry.",
       "Get a fresh token for the broker's audience."),
    _c("invalid_signature", 401, "An automation's HMAC signature does not verify.",
       "Sign '<t>.<body>' with the shared key."),
    _c("signature_expired", 401, "An automation's signature is too old.", "Sign again with the current time."),
    _c("identity_not_configured", 503, "The broker has no accepted tenants or audiences configured.",
       "An operator must set BROKER_ALLOWED_TENANTS and BROKER_AUDIENCES."),
    _c("identity_unavailable", 503, "The token issuer's keys cannot be fetched.", "Retry later."),
    _c("issuer_unavailable", 503, "The token issuer cannot be reached.", "Retry later."),
    _c("policy_denied", 403, "The policy denies this command to this caller (`rule_id`, `risk`, `risk_reason`, "
       "`policy_version` say why).", "Follow `remedy`; explain shows what would be allowed."),
    _c("approval_required", 403, "The command needs an approval the broker could not start.",
       "Follow `remedy` (e.g. request a just-in-time grant)."),
    _c("request_denied", 403, "An approver denied the request; nothing ran (`approver_comment` holds their words, "
       "`next_step` what to do).", "Change the command as the approver asked and send it again, or request a grant."),
    _c("no_approvers", 403, "Nobody other than the caller could approve this.", "Ask an operator to add approvers."),
    _c("not_requester", 403, "Only the requester (or an auditor) may see this request.", "Use your own request ids."),
    _c("not_auditor", 403, "The journal needs the Broker.Auditor app role.", "Ask for the role."),
    _c("not_an_approver", 403, "The identity is not among this request's approvers.", "Only listed approvers decide."),
    _c("self_approval", 403, "The requester cannot approve their own request (same object id, or same app id "
       "where an application is involved, in any spelling).", "Another approver must decide."),
    _c("caller_cannot_approve", 403, "An identity holding Broker.Caller (an agent) never decides, not even for a "
       "person it names.", "Approvers decide with their own identity."),
    _c("delegate_role_required", 403, "Deciding for a named approver needs an application holding the delegate "
       "role (Broker.ApproverDelegate).", "Decide as yourself (omit `approver`), or assign the role to the "
       "automation."),
    _c("sign_in_required", 403, "The policy counts only approvals from approvers who signed in themselves; "
       "this channel (link, delegate, signed body) may only deny.", "Approve with your own Entra token."),
    _c("csrf_failed", 403, "The decision form failed its cross-site checks.", "Open the link again and decide there."),
    _c("digest_mismatch", 403, "The stored command no longer matches the approved digest; nothing ran.",
       "Send the command again."),
    _c("impact_not_measured", 403, "The policy bounds the rows a change may touch (`max_rows_changed`), but this "
       "target's engine cannot hold a run to a bound; nothing ran.", "Ask an operator to lift the limit there."),
    _c("token_invalid", 403, "The approval link is forged or altered.", "Use the link from the mail."),
    _c("token_wrong_request", 403, "The approval link belongs to another request.", "Use this request's link."),
    _c("token_command_mismatch", 403, "The approval link was issued for another command.", "Use the newest link."),
    _c("signature_replayed", 403, "An automation's signed body was sent twice.", "Sign each decision once."),
    _c("weak_signing_key", 500, "The approval signing key is too short.", "An operator must rotate it."),
    # --- what was asked for (404, 409, 410) ---
    _c("unknown_target", 404, "No target of that name is registered.", "List targets with GET /api/targets."),
    _c("not_found", 404, "No such request, grant or path (also for requests the caller may not see).",
       "Check the id; request ids come from a 202 answer."),
    _c("kubernetes_not_found", 404, "The Kubernetes object does not exist.", "Check the name and namespace."),
    _c("conflict", 409, "The request conflicts with the current state.", "Read the state and try again."),
    _c("already_decided", 409, "The request was decided already.", "Read it with GET /api/requests/{id}."),
    _c("already_voted", 409, "This approver decided already.", "Nothing to do."),
    _c("token_used", 409, "The approval link was used already.", "Nothing to do."),
    _c("duplicate_request", 409, "The same request is already waiting.", "Wait for the pending one."),
    _c("request_cancelled", 409, "The request was cancelled by its requester or an operator; nothing ran and its "
       "links no longer decide.", "Send the command again if it is still needed."),
    _c("idempotency_key_reused", 409, "The idempotency key was used for a different command by this caller "
       "(`existing_request_id` names that request).", "Use a new key for a new command."),
    _c("grant_not_needed", 409, "The policy already allows this without a grant.", "Run the commands directly."),
    _c("not_active", 409, "The grant is not active (pending, ended or revoked).", "Check GET /api/grants."),
    _c("impact_exceeded", 409, "The change would touch more rows than approvers were shown (`previewed_rows`) or "
       "than the policy's `max_rows_changed`; it was rolled back, nothing changed.",
       "Check what changed since the approval; send the command again for a new approval."),
    _c("command_too_large", 409, "The command is too large to hold for approval.", "Send a smaller command."),
    _c("kubernetes_conflict", 409, "Kubernetes refused a conflicting change.", "Read the object and retry."),
    _c("expired", 410, "The request or link expired; nothing ran.", "Send the command again."),
    _c("token_expired", (401, 410), "The token or approval link expired.", "Get a fresh token or link."),
    # --- fair share of a target (429, 503) ---
    _c("too_many_requests", 429, "This caller already runs as many commands on the target as one caller may "
       "(`limit`; per policy rule).", "Wait for them to finish; retry after `Retry-After`."),
    # --- what the target said (422, 504) ---
    _c("query_failed", 422, "The database refused the statement (`sqlstate` says why; the message is masked).",
       "Fix the statement."),
    _c("request_failed", 422, "A held request ended failed: the dry run prepared for the approvers or the approved "
       "run failed (`error` holds the cause's code and detail; `interrupted`: it may have run).",
       "Follow `next_step`: fix the cause and send the command again (a failed run is never repeated)."),
    _c("read_only_violation", 422, "A write reached a read-only transaction or role.", "Use change with approval."),
    _c("precondition_failed", 422, "A precondition of the change did not hold.", "Read the state and retry."),
    _c("exec_failed", 422, "kubectl exec could not run the command in the pod.", "Check pod, container, command."),
    _c("kubernetes_invalid", 422, "Kubernetes rejected the object as invalid.", "Fix the manifest."),
    _c("kubernetes_forbidden", 422, "The broker's own cluster identity may not do this.",
       "Ask an operator to extend the broker's RBAC."),
    _c("kubernetes_secrets_unreadable", 422, "The pod references a Secret the broker cannot read (`secret`, "
       "`namespace`): its values could not be masked, so exec/logs did not run.",
       "Ask an operator to let the broker get that Secret (or restore it)."),
    _c("kubernetes_error", 422, "Kubernetes answered with an error.", "Read `detail`."),
    _c("statement_timeout", 504, "The statement ran past its time limit and was stopped.", "Narrow it."),
    _c("kubernetes_timeout", 504, "The cluster did not answer in time.", "Retry later."),
    # --- the broker and its dependencies (500, 503) ---
    _c("internal_error", 500, "The broker hit an internal error; details are in its log only.", "Retry; report it."),
    _c("unavailable", 503, "A dependency is unavailable.", "Retry after `Retry-After`, if sent."),
    _c("broker_misconfigured", 503, "The broker's configuration is invalid.", "An operator must fix it."),
    _c("journal_unavailable", 503, "The journal cannot be written; nothing ran.", "Retry later."),
    _c("secrets_unavailable", 503, "Key Vault cannot be reached.", "Retry later."),
    _c("secret_missing", 503, "A target's credential secret does not exist.", "An operator must add it."),
    _c("secret_malformed", 503, "A target's credential secret is malformed.", "An operator must fix it."),
    _c("engine_unavailable", 503, "The target's engine cannot run where the broker runs (e.g. no ODBC driver); "
       "GET /api/targets shows `available: false`.", "An operator must install what is missing."),
    _c("target_busy", 503, "Every slot of the target is busy with other callers' commands; nothing ran.",
       "Retry after `Retry-After`."),
    _c("target_unavailable", 503, "The target cannot be reached.", "Retry later."),
    _c("target_auth_failed", 503, "The target refused the broker's credential.", "An operator must fix it."),
    _c("target_misconfigured", 503, "The target's catalog entry is unusable.", "An operator must fix it."),
    _c("approvals_unavailable", 503, "The approval store cannot be reached; nothing was held.", "Retry later."),
    _c("approvals_busy", 503, "The approval store is busy.", "Retry after a moment."),
    _c("grants_unavailable", 503, "The grant store cannot be read; nothing ran.", "Retry later."),
    _c("grants_busy", 503, "The grant store is busy.", "Retry after a moment."),
    _c("classification_unavailable", 503, "The stored data classification (sensitive columns found by sampling) "
       "cannot be read or written; nothing ran.", "Retry later."),
    _c("workflow_unavailable", 503, "The approval workflow could not start; nothing will run.", "Retry later."),
    _c("notify_unavailable", 503, "Approvers could not be notified.", "Retry later."),
    _c("mail_unavailable", 503, "Mail could not be sent.", "Retry later."),
    _c("metrics_unavailable", 503, "The cluster's metrics API is not available (kubectl top).", "Use get/describe."),
]

CODES: dict[str, ProblemCode] = {entry.code: entry for entry in _ALL}


def markdown_table() -> str:
    """The README's table of problem codes."""
    lines = ["| code | status | meaning | what to do |", "|---|---|---|---|"]
    for entry in _ALL:
        status = "/".join(str(s) for s in entry.statuses)
        lines.append(f"| `{entry.code}` | {status} | {entry.meaning.replace('|', '/')} | {entry.action} |")
    return "\n".join(lines)
