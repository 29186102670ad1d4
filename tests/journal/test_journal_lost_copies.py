"""A host killed with copies queued (its ``CopyQueue`` dies with it) leaves rows without their
write-once copy. The sealer never vouches for them: it seals each chain up to its last copy and
names the uncopied rows, with their hashes as found, in a ``journal.copies_lost`` record; verify
then reports them as lost copies (a warning, exit 3), while a row forged or edited around that
record is still tampering. Real Azurite, real SDK clients; the kill is the queue's copies never
landing (tests/faults kills a real devhost with SIGKILL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import UpdateMode
from journal_samples import execute

from broker.journal import Event, JournalStorage, JournalWriter, Sealer, Verifier, VerifyReport
from broker.journal._canonical import normalize
from broker.journal.copies import CopyQueue
from broker.journal.envelope import (
    Envelope,
    blob_name,
    encode_row,
    format_at,
    parse_at,
    parse_record_id,
    record_hash,
    row_envelope_text,
)
from broker.problems import Unavailable


class KilledHost:
    """A writer whose queued copies never land, as when its process is SIGKILLed."""

    def __init__(self, storage: JournalStorage) -> None:
        self.writer = JournalWriter(storage)
        self._dead = threading.Event()

        def never(name: str, data: bytes, metadata: dict[str, str]) -> None:
            self._dead.wait()  # the process is gone before the copy is written; nothing is written

        self.writer.copies = CopyQueue(never, workers=1, max_age=60.0)

    def close(self) -> None:
        self._dead.set()
        self.writer.copies.flush(5)


@pytest.fixture
def killed(storage: JournalStorage) -> Iterator[KilledHost]:
    host = KilledHost(storage)
    yield host
    host.close()


def _verify(storage: JournalStorage) -> VerifyReport:
    return Verifier(storage).verify()


def _kinds(report: VerifyReport) -> dict[str, int]:
    return report.counts()


def _row(storage: JournalStorage, rid: str) -> dict:
    return storage.table.get_entity(*parse_record_id(rid))


def _rewrite(storage: JournalStorage, rid: str, **record_changes: object) -> None:
    """The insider: edit a row's record and recompute its hash (self-consistent)."""
    entity = _row(storage, rid)
    env = Envelope.from_bytes(row_envelope_text(entity))
    env = Envelope(env.id, env.chain, env.seq, env.prev, env.at, normalize({**env.record, **record_changes}),
                   env.response_sha256, env.response_chars)
    data = env.canonical()
    storage.table.update_entity(encode_row(env, data, record_hash(data), entity.get("response")),
                                mode=UpdateMode.REPLACE)


def _forge_after(storage: JournalStorage, rid: str, at: str) -> str:
    """The insider: append a chain-consistent row after ``rid`` (a copy of it, relinked)."""
    entity = _row(storage, rid)
    env = Envelope.from_bytes(row_envelope_text(entity))
    pk, rk = parse_record_id(rid)
    seq = int(rk) + 1
    forged_id = f"{pk}-{seq:010d}"
    env = Envelope(forged_id, env.chain, seq, entity["hash"], at, normalize({**env.record, "record_id": forged_id,
                                                                          "target": "forged"}),
                   env.response_sha256, env.response_chars)
    data = env.canonical()
    storage.table.create_entity(encode_row(env, data, record_hash(data), entity.get("response")))
    return forged_id


@pytest.fixture
def crashed(storage: JournalStorage, killed: KilledHost) -> tuple[list[str], list[str], JournalWriter]:
    """A live writer's 4 records, a killed host's 6 (its first copied, 5 lost); the live writer
    (flushed) is returned open, for the sealer to journal with."""
    live = JournalWriter(storage)
    ok = [rid for _ in range(2) for rid in execute(live)]
    dead = [rid for _ in range(3) for rid in execute(killed.writer)]
    assert live.flush(10)
    return ok, dead, live


