"""Known-plaintext masking: exact occurrences of values the broker knows are secret (a Kubernetes
Secret's values), in any spelling ``_forms`` lists, become the value's keyed placeholder.

Content patterns cannot recognise a password that looks like nothing (``printenv DB_PASSWORD``
prints a bare word); knowing the value can. All needles of a set of values go into one Aho-Corasick
automaton (``pyahocorasick``, C), so a text is scanned once whatever the number of values; a
second pass over the text with its line breaks removed finds a value that ``base64`` wrapped at
76 columns, ``xxd -p`` at 60 or ``fold`` at any width spread over several lines. Command output and
logs get a last check (``residue``): if a view that undoes the usual steps (dumps, base64 twice,
reversal, whitespace) still holds a value, the whole text is withheld as that value's placeholder.

Every spelling of a value gets the same placeholder, ``[secret:hhhhhh]`` of the value's base64
(as the Secret object's own ``data`` field gets), so equal values stay equal. Matches that overlap
merge into one span; a base64 match grows to its whole base64 run. This module never logs a value.
"""

from __future__ import annotations

import base64
import bisect
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import ahocorasick

from broker.masking._forms import ANYWHERE_CHARS, Reach, forms
from broker.masking.residue import views

__all__ = ["KnownPlaintext", "KnownValues", "known_plaintext"]

KIND = "secret"
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")
_BREAK = re.compile(r"\r?\n")


class Placeholders(Protocol):
    def placeholder(self, kind: str, value: Any) -> str: ...


class KnownPlaintext:
    """One automaton over every spelling of a set of secret values. Immutable and thread-safe."""

    def __init__(self, values: Iterable[bytes]) -> None:
        self._names: list[str] = []  # per value: what its placeholder hashes (its base64)
        automaton = ahocorasick.Automaton()
        for index, value in enumerate(sorted(set(values))):
            self._names.append(base64.b64encode(value).decode())
            for form in forms(value):
                if form.text not in automaton:  # two values sharing a spelling: the first keeps it
                    automaton.add_word(form.text, (len(form.text), index, int(form.reach), form.base64))
        self.needles = len(automaton)
        self._automaton = automaton
        if self.needles:
            automaton.make_automaton()

    def __bool__(self) -> bool:
        return self.needles > 0

    def mask_text(self, text: str, placeholders: Placeholders, counts: Counter[str], *, lines: bool = True) -> str:
        """``text`` with every occurrence replaced. ``lines``: the text is command output or logs, so
        short values (``Reach.LINE``) count where they stand alone on a line."""
        if not self.needles or not text:
            return text
        spans = self._spans(text, lines)
        if "\n" in text:
            spans += self._wrapped(text)
        out, last = [], 0
        for start, end, index in _merge(spans):
            out.append(text[last:start])
            out.append(placeholders.placeholder(KIND, self._names[index]))
            counts[KIND] += 1
            last = end
        out.append(text[last:])
        masked = "".join(out)
        if lines:  # command output: a pod's tools may have transformed a value past every spelling
            hidden = self._hidden(masked)
            if hidden is not None:
                counts[KIND] += 1
                return placeholders.placeholder(KIND, self._names[hidden])  # the whole text, fail closed
        return masked

    def _hidden(self, text: str) -> int | None:
        """The value some view of ``text`` (``residue.views``) still holds, if any (8+ characters only)."""
        if len(text) < ANYWHERE_CHARS:
            return None
        for view in views(text):
            for _, (length, index, reach, _) in self._automaton.iter(view):
                if reach == Reach.ANYWHERE and length >= ANYWHERE_CHARS:
                    return int(index)
        return None

    def mask_document(self, value: Any, placeholders: Placeholders, counts: Counter[str], *,
                      lines: bool = False) -> Any:
        """Every string of a JSON document masked (keys stay); unchanged parts are shared."""
        if isinstance(value, str):
            return self.mask_text(value, placeholders, counts, lines=lines)
        if isinstance(value, list):
            return [self.mask_document(v, placeholders, counts, lines=lines) for v in value]
        if isinstance(value, dict):
            return {k: self.mask_document(v, placeholders, counts, lines=lines) for k, v in value.items()}
        return value

    def mask_rows(self, rows: Sequence[Sequence[Any]], placeholders: Placeholders,
                  counts: Counter[str]) -> list[list[Any]]:
        return [[self.mask_document(cell, placeholders, counts) for cell in row] for row in rows]

    # --- finding ------------------------------------------------------------------------------
    def _spans(self, text: str, lines: bool) -> list[tuple[int, int, int]]:
        spans = []
        for end, (length, index, reach, b64) in self._automaton.iter(text):
            start, stop = end - length + 1, end + 1
            if reach == Reach.LINE and not (lines and _whole_line(text, start, stop)):
                continue
            if reach == Reach.TOKEN and not _whole_token(text, start, stop):
                continue
            if b64:
                start, stop = _base64_run(text, start, stop)
            spans.append((start, stop, index))
        return spans

    def _wrapped(self, text: str) -> list[tuple[int, int, int]]:
        """Matches that cross a line break, found in the text with its breaks removed."""
        parts: list[str] = []
        cuts: list[int] = []  # where, in the joined text, the text after each break starts
        offsets: list[int] = []  # how many characters were removed up to that break
        size = removed = last = 0
        for m in _BREAK.finditer(text):
            parts.append(text[last:m.start()])
            size += m.start() - last
            removed += m.end() - m.start()
            cuts.append(size)
            offsets.append(removed)
            last = m.end()
        parts.append(text[last:])
        joined = "".join(parts)

        def original(j: int) -> int:
            k = bisect.bisect_right(cuts, j)
            return j + (offsets[k - 1] if k else 0)

        spans = []
        for end, (length, index, reach, b64) in self._automaton.iter(joined):
            start = end - length + 1
            if reach != Reach.ANYWHERE or length < ANYWHERE_CHARS:
                continue
            if b64:  # a base64 run goes on over the line breaks of a wrapped dump
                start, stop = _base64_run(joined, start, end + 1)
                end = stop - 1
            if bisect.bisect_right(cuts, end) == bisect.bisect_right(cuts, start):
                continue  # on one line: the first pass has it
            spans.append((original(start), original(end) + 1, index))
        return spans


