"""Typed, keyed placeholders such as ``[email:7f3a9c]``.

The short hash is an HMAC-SHA256 of the value (normalised per type, e.g. an email in lower case,
a card as its digits) under the broker's masking key: equal values give equal placeholders, so an
agent can still group and join, and nobody without the key can test a guess. This module never
logs, and nothing here puts a value in an exception.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

HASH_DIGITS = 6
HASH_BYTES = HASH_DIGITS // 2
PLACEHOLDER = re.compile(r"\[[a-z][a-z0-9_]*:[0-9a-f]{6}(?::\d{4})?\]")
"""What a placeholder looks like (the last-four suffix only where policy keeps a card's last four)."""

_NON_DIGIT = re.compile(r"\D")
_SPACE = re.compile(r"\s")


def normalise(kind: str, value: str) -> str:
    """The form of ``value`` that is hashed: spellings of one value map to one placeholder."""
    if kind == "email":
        return value.strip().lower()
    if kind in ("card", "ssn"):
        return _NON_DIGIT.sub("", value)
    if kind == "iban":
        return _SPACE.sub("", value).upper()
    return value


def is_placeholder(text: str) -> bool:
    return PLACEHOLDER.fullmatch(text) is not None


class Placeholders:
    """Makes placeholders under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the masking key must be at least 16 bytes")
        self._key = key

    def digest(self, text: str) -> str:
        # the one-shot C function: no HMAC object per placeholder
        return hmac.digest(self._key, text.encode("utf-8", "surrogatepass"), "sha256")[:HASH_BYTES].hex()

    def text(self, kind: str, value: str, last_four: str | None = None) -> str:
        """The placeholder of a string value of type ``kind``."""
        suffix = f":{last_four}" if last_four else ""
        return f"[{kind}:{self.digest(normalise(kind, value))}{suffix}]"

    def value(self, kind: str, value: Any, last_four: str | None = None) -> str:
        """The placeholder of any JSON value (numbers and containers hash their JSON text)."""
        if not isinstance(value, str):
            value = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
        return self.text(kind, value, last_four)
