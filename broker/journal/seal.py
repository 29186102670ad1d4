"""Seals: periodic checkpoints of every chain, written to the write-once container.

A seal covers the period (previous cutoff, cutoff]. For every chain with records appended in
that period it names the span (first..last sequence number) and the head hash (which commits to
the whole chain up to it); a Merkle root (RFC 6962) over those spans, and the hash of the
previous seal, make the seals a chain of their own. The cutoff trails the clock by a margin
longer than any write can take, so a record appended before the cutoff is durable by the time
the sealer reads: a record that later shows up with an earlier time is an insertion.

Chains are discovered from the write-once container (a chain with no immutable copy is never
sealed), and heads are read from the Table: one small query per active chain, whatever the
number of writers. The timer trigger in ``broker/api/journal.py`` runs ``Sealer.seal``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from broker.journal._canonical import canonical, merkle_root, sha256_hex
from broker.journal.envelope import GENESIS, day_prefix, format_at, parse_at
from broker.journal.storage import ImmutableCopyExists, JournalStorage

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


class Sealer:
    def __init__(self, storage: JournalStorage, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 margin: timedelta = SEAL_MARGIN) -> None:
        self._storage = storage
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
            spans = [s for s in pool.map(lambda pk: self._span(pk, start, cutoff), pks) if s is not None]
        spans.sort(key=lambda s: s.chain)
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

    def _span(self, pk: str, start: str, cutoff: str) -> ChainSpan | None:
        rows = self._storage.table.query_entities(
            "PartitionKey eq @pk and at gt @start and at le @cutoff",
            parameters={"pk": pk, "start": start, "cutoff": cutoff}, select=["RowKey", "hash"])
        first = last = None
        head = ""
        for row in rows:
            if not row["RowKey"].isdigit():
                continue  # not a record the writer made; verify reports it
            seq = int(row["RowKey"])
            if first is None or seq < first:
                first = seq
            if last is None or seq > last:
                last, head = seq, str(row.get("hash", ""))
        if first is None or last is None:
            return None
        return ChainSpan(pk, first, last, head)
