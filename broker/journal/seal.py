"""Seals: periodic checkpoints of every chain, written to the write-once container.

A seal covers the period (previous cutoff, cutoff]. For every chain with records appended in
that period it names the span (first..last sequence number) and the head hash (which commits to
the whole chain up to it); a Merkle root (RFC 6962) over those spans, and the hash of the
previous seal, make the seals a chain of their own. The cutoff trails the clock by a margin
longer than any write can take, so a record appended before the cutoff is durable by the time
the sealer reads: a record that later shows up with an earlier time is an insertion.

Chains are discovered from the write-once container (a chain with no immutable copy is never
sealed; the writer copies every chain's first record before it returns), and heads are read from
the Table: one small query per active chain, whatever the number of writers. A seal never vouches
for a row without its copy: a chain is sealed up to its last copied row, and rows of the period
still without a copy (a host killed with copies queued: ``copies.py``) are named, with their
hashes as found, in a ``journal.copies_lost`` record written before the seal, so that verify can
tell a crash from a forged tail. The timer trigger in ``broker/api/journal.py`` runs ``Sealer.seal``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from broker.journal._canonical import canonical, merkle_root, sha256_hex
from broker.journal.envelope import GENESIS, blob_name, day_prefix, format_at, parse_at, parse_blob_name, record_id
from broker.journal.events import journal_copies_lost
from broker.journal.storage import ImmutableCopyExists, JournalStorage
from broker.journal.writer import JournalWriter
from broker.problems import Unavailable

log = logging.getLogger("broker.journal")

SEAL_MARGIN = timedelta(minutes=2)  # > the longest a write can take (timeouts x retries ~ 40 s)
SEAL_VERSION = 1
EPOCH = "1970-01-01T00:00:00.000000Z"


class SealConflict(Exception):
    """The seal's name was taken: another sealer ran at the same time, or someone wrote it."""


@dataclass(frozen=True)
class ChainSpan:
    chain: str
    first: int
    last: int
    head: str

    def to_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "first": self.first, "last": self.last, "head": self.head}

    def leaf(self) -> bytes:
        return canonical(self.to_dict())


@dataclass(frozen=True)
class Seal:
    seq: int
    prev: str  # SHA-256 of the previous seal's bytes (GENESIS for the first)
    start: str  # exclusive: the previous seal's cutoff
    cutoff: str  # inclusive
    sealed_at: str
    chains: tuple[ChainSpan, ...]
    records: int
    root: str

    @property
    def name(self) -> str:
        return seal_name(parse_at(self.cutoff).date(), self.seq)

    def to_bytes(self) -> bytes:
        return canonical({"v": SEAL_VERSION, "kind": "journal.seal", "seq": self.seq, "prev": self.prev,
                          "start": self.start, "cutoff": self.cutoff, "sealed_at": self.sealed_at,
                          "chains": [c.to_dict() for c in self.chains], "records": self.records,
                          "root": self.root})

    @classmethod
    def from_bytes(cls, data: bytes) -> Seal:
        d = json.loads(data)
        return cls(seq=int(d["seq"]), prev=d["prev"], start=d["start"], cutoff=d["cutoff"],
                   sealed_at=d["sealed_at"], records=int(d["records"]), root=d["root"],
                   chains=tuple(ChainSpan(c["chain"], int(c["first"]), int(c["last"]), c["head"])
                                for c in d["chains"]))

    @staticmethod
    def root_of(chains: tuple[ChainSpan, ...]) -> str:
        return merkle_root([c.leaf() for c in chains])


def seal_name(day: date, seq: int) -> str:
    return f"seals/{day:%Y/%m/%d}/{seq:010d}.json"


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _newest_leaf(storage: JournalStorage, prefix: str, depth: int) -> list[str]:
    """Walk year/month/day folders newest first; return the newest non-empty day's blob names."""
    if depth == 0:
        return sorted(storage.blob_names(prefix))
    for child in reversed(storage.child_prefixes(prefix)):
        names = _newest_leaf(storage, child, depth - 1)
        if names:
            return names
    return []


def latest_seal(storage: JournalStorage) -> tuple[Seal, str] | None:
    """The newest seal and the SHA-256 of its bytes (None before the first seal)."""
    names = _newest_leaf(storage, "seals/", 3)
    if not names:
        return None
    data = storage.read_blob(names[-1])
    if data is None:
        return None
    try:
        return Seal.from_bytes(data), sha256_hex(data)
    except (KeyError, ValueError, TypeError) as exc:
        raise SealConflict(f"the latest seal {names[-1]} cannot be read; sealing stops until it is "
                           "examined (run journal verify)") from exc


def record_days(storage: JournalStorage) -> list[date]:
    """Every UTC day that has record copies in the container, oldest first."""
    days: list[date] = []
    for year in storage.child_prefixes("records/"):
        for month in storage.child_prefixes(year):
            for day in storage.child_prefixes(month):
                y, m, d = day.rstrip("/").split("/")[-3:]
                days.append(date(int(y), int(m), int(d)))
    return days


@dataclass(frozen=True)
class _Found:
    """One chain's rows in the period: the span its copies let the seal vouch for, and the rows
    without a copy (record id, hash and append time as the Table holds them)."""

    span: ChainSpan | None
    lost: tuple[dict[str, str], ...]


