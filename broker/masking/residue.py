"""Views of command output in which a Secret's value, transformed by the pod's own tools, reads plainly
again: for known-plaintext masking's last check (``broker.masking.known``).

An agent that can exec can compose programs: ``base64 | base64``, ``base64 | rev``, ``fold -w 7 | rev``,
``xxd`` (hex in two-byte groups beside an ASCII column cut into lines), ``xxd -c 4``, ``od -t x1`` or
``od -t o2`` (offsets on every line). Listing every spelling cannot end; undoing the common steps can:
whitespace removed, the text and each line reversed, a hex/od/xxd dump read back to its bytes (its
ASCII column joined), base64 and hex runs decoded, two levels deep. If any view holds a value, the
caller withholds the whole text (fail closed) rather than guess which part carried it.

Views are bounded (``MAX_VIEW_CHARS`` of input each, windows over longer texts, ``DEPTH`` decoding
levels); they never log. Best effort: ``od -t o1``, ``tr`` substitutions or ``gzip | base64`` still pass.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

DEPTH = 2
MAX_VIEW_CHARS = 4 * 1024 * 1024
OVERLAP_CHARS = 256 * 1024  # longer than any dump of one value: a value cut by a window is whole in the next
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}){6,}")
_OFFSET = re.compile(r"^\s*[0-9a-fA-F]{4,}:?(?:\s+|$)")
_HEX_TOKEN = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_OCTAL_WORD = re.compile(r"^[0-7]{6}$")


def views(text: str) -> Iterator[str]:
    """Every view of ``text`` worth searching (the text itself is not among them). A text longer
    than ``MAX_VIEW_CHARS`` is viewed in windows of that size that overlap by ``OVERLAP_CHARS``, so
    no part of it goes unchecked (a dump placed after 4 MB of filler is read back too)."""
    step = MAX_VIEW_CHARS - OVERLAP_CHARS
    for start in range(0, max(len(text) - OVERLAP_CHARS, 1), step):
        yield from _window(text[start:start + MAX_VIEW_CHARS])


def _window(text: str) -> Iterator[str]:
    lines = text.splitlines()
    squeezed = "".join(text.split())
    flat = [squeezed, squeezed[::-1], "".join(line[::-1] for line in lines), text[::-1]]
    yield from flat
    yield from _dump(lines)
    # every decoded run in one string (no value holds a NUL): one search instead of one per run
    yield "\0".join(piece for view in flat[:2] for piece in _decoded(view, DEPTH))


def _decoded(text: str, depth: int) -> Iterator[str]:
    """Base64 and hex runs of ``text`` decoded, and those decoded again (``depth`` levels)."""
    if depth <= 0:
        return
    for data in [*map(_b64, _B64_RUN.findall(text)), *map(bytes.fromhex, _HEX_RUN.findall(text))]:
        if not data:
            continue
        plain = data.decode("utf-8", "replace")
        yield plain
        if depth > 1 and _textual(data):  # decoded again only where it decoded to text (not noise)
            yield from _decoded("".join(plain.split()), depth - 1)


_PRINTABLE = bytes([9, 10, 13, *range(32, 127)])


def _textual(data: bytes) -> bool:
    return len(data.translate(None, _PRINTABLE)) <= 0.05 * len(data)


def _b64(run: str) -> bytes:
    body = run.rstrip("=").replace("-", "+").replace("_", "/")
    body = body[: len(body) - len(body) % 4] if len(body) % 4 == 1 else body
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return b""


def _dump(lines: list[str]) -> Iterator[str]:
    """A dump with an offset on every line (``xxd``, ``od``, ``hexdump -C``): its bytes, read as hex
    (big- and little-endian words), as ``od``'s octal words, its ASCII column and ``od -c``'s
    characters, each joined."""
    big, little, octal, ascii_column, chars = bytearray(), bytearray(), bytearray(), [], []
    dumped = 0
    for line in lines:
        match = _OFFSET.match(line)
        if match is None:
            continue
        dumped += 1
        rest = line[match.end():]
        cells = rest.split()
        if cells and all(len(c) == 1 or c.startswith("\\") for c in cells):  # od -c: one character a cell
            chars.extend(c for c in cells if len(c) == 1)
        parts = re.split(r"\s{2,}", rest.strip(), maxsplit=1)
        tokens = parts[0].split()
        if len(parts) > 1:
            ascii_column.append(parts[1].strip("|"))
        if tokens and all(_HEX_TOKEN.match(t) for t in tokens):
            for token in tokens:
                raw = bytes.fromhex(token)
                big += raw
                little += raw[::-1]
        if tokens and all(_OCTAL_WORD.match(t) and int(t, 8) <= 0xFFFF for t in tokens):
            for token in tokens:
                octal += int(token, 8).to_bytes(2, "little")
    if not dumped:
        return
    for data in (big, little, octal):
        if data:
            yield bytes(data).decode("utf-8", "replace")
    for joined in (ascii_column, chars):
        if joined:
            yield "".join(joined)
