"""Checks one chain: its Table rows against their immutable copies, their links, and the seals.

The copy is preferred as the truth (it is write-once); where a row and its copy disagree, the one
that fits the chain (links to its neighbours, matches the seal) is the original and the other is
named as altered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from broker.journal._canonical import sha256_hex
from broker.journal.envelope import (
    GENESIS,
    INLINE_RESPONSE_CHARS,
    Envelope,
    blob_name,
    projections,
    record_id,
    row_envelope_text,
    row_holds_envelope,
    split_blob,
)
from broker.journal.findings import VerifyReport
from broker.journal.seal import ChainSpan, Seal

# RecursionError: a tamperer's deeply nested JSON must be a finding, not a crash of verify
_DECODE_ERRORS = (KeyError, ValueError, TypeError, RecursionError)


@dataclass(frozen=True)
class Version:
    """One stored version of a record (a row's or a copy's) and whether it is self-consistent."""

    env: Envelope
    data: bytes
    hash: str
    ok: bool


@dataclass(frozen=True)
class SealWindow:
    """What the loaded seals cover: (start, cutoff]; ``broken`` seals vouch for nothing."""

    start: str
    cutoff: str
    seals: tuple[Seal, ...]
    broken: frozenset[int] = frozenset()

    def seal_at(self, at: str) -> Seal | None:
        return next((s for s in self.seals if s.start < at <= s.cutoff), None)


def row_version(pk: str, seq: int, entity: dict[str, Any], report: VerifyReport) -> Version | None:
    try:
        text = row_envelope_text(entity)
        env = Envelope.from_bytes(text)
    except _DECODE_ERRORS:
        report.add("edited", record_id(pk, seq), "the Table row's record cannot be read: its content was altered")
        return None
    data = text.encode("utf-8")
    digest = sha256_hex(data)
    return Version(env, data, digest, digest == entity.get("hash"))


def blob_version(pk: str, seq: int, blob: bytes, report: VerifyReport) -> Version | None:
    name = blob_name(pk, seq)
    try:
        parts = split_blob(blob)
        env = Envelope.from_dict(parts.envelope)
        json.loads(parts.response_bytes or b"null")  # a response that is not JSON was not written by us
    except _DECODE_ERRORS:
        report.add("blob_replaced", name, "the immutable copy cannot be read: it was replaced")
        return None
    response_ok = (parts.response_bytes is None) if env.response_sha256 is None else \
        sha256_hex(parts.response_bytes or b"") == env.response_sha256
    digest = sha256_hex(parts.envelope_bytes)
    return Version(env, parts.envelope_bytes, digest, parts.hash == digest and response_ok and env.chain == pk
                   and env.seq == seq)


@dataclass(frozen=True)
class LostCopy:
    """A row the sealer found without its copy, as a ``journal.copies_lost`` record names it."""

    hash: str
    by: str  # the record id of the journal.copies_lost record


def check_chain(pk: str, rows: dict[int, dict[str, Any]], blobs: dict[int, bytes],
                spans: list[tuple[Seal, ChainSpan]], window: SealWindow | None,
                report: VerifyReport, lost: dict[int, LostCopy] | None = None) -> dict[int, Version]:
    """Report what is wrong with chain ``pk``; return the accepted version of each record.

    ``lost``: rows of this chain that an intact ``journal.copies_lost`` record names; a row
    without its copy that is exactly as that record says is a crash's lost copy (a warning),
    anything else about it is judged as usual."""
    lost = lost or {}
    blob_v = {seq: v for seq, data in blobs.items() if (v := blob_version(pk, seq, data, report)) is not None}
    row_v: dict[int, Version] = {}
    for seq, entity in rows.items():
        if row_holds_envelope(entity):
            v = row_version(pk, seq, entity, report)
        elif seq in blob_v:  # a large record: the row vouches for its copy by hash
            copy = blob_v[seq]
            v = Version(copy.env, copy.data, copy.hash, entity.get("hash") == copy.hash)
        else:
            v = None
            if seq not in blobs:
                report.add("blob_missing", blob_name(pk, seq), "the immutable copy is gone, and the row refers to it")
        if v is not None:
            row_v[seq] = v
    displaced = _reordered(pk, row_v, report)
    preferred = {seq: v for seq in set(row_v) | set(blob_v)
                 if (v := _first_ok(blob_v.get(seq), None if seq in displaced else row_v.get(seq))) is not None}
    sealed_heads = {span.last: (seal, span) for seal, span in spans}
    accepted: dict[int, Version] = {}
    last_copy = max(blobs, default=0)
    for seq in sorted(set(rows) | set(blobs)):
        rid = record_id(pk, seq)
        row = None if seq in displaced else row_v.get(seq)
        copy = blob_v.get(seq)
        if seq in blobs and copy is None:
            pass  # unreadable copy, already reported
        elif copy is not None and not copy.ok:
            report.add("blob_replaced", blob_name(pk, seq), "the immutable copy does not match its own hash")
        if seq in rows and row is not None and seq not in blobs:
            claim = lost.get(seq)
            if not row.ok:
                report.add("edited", rid, "the row's record does not match its hash")
            elif claim is not None and claim.hash == row.hash:
                report.add("copy_lost", rid, f"its immutable copy was lost in a crash, as {claim.by} recorded; "
                           "the row is exactly as recorded then", "warning")
            elif claim is not None:
                report.add("edited", rid, f"differs from what {claim.by} recorded when its copy was found lost: "
                           "it was edited after that")
            elif seq > last_copy:
                report.add("inserted", rid, "in the Table but has no immutable copy: it was inserted "
                           "(or its copy deleted)")
            else:
                report.add("blob_missing", blob_name(pk, seq), "the immutable copy is gone")
        elif seq not in rows and copy is not None:
            report.add("deleted", rid, "the Table row is gone; its immutable copy remains")
        elif row is not None and copy is not None:
            _compare(pk, seq, row, copy, preferred, sealed_heads, report)
        choice = _choose(seq, row, copy, preferred, sealed_heads)
        if choice is not None:
            accepted[seq] = choice
            if row is not None and choice.data == row.data and seq in rows:
                _check_columns(rid, rows[seq], choice.env, report)
    _check_links(pk, rows, blobs, accepted, report)
    vouched = {seq for seq, claim in lost.items() if seq in accepted and accepted[seq].hash == claim.hash}
    _check_seals(pk, rows, blobs, accepted, spans, window, report, vouched)
    return accepted


def _first_ok(*versions: Version | None) -> Version | None:
    return next((v for v in versions if v is not None and v.ok), None)


def _reordered(pk: str, row_v: dict[int, Version], report: VerifyReport) -> set[int]:
    """Rows holding another position's (intact) record; a swapped pair is reported once. A row
    whose position fields were edited does not match its hash and is reported as edited instead."""
    moved = {seq: (v.env.chain, v.env.seq) for seq, v in row_v.items()
             if v.ok and (v.env.chain, v.env.seq) != (pk, seq)}
    for seq, (chain, other) in sorted(moved.items()):
        if chain == pk and moved.get(other) == (pk, seq):
            if seq < other:
                report.add("reordered", record_id(pk, seq),
                           f"rows {seq} and {other} of chain {pk} hold each other's records (swapped)")
        elif chain == pk:
            report.add("reordered", record_id(pk, seq), f"the row holds record {other} of its chain")
        else:
            report.add("reordered", record_id(pk, seq), f"the row holds record {other} of chain {chain}")
    return set(moved)


def _fits(v: Version, seq: int, preferred: dict[int, Version],
          sealed_heads: dict[int, tuple[Seal, ChainSpan]]) -> bool:
    if not v.ok:
        return False
    before = GENESIS if seq == 1 else (preferred[seq - 1].hash if seq - 1 in preferred else None)
    after = preferred[seq + 1].env.prev if seq + 1 in preferred else None
    sealed = sealed_heads.get(seq)
    return ((before is None or v.env.prev == before) and (after is None or after == v.hash)
            and (sealed is None or sealed[1].head == v.hash))


def _choose(seq: int, row: Version | None, copy: Version | None, preferred: dict[int, Version],
            sealed_heads: dict[int, tuple[Seal, ChainSpan]]) -> Version | None:
    for v in (copy, row):
        if v is not None and _fits(v, seq, preferred, sealed_heads):
            return v
    return _first_ok(copy, row)


def _compare(pk: str, seq: int, row: Version, copy: Version, preferred: dict[int, Version],
             sealed_heads: dict[int, tuple[Seal, ChainSpan]], report: VerifyReport) -> None:
    rid = record_id(pk, seq)
    if row.data == copy.data:
        if not row.ok and copy.ok:
            report.add("edited", rid, "the row's hash column was altered")
        return
    row_fits, copy_fits = _fits(row, seq, preferred, sealed_heads), _fits(copy, seq, preferred, sealed_heads)
    if copy_fits and not row_fits:
        report.add("edited", rid, f"the Table row differs from its immutable copy{_diff(row.env, copy.env)}")
    elif row_fits and not copy_fits:
        report.add("blob_replaced", blob_name(pk, seq), "the immutable copy differs from what was written "
                   "(the Table row, which fits the chain)")
    else:
        report.add("edited", rid, "the Table row and its immutable copy differ, and neither fits the chain")


def _diff(row: Envelope, copy: Envelope) -> str:
    """Name the first few fields that differ, to say *what* was edited."""
    fields = [k for k in sorted(set(row.record) | set(copy.record)) if row.record.get(k) != copy.record.get(k)]
    fields += [k for k in ("chain", "seq", "prev", "at") if getattr(row, k) != getattr(copy, k)]
    return f" (field{'s' if len(fields) > 1 else ''} {', '.join(fields[:5])})" if fields else ""


def _check_columns(rid: str, entity: dict[str, Any], env: Envelope, report: VerifyReport) -> None:
    for column, value in projections(env).items():
        if entity.get(column, "") != value:
            report.add("edited", rid, f"column {column!r} reads {str(entity.get(column))[:60]!r} but the record "
                       f"says {str(value)[:60]!r}")
    inline = entity.get("response")
    if inline is not None and sha256_hex(str(inline).encode("utf-8")) != env.response_sha256:
        report.add("edited", rid, "the inline response differs from the recorded one")
    elif inline is None and env.response_sha256 is not None and env.response_chars <= INLINE_RESPONSE_CHARS:
        report.add("edited", rid, "the inline response was removed from the row")


def _check_links(pk: str, rows: dict[int, Any], blobs: dict[int, Any], accepted: dict[int, Version],
                 report: VerifyReport) -> None:
    top = max(set(rows) | set(blobs), default=0)
    for seq in range(1, top + 1):
        if seq not in rows and seq not in blobs:
            report.add("deleted", record_id(pk, seq), "missing from both the Table and the container")
            continue
        v = accepted.get(seq)
        before = GENESIS if seq == 1 else (accepted[seq - 1].hash if seq - 1 in accepted else None)
        if v is not None and before is not None and v.env.prev != before:
            report.add("broken_chain", record_id(pk, seq), "does not link to its predecessor's hash")


def _check_seals(pk: str, rows: dict[int, Any], blobs: dict[int, Any], accepted: dict[int, Version],
                 spans: list[tuple[Seal, ChainSpan]], window: SealWindow | None, report: VerifyReport,
                 vouched: set[int]) -> None:
    """``vouched``: rows a journal.copies_lost record (itself sealed in its own chain) names as found."""
    next_first = 1
    for seal, span in spans:
        if span.first < next_first:
            report.add("seal_broken", seal.name, f"chain {pk} records {span.first}..{span.last} were sealed twice")
        next_first = span.last + 1
        v = accepted.get(span.last)
        if v is not None and v.hash != span.head:
            report.add("edited", record_id(pk, span.last), f"differs from what seal {seal.seq} recorded: the chain "
                       "was rewritten after it was sealed")
    if spans:
        seal, span = max(spans, key=lambda s: s[1].last)
        for where, present in (("Table", rows), ("container", blobs)):
            end = max(present, default=0)
            if end < span.last:
                report.add("truncated", pk, f"the {where}'s chain ends at record {end}, but seal {seal.seq} "
                           f"recorded it up to record {span.last}")
    if window is None:
        return
    for seq, v in accepted.items():
        if v.env.at > window.cutoff:
            report.unsealed += 1
        elif window.start < v.env.at and seq not in vouched and not any(s.first <= seq <= s.last for _, s in spans):
            seal_for = window.seal_at(v.env.at)
            if seal_for is not None and seal_for.seq not in window.broken:  # else the seal finding says it
                report.add("inserted", record_id(pk, seq), f"appended at {v.env.at}, within seal "
                           f"{seal_for.seq}'s period, but no seal covers it")
