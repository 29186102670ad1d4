"""Whatever JSON a target, a manifest or a caller produces is journaled so that ``verify``
recomputes the same hash: huge and tiny floats, integers beyond 2^53, -0.0, NaN and infinities,
astral and lone-surrogate text, deep nesting. Property-based (hypothesis) over arbitrary values,
through the real writer, Azurite and the reader, then ``verify``."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from journal_samples import DEVIN

from broker.journal import Event, JournalReader, JournalRecord, Verifier
from broker.journal import writer as writer_module
from broker.journal._canonical import MAX_DEPTH, canonical, normalize
from broker.journal.envelope import assemble_blob, split_blob

# Every JSON-ish value Python can hold: unbounded integers, every float (NaN, infinities,
# subnormals, -0.0), any code point including lone surrogates, and nesting.
_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | _TEXT
            | st.sampled_from([1e17, -1e17, 2.0**53, 1e21, 1e-300, 5e-324, -0.0, 2**53, -(2**53), 2**64,
                               10**400, 123456789012345680000.0, "\ud800", "\udfff\ud800", "😀\ud83d"]))
JSON_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(_TEXT, inner, max_size=5), max_leaves=30)

_EDGES = [1e17, -1e17, 2.0**53, 9007199254740991.0, 1e21, 1e-300, 5e-324, -0.0, 0.0, math.nan, math.inf, -math.inf,
          2**53 - 1, 2**53, -(2**53), 10**5000, "\ud800", "a\udc00b", "😀", "\U0010ffff", "\x00", {"n": 1e17},
          [[[1e20]]]]


@pytest.mark.parametrize("value", _EDGES, ids=lambda v: f"{type(v).__name__}-{_EDGES.index(v)}")
def test_a_normalised_value_reads_back_as_itself(value):
    data = canonical(normalize(value))
    again = json.loads(data)
    assert canonical(again) == data  # a JCS implementation re-reading the record agrees byte for byte
    assert canonical(normalize(again)) == data


@given(JSON_VALUES)
@hsettings(max_examples=300, deadline=None, database=None)
def test_normalising_is_a_fixed_point_for_any_value(value):
    data = canonical(normalize(value))
    assert canonical(json.loads(data)) == data


def test_nesting_deeper_than_the_limit_is_kept_as_text_not_a_crash():
    deep: list = []
    cursor = deep
    for _ in range(MAX_DEPTH + 10):
        inner: list = [1e17]
        cursor.append(inner)
        cursor = inner
    data = canonical(normalize({"manifest": deep}))
    assert canonical(json.loads(data)) == data and b"1e+17" in data
    bottomless: list = []
    cursor = bottomless
    for _ in range(20_000):
        cursor.append([])
        cursor = cursor[0]
    assert b"nested deeper" in canonical(normalize(bottomless))


def _preview(value) -> JournalRecord:
    return JournalRecord(event=Event.EXECUTE_PREVIEW, request_id="r-prop", principal=DEVIN, target="aks-prod",
                         command={"language": "kubectl", "argv": ["apply", "-f", "-"], "manifest": value},
                         reason=value if isinstance(value, str) else "", outcome={"status": "ok", "value": value},
                         response={"value": value})


def _clean(report) -> list[tuple[str, str]]:
    return [(f.kind, f.where) for f in report.findings]


def test_any_value_round_trips_through_write_read_verify(storage, writer):
    reader = JournalReader(storage)

    @given(JSON_VALUES)
    @example(1e17)
    @example({"n": 1e17, "m": [2.0**60, -0.0, math.nan, 10**30]})
    @example("\U0001f600" * 20_000)  # astral text across envelope chunks (4 bytes each in UTF-16)
    @hsettings(max_examples=40, deadline=None, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    def write_then_read(value):
        record = _preview(value)
        rid = writer.write(record)
        stored = reader.get(rid)
        expected = canonical(normalize(value))
        assert canonical(stored.record.command["manifest"]) == expected
        assert canonical(stored.record.response["value"]) == expected

    write_then_read()
    assert writer.flush()
    report = Verifier(storage).verify()
    assert _clean(report) == [] and report.records >= 40


def test_copies_written_before_the_fix_verify_too(storage, writer, monkeypatch):
    """Verify hashes the stored bytes, not a re-serialisation: a copy holding ``100000000000000000``
    (how JCS writes the float 1e17, which reads back as an unsafe integer) is intact."""
    monkeypatch.setattr(writer_module, "normalize", lambda value: value)  # the old writer kept finite floats
    writer.write(_preview(1e17))
    writer.write(_preview([2.0**60, 123456789012345680000.0]))
    assert writer.flush()
    assert _clean(Verifier(storage).verify()) == []


def test_the_blob_is_taken_apart_exactly_as_it_was_assembled():
    env = canonical(normalize({"id": "x", "record": {"hash": "a", "n": 1e17, "s": ',"hash":"'}}))
    response = canonical({"rows": [["}"]]})
    parts = split_blob(assemble_blob(env, "f" * 64, response))
    assert (parts.envelope_bytes, parts.hash, parts.response_bytes) == (env, "f" * 64, response)
    assert split_blob(assemble_blob(env, "0" * 64, None)).response_bytes is None
    for forged in (b'{"envelope": {}, "hash": "' + b"0" * 64 + b'", "response": null}',  # re-serialised
                   assemble_blob(env, "0" * 64, None) + b" ", b'{"envelope":' + b"[" * 100_000, b"\xff"):
        with pytest.raises((ValueError, RecursionError)):
            split_blob(forged)
