"""Tampering with the journal's storage directly (the real azure-data-tables / azure-storage-blob
clients, as someone with storage access would) is named precisely by verify."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import UpdateMode
from journal_samples import execute, intent

from broker.journal import JournalStorage, JournalWriter, Sealer, Verifier, VerifyReport
from broker.journal._canonical import canonical, normalize, sha256_hex
from broker.journal.envelope import (
    Envelope,
    assemble_blob,
    blob_name,
    encode_row,
    format_at,
    parse_record_id,
    record_id,
    row_envelope_text,
)
from broker.journal.seal import Seal


@dataclass
class Journal:
    storage: JournalStorage
    a: list[str]  # chain A: eight sealed records, then two newer
    b: list[str]  # chain B: all sealed
    seal: Seal

    def row(self, rid: str) -> dict:
        return self.storage.table.get_entity(*parse_record_id(rid))

    def put(self, entity: dict) -> None:
        self.storage.table.update_entity(entity, mode=UpdateMode.REPLACE)


def _writes(storage: JournalStorage, executes: int) -> list[str]:
    writer = JournalWriter(storage)
    try:
        return [rid for _ in range(executes) for rid in execute(writer)]
    finally:
        writer.close()


@pytest.fixture
def journal(storage: JournalStorage) -> Journal:
    """Chain A: 8 sealed records and 2 newer; chain B: 6 sealed records; one seal."""
    writer_a = JournalWriter(storage)
    try:
        a = [rid for _ in range(4) for rid in execute(writer_a)]
        b = _writes(storage, 3)
        seal = Sealer(storage, margin=timedelta(0)).seal()
        assert seal is not None
        a += execute(writer_a)
    finally:
        writer_a.close()
    return Journal(storage, a, b, seal)


def verify(storage: JournalStorage) -> VerifyReport:
    return Verifier(storage).verify()


def found(report: VerifyReport) -> set[tuple[str, str]]:
    return {(f.kind, f.where) for f in report.findings if f.severity == "error"}


def test_an_untouched_journal_verifies(journal):
    report = verify(journal.storage)
    assert report.intact, report.render()
    assert (report.records, report.copies, report.chains, report.seals, report.unsealed) == (16, 16, 2, 1, 2)
    assert report.findings == []


# --- each tampering, and the finding that must name it --------------------------------------------
def edit_a_column(j: Journal) -> tuple[str, str, str]:
    row = j.row(j.a[2])
    row["target"] = "orders-db"
    j.put(row)
    return "edited", j.a[2], "column 'target'"


def edit_the_record(j: Journal) -> tuple[str, str, str]:
    row = j.row(j.a[2])
    row["e0"] = row["e0"].replace("FROM customers", "FROM invoices")
    j.put(row)
    return "edited", j.a[2], "command"


def edit_the_record_and_its_hash(j: Journal) -> tuple[str, str, str]:
    row = j.row(j.a[2])
    row["e0"] = row["e0"].replace("INC-123", "INC-999")
    row["hash"] = sha256_hex(row_envelope_text(row).encode())
    j.put(row)
    return "edited", j.a[2], "reason"


def edit_a_records_position(j: Journal) -> tuple[str, str, str]:
    row = j.row(j.a[2])
    row["e0"] = row["e0"].replace('"seq":3,', '"seq":9,')
    j.put(row)
    return "edited", j.a[2], "seq"


def delete_a_row(j: Journal) -> tuple[str, str, str]:
    j.storage.table.delete_entity(*parse_record_id(j.a[3]))
    return "deleted", j.a[3], "Table row is gone"


def _forge(j: Journal, pk: str, seq: int, prev: str, at: datetime) -> dict:
    record = intent(sql="DROP TABLE customers")
    record.record_id = record_id(pk, seq)
    body = normalize(record.to_dict())
    body.pop("response")
    env = Envelope(id=record.record_id, chain=pk, seq=seq, prev=prev, at=format_at(at), record=body)
    data = env.canonical()
    entity = encode_row(env, data, sha256_hex(data), None)
    j.storage.table.create_entity(entity)
    return entity


def insert_a_forged_record_at_a_chain_tail(j: Journal) -> tuple[str, str, str]:
    last = j.row(j.b[-1])
    pk = last["PartitionKey"]
    forged = _forge(j, pk, len(j.b) + 1, last["hash"], datetime.now(UTC) - timedelta(hours=1))
    return "inserted", forged["record_id"], "no immutable copy"


def insert_a_forged_chain(j: Journal) -> tuple[str, str, str]:
    from broker.journal.envelope import GENESIS

    pk = j.row(j.a[0])["PartitionKey"][:9] + "f" * 16
    forged = _forge(j, pk, 1, GENESIS, datetime.now(UTC) - timedelta(hours=1))
    return "inserted", forged["record_id"], "no seal covers it"


def reorder_two_records(j: Journal) -> tuple[str, str, str]:
    first, second = j.row(j.a[1]), j.row(j.a[2])
    keys = ("PartitionKey", "RowKey")
    swapped_1 = {**{k: v for k, v in second.items() if k not in keys}, **{k: first[k] for k in keys}}
    swapped_2 = {**{k: v for k, v in first.items() if k not in keys}, **{k: second[k] for k in keys}}
    j.put(swapped_1)
    j.put(swapped_2)
    return "reordered", j.a[1], "swapped"


def replace_a_blob(j: Journal) -> tuple[str, str, str]:
    rid = j.b[2]
    pk, rk = parse_record_id(rid)
    name = blob_name(pk, int(rk))
    doc = json.loads(j.storage.read_blob(name))
    doc["envelope"]["record"]["command"]["sql"] = "SELECT 1"
    env_bytes = canonical(doc["envelope"])
    forged = assemble_blob(env_bytes, sha256_hex(env_bytes), canonical(doc["response"]) if doc["response"] else None)
    j.storage.container.upload_blob(name, forged, overwrite=True)
    return "blob_replaced", name, "differs from what was written"


def replace_a_blob_with_garbage(j: Journal) -> tuple[str, str, str]:
    pk, rk = parse_record_id(j.b[1])
    name = blob_name(pk, int(rk))
    j.storage.container.upload_blob(name, b"not json", overwrite=True)
    return "blob_replaced", name, "cannot be read"


def delete_a_blob(j: Journal) -> tuple[str, str, str]:
    pk, rk = parse_record_id(j.b[1])
    name = blob_name(pk, int(rk))
    j.storage.container.delete_blob(name)
    return "blob_missing", name, "copy is gone"


def truncate_a_sealed_chain(j: Journal) -> tuple[str, str, str]:
    for rid in j.b[-2:]:
        pk, rk = parse_record_id(rid)
        j.storage.table.delete_entity(pk, rk)
        j.storage.container.delete_blob(blob_name(pk, int(rk)))
    return "truncated", parse_record_id(j.b[0])[0], f"recorded it up to record {len(j.b)}"


def replace_a_seal(j: Journal) -> tuple[str, str, str]:
    _writes(j.storage, 1)
    Sealer(j.storage, margin=timedelta(0)).seal()
    doc = json.loads(j.storage.read_blob(j.seal.name))
    doc["chains"] = doc["chains"][:1]  # forget a chain, and make the root fit again
    doc["records"] = doc["chains"][0]["last"] - doc["chains"][0]["first"] + 1
    doc["root"] = Seal.root_of(Seal.from_bytes(json.dumps(doc).encode()).chains)
    j.storage.container.upload_blob(j.seal.name, canonical(doc), overwrite=True)
    return "seal_broken", j.seal.name, "replaced after sealing"


def delete_a_seal(j: Journal) -> tuple[str, str, str]:
    _writes(j.storage, 1)
    Sealer(j.storage, margin=timedelta(0)).seal()
    _writes(j.storage, 1)
    Sealer(j.storage, margin=timedelta(0)).seal()
    second = next(n for n in j.storage.blob_names("seals/") if n.endswith("0000000002.json"))
    j.storage.container.delete_blob(second)
    return "seal_missing", "seal 2", "missing"


TAMPERING: list[Callable[[Journal], tuple[str, str, str]]] = [
    edit_a_column, edit_the_record, edit_the_record_and_its_hash, edit_a_records_position, delete_a_row,
    insert_a_forged_record_at_a_chain_tail, insert_a_forged_chain, reorder_two_records, replace_a_blob,
    replace_a_blob_with_garbage, delete_a_blob, truncate_a_sealed_chain, replace_a_seal, delete_a_seal,
]


@pytest.mark.parametrize("tamper", TAMPERING, ids=[t.__name__ for t in TAMPERING])
def test_verify_names_each_tampering(journal, tamper):
    kind, where, words = tamper(journal)
    report = verify(journal.storage)
    assert not report.intact
    matches = [f for f in report.findings if f.kind == kind and f.where == where]
    assert matches, report.render()
    assert words in matches[0].detail, matches[0].detail


def test_a_record_edited_before_sealing_is_still_caught_by_its_copy(storage):
    ids = _writes(storage, 2)
    row = storage.table.get_entity(*parse_record_id(ids[1]))
    row["e0"] = row["e0"].replace("customers", "payments")
    row["hash"] = sha256_hex(row_envelope_text(row).encode())
    storage.table.update_entity(row, mode=UpdateMode.REPLACE)
    Sealer(storage, margin=timedelta(0)).seal()
    assert ("edited", ids[1]) in found(verify(storage))


def test_an_intent_without_outcome_is_shown_but_is_not_tampering(storage):
    writer = JournalWriter(storage)
    try:
        execute(writer)
        crashed = writer.write(intent())
    finally:
        writer.close()
    report = verify(storage)
    assert report.intact
    assert [(f.kind, f.where, f.severity) for f in report.findings] == [("open_intent", crashed, "warning")]
    assert "may or may not have run" in report.render()


def test_a_clean_journal_of_more_than_a_table_page_of_records_verifies(storage):
    """1,100 records from 8 threads: the reads cross Table storage's 1,000-entity page."""
    writer = JournalWriter(storage)
    try:
        with ThreadPoolExecutor(8) as pool:
            ids = [rid for pair in pool.map(lambda _: execute(writer), range(550)) for rid in pair]
    finally:
        writer.close()
    seal = Sealer(storage, margin=timedelta(0)).seal()
    assert seal is not None and seal.records == 1100
    report = verify(storage)
    assert report.intact, report.render()
    assert report.records == report.copies == len(set(ids)) == 1100
    assert report.unsealed == 0 and report.chains == len(seal.chains) > 1


def test_a_taken_seal_name_is_reported_not_overwritten(storage):
    from broker.journal import SealConflict
    from broker.journal.seal import seal_name

    _writes(storage, 1)
    squatter = seal_name(datetime.now(UTC).date(), 1)
    storage.container.upload_blob(squatter, b"{}", overwrite=False)
    with pytest.raises(SealConflict):
        Sealer(storage, margin=timedelta(0)).seal()
    assert storage.read_blob(squatter) == b"{}"
    assert ("seal_broken", squatter) in found(verify(storage))
