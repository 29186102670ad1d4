"""Grants in Table Storage, one partition per grantee so the execute path finds a caller's
active grants with one single-partition query.

This table is the only place a grant's lifecycle lives: a row moves pending -> active -> revoked
(at its expiry or early), or pending -> denied/expired/cancelled/failed when the approval does not
open it, or pending -> failed when it could not be opened; every move is one ETag-guarded write of
this one row. The approval request it waited on ends at approved and is not moved again.
The execute path honours a row only while it is ``active`` and its
``expires_at`` is in the future, so a late timer can never stretch a grant.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from broker.policy import Grant
from broker.problems import Conflict, NotFound, Unavailable
from broker.storage import move


def partition_for(principal_key: str) -> str:
    return principal_key.replace("/", "_")


@dataclass
class GrantRecord:
    grant_id: str
    principal: str  # tenant/object id of the grantee
    target: str
    level: str
    duration_seconds: int
    reason: str
    status: str = "pending"  # pending, active, revoked, denied, expired, cancelled, failed
    requested_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    activated_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    approved_by: list[dict[str, Any]] = field(default_factory=list)
    ended_by: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)  # why it failed (code, detail)
    etag: str = ""

    def as_grant(self) -> Grant:
        assert self.expires_at is not None
        return Grant(self.principal, self.target, self.level, self.expires_at, self.grant_id)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {"grant_id": self.grant_id, "target": self.target, "level": self.level, "status": self.status,
                "duration_seconds": self.duration_seconds, "reason": self.reason,
                "requested_at": _iso(self.requested_at), "activated_at": _iso(self.activated_at),
                "expires_at": _iso(self.expires_at), "ended_at": _iso(self.ended_at),
                "approved_by": self.approved_by, "ended_by": self.ended_by,
                **({"error": self.error} if self.error else {})}


class GrantStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._ensured = False

    def _ensure(self) -> None:
        if not self._ensured:
            with contextlib.suppress(ResourceExistsError):
                self._table.create_table()
            self._ensured = True

    def close(self) -> None:
        self._table.close()

    def create(self, record: GrantRecord) -> None:
        try:
            self._ensure()
            self._table.create_entity(self._entity(record))
        except ResourceExistsError as exc:
            raise Conflict(f"Grant {record.grant_id} already exists.", code="duplicate_request") from exc
        except AzureError as exc:
            raise Unavailable("The grant store cannot be written; nothing was started.",
                              code="grants_unavailable") from exc

    def get(self, principal_key: str, grant_id: str) -> GrantRecord:
        try:
            self._ensure()
            return self._record(self._table.get_entity(partition_for(principal_key), grant_id))
        except ResourceNotFoundError as exc:
            raise NotFound(f"No grant {grant_id}.", code="not_found") from exc
        except AzureError as exc:
            raise Unavailable("The grant store cannot be read.", code="grants_unavailable") from exc

    def transition(self, principal_key: str, grant_id: str, allowed_from: set[str], to: str,
                   **changes: Any) -> GrantRecord | None:
        """Move the grant; None when it is no longer in ``allowed_from`` (someone ended it first)."""
        return move(self._table, lambda: self.get(principal_key, grant_id),
                    lambda current: replace(current, status=to, **changes) if current.status in allowed_from else None,
                    self._entity,
                    unavailable=lambda: Unavailable("The grant store cannot be written.", code="grants_unavailable"),
                    busy=lambda: Unavailable(f"Grant {grant_id} keeps changing; try again.", code="grants_busy"))

    def active(self, principal_key: str, target: str, now: datetime | None = None) -> list[Grant]:
        """The caller's grants on ``target`` that are active and not past their expiry."""
        now = now or datetime.now(UTC)
        try:
            self._ensure()
            rows = self._table.query_entities(
                "PartitionKey eq @pk and target eq @target and status eq 'active'",
                parameters={"pk": partition_for(principal_key), "target": target})
            records = [self._record(r) for r in rows]
        except AzureError as exc:
            raise Unavailable("The grant store cannot be read; the command did not run.",
                              code="grants_unavailable") from exc
        return [r.as_grant() for r in records if r.expires_at is not None and r.expires_at > now]

    def list_for(self, principal_key: str) -> list[GrantRecord]:
        try:
            self._ensure()
            rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition_for(principal_key)})
            return sorted((self._record(r) for r in rows), key=lambda g: g.requested_at, reverse=True)
        except AzureError as exc:
            raise Unavailable("The grant store cannot be read.", code="grants_unavailable") from exc

    @staticmethod
    def _entity(r: GrantRecord) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": partition_for(r.principal), "RowKey": r.grant_id, "principal": r.principal,
            "target": r.target, "level": r.level, "duration_seconds": r.duration_seconds, "reason": r.reason,
            "status": r.status, "requested_at": r.requested_at, "approved_by": json.dumps(r.approved_by),
            "ended_by": json.dumps(r.ended_by), "error": json.dumps(r.error),
        }
        for name in ("activated_at", "expires_at", "ended_at"):
            if getattr(r, name) is not None:
                entity[name] = getattr(r, name)
        return entity

    @staticmethod
    def _record(e: Any) -> GrantRecord:
        return GrantRecord(
            grant_id=e["RowKey"], principal=e["principal"], target=e["target"], level=e["level"],
            duration_seconds=int(e["duration_seconds"]), reason=e.get("reason", ""), status=e["status"],
            requested_at=_utc(e["requested_at"]), activated_at=_utc(e.get("activated_at")),
            expires_at=_utc(e.get("expires_at")), ended_at=_utc(e.get("ended_at")),
            approved_by=json.loads(e.get("approved_by") or "[]"), ended_by=json.loads(e.get("ended_by") or "{}"),
            error=json.loads(e.get("error") or "{}"), etag=e.metadata.get("etag", ""),
        )


def _utc(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None
