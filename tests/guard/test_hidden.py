"""Hidden and confusable characters: each one found and named in several disguises; ordinary text
(accents, a single foreign script, emoji, tabs and newlines) left alone; the risk only ever goes up."""

from __future__ import annotations

import pytest

from broker.guard import Classification, Risk
from broker.guard.hidden import command_findings, findings, segments, with_hidden_text

SQL = "UPDATE customers SET notes = 'x' WHERE id = 3 /* INC-7 {} */"
FLAGGED = [
    ("\u202e", "RIGHT-TO-LEFT OVERRIDE"), ("\u202d", "LEFT-TO-RIGHT OVERRIDE"), ("\u2066", "LEFT-TO-RIGHT ISOLATE"),
    ("\u2067", "RIGHT-TO-LEFT ISOLATE"), ("\u2069", "POP DIRECTIONAL ISOLATE"), ("\u200f", "RIGHT-TO-LEFT MARK"),
    ("\u200b", "ZERO WIDTH SPACE"), ("\u200d", "ZERO WIDTH JOINER"), ("\u2060", "WORD JOINER"),
    ("\ufeff", "ZERO WIDTH NO-BREAK SPACE"), ("\u00ad", "SOFT HYPHEN"), ("\U000e0041", "TAG LATIN CAPITAL LETTER A"),
    ("\u00a0", "NO-BREAK SPACE"), ("\u3000", "IDEOGRAPHIC SPACE"), ("\u2028", "LINE SEPARATOR"),
    ("\x1b", ""), ("\x7f", ""), ("\ue000", ""),
    ("\u2068", "FIRST STRONG ISOLATE"), ("\U000e0001", "LANGUAGE TAG"), ("\U000e007f", "CANCEL TAG"),
    # blank although Unicode files them as marks, letters or symbols
    ("\u034f", "COMBINING GRAPHEME JOINER"), ("\ufe0f", "VARIATION SELECTOR-16"),
    ("\U000e0100", "VARIATION SELECTOR-17"), ("\u3164", "HANGUL FILLER"), ("\uffa0", "HALFWIDTH HANGUL FILLER"),
    ("\u115f", "HANGUL CHOSEONG FILLER"), ("\u2800", "BRAILLE PATTERN BLANK"), ("\u17b4", "KHMER VOWEL INHERENT AQ"),
    # a combining mark on no letter: ``= \u0338`` renders as ``≠``; enclosing marks circle their neighbours
    ("\u0338", "COMBINING LONG SOLIDUS OVERLAY"), ("\u20dd", "COMBINING ENCLOSING CIRCLE"),
]


@pytest.mark.parametrize("ch,name", FLAGGED)
def test_each_hidden_character_is_found_and_named(ch, name):
    (found,) = findings(SQL.format(ch))
    assert found.kind == "invisible" and found.codepoint == f"U+{ord(ch):04X}"
    if name:
        assert found.name == name
    shown = "".join(text for _, text, _ in segments(SQL.format(ch)))
    assert ch not in shown and f"⟨U+{ord(ch):04X}" in shown


@pytest.mark.parametrize("word,scripts", [
    ("p\u0430yments", "LATIN+CYRILLIC"), ("\u0430dmin", "CYRILLIC+LATIN"), ("r\u03bfot", "LATIN+GREEK"),
    ("customers\u0455", "LATIN+CYRILLIC"),
])
def test_mixed_script_identifiers_are_found_and_their_foreign_letters_escaped(word, scripts):
    text = f"SELECT * FROM {word} WHERE id = 1"
    (found,) = findings(text)
    assert found.kind == "mixed-script" and found.name == scripts
    marked = [(kind, shown) for kind, shown, _ in segments(text) if kind != "text"]
    assert len(marked) == 1 and marked[0][0] == "mixed-script"
    assert "⟨U+" in marked[0][1] and ("CYRILLIC" in marked[0][1] or "GREEK" in marked[0][1])
    assert "LATIN" not in marked[0][1]  # the majority script stays as it is


@pytest.mark.parametrize("word", ["\u0441\u043e\u0440", "\u041e\u0420\u0415\u0425", "\u0455\u0441\u043e\u0440\u0435",
                                  "\u03bf\u03b9", "\u0391\u0392\u0395"])