def _lost_records(storage: JournalStorage) -> list[dict]:
    return list(storage.table.query_entities(f"event eq '{Event.JOURNAL_COPIES_LOST}'"))


def test_a_new_chains_first_record_is_copied_before_write_returns(storage, killed):
    first, second = execute(killed.writer)
    assert storage.read_blob(blob_name(*_split(first))) is not None  # the sealer can find the chain
    assert storage.read_blob(blob_name(*_split(second))) is None  # queued, and the host "died"


def _split(rid: str) -> tuple[str, int]:
    pk, rk = parse_record_id(rid)
    return pk, int(rk)


def test_without_a_record_the_lost_tail_is_unsealed_and_looks_inserted(storage, crashed):
    """The sealer alone (no journal to record in) never vouches for rows without their copy, so the
    dead chain is not `truncated`; its uncopied rows look like a forged tail."""
    ok, dead, live = crashed
    try:
        seal = Sealer(storage, margin=timedelta(0)).seal()
    finally:
        live.close()
    spans = {s.chain: s for s in seal.chains}
    dead_pk = _split(dead[0])[0]
    assert (spans[dead_pk].first, spans[dead_pk].last) == (1, 1)
    assert spans[_split(ok[0])[0]].last == 4
    report = _verify(storage)
    assert _kinds(report) == {"inserted": 5}, report.render()
    assert {f.where for f in report.findings} == set(dead[1:])


def test_the_sealer_records_the_lost_tail_and_verify_names_it_a_crash(storage, crashed):
    _ok, dead, live = crashed
    try:
        seal = Sealer(storage, journal=live, margin=timedelta(0)).seal()
    finally:
        live.close()
    assert {(s.chain, s.first, s.last) for s in seal.chains} >= {(_split(dead[0])[0], 1, 1)}
    [claim] = _lost_records(storage)
    record = Envelope.from_bytes(row_envelope_text(claim)).record
    lost = record["outcome"]["lost"]
    assert [item["record"] for item in lost] == dead[1:]
    assert [item["hash"] for item in lost] == [_row(storage, rid)["hash"] for rid in dead[1:]]
    assert record["principal"]["kind"] == "broker"
    report = _verify(storage)
    assert _kinds(report) == {"copy_lost": 5}, report.render()
    assert all(f.severity == "warning" for f in report.findings)
    assert report.intact and report.copies_lost == 5 and report.exit_code() == 3
    assert "lost their immutable copy in a crash" in report.render()
    # the record of the loss is itself sealed next time, and nothing changes
    Sealer(storage, margin=timedelta(0)).seal()
    assert _kinds(_verify(storage)) == {"copy_lost": 5}


def test_a_lost_row_edited_after_the_record_is_tampering(storage, crashed):
    _ok, dead, live = crashed
    try:
        Sealer(storage, journal=live, margin=timedelta(0)).seal()
    finally:
        live.close()
    _rewrite(storage, dead[-1], target="elsewhere")  # self-consistent, at the tail: no link breaks
    report = _verify(storage)
    assert report.exit_code() == 1
    edited = [f for f in report.findings if f.kind == "edited"]
    assert [f.where for f in edited] == [dead[-1]], report.render()
    assert "edited after that" in edited[0].detail
    assert _kinds(report)["copy_lost"] == 4


