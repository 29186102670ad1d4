"""The spellings of one known secret value that known-plaintext masking looks for.

A value an agent can make a container print (``printenv``, ``cat``, ``echo $X | base64``) can come
back in any encoding a shell has at hand. This module lists, for one value, the exact strings that
betray it: the value itself, its base64 (standard and URL-safe, padded and not, and the characters
that only the value determines at each of the three byte alignments, so that the value is found
inside a larger base64 blob too), its hex (lower and upper case, plain and byte-spaced as
``od -An -tx1`` prints it), its URL and JSON escapes, its case variants and its reversal, and for a
multi-line value (a PEM key) each of its long lines.

Short values are ambiguous: ``web`` is a username and the start of every pod name. So a value is
searched by how long it is (``Reach``): shorter than 3 characters never; 3–5 only as a whole line of
command output or logs; 6–7 only as a whole token (not inside a longer run of letters, digits or
``_``); 8 and longer anywhere. Its encodings inherit the value's reach.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import quote, quote_plus

MIN_CHARS = 3
TOKEN_CHARS = 6
ANYWHERE_CHARS = 8
LINE_PIECE_CHARS = 16
"""A line of a multi-line value is searched on its own when it has at least this many characters."""
MAX_VALUE_CHARS = 64 * 1024
"""Longer values (a Helm release record) are searched by windows instead of whole (``WINDOW_*``)."""
WINDOW_CHARS, WINDOW_STEP = 256, 4096


class Reach(IntEnum):
    """Where a needle may match."""

    LINE = 0  # the whole line (trimmed) of command output or logs
    TOKEN = 1  # not inside a longer run of word characters
    ANYWHERE = 2


@dataclass(frozen=True)
class Form:
    text: str
    reach: Reach
    base64: bool = False
    """Part of a base64 run: a match grows to the whole run (the rest of the blob encodes the value too)."""


def reach_of(length: int) -> Reach | None:
    if length < MIN_CHARS:
        return None
    if length < TOKEN_CHARS:
        return Reach.LINE
    if length < ANYWHERE_CHARS:
        return Reach.TOKEN
    return Reach.ANYWHERE


def forms(value: bytes) -> list[Form]:
    """Every needle for ``value`` (a Secret's decoded bytes), without duplicates."""
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # binary: it cannot appear in text as itself, only encoded
    length = len(text) if text is not None else len(value)
    reach = reach_of(length)
    if reach is None:
        return []
    if length > MAX_VALUE_CHARS:
        return _windows(text if text is not None else base64.b64encode(value).decode())
    out: dict[str, Form] = {}

    def add(needle: str, where: Reach = reach, b64: bool = False) -> None:
        if len(needle) >= MIN_CHARS and needle not in out:
            out[needle] = Form(needle, where, b64)

    if text is not None:
        add(text)
        for escaped in (json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]):
            add(escaped)
            add(escaped.replace("/", "\\/"))
        for encoded in (quote(text, safe=""), quote_plus(text, safe=""), quote(text)):
            add(encoded)
            add(_lower_percent(encoded))
        if reach is Reach.ANYWHERE:
            for variant in (text[::-1], text.upper(), text.lower()):
                add(variant)
            for line in text.splitlines():
                piece = line.strip()
                if len(piece) >= LINE_PIECE_CHARS and not piece.startswith("-----"):
                    add(piece, Reach.ANYWHERE)
    anywhere = reach is Reach.ANYWHERE
    # ``echo $X | base64`` and ``echo $X | xxd -p`` encode the value with echo's newline; for a long
    # value the aligned base64 forms below cover that, a short one needs the whole encoding
    for data in (value,) if anywhere else (value, value + b"\n"):
        hexed = binascii.hexlify(data).decode()
        add(hexed)
        add(hexed.upper())
        for b64 in _base64_forms(data, aligned=anywhere):
            add(b64, b64=anywhere)
    if anywhere:
        add(" ".join(hexed[i:i + 2] for i in range(0, len(hexed), 2)))
        # one line of a wrapped dump on its own (``base64 | head -1``): base64 at 76 (coreutils) and 64
        # (PEM, openssl) columns, ``xxd -p`` at 60
        encoded = base64.b64encode(value).decode()
        for width, dump, is_b64 in ((76, encoded, True), (64, encoded, True), (60, hexed, False),
                                    (60, hexed.upper(), False)):
            for i in range(0, len(dump) - width + 1, width):
                add(dump[i:i + width], b64=is_b64)
    return list(out.values())


def _base64_forms(value: bytes, *, aligned: bool) -> list[str]:
    padded = base64.b64encode(value).decode()
    std = [padded, padded.rstrip("=")]
    if aligned:
        n = len(value)
        for shift in (0, 1, 2):
            # the characters whose six bits all come from the value when it starts ``shift`` bytes
            # into a three-byte group of a larger blob (what precedes and follows does not matter)
            encoded = base64.b64encode(b"\0" * shift + value + b"\0\0").decode()
            first, last = -(-8 * shift // 6), (8 * shift + 8 * n) // 6
            if last - first >= ANYWHERE_CHARS:
                std.append(encoded[first:last])
    return [*std, *(s.replace("+", "-").replace("/", "_") for s in std)]


def _lower_percent(encoded: str) -> str:
    parts = encoded.split("%")
    return parts[0] + "".join("%" + p[:2].lower() + p[2:] for p in parts[1:])


def _windows(text: str) -> list[Form]:
    """A huge value: windows at fixed steps, so that any quote of a step and a window is caught."""
    return [Form(text[i:i + WINDOW_CHARS], Reach.ANYWHERE)
            for i in range(0, max(len(text) - WINDOW_CHARS, 0) + 1, WINDOW_STEP)]