class Sealer:
    def __init__(self, storage: JournalStorage, *, journal: JournalWriter | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), margin: timedelta = SEAL_MARGIN) -> None:
        """``journal`` records the rows found without their copy (``journal.copies_lost``); without
        it (tests) those rows are only left out of the seal, and verify reports them as inserted."""
        self._storage = storage
        self._journal = journal
        self._clock = clock
        self._margin = margin

    def seal(self) -> Seal | None:
        """Write the next seal (an empty period gets one too: it proves nothing was written).

        Returns None when the previous seal's cutoff is not yet behind the new one."""
        self._storage.ensure()
        cutoff_at = self._clock() - self._margin
        latest = latest_seal(self._storage)
        start = latest[0].cutoff if latest else EPOCH
        cutoff = format_at(cutoff_at)
        if cutoff <= start:
            return None
        if latest:
            days = _days(parse_at(start).date(), cutoff_at.date())
        else:
            days = [d for d in record_days(self._storage) if d <= cutoff_at.date()]
        pks = [f"{d:%Y%m%d}-{p.rstrip('/').rsplit('/', 1)[-1]}"
               for d in days for p in self._storage.child_prefixes(day_prefix(d))]
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="seal") as pool:
            found = list(pool.map(lambda pk: self._span(pk, start, cutoff), pks))
        spans = sorted((f.span for f in found if f.span is not None), key=lambda s: s.chain)
        self._record_lost([row for f in found for row in f.lost], start, cutoff)
        chain_spans = tuple(spans)
        seal = Seal(seq=latest[0].seq + 1 if latest else 1, prev=latest[1] if latest else GENESIS, start=start,
                    cutoff=cutoff, sealed_at=format_at(self._clock()), chains=chain_spans,
                    records=sum(s.last - s.first + 1 for s in spans), root=Seal.root_of(chain_spans))
        try:
            self._storage.put_immutable(seal.name, seal.to_bytes(), {"kind": "journal_seal"})
        except ImmutableCopyExists as exc:
            log.error("journal: seal %s already exists; not overwritten (a concurrent sealer, or tampering)",
                      seal.name)
            raise SealConflict(str(exc)) from exc
        log.info("journal: sealed %s: %d records in %d chains, root %s", seal.name, seal.records,
                 len(seal.chains), seal.root[:16])
        return seal

    def _record_lost(self, lost: list[dict[str, str]], start: str, cutoff: str) -> None:
        """Journal the rows found without their copy, durably with its own copy, before the seal
        that leaves them out is written; if that cannot be done, no seal is written (the next run
        covers the same period and finds them again)."""
        if not lost:
            return
        log.warning("journal: %d rows appended before %s have no immutable copy (a host killed with copies "
                    "queued?): %s", len(lost), cutoff, ", ".join(r["record"] for r in lost[:5]))
        if self._journal is None:
            return
        self._journal.write(journal_copies_lost(str(uuid.uuid4()), lost, start=start, cutoff=cutoff))
        if not self._journal.flush(30.0):
            raise Unavailable("The journal's record of lost copies could not be copied; the seal waits for it.",
                              code="journal_unavailable", extra={"reason": "copies_failing"})

    def _span(self, pk: str, start: str, cutoff: str) -> _Found:
        rows = self._storage.table.query_entities(
            "PartitionKey eq @pk and at gt @start and at le @cutoff",
            parameters={"pk": pk, "start": start, "cutoff": cutoff}, select=["RowKey", "hash", "at"])
        found: dict[int, tuple[str, str]] = {}
        for row in rows:
            if not row["RowKey"].isdigit():
                continue  # not a record the writer made; verify reports it
            found[int(row["RowKey"])] = (str(row.get("hash", "")), str(row.get("at", "")))
        if not found:
            return _Found(None, ())
        first = min(found)
        copied = self._copied(pk, first, max(found))
        if any(seq not in copied for seq in found):
            # the chain's writer is dead (or its copies have failed for minutes): name its whole
            # uncopied tail now, rows after the cutoff too, so that one record covers each dead chain
            later = {int(r["RowKey"]): (str(r.get("hash", "")), str(r.get("at", ""))) for r in
                     self._storage.table.query_entities("PartitionKey eq @pk and RowKey gt @rk",
                                                        parameters={"pk": pk, "rk": f"{max(found):010d}"},
                                                        select=["RowKey", "hash", "at"])
                     if r["RowKey"].isdigit()}
            if later:
                copied |= self._copied(pk, min(later), max(later))
                found.update({seq: row for seq, row in later.items() if seq not in copied})
        in_period = {seq for seq, (_, at) in found.items() if at <= cutoff}
        # A row without its copy in the middle is still pinned by the next copy (its ``prev``), so
        # the span reaches the last copied row; only the rows after it are vouched for by nothing.
        last = max((seq for seq in in_period if seq in copied), default=None)
        lost = tuple({"record": record_id(pk, seq), "hash": found[seq][0], "at": found[seq][1]}
                     for seq in sorted(found) if seq not in copied)
        span = None if last is None else ChainSpan(pk, first, last, found[last][0])
        return _Found(span, lost)

    def _copied(self, pk: str, first: int, last: int) -> set[int]:
        """Which of records first..last have their copy: at most two listings of names sharing a
        prefix (blocks of 10^k names, 10^k > the span), so the cost follows the period, not the chain."""
        base = blob_name(pk, 0)[: -len("0000000000.json")]
        level = min(len(str(last - first + 1)), 10)
        blocks = sorted({first // 10 ** level, last // 10 ** level})
        seqs: set[int] = set()
        for block in blocks:
            digits = f"{block * 10 ** level:010d}"[: 10 - level]
            for name in self._storage.blob_names(base + digits):
                parsed = parse_blob_name(name)
                if parsed is not None and parsed[0] == pk and first <= parsed[1] <= last:
                    seqs.add(parsed[1])
        return seqs