def _merge(spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Overlapping spans become one, named by its longest match."""
    spans.sort()
    merged: list[list[int]] = []
    best: list[int] = []
    for start, end, index in spans:
        if merged and start < merged[-1][1]:
            if end - start > best[-1]:
                best[-1], merged[-1][2] = end - start, index
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, index])
            best.append(end - start)
    return [(s, e, i) for s, e, i in merged]


def _whole_line(text: str, start: int, stop: int) -> bool:
    begin = text.rfind("\n", 0, start) + 1
    finish = text.find("\n", stop)
    return not text[begin:start].strip() and not text[stop:finish if finish >= 0 else len(text)].strip()


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _whole_token(text: str, start: int, stop: int) -> bool:
    return (start == 0 or not _word(text[start - 1])) and (stop == len(text) or not _word(text[stop]))


def _base64_run(text: str, start: int, stop: int) -> tuple[int, int]:
    while start > 0 and text[start - 1] in _B64:
        start -= 1
    while stop < len(text) and text[stop] in _B64:
        stop += 1
    return start, stop


@lru_cache(maxsize=64)
def known_plaintext(values: frozenset[bytes]) -> KnownPlaintext:
    """The automaton for a set of values, built once per set (a namespace's Secrets change rarely)."""
    return KnownPlaintext(values)


@dataclass(frozen=True)
class KnownValues:
    """What a result carries to the masking step: the automaton, and whether its document's strings
    are command output (exec stdout/stderr), where a short value standing alone on a line is masked."""

    automaton: KnownPlaintext
    streams: bool = False

    def mask_text(self, text: str, placeholders: Placeholders, counts: Counter[str]) -> str:
        return self.automaton.mask_text(text, placeholders, counts, lines=True)

    def mask_document(self, value: Any, placeholders: Placeholders, counts: Counter[str]) -> Any:
        return self.automaton.mask_document(value, placeholders, counts, lines=self.streams)

    def mask_rows(self, rows: Sequence[Sequence[Any]], placeholders: Placeholders,
                  counts: Counter[str]) -> list[list[Any]]:
        return self.automaton.mask_rows(rows, placeholders, counts)