def test_a_word_wholly_in_latin_lookalike_letters_of_another_script_is_found(word):
    text = f"UPDATE t SET x = 1 WHERE {word} = 3"
    (found,) = findings(text)
    assert found.kind == "confusable" and found.text == word
    marked = [shown for kind, shown, _ in segments(text) if kind == "confusable"]
    assert marked and all(ch not in marked[0] for ch in word) and marked[0].count("⟨U+") == len(word)


def test_marks_stacked_on_a_letter_past_two_are_found():
    assert findings("SELECT 'a\u0301\u0302'") == []  # Vietnamese stacks two
    (found,) = findings("SELECT 'a\u0301\u0302\u0303' -- x")
    assert found.codepoint == "U+0303"
    assert [f.codepoint for f in findings("\u0301SELECT 1")] == ["U+0301"]


@pytest.mark.parametrize(("base", "accents"), [("a", 2), ("=", 0), ("", 0), ("é", 2)])
def test_a_long_run_of_marks_is_judged_mark_by_mark(base, accents):
    """The command limit's worth of marks (100,000) on one character: every mark past what accents a
    letter is found, in one pass (counting back over the run for each mark took minutes per call)."""
    text = "SELECT 1 -- " + base + "\u0301" * 100_000
    found = [f for f in findings(text) if f.text == "\u0301"]
    assert len(found) == 100_000 - accents
    assert found[0].start == len("SELECT 1 -- ") + len(base) + accents


@pytest.mark.parametrize("text", [
    "SELECT name FROM customers WHERE id = 3", "SELECT 'café', 'naïve' FROM t", "SELECT * FROM таблица",
    "SELECT '日本語' AS x", "SELECT '🙂'", "SELECT 1\n\tFROM t\r\n", "SELECT 'Straße'",
    "SELECT 'cafe\u0301', 'Vie\u0323\u0302t'", "SELECT '\u2764\ufe0f', '👍🏽'", "SELECT * FROM t WHERE city = 'Москва'",
    "SELECT 'все', 'ά'", "SELECT 'Αθήνα'",
])
def test_ordinary_text_is_left_alone(text):
    assert findings(text) == []
    assert list(segments(text)) == [("text", text, "")]


def test_manifests_and_argv_are_searched_too():
    manifest = {"kind": "Deployment", "metadata": {"name": "web\u200b", "labels": {"te\u0430m": "a"}}}
    found = command_findings({"language": "kubectl", "argv": ["apply", "-n", "dem\u043e"], "manifest": manifest})
    assert sorted(f["kind"] for f in found) == ["invisible", "mixed-script", "mixed-script"]


@pytest.mark.parametrize("risk", [Risk.READ, Risk.WRITE, Risk.SCHEMA, Risk.EXEC, Risk.PRIVILEGE])
def test_the_risk_is_raised_to_hidden_text(risk):
    c = with_hidden_text(Classification(risk, "as written", "sql", "UPDATE"), {"sql": SQL.format("\u202e")})
    assert c.risk is Risk.HIDDEN_TEXT and not c.read_only
    assert c.details["risk_without_hidden_text"] == risk.value and c.details["hidden_text_count"] == 1
    assert "invisible" in c.reason


@pytest.mark.parametrize("risk", [Risk.DESTRUCTIVE, Risk.ADMIN, Risk.UNKNOWN])
def test_a_higher_risk_is_never_lowered(risk):
    c = with_hidden_text(Classification(risk, "as written", "sql"), {"sql": SQL.format("\u200b")})
    assert c.risk is risk and c.details["hidden_text_count"] == 1


def test_a_clean_command_keeps_its_classification():
    original = Classification(Risk.WRITE, "UPDATE changes rows", "sql", "UPDATE")
    assert with_hidden_text(original, {"sql": SQL.format("")}) is original


def test_policy_knows_the_class():
    from typing import get_args

    from broker.policy.model import RiskName

    assert list(get_args(RiskName)) == [r.value for r in Risk]


def test_the_ascii_fast_path_flags_exactly_the_controls():
    from broker.guard.hidden import is_hidden

    for ch in map(chr, range(128)):
        found = [f.codepoint for f in findings(f"SELECT '{ch}'")]
        assert found == ([f"U+{ord(ch):04X}"] if is_hidden(ch) else []), repr(ch)
    assert [f.start for f in findings("a\x00b\x1bc\x7f")] == [1, 3, 5]
