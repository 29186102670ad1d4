"""What an agent sends to the execute path, and where the call came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from broker.guard.languages import KUBECTL, SQL
from broker.problems import invalid_body
from broker.targets import Command

MAX_SQL_CHARS = 100_000


class ExecuteBody(BaseModel):
    """The JSON an agent posts to ``/api/execute``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    target: str = Field(min_length=1, max_length=63)
    sql: str | None = Field(default=None, min_length=1, max_length=MAX_SQL_CHARS)
    kubectl: list[str] | None = Field(default=None, min_length=1, max_length=64)
    manifest: dict[str, Any] | list[dict[str, Any]] | None = None
    reason: str = Field(default="", max_length=500)
    ticket: str = Field(default="", max_length=100)
    max_rows: int | None = Field(default=None, ge=1, le=100_000)
    """At most this many rows (never more than the policy's limit, which wins when smaller)."""
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    """The caller's own name for this submission (or the ``Idempotency-Key`` header): sent again with
    the same command while its request lives, the answer is that request instead of a second one."""

    @model_validator(mode="after")
    def _one_command(self) -> ExecuteBody:
        if (self.sql is None) == (self.kubectl is None):
            raise ValueError("send exactly one of 'sql' or 'kubectl'")
        if self.manifest is not None and self.kubectl is None:
            raise ValueError("'manifest' goes with a 'kubectl' command")
        return self

    def command(self) -> Command:
        if self.sql is not None:
            return Command(SQL.name, sql=self.sql)
        return Command(KUBECTL.name, argv=tuple(self.kubectl or ()), manifest=self.manifest)

    @classmethod
    def parse(cls, data: Any) -> ExecuteBody:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_body(exc, "execute") from exc


@dataclass(frozen=True)
class CallContext:
    """Where a call came from, as the journal records it."""

    client_ip: str = ""
    forwarded_for: str = ""
    user_agent: str = ""
    http_request_id: str = ""
    channel: Literal["http", "mcp"] = "http"
    """Which front door the call came through: the REST API or the MCP server (``/api/mcp``)."""

    def to_dict(self) -> dict[str, str]:
        return {"ip": self.client_ip, "forwarded_for": self.forwarded_for, "user_agent": self.user_agent,
                "http_request_id": self.http_request_id, "channel": self.channel}

