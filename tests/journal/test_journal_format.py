"""The record format: canonical bytes, hashes, ids, rows and blobs (no storage needed)."""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal

import pytest
import rfc8785

from broker.journal import Event, JournalRecord
from broker.journal._canonical import canonical, merkle_root, normalize
from broker.journal.envelope import (
    CHUNK_UNITS,
    GENESIS,
    Envelope,
    assemble_blob,
    blob_name,
    encode_row,
    parse_blob_name,
    parse_record_id,
    projections,
    record_id,
    row_envelope_text,
)
from broker.table_text import utf16_units


@pytest.mark.parametrize(("value", "expected"), [
    (Decimal("12.50"), "12.50"),
    (2**60, str(2**60)),
    (-(2**53 - 1), -(2**53 - 1)),
    (math.nan, "nan"),
    (math.inf, "inf"),
    (b"\x01\xff", "01ff"),
    ((1, "a"), [1, "a"]),
    ({1: {"x": None}}, {"1": {"x": None}}),
    (True, True),
])
def test_normalize_makes_values_jcs_can_encode(value, expected):
    assert normalize(value) == expected
    canonical(normalize(value))  # does not raise


def test_canonical_is_rfc8785_and_stable_through_a_round_trip():
    value = normalize({"b": [1.0, 0.1, "é"], "a": {"z": 1, "y": None}})
    data = canonical(value)
    assert data == b'{"a":{"y":null,"z":1},"b":[1,0.1,"\xc3\xa9"]}'
    assert canonical(json.loads(data)) == data


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_merkle_root_follows_rfc6962():
    leaves = [b"a", b"b", b"c"]
    l0, l1, l2 = (_h(b"\x00" + x) for x in leaves)
    expected = _h(b"\x01" + _h(b"\x01" + l0 + l1) + l2).hex()
    assert merkle_root(leaves) == expected
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()
    assert merkle_root([b"a"]) == l0.hex()
    five = [bytes([i]) for i in range(5)]  # RFC 6962 splits at 4: MTH(0..3) then MTH(4)
    h = [_h(b"\x00" + x) for x in five]
    left = _h(b"\x01" + _h(b"\x01" + h[0] + h[1]) + _h(b"\x01" + h[2] + h[3]))
    assert merkle_root(five) == _h(b"\x01" + left + h[4]).hex()


def test_record_ids_name_partition_and_row():
    rid = record_id("20250614-0123456789abcdef", 42)
    assert rid == "20250614-0123456789abcdef-0000000042"
    assert parse_record_id(rid) == ("20250614-0123456789abcdef", "0000000042")
    assert blob_name("20250614-0123456789abcdef", 42) == "records/2025/06/14/0123456789abcdef/0000000042.json"
    assert parse_blob_name("records/2025/06/14/0123456789abcdef/0000000042.json") == (
        "20250614-0123456789abcdef", 42)


@pytest.mark.parametrize("bad", ["", "x", "20250614-0123456789abcdef-42", "20251399-0123456789abcdef-0000000001",
                                 "20250614-0123456789ABCDEF-0000000001", "20250614-0123456789abcdef-0000000001-x"])
def test_malformed_record_ids_are_refused(bad):
    assert parse_record_id(bad) is None


def _envelope(record: JournalRecord, response_text: str | None = None) -> Envelope:
    body = normalize(record.to_dict())
    body.pop("response")
    digest = hashlib.sha256(response_text.encode()).hexdigest() if response_text is not None else None
    return Envelope(id=record_id("20250614-0123456789abcdef", 1), chain="20250614-0123456789abcdef", seq=1,
                    prev=GENESIS, at="2025-06-14T10:00:00.000000Z", record=body, response_sha256=digest,
                    response_chars=len(response_text or ""))


def test_a_long_command_is_chunked_across_row_properties_and_reassembled():
    record = JournalRecord(event=Event.EXECUTE_INTENT, request_id="r1", principal={"object_id": "o"},
                           command={"sql": "SELECT '" + "x" * 100_000 + "'"})
    env = _envelope(record)
    data = env.canonical()
    row = encode_row(env, data, "h", None)
    assert row["chunks"] == -(-len(data.decode()) // CHUNK_UNITS) >= 4
    assert all(len(row[f"e{i}"]) <= CHUNK_UNITS for i in range(row["chunks"]))
    assert row_envelope_text(row).encode() == data


def test_astral_text_is_chunked_by_utf16_code_units_not_characters():
    record = JournalRecord(event=Event.EXECUTE_INTENT, request_id="r1", principal={"object_id": "o"},
                           command={"sql": "SELECT '" + "😀" * 100_000 + "'"})
    env = _envelope(record)
    data = env.canonical()
    row = encode_row(env, data, "h", None)
    assert row["chunks"] == -(-utf16_units(data.decode()) // CHUNK_UNITS) >= 7  # not 4: two units each
    assert all(utf16_units(row[f"e{i}"]) <= CHUNK_UNITS for i in range(row["chunks"]))
    assert row_envelope_text(row).encode() == data


def test_small_responses_are_inline_and_large_ones_only_in_the_blob():
    record = JournalRecord(event=Event.EXECUTE_OUTCOME, request_id="r1", principal={"object_id": "o"})
    small, large = canonical({"rows": [[1]]}).decode(), canonical({"rows": [["x" * 40_000]]}).decode()
    assert encode_row(_envelope(record, small), b"{}", "h", small)["response"] == small
    assert "response" not in encode_row(_envelope(record, large), b"{}", "h", large)


def test_the_blob_is_the_rfc8785_form_of_envelope_hash_and_response():
    record = JournalRecord(event=Event.EXECUTE_OUTCOME, request_id="r1", principal={"object_id": "o"})
    response = {"columns": ["a"], "rows": [[1]]}
    env = _envelope(record, canonical(response).decode())
    blob = assemble_blob(env.canonical(), "ab" * 32, canonical(response))
    assert blob == rfc8785.dumps({"envelope": env.to_dict(), "hash": "ab" * 32, "response": response})


def test_projections_are_derived_from_the_record():
    record = JournalRecord(event=Event.EXECUTE_DENIED, request_id="r1", session_id="s1",
                           principal={"tenant_id": "t", "object_id": "o", "app_id": "a", "display_name": "Devin"},
                           target="db", classification={"risk": "write"},
                           decision={"effect": "deny", "rule_id": "no-writes"},
                           outcome={"status": "refused", "code": "policy_denied"})
    cols = projections(_envelope(record))
    assert {k: cols[k] for k in ("event", "session_id", "tenant_id", "object_id", "app_id", "who", "target",
                                 "risk", "effect", "rule_id", "status", "code")} == {
        "event": "execute.denied", "session_id": "s1", "tenant_id": "t", "object_id": "o", "app_id": "a",
        "who": "Devin", "target": "db", "risk": "write", "effect": "deny", "rule_id": "no-writes",
        "status": "refused", "code": "policy_denied"}


def test_records_read_older_and_newer_schemas():
    old = {"event": "execute.intent", "request_id": "r", "principal": {}, "schema": 1, "record_id": "x",
           "future_field": 1}
    record = JournalRecord.from_dict(old)
    assert record.schema == 1 and record.session == "r" and record.ticket == ""


def test_the_event_catalogue_lists_every_constant():
    assert {"execute.intent", "execute.outcome", "execute.denied", "journal.read"} <= Event.all()
