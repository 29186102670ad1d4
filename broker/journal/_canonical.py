"""Canonical bytes and hashes: what the chain and the seals commit to.

Canonical form is RFC 8785 (JSON Canonicalization Scheme), so an auditor can recompute every
hash with any JCS implementation, in any language. Values are first normalised to what JCS
accepts (a database can return Decimals, datetimes, 64-bit integers, NaN): anything else becomes
its string form, once, at write time; after that the stored JSON is the record.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import rfc8785

_MAX_SAFE_INT = 2**53 - 1  # JCS numbers are IEEE doubles


def normalize(value: Any) -> Any:
    """A JSON value JCS can serialise exactly (strings for what it cannot)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of an already normalised value."""
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def merkle_root(leaves: Sequence[bytes]) -> str:
    """RFC 6962 Merkle tree hash (leaf = H(0x00 || d), node = H(0x01 || l || r)); hex.

    The empty tree hashes to H(""), as in RFC 6962.
    """
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])  # an odd node is promoted, not duplicated (RFC 6962's split)
        level = nxt
    return level[0].hex()
