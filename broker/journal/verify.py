"""``verify``: recompute every chain and seal, and hold every Table row against its immutable copy.

It works one UTC day at a time (chains never cross a day), so memory is bounded by a day's
records, and it reads the seals of the window first. Without ``since`` it verifies everything,
including rows stored under keys the writer never makes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

from broker.journal._canonical import sha256_hex
from broker.journal._chaincheck import LostCopy, SealWindow, check_chain
from broker.journal.envelope import (
    GENESIS,
    Envelope,
    blob_name,
    day_key,
    day_prefix,
    format_at,
    parse_blob_name,
    parse_partition,
    parse_record_id,
    split_blob,
)
from broker.journal.findings import VerifyReport
from broker.journal.records import Event
from broker.journal.seal import EPOCH, ChainSpan, Seal, record_days
from broker.journal.storage import JournalStorage

log = logging.getLogger("broker.journal")


class Verifier:
    def __init__(self, storage: JournalStorage, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 workers: int = 16) -> None:
        self._storage = storage
        self._clock = clock
        self._workers = workers
        self._lost: dict[str, dict[int, LostCopy]] = {}

    def verify(self, since: datetime | None = None, until: datetime | None = None) -> VerifyReport:
        until = until or self._clock()
        report = VerifyReport(since=format_at(since) if since else "", until=format_at(until))
        window = self._load_seals(since.date() if since else None, report)
        spans: dict[str, list[tuple[Seal, ChainSpan]]] = defaultdict(list)
        for seal in window.seals if window else ():
            for span in seal.chains:
                spans[span.chain].append((seal, span))
        first = since.date() if since else self._first_day()
        self._lost = self._lost_copies(since.date() if since else None)
        intents: dict[str, str] = {}
        answered: set[str] = set()
        if first is not None:
            day = first
            while day <= until.date():
                self._verify_day(day, spans, window, report, intents, answered)
                day += timedelta(days=1)
            if since is None:
                self._stray_rows(first, until.date(), report)
        for intent_id in sorted(set(intents) - answered):
            report.add("open_intent", intent_id, f"intent at {intents[intent_id]} has no outcome: the broker "
                       "stopped, or could not journal the outcome; the command may or may not have run", "warning")
        if window is None:
            report.unsealed = report.records
        else:
            report.sealed_until = window.cutoff
        return report

    # --- seals ---
    def _load_seals(self, since_day: date | None, report: VerifyReport) -> SealWindow | None:
        names = [n for n in self._names_under("seals/") if since_day is None or _seal_day(n) >= since_day]
        with ThreadPoolExecutor(self._workers, thread_name_prefix="verify") as pool:
            blobs = dict(zip(names, pool.map(self._storage.read_blob, names), strict=True))
        loaded: list[tuple[Seal, str, str]] = []
        for name, data in blobs.items():
            if data is None:
                continue
            try:
                seal = Seal.from_bytes(data)
            except (KeyError, ValueError, TypeError):
                report.add("seal_broken", name, "the seal cannot be read: it was replaced")
                continue
            loaded.append((seal, sha256_hex(data), name))
        loaded.sort(key=lambda item: item[0].seq)
        report.seals = len(loaded)
        broken: set[int] = set()

        def bad(seal: Seal, name: str, detail: str) -> None:
            broken.add(seal.seq)
            report.add("seal_broken", name, detail)

        previous: tuple[Seal, str, str] | None = None
        for seal, digest, name in loaded:
            if name != seal.name:
                bad(seal, name, f"holds seal {seal.seq} of {seal.cutoff}: it was moved or replaced")
            if seal.root != Seal.root_of(seal.chains) or seal.records != sum(c.last - c.first + 1 for c in seal.chains):
                bad(seal, name, "its root or count does not match its chains: it was edited")
            if previous is None:
                if seal.seq == 1 and (seal.prev != GENESIS or seal.start != EPOCH):
                    bad(seal, name, "the first seal does not start the seal chain")
            elif seal.seq == previous[0].seq:
                bad(seal, name, f"a second seal numbered {seal.seq}")
            else:
                for missing in range(previous[0].seq + 1, seal.seq):
                    report.add("seal_missing", f"seal {missing}", "missing from the sequence of seals")
                if seal.seq == previous[0].seq + 1 and seal.prev != previous[1]:
                    bad(previous[0], previous[2], f"seal {seal.seq} recorded a different hash for it: it was "
                        "replaced after sealing")
                if seal.seq == previous[0].seq + 1 and seal.start != previous[0].cutoff:
                    bad(seal, name, "its period does not start where the previous one ended")
            previous = (seal, digest, name)
        if not loaded:
            return None
        seals = tuple(s for s, _, _ in loaded)
        return SealWindow(start=seals[0].start, cutoff=seals[-1].cutoff, seals=seals, broken=frozenset(broken))

    # --- rows whose copy a crash lost ---
    def _lost_copies(self, since_day: date | None) -> dict[str, dict[int, LostCopy]]:
        """What the sealer's ``journal.copies_lost`` records name, read from their write-once copies
        only: a Table row claiming lost copies without a copy of its own vouches for nothing (it is
        reported as inserted), and an edited or hidden claim can only make verify report more."""
        flt = f"event eq '{Event.JOURNAL_COPIES_LOST}'"
        if since_day is not None:
            flt += f" and PartitionKey ge '{day_key(since_day)}'"
        claims: list[tuple[str, str, str, int, str]] = []  # (at, claim id, chain, seq, hash)
        for entity in self._storage.table.query_entities(flt, select=["PartitionKey", "RowKey"]):
            pk, rk = entity["PartitionKey"], entity["RowKey"]
            if parse_partition(pk) is None or not rk.isdigit():
                continue
            data = self._storage.read_blob(blob_name(pk, int(rk)))
            try:
                parts = split_blob(data) if data is not None else None
                env = Envelope.from_dict(parts.envelope) if parts is not None else None
            except (KeyError, ValueError, TypeError, RecursionError):
                continue  # an unreadable copy is reported by the chain's own check
            if (parts is None or env is None or sha256_hex(parts.envelope_bytes) != parts.hash or env.chain != pk
                    or env.seq != int(rk) or env.record.get("event") != Event.JOURNAL_COPIES_LOST):
                continue
            for item in (env.record.get("outcome") or {}).get("lost") or []:
                where = parse_record_id(str(item.get("record", ""))) if isinstance(item, dict) else None
                if where is not None:
                    claims.append((env.at, env.id, where[0], int(where[1]), str(item.get("hash", ""))))
        # A dead chain is named once, by the first record that finds it (which names its whole
        # uncopied tail): rows appended to it later are no lost copies, whatever a later record says.
        first_claim: dict[str, str] = {}
        lost: dict[str, dict[int, LostCopy]] = defaultdict(dict)
        for _, claim_id, pk, seq, digest in sorted(claims):
            if first_claim.setdefault(pk, claim_id) == claim_id:
                lost[pk][seq] = LostCopy(digest, claim_id)
        return lost

    # --- records ---
    def _first_day(self) -> date | None:
        days = record_days(self._storage)[:1]
        first_row = next(iter(self._storage.table.list_entities(select=["PartitionKey"], results_per_page=1)), None)
        parsed = parse_partition(first_row["PartitionKey"]) if first_row else None
        if parsed:
            days.append(parsed[0])
        return min(days) if days else None

    def _verify_day(self, day: date, spans: dict[str, list[tuple[Seal, ChainSpan]]], window: SealWindow | None,
                    report: VerifyReport, intents: dict[str, str], answered: set[str]) -> None:
        rows: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        flt = f"PartitionKey ge '{day_key(day)}' and PartitionKey lt '{day_key(day + timedelta(days=1))}'"
        for entity in self._storage.table.query_entities(flt):
            pk, rk = entity["PartitionKey"], entity["RowKey"]
            if parse_partition(pk) is None or not (rk.isdigit() and len(rk) == 10 and int(rk) > 0):
                report.add("inserted", f"{pk}/{rk}", "a Table row under a key the journal never writes")
                continue
            rows[pk][int(rk)] = entity
        names: dict[str, dict[int, str]] = defaultdict(dict)
        for name in self._storage.blob_names(day_prefix(day)):
            parsed = parse_blob_name(name)
            if parsed is None:
                report.add("inserted", name, "a blob under a name the journal never writes")
            else:
                names[parsed[0]][parsed[1]] = name
        flat = [(pk, seq, name) for pk, by_seq in names.items() for seq, name in by_seq.items()]
        with ThreadPoolExecutor(self._workers, thread_name_prefix="verify") as pool:
            data = list(pool.map(lambda item: self._storage.read_blob(item[2]), flat))
        blobs: dict[str, dict[int, bytes]] = defaultdict(dict)
        for (pk, seq, _), blob in zip(flat, data, strict=True):
            if blob is not None:
                blobs[pk][seq] = blob
        prefix = day_key(day)
        chains = set(rows) | set(blobs) | {pk for pk in spans if pk.startswith(prefix)}
        for pk in sorted(chains):
            accepted = check_chain(pk, rows.get(pk, {}), blobs.get(pk, {}), spans.get(pk, []), window, report,
                                   self._lost.get(pk))
            report.chains += 1
            report.records += len(set(rows.get(pk, {})) | set(blobs.get(pk, {})))
            report.copies += len(blobs.get(pk, {}))
            for v in accepted.values():
                event = v.env.record.get("event")
                if event == Event.EXECUTE_INTENT:
                    intents[v.env.id] = v.env.at
                elif event == Event.EXECUTE_OUTCOME:
                    answered.add(str((v.env.record.get("outcome") or {}).get("intent", "")))

    def _stray_rows(self, first: date, last: date, report: VerifyReport) -> None:
        flt = f"PartitionKey lt '{day_key(first)}' or PartitionKey ge '{day_key(last + timedelta(days=1))}'"
        for entity in self._storage.table.query_entities(flt, select=["PartitionKey", "RowKey"]):
            report.add("inserted", f"{entity['PartitionKey']}/{entity['RowKey']}",
                       "a Table row under a key the journal never writes")

    def _names_under(self, prefix: str) -> list[str]:
        return sorted(self._storage.blob_names(prefix))


def _seal_day(name: str) -> date:
    try:
        y, m, d = name.split("/")[1:4]
        return date(int(y), int(m), int(d))
    except ValueError:
        return date.max  # a stray name is loaded (and reported) whatever the window

