"""Approval requests in Table Storage: one partition per request holding the request row, one row
per approver's decision, and one row per used link token.

Uniqueness is enforced by the storage, not by a read-then-write: a decision or a token row is a
conditional insert (a second one with the same key fails), and status changes are ETag-guarded
updates, so two concurrent approvers, a replayed link or a re-delivered activity cannot count
twice or run twice.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import ContainerClient

from broker.problems import Conflict, Gone, NotFound, Unavailable
from broker.storage import insert_once, move
from broker.table_text import split_text

Kind = Literal["command", "grant"]
STATUSES = ("pending", "approved", "denied", "expired", "running", "done", "failed", "cancelled")
"""A request's own states. A grant request ends at approved (or denied, expired, cancelled, failed);
the grant's lifecycle after that lives in the grant store (``broker/grants``). Rows written before
that change may still say ``active`` or ``revoked``: they are read as they are, and the grants' view
(``broker/grants/view.py``) shows the grant's own state for them."""
ENDED = frozenset({"denied", "expired", "done", "failed", "cancelled"})
_MAX_CHUNKS = 8  # string properties (of 64 KiB each, ``broker.table_text``) per document; beyond, a blob
_ROW = "request"
_MINE_SCAN = 1000  # rows read at most when listing one requester's requests


def approver_row_key(approver: str) -> str:
    """Table keys may not contain '/', so ``tenant/oid`` becomes ``tenant_oid``."""
    return "decision_" + approver.replace("/", "_")


@dataclass
class ApprovalRequest:
    """One request that waits for people: a command to run once, or a grant to open."""

    request_id: str
    kind: Kind
    status: str
    requester: dict[str, Any]
    target: str
    command_digest: str
    requirement: dict[str, Any]
    expires_at: datetime
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    command: dict[str, Any] = field(default_factory=dict)
    classification: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    ticket: str = ""
    grant: dict[str, Any] = field(default_factory=dict)  # the terms: level, duration, duration_seconds
    approved_by: list[dict[str, Any]] = field(default_factory=list)
    ended_by: dict[str, Any] = field(default_factory=dict)
    ended_at: str = ""
    error: dict[str, Any] = field(default_factory=dict)
    result_ref: str = ""  # "inline" or a blob name, once the masked result is stored
    preview: dict[str, Any] = field(default_factory=dict)  # what it would do (dry-run diff, measured rows)
    etag: str = ""

    @property
    def requester_key(self) -> str:
        return f"{self.requester.get('tenant_id', '')}/{self.requester.get('object_id', '')}"

    @property
    def quorum(self) -> int:
        return int(self.requirement.get("quorum", 1))

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def command_text(self) -> str:
        if self.command.get("language") == "sql":
            return str(self.command.get("sql", ""))
        return " ".join(str(a) for a in self.command.get("argv", []))


@dataclass(frozen=True)
class DecisionRow:
    approver: str
    name: str
    verdict: Literal["approve", "deny"]
    via: str
    at: str
    comment: str = ""  # the approver's words to the requester (escaped, at most 500 characters)


@dataclass(frozen=True)
class IndexEntry:
    """Which request holds a claim (an idempotency key, or "this command is pending already")."""

    request_id: str
    target: str
    command_digest: str
    etag: str


