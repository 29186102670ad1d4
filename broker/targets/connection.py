"""The base of every engine's connection settings (``connection:`` of a catalogued target).

Each engine declares its own model in a light module (no driver import: the catalog loads it at
start-up) and names it in its ``ENGINES`` entry. Unknown keys and wrong types are refused when the
catalog loads, naming the target and the field: a typo such as ``hots:`` never silently falls back
to a default host.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Transport:
    """Whether the settings ask for an encrypted connection (``targets check``)."""

    setting: str  # e.g. "connection.sslmode"
    encrypted: bool
    value: str
    advice: str


class ConnectionSettings(BaseModel):
    """No settings: the model for an engine that is not registered (start-up refuses it anyway)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    def transport(self) -> Transport | None:
        """The encryption verdict for a server that is not this machine; None when there is nothing to
        say (a local server, or an engine whose client always encrypts)."""
        return None


def describe_errors(exc: ValidationError) -> str:
    """One line per refused field, ``connection.<field>: <why>``, for the catalog's error."""
    lines = []
    for error in exc.errors():
        field = "".join(f".{part}" for part in error["loc"])
        lines.append(f"connection{field}: {error['msg']}")
    return "; ".join(lines)
