"""The one-pass prefilter: which strings of a batch may hold which patterns.

All strings of a result are joined with newlines and scanned once for every detector pattern.
With Hyperscan the patterns run together in one pass (compiled in prefilter mode, with large
repeat bounds widened, so a report is a superset of the true matches); without it, each pattern
runs over the joined text with ``re``. Either way, the exact ``re`` pattern then runs only on the
strings where its pattern fired, so both scanners give the same result (tested on the corpus).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import operator
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from broker.masking.detectors import DETECTORS, Detector

log = logging.getLogger(__name__)

SEPARATOR = "\n"
BATCH_CHARS = 8_000_000
"""Strings are scanned in batches of about this many characters (bounds the joined copy)."""


@dataclass(frozen=True, slots=True)
class Pattern:
    id: int
    detector: Detector
    regex: re.Pattern[str]
    trigger: str | None
    """The detector's explicit prefilter trigger for this pattern, if it has one."""
    literals: tuple[str, ...]
    """Every match contains one of these (lower case when the detector ignores case); () if unknown."""
    anchors: tuple[str, ...] = ()
    """Literals one of which every match contains, at most ``reach`` characters after its start
    (``Detector.anchors``); () if none are known."""
    reach: int = 0



@lru_cache(maxsize=8)
def patterns(detectors: tuple[Detector, ...] = DETECTORS) -> tuple[Pattern, ...]:
    table = []
    for detector in detectors:
        flags = re.ASCII | (re.IGNORECASE if detector.ignore_case else 0)
        for i, source in enumerate(detector.patterns):
            trigger = detector.triggers[i] if i < len(detector.triggers) else None
            literals = detector.literals[i] if i < len(detector.literals) else ()
            anchor = detector.anchors[i] if i < len(detector.anchors) else None
            table.append(Pattern(len(table), detector, re.compile(source, flags), trigger, literals,
                                 anchor[0] if anchor else (), anchor[1] if anchor else 0))
    return tuple(table)


def active(table: tuple[Pattern, ...], opt_ins: frozenset[str]) -> tuple[Pattern, ...]:
    """The patterns to scan for: opt-in detectors only when their switch is on."""
    return tuple(p for p in table if p.detector.opt_in is None or p.detector.opt_in in opt_ins)


Fired = dict[int, set[int]]
"""String index -> ids of the patterns that may match in it (strings with none are absent)."""


class Prefilter(Protocol):
    name: str

    def fired(self, texts: Sequence[str]) -> Fired: ...


def _joined(texts: Sequence[str]) -> str:
    """The batch as one text: every string between newlines (also the first and the last)."""
    return SEPARATOR + SEPARATOR.join(texts) + SEPARATOR


def _starts(lengths: Iterable[int]) -> list[int]:
    """Where each string starts in the joined text (C-level iterators: no Python per string)."""
    starts = list(itertools.accumulate(map(operator.add, lengths, itertools.repeat(1)), initial=1))
    starts.pop()
    return starts


class RegexPrefilter:
    """Pure ``re``: each exact pattern searched over the joined text, skipping patterns whose
    required literals are absent, and resuming at the next string after each hit. (Triggers are
    for Hyperscan: ``re`` runs the exact patterns at least as fast.)"""

    name = "re"

    def __init__(self, table: Sequence[Pattern]) -> None:
        self._screens = [(p.id, p.regex, p.literals, p.detector.ignore_case) for p in table]

    def fired(self, texts: Sequence[str]) -> Fired:
        if not texts:
            return {}
        joined = _joined(texts)
        lowered: str | None = None
        starts = _starts(map(len, texts))
        last = len(starts) - 1
        result: Fired = {}
        right = bisect.bisect_right
        for pattern_id, screen, literals, ignore_case in self._screens:
            if literals:
                if ignore_case and lowered is None:
                    lowered = joined.lower()
                haystack = lowered if ignore_case else joined
                if not any(literal in haystack for literal in literals):  # type: ignore[operator]
                    continue
            search, pos = screen.search, 0
            while (m := search(joined, pos)) is not None:
                # a match may start on the separator before a string: the string at start+1 is
                # marked too (an extra mark only costs a look)
                at = m.start()
                index = min(max(right(starts, at) - 1, 0), last)
                result.setdefault(index, set()).add(pattern_id)
                after = min(max(right(starts, at + 1) - 1, 0), last)
                if after != index:
                    result.setdefault(after, set()).add(pattern_id)
                if after >= last:
                    break
                pos = max(starts[after + 1] - 1, at + 1)
        return result


