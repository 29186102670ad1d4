"""One splitter for every table's long properties: counted in UTF-16 code units (what Table
storage limits), never splitting a surrogate pair."""

from __future__ import annotations

import pytest

from broker.table_text import PROPERTY_UNITS, split_text, utf16_units

CASES = {
    "empty": "",
    "ascii": "x" * 100_000,
    "bmp accents": "é" * 70_000,
    "astral only": "😀" * 30_000,  # 60,000 code units: two properties, not one
    "astral at every boundary": ("a" + "😀" * 16_383) * 3,
    "mixed": ("SELECT '🚀" + "x" * 999 + "𝔘'") * 50,
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_piece_fits_one_property_and_the_pieces_rejoin(case):
    text = CASES[case]
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert all(utf16_units(p) <= PROPERTY_UNITS for p in pieces)
    for piece in pieces:
        piece.encode("utf-8")  # a split pair would not encode (UnicodeEncodeError)
    assert len(pieces) == max(1, -(-utf16_units(text) // PROPERTY_UNITS)) or case == "astral at every boundary"


def test_code_units_are_what_is_counted():
    assert utf16_units("a😀é") == 4
    assert len(split_text("😀" * 30_000)) == 2 and len(split_text("x" * 30_000)) == 1
    assert [utf16_units(p) for p in split_text("😀" * 5, 4)] == [4, 4, 2]
    assert split_text("a😀", 2) == ["a", "😀"]  # the pair moves whole to the next piece
