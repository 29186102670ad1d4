"""The exact phase for one string: run the patterns that fired, validate, resolve overlaps, and
replace every chosen span once.

Replacing once, from spans collected over all detectors first, is what keeps a placeholder from
ever being matched again: ``key: sk_live_...`` gives one ``[stripe_key:...]``, never a placeholder
inside a placeholder. Overlapping findings merge into one span named by the strongest detector.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from broker.masking.detectors import Detection
from broker.masking.detectors.base import value_span
from broker.masking.detectors.nested import is_user_password
from broker.masking.placeholder import PLACEHOLDER, Placeholders
from broker.masking.rules import MaskingRules
from broker.masking.scanner import Pattern

NestedScan = Callable[[str], list[Detection]]


def find(text: str, pattern_ids: Iterable[int], table: tuple[Pattern, ...], rules: MaskingRules,
         nested: NestedScan | None) -> list[Detection]:
    """Every finding of the fired patterns in ``text``; ``nested`` scans decoded base64 (None: don't).

    Findings touching a placeholder already in the text are dropped here (``resolve`` would drop
    them). A match inside an earlier finding of at least its priority is skipped before its
    validator runs: it could neither widen that finding's span nor name it (``resolve`` keeps the
    stronger, then the longer, then the first), so the result is the same, minus the validation
    (a phone number inside an IBAN, a national number inside an international one)."""
    findings: list[Detection] = []
    taken = [m.span() for m in PLACEHOLDER.finditer(text)] if "[" in text else None
    for pid in sorted(pattern_ids):
        pattern = table[pid]
        detector = pattern.detector
        if detector.hint or (detector.opt_in and not getattr(rules, detector.opt_in)):
            continue
        if detector.nested and nested is None:
            continue
        priority = detector.priority
        skippable = detector.within_match
        for match in matches(pattern, text) if pattern.anchors else pattern.regex.finditer(text):
            if skippable and findings:
                start, end = value_span(match)
                if any(f.start <= start and end <= f.end and f.priority >= priority for f in findings):
                    continue
            located = detector.locate(match)
            if located is None:
                continue
            start, end, kind = located
            if taken and any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            if detector.nested:
                decoded = detector.decode(text[start:end])
                if decoded is None:
                    continue
                inner = nested(decoded) if nested is not None else []
                if inner:
                    kind = max(inner, key=lambda f: f.priority).type
                elif is_user_password(decoded):
                    kind = "password"
                else:
                    continue
            last_four = None
            if kind == "card" and rules.keep_card_last_four:
                digits = [c for c in text[start:end] if c.isdigit()]
                last_four = "".join(digits[-4:])
            findings.append(Detection(start, end, kind, priority, last_four))
    return findings


def matches(pattern: Pattern, text: str) -> Iterator[re.Match[str]]:
    """``pattern.regex.finditer(text)``, the same matches; with anchors, each search starts
    ``reach`` characters before the next anchor literal, and none runs once no literal is left.
    (Every match starting at ``pos`` or later holds a literal at or after the first one from
    ``pos``, so none starts more than ``reach`` before it.) Case-insensitive literals are looked
    for in the lower-cased text, only when it is ASCII (lower-casing keeps every offset)."""
    literals = pattern.anchors
    if not literals or (pattern.detector.ignore_case and not text.isascii()):
        yield from pattern.regex.finditer(text)
        return
    haystack = text.lower() if pattern.detector.ignore_case else text
    search, reach = pattern.regex.search, pattern.reach
    pos, size = 0, len(text)
    while pos <= size:
        found = min((at for at in map(haystack.find, literals, itertools.repeat(pos)) if at >= 0), default=-1)
        if found < 0:
            return
        match = search(text, max(pos, found - reach))
        if match is None:
            return
        yield match
        pos = match.end() if match.end() > match.start() else match.end() + 1


def resolve(text: str, findings: list[Detection]) -> list[Detection]:
    """Merge overlapping findings: one span covering them all, typed by the highest priority
    (then the longest) finding. The result is sorted and disjoint. Findings that touch a
    placeholder already in the text are dropped: masking twice changes nothing."""
    if findings and "[" in text:
        taken = [m.span() for m in PLACEHOLDER.finditer(text)]
        if taken:
            findings = [f for f in findings if not any(f.start < end and start < f.end for start, end in taken)]
    if len(findings) < 2:
        return findings
    findings = sorted(findings, key=lambda f: (f.start, -f.end))
    merged: list[Detection] = []
    group = [findings[0]]
    end = findings[0].end
    for f in findings[1:]:
        if f.start < end:
            group.append(f)
            end = max(end, f.end)
            continue
        merged.append(_merge(group, end))
        group, end = [f], f.end
    merged.append(_merge(group, end))
    return merged


def _merge(group: list[Detection], end: int) -> Detection:
    if len(group) == 1:
        return group[0]
    best = max(group, key=lambda f: (f.priority, f.end - f.start))
    return Detection(group[0].start, end, best.type, best.priority, best.last_four)


def replace(text: str, findings: list[Detection], placeholders: Placeholders, counts: Counter[str]) -> str:
    """``text`` with each (resolved, disjoint) finding replaced by its placeholder."""
    if not findings:
        return text
    parts, pos = [], 0
    for f in findings:
        parts.append(text[pos:f.start])
        parts.append(placeholders.text(f.type, text[f.start:f.end], f.last_four))
        counts[f.type] += 1
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)