_BOUND = re.compile(r"\{(\d+),(\d+)\}")
WIDEN_ABOVE = 8


def prefilter_source(source: str) -> str:
    """The pattern Hyperscan compiles: large bounded repeats made open (compiles far faster,
    matches a superset)."""
    return _BOUND.sub(lambda m: f"{{{m.group(1)},}}" if int(m.group(2)) > WIDEN_ABOVE else m.group(0), source)


class HyperscanPrefilter:
    """Hyperscan: all patterns in one pass over the joined UTF-8 text."""

    name = "hyperscan"

    def __init__(self, table: Sequence[Pattern]) -> None:
        import hyperscan

        self._hs = hyperscan
        flags, sources = [], []
        for p in table:
            sources.append((p.trigger or prefilter_source(p.regex.pattern)).encode())
            flags.append(hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_UTF8
                         | (hyperscan.HS_FLAG_CASELESS if p.detector.ignore_case else 0))
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(expressions=sources, ids=[p.id for p in table], elements=len(sources), flags=flags)
        self._local = threading.local()

    def _scratch(self) -> object:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self._db)
        return scratch

    def fired(self, texts: Sequence[str]) -> Fired:
        if not texts:
            return {}
        joined = _joined(texts)
        data = joined.encode("utf-8")  # lone surrogates raise: the caller falls back to re
        lengths = map(len, texts) if joined.isascii() else (len(t.encode("utf-8")) for t in texts)
        starts = _starts(lengths)
        ends: list[tuple[int, int]] = []
        add = ends.append

        def on_match(pattern_id: int, _start: int, end: int, _flags: int, _context: object) -> None:
            add((end, pattern_id))

        self._db.scan(data, match_event_handler=on_match, scratch=self._scratch())
        result: Fired = {}
        right = bisect.bisect_right
        last = len(starts) - 1
        for end, pattern_id in set(ends):
            index = min(max(right(starts, end - 1) - 1, 0), last)
            result.setdefault(index, set()).add(pattern_id)
        return result


@lru_cache(maxsize=16)
def build_prefilter(kind: str = "auto", detectors: tuple[Detector, ...] = DETECTORS,
                    opt_ins: frozenset[str] = frozenset()) -> Prefilter:
    """``auto``: Hyperscan when its wheel is importable, else ``re``; or ask for one by name.
    Opt-in detectors are scanned for only when named in ``opt_ins``."""
    table = active(patterns(detectors), opt_ins)
    if kind in ("auto", "hyperscan"):
        try:
            return HyperscanPrefilter(table)
        except ImportError:
            if kind == "hyperscan":
                raise
            log.info("hyperscan is not installed; masking scans with re")
    elif kind != "re":
        raise ValueError(f"unknown scanner {kind!r} (auto, hyperscan, re)")
    return RegexPrefilter(table)


def batches(texts: Sequence[str], limit: int = BATCH_CHARS) -> list[range]:
    """Split string indexes into consecutive batches of about ``limit`` characters."""
    if sum(map(len, texts)) + len(texts) <= limit:
        return [range(len(texts))] if texts else []
    out, start, size = [], 0, 0
    for i, n in enumerate(map(len, texts)):
        if size and size + n > limit:
            out.append(range(start, i))
            start, size = i, 0
        size += n + 1
    if start < len(texts):
        out.append(range(start, len(texts)))
    return out