def test_rows_forged_around_the_record_are_not_laundered(storage, crashed):
    """A row appended to the dead chain after the record (backdated into the sealed period, or
    dated now and found by the next sealer), a copied row edited before the record, and a forged
    Table row claiming lost copies: each is still tampering."""
    ok, dead, live = crashed
    try:
        _rewrite(storage, ok[1], reason="edited before the record")  # has its copy: never claimed
        Sealer(storage, journal=live, margin=timedelta(0)).seal()
        backdated = format_at(parse_at(_row(storage, dead[-1])["at"]) + timedelta(microseconds=1))
        forged = _forge_after(storage, dead[-1], backdated)
        time.sleep(0.01)
        later = _forge_after(storage, forged, format_at(datetime.now(UTC)))
        time.sleep(0.01)
        # the next sealer finds `later` (dated in its period) without a copy and names it ...
        Sealer(storage, journal=live, margin=timedelta(0)).seal()
    finally:
        live.close()
    assert len(_lost_records(storage)) == 2
    report = _verify(storage)
    assert report.exit_code() == 1
    by_kind = {(f.kind, f.where) for f in report.findings}
    # ... but a dead chain is named once, by the first record: rows appended later are forged
    assert ("inserted", forged) in by_kind and ("inserted", later) in by_kind, report.render()
    assert any(k == "edited" and w == ok[1] for k, w in by_kind)
    assert _kinds(report)["copy_lost"] == 5


def test_a_forged_claim_without_its_copy_vouches_for_nothing(storage, crashed):
    _ok, dead, live = crashed
    live.close()
    claim = _row(storage, dead[0])
    env = Envelope.from_bytes(row_envelope_text(claim))
    pk, _ = _split(dead[-1])
    rid = f"{pk}-{len(dead) + 1:010d}"
    lost = [{"record": r, "hash": _row(storage, r)["hash"], "at": _row(storage, r)["at"]} for r in dead[1:]]
    record = normalize({**env.record, "event": Event.JOURNAL_COPIES_LOST, "record_id": rid,
                        "outcome": {"status": "recorded", "lost": lost}})
    forged = Envelope(rid, pk, len(dead) + 1, _row(storage, dead[-1])["hash"],
                      format_at(parse_at(_row(storage, dead[-1])["at"]) + timedelta(milliseconds=1)), record)
    data = forged.canonical()
    storage.table.create_entity(encode_row(forged, data, record_hash(data), None))
    Sealer(storage, margin=timedelta(0)).seal()
    report = _verify(storage)
    assert report.copies_lost == 0 and report.exit_code() == 1
    assert {f.where for f in report.findings if f.kind == "inserted"} == set(dead[1:]) | {rid}, report.render()


def test_hiding_the_record_only_makes_verify_report_more(storage, crashed):
    _ok, dead, live = crashed
    try:
        Sealer(storage, journal=live, margin=timedelta(0)).seal()
    finally:
        live.close()
    [claim] = _lost_records(storage)
    claim["event"] = "execute.intent"  # the insider hides the record from verify's look-up
    storage.table.update_entity(claim, mode=UpdateMode.REPLACE)
    report = _verify(storage)
    assert report.copies_lost == 0 and report.exit_code() == 1
    kinds = {(f.kind, f.where) for f in report.findings}
    assert {("inserted", rid) for rid in dead[1:]} <= kinds and any(k == "edited" for k, _ in kinds)


def test_the_copy_backlog_is_bounded_by_age_and_size():
    """Writers wait while the oldest queued copy is older than ``max_age`` (or too many are
    queued), and are refused if it does not drain in time: a crash costs seconds of copies."""
    release = threading.Event()
    written: list[str] = []
    queue = CopyQueue(lambda name, data, md: (release.wait(), written.append(name)), workers=1, max_age=0.2,
                      max_backlog=50, backlog_wait=0.3)
    try:
        queue.submit("a", b"{}", {})
        queue.check()  # young: fine
        time.sleep(0.25)
        with pytest.raises(Unavailable) as refused:
            queue.check()
        assert refused.value.extra == {"reason": "copies_backlog"}
        assert queue.oldest_age >= 0.2
        threading.Timer(0.1, release.set).start()
        queue.check()  # waits until the old copy drained, then lets the writer on
        assert written == ["a"] and queue.oldest_age == 0.0
        for i in range(50):
            queue.submit(str(i), b"{}", {})
        assert queue.flush(5)
    finally:
        release.set()
        queue.close(5)
