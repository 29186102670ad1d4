"""Where a record lives and what is hashed: chain ids, keys, blob names, the envelope, the row.

Layout (one chain per writer lane per UTC day; see docs/journal.md):

    Table row      PartitionKey = ``{yyyymmdd}-{chain}``   RowKey = ``{seq:010d}``
    record id      ``{yyyymmdd}-{chain}-{seq:010d}``       (so a record is found by its id alone)
    blob copy      ``records/{yyyy}/{mm}/{dd}/{chain}/{seq:010d}.json``
    seal           ``seals/{yyyy}/{mm}/{dd}/{seq:010d}.json``

The *envelope* is the record (minus its response) plus its place in the chain (chain, seq,
predecessor hash, append time) and the response's digest; the record hash is SHA-256 of the
envelope's RFC 8785 bytes. The response is committed to by digest so that large payloads can
live in the blob while the Table row still verifies on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from broker.journal._canonical import canonical, sha256_hex
from broker.table_text import split_text

ENVELOPE_VERSION = 2
GENESIS = "0" * 64  # the predecessor of every chain's first record
# A Table string property holds 64 KiB of UTF-16 (32,768 code units; a character outside the BMP
# takes two), an entity 1 MiB: the envelope is split by code units (``broker.table_text``), and 14
# chunks of 32,000 units (896,000 bytes) plus an inline response of at most 15,000 characters
# (60,000 bytes, however astral) stay under the entity limit. A larger envelope lives only in the blob.
CHUNK_UNITS = 32_000
MAX_CHUNKS = 14
INLINE_RESPONSE_CHARS = 15_000

_PARTITION = re.compile(r"^(?P<day>\d{8})-(?P<chain>[0-9a-f]{16})$")
_RECORD_ID = re.compile(r"^(?P<pk>\d{8}-[0-9a-f]{16})-(?P<seq>\d{10})$")
_BLOB = re.compile(r"^records/(\d{4})/(\d{2})/(\d{2})/([0-9a-f]{16})/(\d{10})\.json$")


# --- names -------------------------------------------------------------------------------------
def partition_key(day: date, chain: str) -> str:
    return f"{day:%Y%m%d}-{chain}"


def parse_partition(pk: str) -> tuple[date, str] | None:
    m = _PARTITION.match(pk)
    if not m:
        return None
    try:
        return datetime.strptime(m["day"], "%Y%m%d").date(), m["chain"]
    except ValueError:
        return None


def row_key(seq: int) -> str:
    return f"{seq:010d}"


def record_id(pk: str, seq: int) -> str:
    return f"{pk}-{seq:010d}"


def parse_record_id(rid: str) -> tuple[str, str] | None:
    """(PartitionKey, RowKey) of a record id, or None when it is not one."""
    m = _RECORD_ID.match(rid or "")
    return (m["pk"], m["seq"]) if m and parse_partition(m["pk"]) else None


def day_key(day: date) -> str:
    return f"{day:%Y%m%d}"


def day_prefix(day: date) -> str:
    return f"records/{day:%Y/%m/%d}/"


def blob_name(pk: str, seq: int) -> str:
    parsed = parse_partition(pk)
    if parsed is None:
        raise ValueError(f"not a journal partition: {pk!r}")
    day, chain = parsed
    return f"{day_prefix(day)}{chain}/{seq:010d}.json"


def parse_blob_name(name: str) -> tuple[str, int] | None:
    """(PartitionKey, seq) of a record blob name, or None."""
    m = _BLOB.match(name)
    if not m:
        return None
    y, mo, d, chain, seq = m.groups()
    return f"{y}{mo}{d}-{chain}", int(seq)


def format_at(moment: datetime) -> str:
    """Fixed-width UTC time, so string order is time order (Table filters compare strings)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# --- the envelope --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Envelope:
    id: str
    chain: str  # the PartitionKey: day + chain id
    seq: int
    prev: str
    at: str
    record: dict[str, Any]  # the normalised record without its response
    response_sha256: str | None = None
    response_chars: int = 0

    def to_dict(self) -> dict[str, Any]:
        response = None
        if self.response_sha256 is not None:
            response = {"sha256": self.response_sha256, "chars": self.response_chars}
        return {"v": ENVELOPE_VERSION, "id": self.id, "chain": self.chain, "seq": self.seq, "prev": self.prev,
                "at": self.at, "record": self.record, "response": response}

    def canonical(self) -> bytes:
        return canonical(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        response = data.get("response") or {}
        return cls(id=data["id"], chain=data["chain"], seq=int(data["seq"]), prev=data["prev"], at=data["at"],
                   record=data["record"], response_sha256=response.get("sha256"),
                   response_chars=int(response.get("chars", 0)))

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Envelope:
        return cls.from_dict(json.loads(data))


def record_hash(envelope_bytes: bytes) -> str:
    return sha256_hex(envelope_bytes)


# --- projections: the Table columns queries filter on, all derived from the envelope ----------
def projections(env: Envelope) -> dict[str, Any]:
    """Columns copied out of the hashed record for server-side filtering. Verify recomputes them:
    an edited column is as visible as an edited record."""
    r = env.record
    principal = r.get("principal") or {}
    return {
        "record_id": env.id,
        "at": env.at,
        "prev": env.prev,
        "event": r.get("event", ""),
        "request_id": r.get("request_id", ""),
        "session_id": r.get("session_id", "") or r.get("request_id", ""),
        "tenant_id": principal.get("tenant_id", ""),
        "object_id": principal.get("object_id", ""),
        "app_id": principal.get("app_id", ""),
        "who": principal.get("display_name", ""),
        "target": r.get("target", ""),
        "risk": (r.get("classification") or {}).get("risk", ""),
        "effect": (r.get("decision") or {}).get("effect", ""),
        "rule_id": (r.get("decision") or {}).get("rule_id") or "",
        "status": (r.get("outcome") or {}).get("status", ""),
        "code": (r.get("outcome") or {}).get("code", ""),
        "time": r.get("time", ""),
    }


# --- row and blob encodings -------------------------------------------------------------------
def encode_row(env: Envelope, env_bytes: bytes, digest: str, response_text: str | None) -> dict[str, Any]:
    """The Table entity: projections, the hash, the envelope in chunks (or, when it is too large
    for a row, ``chunks = 0``: the row refers to its blob), the response when small."""
    text = env_bytes.decode("utf-8")
    chunks = split_text(text, CHUNK_UNITS)
    if len(chunks) > MAX_CHUNKS:
        chunks = []
    entity: dict[str, Any] = {"PartitionKey": env.chain, "RowKey": row_key(env.seq), "v": ENVELOPE_VERSION,
                              "hash": digest, "chunks": len(chunks), **projections(env)}
    for i, chunk in enumerate(chunks):
        entity[f"e{i}"] = chunk
    if response_text is not None and len(response_text) <= INLINE_RESPONSE_CHARS:
        entity["response"] = response_text
    return entity


def row_holds_envelope(entity: dict[str, Any]) -> bool:
    """False for a row whose (large) envelope lives only in its blob."""
    return entity.get("chunks") != 0


def row_envelope_text(entity: dict[str, Any]) -> str:
    """The envelope JSON held by a row (raises KeyError/ValueError when chunks are missing)."""
    count = int(entity["chunks"])
    if count < 1:
        raise ValueError("the row holds no envelope")
    return "".join(entity[f"e{i}"] for i in range(count))


_BLOB_HEAD = '{"envelope":'
_BLOB_HASH = re.compile(r',"hash":"([0-9a-f]{64})","response":')
_DECODER = json.JSONDecoder()


def assemble_blob(env_bytes: bytes, digest: str, response_bytes: bytes | None) -> bytes:
    """The blob copy: RFC 8785 of {"envelope", "hash", "response"} (keys already in JCS order)."""
    response = response_bytes if response_bytes is not None else b"null"
    return _BLOB_HEAD.encode() + env_bytes + b',"hash":"' + digest.encode() + b'","response":' + response + b"}"


@dataclass(frozen=True)
class BlobParts:
    """A blob copy taken apart *as stored*: the exact envelope and response bytes that were hashed."""

    envelope: dict[str, Any]
    envelope_bytes: bytes
    hash: str
    response_bytes: bytes | None  # None when the record has no response (stored as ``null``)


def split_blob(blob: bytes) -> BlobParts:
    """The inverse of ``assemble_blob``, byte for byte (ValueError for anything it did not write).

    Verify hashes these bytes, not a re-serialisation of what it parsed: what is checked is
    exactly what was stored, whatever any JSON reader makes of its numbers.
    """
    text = blob.decode("utf-8")
    if not text.startswith(_BLOB_HEAD) or not text.endswith("}"):
        raise ValueError("not a journal copy")
    envelope, end = _DECODER.raw_decode(text, len(_BLOB_HEAD))
    tail = _BLOB_HASH.match(text, end)
    if not isinstance(envelope, dict) or tail is None:
        raise ValueError("not a journal copy")
    response = text[tail.end():-1]
    return BlobParts(envelope, text[len(_BLOB_HEAD):end].encode("utf-8"), tail[1],
                     None if response == "null" else response.encode("utf-8"))
