"""Long text across Table storage string properties: the one splitter every table uses.

A string property holds 64 KiB of UTF-16, i.e. 32,768 code units (Azure and Azurite both refuse
one more). A character outside the BMP (an emoji, much CJK) takes two code units, so a limit
counted in Python characters is wrong by up to half: 30,000 astral characters are 60,000 units.
This module counts code units and never splits a surrogate pair, so any text fits.
"""

from __future__ import annotations

import re

PROPERTY_UNITS = 32_768  # UTF-16 code units in one string property (64 KiB)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def utf16_units(text: str) -> int:
    """The length Table storage counts: code units, two for a character beyond U+FFFF."""
    return len(text) + len(_ASTRAL.findall(text))


def split_text(text: str, max_units: int = PROPERTY_UNITS) -> list[str]:
    """``text`` in pieces of at most ``max_units`` UTF-16 code units each (at least one piece)."""
    if max_units < 2:
        raise ValueError("a piece must hold at least one surrogate pair")
    if len(text) * 2 <= max_units or text.isascii() or not _ASTRAL.search(text):
        step = max_units  # one code unit per character
        return [text[i:i + step] for i in range(0, len(text), step)] or [""]
    data = text.encode("utf-16-le", "surrogatepass")
    pieces: list[str] = []
    start, size = 0, 2 * max_units
    while start < len(data):
        end = min(start + size, len(data))
        if end < len(data) and 0xD8 <= data[end - 1] <= 0xDB:  # a high surrogate: keep its pair together
            end -= 2
        pieces.append(data[start:end].decode("utf-16-le", "surrogatepass"))
        start = end
    return pieces
