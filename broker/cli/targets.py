"""``targets check``: is each target in the catalogue ready for agents (operators)?

For every target (or those named): the catalogue entry loads and names a registered engine whose
driver runs here; the connection is encrypted unless the host is this machine; the credential
resolves (Key Vault or managed identity) and the broker reaches the target with it; and, for SQL
targets, the broker's database role carries the server-side limits the broker relies on as its
last wall (``broker/targets/role_check.py``: ``statement_timeout``, ``idle_in_transaction_session_timeout``,
``temp_file_limit``, ``work_mem``, a connection limit; MySQL/MariaDB: a statement time limit and
``MAX_USER_CONNECTIONS``). Each missing one is printed with the statement that sets it.

Runs with the broker's settings (``BROKER_*``, as the Function app has them); without them, the
dev stack's. Exit status: 0 all ready, 1 something is missing, 2 the catalogue or a name is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.targets.connection import ConnectionSettings



@dataclass(frozen=True)
class Check:
    """One verdict on one target: ``item`` is what was checked, ``value`` what was found."""

    item: str
    ok: bool
    value: str = ""
    advice: str = ""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("targets", help="check the target catalogue and each target's database role (operators)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = p.add_subparsers(dest="targets_command", metavar="ACTION", required=True)
    check = tsub.add_parser("check", help="validate targets: catalogue, reachability, the role's server limits",
                            description="Check every target (or the ones named) and print what is missing.")
    check.add_argument("target", nargs="*", help="target names (default: every target in the catalogue)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=run_check)


def transport_check(connection: ConnectionSettings) -> Check | None:
    """Whether the catalogue asks for an encrypted connection to a host that is not this machine."""
    transport = connection.transport()
    if transport is None:
        return None
    return Check(transport.setting, transport.encrypted, transport.value, transport.advice)


def check_target(broker: Any, name: str) -> list[Check]:
    """Every verdict on one target, stopping at the first step the next ones depend on."""
    from broker.problems import BrokerError
    from broker.targets.base import RoleSettingsSource

    target = broker.catalog.get(name)
    engine = broker.engines[target.engine]
    checks = [Check("engine", True, target.engine)]
    reason = engine.unavailable_reason()
    if reason:
        return [Check("engine", False, target.engine, reason)]
    transport = transport_check(target.connection)
    if transport is not None:
        checks.append(transport)
    try:
        secret = broker.credentials.resolve(target.credential)
    except BrokerError as error:
        return [*checks, Check("credential", False, target.credential.source, f"{error.detail} ({error.code})")]
    try:
        engine.check(target, secret)
    except BrokerError as error:
        return [*checks, Check("reachable", False, "no", f"{error.detail} ({error.code})")]
    checks.append(Check("reachable", True, "yes"))
    if isinstance(engine, RoleSettingsSource):
        needed = (target.max_concurrency or broker.settings.target_concurrency) + 1  # + the guard's look-ups
        try:
            settings = engine.role_settings(target, secret, needed)
        except BrokerError as error:
            return [*checks, Check("role settings", False, "unreadable", f"{error.detail} ({error.code})")]
        checks.extend(Check(s.name, s.ok, s.value, s.advice) for s in settings)
    return checks


def run_check(args: argparse.Namespace) -> int:
    """The catalogue and the names are checked before the broker is built (its drivers, storage,
    Key Vault): a broken catalogue or a typo is refused in well under a second."""
    from broker.catalog import CatalogError, load_catalog
    from broker.cli._client import operator_broker, operator_settings
    from broker.problems import BrokerError

    try:
        settings = operator_settings()
        catalog = load_catalog(settings.catalog_path)
        names = args.target or sorted(catalog.targets)
        for name in names:
            catalog.get(name)  # every name first: a typo is not a half-finished report
        broker = operator_broker(settings)
    except (CatalogError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokerError as error:
        print(f"error: {error.detail} ({error.code})", file=sys.stderr)
        return 2
    try:
        report = {name: check_target(broker, name) for name in names}
    except BrokerError as error:
        print(f"error: {error.detail} ({error.code})", file=sys.stderr)
        return 2
    finally:
        broker.close()
    ready = all(c.ok for checks in report.values() for c in checks)
    if args.json:
        print(json.dumps({"ready": ready, "targets": {n: [asdict(c) for c in cs] for n, cs in report.items()}},
                         indent=2, ensure_ascii=False))
    else:
        print(render(report))
    return 0 if ready else 1


def render(report: dict[str, list[Check]]) -> str:
    """One block per target: ``ok``/``MISSING`` per item, the statement to run under each missing one."""
    lines: list[str] = []
    for name, checks in report.items():
        missing = sum(not c.ok for c in checks)
        lines.append(f"{name}: {'ready' if not missing else f'{missing} missing'}")
        for c in checks:
            lines.append(f"  {'ok' if c.ok else 'MISSING':<8} {c.item:<38} {c.value}")
            if not c.ok and c.advice:
                lines.append(f"           {c.advice}")
    return "\n".join(lines)
