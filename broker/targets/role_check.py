"""What the broker's database role should carry on the server, and whether it does.

The broker bounds every statement it sends (its own ``SET LOCAL`` limits, bounded reads), but
the role is the limit that still holds when a session outlives the broker's settings, when a
second client uses the same login, or when a plan spills: temporary files, per-node sort memory,
a transaction left open, more connections than the broker's pool needs. ``python -m broker
targets check`` reads the settings as the role's own sessions see them (role, database and server
settings combined) and names each one that is missing, with the statement that sets it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

WORK_MEM_MAX_KB = 64 * 1024  # per sort/hash node: an agent's plan can have many, and parallel workers


@dataclass(frozen=True)
class RoleSetting:
    """One server setting of the broker's role: its value as the role's sessions see it."""

    name: str
    value: str
    ok: bool
    advice: str = ""
    """What to run (as an administrator) when it is not ``ok``."""


def _unit_kb(setting: str, unit: str | None) -> int:
    """A memory setting in kB from ``pg_settings`` (``setting`` counts ``unit``s: kB, 8kB, MB)."""
    scale = {"kB": 1, "8kB": 8, "MB": 1024, "GB": 1024 * 1024}.get(unit or "kB", 1)
    return int(setting) * scale


def postgres_settings(role: str, rows: Iterable[tuple[str, str, str | None, str]], connection_limit: int,
                      connections_needed: int) -> list[RoleSetting]:
    """The verdict on ``pg_settings`` rows (name, setting, unit, source) and ``rolconnlimit``."""
    seen = {name: (setting, unit, source) for name, setting, unit, source in rows}
    alter = f'ALTER ROLE "{role}" SET'
    out: list[RoleSetting] = []

    def add(name: str, ok: bool, shown: str, advice: str) -> None:
        out.append(RoleSetting(name, shown, ok, "" if ok else advice))

    setting, unit, _ = seen.get("statement_timeout", ("0", "ms", "default"))
    add("statement_timeout", int(setting) > 0, f"{setting} {unit}" if int(setting) else "0 (none)",
        f"{alter} statement_timeout = '60s';  -- above the policy's longest timeout")
    setting, unit, _ = seen.get("idle_in_transaction_session_timeout", ("0", "ms", "default"))
    add("idle_in_transaction_session_timeout", int(setting) > 0, f"{setting} {unit}" if int(setting) else "0 (none)",
        f"{alter} idle_in_transaction_session_timeout = '30s';")
    setting, unit, _ = seen.get("temp_file_limit", ("-1", "kB", "default"))
    add("temp_file_limit", int(setting) >= 0, f"{setting} {unit}" if int(setting) >= 0 else "-1 (unlimited)",
        f"{alter} temp_file_limit = '1GB';  -- as a superuser (Azure: the server parameter)")
    setting, unit, source = seen.get("work_mem", ("4096", "kB", "default"))
    kb = _unit_kb(setting, unit)
    own = source in ("user", "database", "database user")
    add("work_mem", own and kb <= WORK_MEM_MAX_KB, f"{kb} kB ({source})",
        f"{alter} work_mem = '16MB';  -- set for the role, at most {WORK_MEM_MAX_KB // 1024} MB")
    add("connection limit", connection_limit >= connections_needed,
        "unlimited" if connection_limit < 0 else str(connection_limit),
        f'ALTER ROLE "{role}" CONNECTION LIMIT {connections_needed};  -- the broker\'s pool for this target')
    return out


def mysql_settings(mariadb: bool, values: dict[str, str], connections_needed: int) -> list[RoleSetting]:
    """The verdict on a MySQL/MariaDB account's session variables (``@@max_statement_time``...)."""
    out: list[RoleSetting] = []
    if mariadb:
        seconds = float(values.get("max_statement_time") or 0)
        out.append(RoleSetting("max_statement_time", f"{seconds:g} s", seconds > 0,
                               "" if seconds > 0 else "ALTER USER ... WITH MAX_STATEMENT_TIME 60;"))
    else:
        ms = int(values.get("max_execution_time") or 0)
        out.append(RoleSetting("max_execution_time", f"{ms} ms", ms > 0,
                               "" if ms > 0 else "SET PERSIST max_execution_time = 60000;  -- server-wide"))
    limit = int(values.get("max_user_connections") or 0)
    ok = 0 < limit <= 100_000 and limit >= connections_needed
    out.append(RoleSetting("max_user_connections", str(limit) if limit else "0 (unlimited)", ok,
                           "" if ok else f"ALTER USER ... WITH MAX_USER_CONNECTIONS {connections_needed};"))
    return out
