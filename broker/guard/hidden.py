"""Characters that make a command read differently from what runs: found, named, never rendered.

A U+202E (right-to-left override) in a SQL comment makes ``… WHERE id = 3 /* INC-7 -- 0 < di RO */``
render as something harmless while the database runs ``… OR id > 0``. The approval page and mail
show such characters escaped (``⟨U+202E RIGHT-TO-LEFT OVERRIDE⟩``) with a warning, and the guard
raises the command's risk to at least ``hidden-text`` so policy can deny it or send it to a human.

Flagged:
- format characters (Unicode category Cf: bidi embeddings/overrides/isolates, zero-width space,
  joiners, word joiner, BOM, soft hyphen, invisible operators, tag characters);
- control characters other than tab, line feed and carriage return (Cc), line/paragraph
  separators (Zl, Zp), private-use and unassigned code points (Co, Cn), and spaces other than
  U+0020 (Zs: no-break space, ideographic space...);
- characters that render as nothing although Unicode files them as marks, letters or symbols:
  the combining grapheme joiner, variation selectors, Hangul fillers, the blank Braille pattern;
- combining marks that do not sit on a letter (``=`` + U+0338 renders as ``≠``), enclosing marks,
  and stacks of more than two marks on one letter (they paint over neighbouring text);
- identifiers whose letters come from more than one script (``pаyments`` with a Cyrillic ``а``);
- words written wholly in letters of another script that look like Latin ones (``сор`` in
  Cyrillic reads ``cop``): ``confusable``.

    >>> [f.codepoint for f in findings("SELECT 1 /* \\u202e */")]
    ['U+202E']
    >>> findings("SELECT name FROM customers")
    []
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from broker.guard import Classification, Risk

_ALLOWED_CONTROLS = frozenset("\t\n\r")
_ASCII_HIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FLAGGED_CATEGORIES = frozenset({"Cf", "Cc", "Zl", "Zp", "Co", "Cn", "Cs"})
_WORD = re.compile(r"[^\W\u115f\u1160\u3164\uffa0]+", re.UNICODE)  # Hangul fillers are blanks, not letters
Kind = Literal["invisible", "mixed-script", "confusable"]
_BLANK = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0") | frozenset(
    chr(c) for r in ((0xFE00, 0xFE10), (0xE0100, 0xE01F0), (0x1D173, 0x1D17B)) for c in range(*r))
_EMOJI_STYLE = frozenset("\ufe0e\ufe0f")
_MARKS_ON_A_LETTER = 2
_LOOKS_LATIN = frozenset(
    # Cyrillic а е о р с у х ѕ і ј һ ԁ ԛ ԝ ӏ and А В Е К М Н О Р С Т Х Ѕ І Ј Ӏ
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0455\u0456\u0458\u04bb\u0501\u051b\u051d\u04cf"
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0405\u0406\u0408\u04c0"
    # Greek ο ι ν ρ α and Α Β Ε Ζ Η Ι Κ Μ Ν Ο Ρ Τ Υ Χ; Armenian օ ս
    "\u03bf\u03b9\u03bd\u03c1\u03b1\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7"
    "\u0585\u057d")



@dataclass(frozen=True)
class HiddenText:
    """A character or identifier in a command that reads differently from what it does."""

    kind: Kind
    start: int
    end: int
    text: str
    codepoint: str = ""  # "U+202E" for an invisible character
    name: str = ""  # its Unicode name, or the scripts of a mixed-script identifier

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.start, "codepoint": self.codepoint, "name": self.name,
                **({"text": self.text} if self.kind != "invisible" else {})}


def is_hidden(ch: str) -> bool:
    """True for a character that renders invisibly, reorders text, or is not the ASCII space."""
    if ch in _ALLOWED_CONTROLS:
        return False
    category = unicodedata.category(ch)
    return category in _FLAGGED_CATEGORIES or (category == "Zs" and ch != " ") or ch in _BLANK or category == "Me"


def char_name(ch: str) -> str:
    return unicodedata.name(ch, "") or {"\x00": "NULL"}.get(ch, "UNNAMED CHARACTER")


def _script(ch: str) -> str:
    """The script of a letter, from its Unicode name (LATIN, CYRILLIC, GREEK, ...); '' for others."""
    if not ch.isalpha():
        return ""
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def _scripts(word: str) -> list[str]:
    seen: list[str] = []
    for ch in word:
        script = _script(ch)
        if script and script not in seen:
            seen.append(script)
    return seen


def findings(text: str) -> list[HiddenText]:
    """Every hidden character and mixed-script identifier in ``text``, in order of position."""
    found: list[HiddenText] = []
    if text.isascii():  # the usual command: only control characters can hide in it
        return [HiddenText("invisible", m.start(), m.end(), m.group(), f"U+{ord(m.group()):04X}",
                           char_name(m.group())) for m in _ASCII_HIDDEN.finditer(text)]
    # A combining mark that does not simply accent a letter is loose: on a non-letter (``=`` + U+0338
    # reads ``≠``), at the start, or the third and later mark on one letter (stacks paint over other
    # lines). The run of marks is counted as the text goes, so a long run costs no more than its length.
    marks, on_letter = 0, False  # marks since the last other character; whether that one is a letter
    for i, ch in enumerate(text):
        category = unicodedata.category(ch)
        loose = category in ("Mn", "Mc") and (not on_letter or marks >= _MARKS_ON_A_LETTER)
        if category in ("Mn", "Mc", "Me"):
            marks += 1
        else:
            marks, on_letter = 0, ch.isalpha()
        if ch in _EMOJI_STYLE and i and unicodedata.category(text[i - 1]) == "So":
            continue  # ❤️: U+FE0F asks for the emoji form of the symbol before it
        if is_hidden(ch) or loose:
            found.append(HiddenText("invisible", i, i + 1, ch, f"U+{ord(ch):04X}", char_name(ch)))
    for match in _WORD.finditer(text):
        word = match.group()
        if word.isascii():
            continue
        scripts = _scripts(word)
        if len(scripts) > 1:
            found.append(HiddenText("mixed-script", match.start(), match.end(), word, "", "+".join(scripts)))
        elif scripts and scripts != ["LATIN"] and all(c in _LOOKS_LATIN for c in word if c.isalpha()):
            found.append(HiddenText("confusable", match.start(), match.end(), word, "", f"{scripts[0]} letters "
                                    "that look like Latin ones"))
    return sorted(found, key=lambda f: (f.start, f.kind))


def escaped(ch: str) -> str:
    return f"⟨U+{ord(ch):04X} {char_name(ch)}⟩"


def segments(text: str) -> Iterator[tuple[str, str, str]]:
    """``text`` as (kind, shown, title) runs for a page or a mail: "text" runs as they are, hidden
    characters escaped, mixed-script identifiers with their non-majority letters escaped."""
    marks = {f.start: f for f in findings(text)}  # never overlapping: a hidden character is no word character
    i, plain = 0, []
    while i < len(text):
        finding = marks.get(i)
        if finding is None:
            plain.append(text[i])
            i += 1
            continue
        if plain:
            yield "text", "".join(plain), ""
            plain = []
        if finding.kind == "invisible":
            yield "invisible", escaped(finding.text), f"{finding.codepoint} {finding.name}"
        elif finding.kind == "confusable":
            yield "confusable", "".join(escaped(ch) for ch in finding.text), f"identifier in {finding.name}"
        else:
            yield "mixed-script", _spell_mixed(finding.text), f"identifier mixes scripts: {finding.name}"
        i = finding.end
    if plain:
        yield "text", "".join(plain), ""


def _spell_mixed(word: str) -> str:
    scripts = [_script(ch) for ch in word]
    counts = {s: scripts.count(s) for s in set(scripts) if s}
    main = "LATIN" if "LATIN" in counts else max(counts, key=lambda s: counts[s])
    return "".join(escaped(ch) if s and s != main else ch for ch, s in zip(word, scripts, strict=True))


def command_strings(command: dict[str, Any]) -> Iterator[str]:
    """Every string an approver reads in a canonical command: SQL, argv, manifest keys and values."""
    if command.get("sql"):
        yield str(command["sql"])
    for arg in command.get("argv", ()) or ():
        yield str(arg)
    yield from _leaves(command.get("manifest"))


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)


def command_findings(command: dict[str, Any]) -> list[dict[str, Any]]:
    """The findings of a whole canonical command, as the classification and the journal keep them."""
    out: list[dict[str, Any]] = []
    for part, text in enumerate(command_strings(command)):
        out.extend({**f.to_dict(), "part": part} for f in findings(text))
    return out


def with_hidden_text(classification: Classification, command: dict[str, Any]) -> Classification:
    """Raise the risk to at least ``hidden-text`` when the command holds what an approver cannot see.

    Classes above it (destructive, admin, unknown) stay: hiding text never lowers a risk.
    """
    found = command_findings(command)
    if not found:
        return classification
    kinds = sorted({f["kind"] for f in found})
    details = {**classification.details, "hidden_text": found[:50], "hidden_text_count": len(found)}
    if classification.risk.severity >= Risk.HIDDEN_TEXT.severity:
        return Classification(classification.risk, classification.reason, classification.language,
                              classification.statement, details)
    what = " and ".join({"invisible": "invisible or bidi characters",
                         "mixed-script": "mixed-script identifiers",
                         "confusable": "words in letters that look like Latin ones"}[k] for k in kinds)
    reason = f"the command holds {what} ({len(found)}); as written it is {classification.risk.value}: " \
             f"{classification.reason}"
    return Classification(Risk.HIDDEN_TEXT, reason, classification.language, classification.statement,
                          {**details, "risk_without_hidden_text": classification.risk.value})
