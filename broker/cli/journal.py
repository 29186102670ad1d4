"""``journal``: read, replay, export, seal and verify the journal (auditors and operators with
access to its storage; without storage settings, the dev stack's journal)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

_TIME_HELP = "e.g. 2h, 7d, 2025-06-14 or 2025-06-14T10:00:00Z (UTC)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("journal", help="read, replay, export and verify the journal", description=__doc__)
    jsub = p.add_subparsers(dest="journal_command", metavar="ACTION", required=True)

    ls = jsub.add_parser("list", help="newest records first", description="The newest records, one per line.")
    ls.add_argument("--last", type=int, default=20, help="how many records (default 20)")
    ls.add_argument("--json", action="store_true", help="one JSON record per line")
    ls.set_defaults(func=run_list)

    show = jsub.add_parser("show", help="one record, in full", description="One record with its chain position.")
    show.add_argument("record_id")
    show.set_defaults(func=run_show)

    verify = jsub.add_parser(
        "verify", help="check chains, seals and immutable copies; exit 0 only when intact",
        description="Recompute every hash chain and seal, compare every Table row with its write-once copy, "
                    "and name what was edited, deleted, inserted, reordered or replaced. Exit code 0 when the "
                    "journal is intact (intents without outcome are warnings), 1 when it was altered, 3 when it "
                    "is intact but rows lost their immutable copy in a crash (recorded by journal.copies_lost).")
    verify.add_argument("--since", help=f"verify from this day on ({_TIME_HELP}); default: everything")
    verify.add_argument("--until", help="up to this time (default: now)")
    verify.add_argument("--json", action="store_true", help="the report as JSON")
    verify.set_defaults(func=run_verify)

    replay = jsub.add_parser(
        "replay", help="commands and masked responses, as a terminal session",
        description="Print, in order, each command and its masked response as a person would read a terminal "
                    "session. Give at least one of --session, --identity, --since.")
    replay.add_argument("--session", help="a session id (or a request id)")
    replay.add_argument("--identity", help="object id, app id, tenant/object id, or display name")
    replay.add_argument("--since", help=f"from ({_TIME_HELP}); default 31 days before --until")
    replay.add_argument("--until", help="up to (default: now)")
    replay.add_argument("--target", help="only this target")
    replay.add_argument("--json", action="store_true", help="one JSON document (steps) for tools")
    replay.set_defaults(func=run_replay)

    export = jsub.add_parser("export", help="records as JSON lines (for a SIEM)",
                             description="Every record in [since, until) as one JSON object per line, in time order.")
    export.add_argument("--since", required=True, help=_TIME_HELP)
    export.add_argument("--until", help="default: now")
    export.add_argument("--output", "-o", help="write to this file instead of stdout")
    export.set_defaults(func=run_export)

    seal = jsub.add_parser("seal", help="write the next seal now (the timer does this every 5 minutes)",
                           description="Seal every chain's records up to two minutes ago into the write-once "
                                       "container.")
    seal.set_defaults(func=run_seal)


def _storage() -> Any:
    from broker.journal import JournalStorage
    from broker.runtime import azure_credential
    from broker.settings import Settings

    settings = Settings(**_dev_storage_overrides())
    credential = None if settings.storage_connection_string.get_secret_value() else azure_credential()
    return JournalStorage.from_settings(settings, credential)


def _dev_storage_overrides() -> dict[str, Any]:
    """Without storage settings, read the dev stack's journal."""
    import os

    from broker.cli._client import dev_stack
    from broker.settings import ClientSettings

    if os.environ.get("BROKER_STORAGE_CONNECTION_STRING") or os.environ.get("BROKER_TABLE_ENDPOINT"):
        return {}
    stack = dev_stack(ClientSettings())
    return {"storage_connection_string": stack["storage_connection_string"]} if stack else {}


def _reader() -> Any:
    from broker.journal import JournalReader

    return JournalReader(_storage())


def _when(value: str | None) -> Any:
    from broker.journal import parse_when

    return parse_when(value) if value else None


def _line(stored: Any) -> str:
    r = stored.record
    who = r.principal.get("display_name") or r.principal.get("object_id", "?")
    command = r.command.get("sql") or " ".join(r.command.get("argv", []))
    command = command.replace("\n", " ")
    if len(command) > 60:
        command = command[:59] + "…"
    effect = r.decision.get("effect", "-")
    status = r.outcome.get("status", "") or "-"
    code = r.outcome.get("code", "")
    return (f"{stored.id}  {stored.at[:23]}  {r.event:<16} {who[:22]:<22} {r.target[:16]:<16} "
            f"{effect:<7} {status}{'/' + code if code else ''}  {command}")


def _refused(error: Exception) -> int:
    print(f"error: {getattr(error, 'detail', error)}", file=sys.stderr)
    return 2


def run_list(args: argparse.Namespace) -> int:
    records = _reader().recent(limit=args.last)
    for stored in records:
        print(json.dumps(stored.to_dict(), ensure_ascii=False) if args.json else _line(stored))
    if not records and not args.json:
        print("(the journal is empty)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    stored = _reader().get(args.record_id)
    if stored is None:
        print(f"no journal record {args.record_id}", file=sys.stderr)
        return 1
    print(json.dumps(stored.to_dict(), indent=2, ensure_ascii=False))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from broker.journal import Verifier
    from broker.problems import BrokerError

    try:
        report = Verifier(_storage()).verify(since=_when(args.since), until=_when(args.until))
    except BrokerError as error:
        return _refused(error)
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if args.json else report.render())
    return report.exit_code()


def run_replay(args: argparse.Namespace) -> int:
    from broker.journal import JournalQuery, replay_json, replay_text
    from broker.problems import BrokerError

    if not (args.session or args.identity or args.since):
        print("error: give --session, --identity or --since", file=sys.stderr)
        return 2
    try:
        query = JournalQuery(since=_when(args.since), until=_when(args.until), session=args.session or "",
                             identity=args.identity or "", target=args.target or "")
        records = _reader().query(query)
    except BrokerError as error:
        return _refused(error)
    if args.json:
        print(json.dumps({"query": query.describe(), "steps": replay_json(records)}, indent=2, ensure_ascii=False))
    else:
        title = " ".join(f"{k} {v}" for k, v in query.describe().items())
        print(replay_text(records, title), end="")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from broker.problems import BrokerError

    try:
        since, until = _when(args.since), _when(args.until) or datetime.now(UTC)
        if since >= until:
            return _refused(ValueError("--since must be before --until"))
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
        count = 0
        try:
            for stored in _reader().iter_range(since, until):
                out.write(json.dumps(stored.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
                count += 1
        finally:
            if out is not sys.stdout:
                out.close()
    except BrokerError as error:
        return _refused(error)
    print(f"exported {count} records", file=sys.stderr)
    return 0


def run_seal(args: argparse.Namespace) -> int:
    from broker.journal import JournalWriter, SealConflict, Sealer
    from broker.problems import BrokerError

    storage = _storage()
    journal = JournalWriter(storage)  # rows found without their copy are journaled (journal.copies_lost)
    try:
        seal = Sealer(storage, journal=journal).seal()
    except (SealConflict, BrokerError) as error:
        return _refused(error)
    finally:
        journal.close()
    if seal is None:
        print("nothing to seal yet (the last seal is recent)")
    else:
        print(f"sealed {seal.name}: {seal.records} records in {len(seal.chains)} chains, root {seal.root}")
    return 0
