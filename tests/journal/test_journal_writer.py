"""The writer, against Azurite through the real SDK clients: chained rows, write-once copies,
large responses in the blob, failures that refuse rather than lose."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from journal_samples import execute, intent, outcome

from broker.journal import JournalQuery, JournalReader, JournalStorage, JournalWriter, Verifier
from broker.journal._canonical import sha256_hex
from broker.journal.envelope import GENESIS, Envelope, blob_name, parse_record_id, row_envelope_text
from broker.problems import Unavailable
from broker.settings import Settings


def _row(storage: JournalStorage, rid: str) -> dict:
    return storage.table.get_entity(*parse_record_id(rid))


def test_a_record_is_a_chained_row_and_an_identical_write_once_copy(storage, writer):
    first, second = execute(writer)
    assert writer.flush()  # the copy follows its row; nothing is pending after a flush
    row1, row2 = _row(storage, first), _row(storage, second)
    env1, env2 = (Envelope.from_bytes(row_envelope_text(r)) for r in (row1, row2))
    assert (env1.seq, env1.prev) == (1, GENESIS)
    assert (env2.seq, env2.prev, env2.chain) == (2, row1["hash"], env1.chain)
    assert row1["hash"] == sha256_hex(row_envelope_text(row1).encode())
    blob = json.loads(storage.read_blob(blob_name(env2.chain, 2)))
    assert blob["hash"] == row2["hash"] and blob["envelope"] == json.loads(row_envelope_text(row2))
    assert blob["response"] == json.loads(row2["response"])
    assert row2["event"] == "execute.outcome" and row2["target"] == "demo-postgres"


def test_the_writer_sets_the_record_id_it_returns(writer):
    record = intent()
    rid = writer.write(record)
    assert record.record_id == rid and parse_record_id(rid) is not None


def test_a_large_response_lives_in_the_blob_and_the_row_keeps_its_digest(storage, writer):
    rows = [[i, "[name:ab12cd]", "x" * 200] for i in range(500)]
    rec = intent()
    rid = writer.write(outcome(writer.write(rec), rows=rows, request_id=rec.request_id))
    row = _row(storage, rid)
    assert "response" not in row
    env = Envelope.from_bytes(row_envelope_text(row))
    assert env.response_chars > 30_000 and env.response_sha256
    stored = JournalReader(storage).get(rid)
    assert stored is not None and stored.record.response["rows"] == rows


def test_an_existing_copy_is_never_overwritten_and_the_journal_then_refuses(storage, writer):
    rid = writer.write(intent())
    pk, _ = parse_record_id(rid)
    squatter = blob_name(pk, 2)
    storage.container.upload_blob(squatter, b"someone else's", overwrite=False)
    writer.write(intent())  # its row lands; its copy finds the squatter
    assert writer.flush()
    with pytest.raises(Unavailable) as refused:
        writer.write(intent())
    assert refused.value.code == "journal_unavailable"
    assert refused.value.extra == {"reason": "immutable_copy_exists"}
    assert storage.read_blob(squatter) == b"someone else's"
    assert "blob_replaced" in {f.kind for f in Verifier(storage).verify().findings}


def test_a_large_record_waits_for_its_blob_because_the_row_only_refers_to_it(storage, writer):
    sql = "SELECT '" + "x" * 500_000 + "'"
    rid = writer.write(intent(sql=sql))
    assert writer.copies.pending == 0  # written before write() returned, not queued
    assert JournalReader(storage).get(rid).record.command["sql"] == sql


def test_copies_failing_refuse_new_records_until_they_land(storage):
    calls = {"n": 0}
    real = storage.put_immutable

    def flaky(name, data, metadata=None):
        calls["n"] += 1
        if calls["n"] <= 3:
            raise OSError("blob storage is down")
        real(name, data, metadata)

    storage.put_immutable = flaky
    writer = JournalWriter(storage)
    try:
        writer.copies._retry_delays = (0.3,)
        rid = writer.write(intent())
        time.sleep(0.1)
        with pytest.raises(Unavailable) as refused:
            writer.write(intent())
        assert refused.value.extra == {"reason": "copies_failing"}
        assert writer.flush(10)
        assert storage.read_blob(blob_name(parse_record_id(rid)[0], 1)) is not None
        writer.write(intent())  # healthy again
    finally:
        writer.close()


def test_unreachable_storage_refuses_with_journal_unavailable(azurite):
    dead = Settings(storage_connection_string=azurite.connection_string.replace(
        f":{azurite.ports['table']}/", ":9/").replace(f":{azurite.ports['blob']}/", ":9/"),
        journal_table="jdead", journal_container="jdead")
    writer = JournalWriter(JournalStorage.from_settings(dead))
    try:
        with pytest.raises(Unavailable) as refused:
            writer.write(intent())
        assert refused.value.code == "journal_unavailable"
    finally:
        writer.close()


def test_chains_roll_over_at_midnight_utc(storage):
    moments = iter([datetime(2025, 6, 14, 23, 59, 59, tzinfo=UTC), datetime(2025, 6, 15, 0, 0, 1, tzinfo=UTC)])
    writer = JournalWriter(storage, clock=lambda: next(moments))
    try:
        before, after = writer.write(intent()), writer.write(intent())
    finally:
        writer.close()
    assert before.startswith("20250614-") and before.endswith("-0000000001")
    assert after.startswith("20250615-") and after.endswith("-0000000001")


def test_append_times_are_monotonic_within_a_chain_even_if_the_clock_steps_back(storage):
    t0 = datetime(2025, 6, 14, 12, 0, tzinfo=UTC)
    moments = iter([t0, t0 - timedelta(seconds=5), t0 - timedelta(seconds=4)])
    writer = JournalWriter(storage, clock=lambda: next(moments))
    try:
        ids = [writer.write(intent()) for _ in range(3)]
    finally:
        writer.close()
    ats = [Envelope.from_bytes(row_envelope_text(_row(storage, rid))).at for rid in ids]
    assert ats == sorted(ats) and len(set(ats)) == 3


def test_reader_queries_by_session_identity_and_time(storage, writer):
    execute(writer, session_id="s-1")
    execute(writer, session_id="s-2")
    reader = JournalReader(storage)
    assert [r.record.event for r in reader.query(JournalQuery(session="s-1"))] == ["execute.intent",
                                                                                  "execute.outcome"]
    devin = "11111111-1111-4111-8111-111111111111"
    assert len(reader.query(JournalQuery(identity=devin))) == 4
    assert len(reader.query(JournalQuery(identity="Devin (dev agent)"))) == 4
    assert reader.query(JournalQuery(identity="someone-else")) == []
    future = datetime.now(UTC) + timedelta(hours=1)
    assert reader.query(JournalQuery(since=future, until=future + timedelta(hours=1))) == []
    recent = reader.recent(limit=3)
    assert len(recent) == 3 and recent[0].at >= recent[1].at >= recent[2].at


def test_a_limited_query_returns_the_newest_records_across_days(storage):
    t13, t14 = datetime(2025, 6, 13, 12, tzinfo=UTC), datetime(2025, 6, 14, 12, tzinfo=UTC)
    moments = iter([t13 + timedelta(seconds=i) for i in range(3)] + [t14 + timedelta(seconds=i) for i in range(2)])
    writer = JournalWriter(storage, clock=lambda: next(moments))
    try:
        ids = [writer.write(intent(session_id="s")) for _ in range(5)]
    finally:
        writer.close()
    reader = JournalReader(storage)
    window = {"since": datetime(2025, 6, 13, tzinfo=UTC), "until": datetime(2025, 6, 15, tzinfo=UTC)}
    assert [r.id for r in reader.query(JournalQuery(**window, limit=3))] == ids[2:]
    assert [r.id for r in reader.query(JournalQuery(**window))] == ids
    assert [r.id for r in reader.query(JournalQuery(**window, session="s", limit=1))] == ids[4:]
    assert [r.id for r in reader.iter_range(t13 + timedelta(seconds=1), t14 + timedelta(seconds=1))] == ids[1:4]


def test_a_record_too_large_for_a_row_lives_in_its_blob_and_the_row_refers_to_it(storage, writer):
    sql = "SELECT '" + "é" * 500_000 + "'"
    rid = writer.write(intent(sql=sql))
    row = _row(storage, rid)
    assert row["chunks"] == 0 and not any(k.startswith("e") and k[1:].isdigit() for k in row)
    assert row["target"] == "demo-postgres" and row["hash"]
    stored = JournalReader(storage).get(rid)
    assert stored is not None and stored.record.command["sql"] == sql and stored.hash == row["hash"]
    assert Verifier(storage).verify().intact
    row["target"] = "orders-db"
    storage.table.update_entity(row)
    assert [(f.kind, f.where) for f in Verifier(storage).verify().findings if f.severity == "error"] == [
        ("edited", rid)]


def test_a_burst_faster_than_copies_is_slowed_down_not_refused(storage):
    writer = JournalWriter(storage)
    try:
        writer.copies._max_backlog = 3  # a tiny backlog: writers must wait for copies to drain
        ids = [writer.write(intent()) for _ in range(12)]
        assert len(set(ids)) == 12 and writer.flush()
        assert Verifier(storage).verify().copies == 12
    finally:
        writer.close()


def test_a_backlog_that_does_not_drain_refuses(storage):
    gate = threading.Event()
    real = storage.put_immutable
    storage.put_immutable = lambda *a, **k: (gate.wait(10), real(*a, **k))
    writer = JournalWriter(storage)
    try:
        writer.copies._max_backlog, writer.copies._backlog_wait = 2, 0.2
        gate.set()
        writer.write(intent())  # a chain's first record is copied before write returns
        gate.clear()
        writer.write(intent())
        writer.write(intent())
        with pytest.raises(Unavailable) as refused:
            writer.write(intent())
        assert refused.value.extra == {"reason": "copies_backlog"}
    finally:
        gate.set()
        writer.close()


def test_astral_records_fit_the_table_properties_azurite_enforces(storage, writer):
    """Azurite refuses a string property beyond 32,768 UTF-16 code units, as Azure does: 30,000
    emoji are 60,000 units, so a character-counted chunk would not land."""
    sql = "SELECT '" + "😀" * 150_000 + "'"  # 300,000 code units: in the row, chunked by units
    rid = writer.write(intent(sql=sql))
    assert _row(storage, rid)["chunks"] >= 10
    assert JournalReader(storage).get(rid).record.command["sql"] == sql
    assert writer.flush() and Verifier(storage).verify().intact