class RequestStore:
    def __init__(self, table: TableClient, container: ContainerClient) -> None:
        self._table = table
        self._container = container
        self._ensured = False

    def ensure(self) -> None:
        if self._ensured:
            return
        with contextlib.suppress(ResourceExistsError):
            self._table.create_table()
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()
        self._ensured = True

    def close(self) -> None:
        self._table.close()
        self._container.close()

    # --- the request row ---
    def create(self, request: ApprovalRequest) -> None:
        entity = self._entity(request)
        try:
            self.ensure()
            self._table.create_entity(entity)
        except ResourceExistsError as exc:
            raise Conflict(f"Request {request.request_id} already exists.", code="duplicate_request") from exc
        except AzureError as exc:
            raise Unavailable("The approval store cannot be written; nothing was started.",
                              code="approvals_unavailable") from exc

    def get(self, request_id: str) -> ApprovalRequest:
        try:
            self.ensure()
            entity = self._table.get_entity(request_id, _ROW)
        except ResourceNotFoundError as exc:
            raise NotFound(f"No approval request {request_id}.", code="not_found") from exc
        except AzureError as exc:
            raise Unavailable("The approval store cannot be read.", code="approvals_unavailable") from exc
        return self._request(entity)

    def find(self, request_id: str) -> ApprovalRequest | None:
        try:
            return self.get(request_id)
        except NotFound:
            return None

    def transition(self, request_id: str, allowed_from: Iterable[str], to: str, **changes: Any) -> ApprovalRequest:
        """Move the request to ``to`` if it is in one of ``allowed_from`` (ETag-guarded), else Conflict."""
        allowed = set(allowed_from)
        moved = move(self._table, lambda: self.get(request_id), lambda r: moved_to(r, allowed, to, changes),
                     self._entity,
                     unavailable=lambda: Unavailable("The approval store cannot be written.",
                                                     code="approvals_unavailable"),
                     busy=lambda: Unavailable(f"Request {request_id} keeps changing; try again.",
                                              code="approvals_busy"))
        assert moved is not None  # change() refuses by raising, never by returning None
        return moved

    # --- decisions and used tokens: conditional inserts ---
    def add_decision(self, request_id: str, row: DecisionRow) -> bool:
        """False when this approver has already decided this request."""
        return self._insert_once({"PartitionKey": request_id, "RowKey": approver_row_key(row.approver),
                                  "approver": row.approver, "name": row.name, "verdict": row.verdict,
                                  "via": row.via, "at": row.at, "comment": row.comment})

    def use_token(self, request_id: str, token_id: str, approver: str) -> bool:
        """False when this link was used before (a replay)."""
        return self._insert_once({"PartitionKey": request_id, "RowKey": f"token_{token_id}", "approver": approver,
                                  "at": datetime.now(UTC).isoformat()})

    def token_used(self, request_id: str, token_id: str) -> bool:
        try:
            self._table.get_entity(request_id, f"token_{token_id}")
            return True
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise Unavailable("The approval store cannot be read.", code="approvals_unavailable") from exc

    def release(self, request_id: str, token_id: str | None, approver: str) -> None:
        """Undo a decision that could not be delivered (the approver may try again)."""
        keys = [approver_row_key(approver)] + ([f"token_{token_id}"] if token_id else [])
        for key in keys:
            with contextlib.suppress(ResourceNotFoundError):
                self._table.delete_entity(request_id, key)

    def decisions(self, request_id: str) -> list[DecisionRow]:
        try:
            rows = self._table.query_entities("PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                                              parameters={"pk": request_id, "lo": "decision_", "hi": "decision`"})
            found = [DecisionRow(r["approver"], r["name"], r["verdict"], r["via"], r["at"], r.get("comment") or "")
                     for r in rows]
        except AzureError as exc:
            raise Unavailable("The approval store cannot be read.", code="approvals_unavailable") from exc
        return sorted(found, key=lambda d: d.at)

    def _insert_once(self, entity: dict[str, Any]) -> bool:
        try:
            self.ensure()
            return insert_once(self._table, entity)
        except AzureError as exc:
            raise Unavailable("The approval store cannot be written.", code="approvals_unavailable") from exc

    # --- claims: an idempotency key, or one pending request per caller and command ---
    def claim(self, index: str, request: ApprovalRequest) -> IndexEntry | None:
        """Point ``index`` at ``request`` (a conditional insert); None when it now does, else the
        entry that holds it already. Rows live in their own partition, ``index_<hash>``."""
        entity = {"PartitionKey": index, "RowKey": "claim", "request_id": request.request_id,
                  "target": request.target, "command_digest": request.command_digest}
        for _ in range(4):
            if self._insert_once(entity):
                return None
            try:
                found = self._table.get_entity(index, "claim")
            except ResourceNotFoundError:
                continue  # released in between: try again
            except AzureError as exc:
                raise Unavailable("The approval store cannot be read.", code="approvals_unavailable") from exc
            return IndexEntry(found["request_id"], found.get("target", ""), found.get("command_digest", ""),
                              found.metadata.get("etag", ""))
        raise Unavailable("The approval store keeps changing; try again.", code="approvals_busy")

    def take_over(self, index: str, held: IndexEntry, request: ApprovalRequest) -> bool:
        """Move a stale claim (its request ended or expired) to ``request``; False if someone else did."""
        entity = {"PartitionKey": index, "RowKey": "claim", "request_id": request.request_id,
                  "target": request.target, "command_digest": request.command_digest}
        try:
            self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=held.etag,
                                      match_condition=MatchConditions.IfNotModified)
            return True
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except AzureError as exc:
            raise Unavailable("The approval store cannot be written.", code="approvals_unavailable") from exc

    def release_claim(self, index: str, request_id: str) -> None:
        """Drop a claim this request made (its hold was refused); another request's claim stays."""
        try:
            found = self._table.get_entity(index, "claim")
            if found["request_id"] == request_id:
                self._table.delete_entity(index, "claim", etag=found.metadata.get("etag"),
                                          match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            return
        except AzureError as exc:
            raise Unavailable("The approval store cannot be written.", code="approvals_unavailable") from exc

    def mine(self, requester_key: str, limit: int) -> list[ApprovalRequest]:
        """The requester's requests, newest first, at most ``limit`` (reads at most 1000 rows)."""
        try:
            self.ensure()
            rows = self._table.query_entities("RowKey eq @row and requester eq @who",
                                              parameters={"row": _ROW, "who": requester_key}, results_per_page=200)
            found = [self._request(e) for e in itertools.islice(rows, _MINE_SCAN)]
        except AzureError as exc:
            raise Unavailable("The approval store cannot be read.", code="approvals_unavailable") from exc
        return sorted(found, key=lambda r: r.created_at, reverse=True)[:limit]

    # --- results ---
    def store_result(self, request_id: str, result: dict[str, Any]) -> str:
        """Keep the masked result: inline in the row when small, else in a blob. Returns the reference."""
        text = json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str)
        parts = split_text(text)
        if len(parts) <= _MAX_CHUNKS:
            entity = {"PartitionKey": request_id, "RowKey": "result", **_chunks("result", parts)}
            ref = "inline"
        else:
            ref = f"results/{request_id}.json"
            entity = {"PartitionKey": request_id, "RowKey": "result", "blob": ref}
            try:
                self._container.upload_blob(ref, text.encode(), overwrite=True)
            except AzureError as exc:
                raise Unavailable("The result store cannot be written.", code="approvals_unavailable") from exc
        try:
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise Unavailable("The result store cannot be written.", code="approvals_unavailable") from exc
        return ref

    def load_result(self, request_id: str) -> dict[str, Any] | None:
        try:
            entity = self._table.get_entity(request_id, "result")
            if entity.get("blob"):
                return json.loads(self._container.download_blob(entity["blob"]).readall())
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise Unavailable("The result store cannot be read.", code="approvals_unavailable") from exc
        return json.loads(_join(entity, "result"))

    # --- mapping ---
    @staticmethod
    def _entity(r: ApprovalRequest) -> dict[str, Any]:
        doc = json.dumps({"command": r.command, "classification": r.classification, "decision": r.decision,
                          "requester": r.requester, "requirement": r.requirement, "preview": r.preview},
                         ensure_ascii=False,
                         separators=(",", ":"), default=str)
        parts = split_text(doc)
        if len(parts) > _MAX_CHUNKS:
            raise Conflict("The command is too large to hold for approval.", code="command_too_large")
        return {
            "PartitionKey": r.request_id, "RowKey": _ROW, "kind": r.kind, "status": r.status,
            "requester": r.requester_key, "target": r.target, "command_digest": r.command_digest,
            "expires_at": r.expires_at, "created_at": r.created_at, "reason": r.reason, "ticket": r.ticket,
            "grant": json.dumps(r.grant, default=str), "approved_by": json.dumps(r.approved_by),
            "ended_by": json.dumps(r.ended_by), "ended_at": r.ended_at, "error": json.dumps(r.error),
            "result_ref": r.result_ref, **_chunks("doc", parts),
        }

    @staticmethod
    def _request(e: dict[str, Any]) -> ApprovalRequest:
        doc = json.loads(_join(e, "doc"))
        return ApprovalRequest(
            request_id=e["PartitionKey"], kind=e["kind"], status=e["status"], requester=doc["requester"],
            target=e["target"], command_digest=e["command_digest"], requirement=doc["requirement"],
            expires_at=_utc(e["expires_at"]), created_at=_utc(e["created_at"]), command=doc["command"],
            classification=doc["classification"], decision=doc["decision"], reason=e.get("reason", ""),
            preview=doc.get("preview") or {},
            ticket=e.get("ticket", ""), grant=json.loads(e.get("grant") or "{}"),
            approved_by=json.loads(e.get("approved_by") or "[]"), ended_by=json.loads(e.get("ended_by") or "{}"),
            ended_at=e.get("ended_at", ""), error=json.loads(e.get("error") or "{}"),
            result_ref=e.get("result_ref", ""), etag=e.metadata.get("etag", "") if hasattr(e, "metadata") else "",
        )


def moved_to(current: ApprovalRequest, allowed: set[str], to: str, changes: dict[str, Any]) -> ApprovalRequest:
    """``current`` in status ``to`` (with ``changes``) when it is in one of ``allowed``; else the
    refusal every store gives: 410 ``expired`` for an expired request, 409 ``already_decided``."""
    if current.status not in allowed:
        detail = f"Request {current.request_id} is {current.status}, not {' or '.join(sorted(allowed))}."
        if current.status == "expired":
            raise Gone(detail, code="expired", extra={"request_status": current.status})
        raise Conflict(detail, code="already_decided", extra={"request_status": current.status})
    return replace(current, status=to, **changes)


def _chunks(name: str, parts: list[str]) -> dict[str, Any]:
    return {f"{name}_n": len(parts), **{f"{name}_{i}": p for i, p in enumerate(parts)}}


def _join(entity: dict[str, Any], name: str) -> str:
    return "".join(entity[f"{name}_{i}"] for i in range(int(entity[f"{name}_n"])))


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))
