"""What an auditor can ask the journal (CLI and ``GET /api/journal`` alike), and who may ask.

Every query is bounded in time (default: the last 31 days): the Table is partitioned by day and
chain, so a time window becomes a PartitionKey range and the other criteria server-side filters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.identity import Principal
from broker.journal.envelope import day_key, format_at
from broker.problems import BadRequest, Forbidden

AUDITOR_ROLE = "Broker.Auditor"
DEFAULT_WINDOW = timedelta(days=31)
MAX_LIMIT = 5000

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def require_auditor(principal: Principal) -> None:
    if AUDITOR_ROLE not in principal.roles:
        raise Forbidden(f"Reading the journal needs the {AUDITOR_ROLE} app role.", code="not_auditor",
                        remedy=f"Ask an administrator to assign you the {AUDITOR_ROLE} role of the broker's "
                               "app registration.")


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """``2h``/``30m``/``7d`` ago, ``now``, an ISO date or date-time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    value = text.strip()
    if value.lower() == "now":
        return now
    m = _RELATIVE.match(value.lower())
    if m:
        return now - timedelta(**{_UNITS[m[2]]: int(m[1])})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Cannot read the time {text!r}: use e.g. 2h, 7d, 2025-06-14 or 2025-06-14T10:00:00Z.",
                         code="invalid_query") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _odata(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class JournalQuery:
    since: datetime | None = None
    until: datetime | None = None
    session: str = ""
    identity: str = ""
    request_id: str = ""
    event: str = ""
    target: str = ""
    limit: int | None = None

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        until = self.until or (now or datetime.now(UTC))
        since = self.since or until - DEFAULT_WINDOW
        if since >= until:
            raise BadRequest("'since' must be before 'until'.", code="invalid_query")
        return since, until

    def table_filter(self, since: datetime, until: datetime) -> str:
        """The OData filter: the day range as a PartitionKey range, the rest as column filters."""
        parts = [f"PartitionKey ge {_odata(day_key(since.date()))}",
                 f"PartitionKey lt {_odata(day_key(until.date() + timedelta(days=1)))}",
                 f"at ge {_odata(format_at(since))}", f"at lt {_odata(format_at(until))}"]
        if self.session:
            parts.append(f"(session_id eq {_odata(self.session)} or request_id eq {_odata(self.session)})")
        if self.identity:
            tenant, sep, oid = self.identity.partition("/")
            if sep:
                parts.append(f"tenant_id eq {_odata(tenant)} and object_id eq {_odata(oid)}")
            else:
                who = _odata(self.identity)
                parts.append(f"(object_id eq {who} or app_id eq {who} or who eq {who})")
        if self.request_id:
            parts.append(f"request_id eq {_odata(self.request_id)}")
        if self.event:
            parts.append(f"event eq {_odata(self.event)}")
        if self.target:
            parts.append(f"target eq {_odata(self.target)}")
        return " and ".join(parts)

    def describe(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items() if v}

    @classmethod
    def from_params(cls, params: Mapping[str, str], now: datetime | None = None) -> JournalQuery:
        """From URL query parameters (``since``, ``until``, ``session``, ``identity``, ``request``,
        ``event``, ``target``, ``limit``); unknown parameters are refused, not ignored."""
        allowed = {"since", "until", "session", "identity", "request", "event", "target", "limit", "format"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise BadRequest(f"Unknown query parameter(s): {', '.join(unknown)}.", code="invalid_query")
        limit = params.get("limit")
        if limit is not None and (not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT):
            raise BadRequest(f"'limit' must be a number from 1 to {MAX_LIMIT}.", code="invalid_query")
        for name in ("session", "identity", "request", "event", "target"):
            if len(params.get(name, "")) > 200:
                raise BadRequest(f"'{name}' is too long.", code="invalid_query")
        return cls(
            since=parse_when(params["since"], now) if params.get("since") else None,
            until=parse_when(params["until"], now) if params.get("until") else None,
            session=params.get("session", ""), identity=params.get("identity", ""),
            request_id=params.get("request", ""), event=params.get("event", ""), target=params.get("target", ""),
            limit=int(limit) if limit else None)
