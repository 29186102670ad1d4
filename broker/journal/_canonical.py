"""Canonical bytes and hashes: what the chain and the seals commit to.

Canonical form is RFC 8785 (JSON Canonicalization Scheme), so an auditor can recompute every
hash with any JCS implementation, in any language. Values are first normalised to what JCS
accepts (a database can return Decimals, datetimes, 64-bit integers, NaN): anything else becomes
its string form, once, at write time; after that the stored JSON is the record.

Normalising is a *fixed point*: the canonical bytes of a normalised value, parsed back by any JSON
reader, canonicalise to the same bytes. That is what lets ``verify`` recompute every hash from what
it reads, whatever a target, a manifest or a caller produced:

- integers beyond ±(2^53 − 1) are strings (a JCS number is an IEEE double);
- a float JCS would write as an integer beyond that range (2^53 ≤ |x| < 10^21, e.g. ``1e17`` is
  written ``100000000000000000``, which reads back as an unsafe integer) is its ``repr`` string;
- ``-0.0`` is ``0`` (JCS writes both zeros as ``0``); NaN and ±Infinity are ``"nan"``, ``"inf"``,
  ``"-inf"`` (JSON has no such numbers);
- a lone surrogate (not text in any Unicode encoding) becomes U+FFFD; astral characters stay;
- a subtree nested deeper than ``MAX_DEPTH`` is kept as its JSON text (a string), so no reader
  or canonicaliser recurses without bound.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import rfc8785

_MAX_SAFE_INT = 2**53 - 1  # JCS numbers are IEEE doubles
_EXPONENT_FROM = 1e21  # from here on JCS writes a float with an exponent (ECMAScript Number::toString)
MAX_DEPTH = 96  # containers below a record's top level; deeper subtrees are journaled as JSON text
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # str never holds a *pair*: a match is always lone


def normalize(value: Any, _depth: int = 0) -> Any:
    """A JSON value JCS can serialise exactly, and that reads back as itself (strings for what cannot)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int):
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else _big_int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, (dict, list, tuple)) and _depth >= MAX_DEPTH:
        return _deep(value)
    if isinstance(value, dict):
        return {_text(str(k)): normalize(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v, _depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return _text(str(value))


def _text(value: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", value) if _LONE_SURROGATE.search(value) else value


def _float(value: float) -> float | int | str:
    if not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if value == 0:
        return 0
    if _MAX_SAFE_INT < abs(value) < _EXPONENT_FROM:
        return repr(value)  # e.g. "1e+17": as a JCS number it would read back as an unsafe integer
    return value


def _big_int(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # beyond Python's int-to-decimal limit (4,300 digits): hex has no limit
        return hex(value)


def _deep(value: Any) -> str:
    try:
        return _text(json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")))
    except (RecursionError, ValueError, TypeError):
        return f"[a {type(value).__name__} nested deeper than the journal records]"


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
