"""``journal``: read the journal (operators and auditors with access to its storage)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("journal", help="read the journal", description=__doc__)
    jsub = p.add_subparsers(dest="journal_command", metavar="ACTION", required=True)
    ls = jsub.add_parser("list", help="newest records first")
    ls.add_argument("--last", type=int, default=20, help="how many records (default 20)")
    ls.add_argument("--json", action="store_true", help="one JSON record per line")
    ls.set_defaults(func=run_list)
    show = jsub.add_parser("show", help="one record, in full")
    show.add_argument("record_id")
    show.set_defaults(func=run_show)


def _reader() -> Any:
    from broker.journal import JournalReader, JournalStorage
    from broker.runtime import azure_credential
    from broker.settings import Settings

    settings = Settings(**_dev_storage_overrides())
    credential = None if settings.storage_connection_string.get_secret_value() else azure_credential()
    return JournalReader(JournalStorage.from_settings(settings, credential))


def _dev_storage_overrides() -> dict[str, Any]:
    """Without storage settings, read the dev stack's journal."""
    import os

    from broker.cli._client import dev_stack
    from broker.settings import ClientSettings

    if os.environ.get("BROKER_STORAGE_CONNECTION_STRING") or os.environ.get("BROKER_TABLE_ENDPOINT"):
        return {}
    stack = dev_stack(ClientSettings())
    return {"storage_connection_string": stack["storage_connection_string"]} if stack else {}


def _line(r: Any) -> str:
    who = r.principal.get("display_name") or r.principal.get("object_id", "?")
    command = r.command.get("sql") or " ".join(r.command.get("argv", []))
    command = command.replace("\n", " ")
    if len(command) > 60:
        command = command[:59] + "…"
    effect = r.decision.get("effect", "-")
    status = r.outcome.get("status", "") or "-"
    code = r.outcome.get("code", "")
    return (f"{r.record_id}  {r.time[:23]}  {r.event:<16} {who[:22]:<22} {r.target[:16]:<16} "
            f"{effect:<7} {status}{'/' + code if code else ''}  {command}")


def run_list(args: argparse.Namespace) -> int:
    records = _reader().recent(limit=args.last)
    for record in records:
        print(json.dumps(record.to_dict(), ensure_ascii=False) if args.json else _line(record))
    if not records and not args.json:
        print("(the journal is empty)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    record = _reader().get(args.record_id)
    if record is None:
        print(f"no journal record {args.record_id}")
        return 1
    print(json.dumps(record.to_dict(), indent=2, ensure_ascii=False))
    return 0
