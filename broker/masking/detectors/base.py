"""The detector contract: a type name, patterns, and an optional check.

Patterns are written in the common subset of Python ``re`` and Hyperscan: the scanner compiles
them in Hyperscan's prefilter mode (which may match more, never less) to find which strings need
a look, and the exact ``re`` pattern then decides. Rules for a pattern:

- ASCII semantics (``\\d``, ``\\w``, ``\\s``, ``\\b`` are ASCII); ``ignore_case`` for case;
- no ``^``, ``$``, ``\\A``, ``\\Z``: the scanner joins strings with newlines, so a newline must
  behave like the end of the text (lookarounds such as ``(?![\\w-])`` do);
- the part to mask is the group named ``value`` (or ``value2``, ``value3`` for alternatives),
  or the whole match when there is none.

A pattern that would make Hyperscan report a match at many offsets (digit runs, long tokens)
gets a ``trigger``: a Hyperscan-only pattern that must match wherever the pattern matches, in a
text that starts and ends with a newline, but ends only once per candidate (it consumes the
character before and after instead of looking around). ``tests/masking`` checks the superset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Detection:
    """One span to mask, before overlapping findings are resolved."""

    start: int
    end: int
    type: str
    priority: int
    last_four: str | None = None


class Detector:
    """A kind of secret or personal data. Subclasses set the class attributes and may override
    ``accept`` (a validator on the value) or ``locate`` (to move or refuse the span)."""

    type: ClassVar[str]
    patterns: ClassVar[tuple[str, ...]]
    triggers: ClassVar[tuple[str | None, ...]] = ()
    """Per pattern, the prefilter trigger (None or absent: the pattern itself, in prefilter mode)."""
    literals: ClassVar[tuple[tuple[str, ...], ...]] = ()
    """Per pattern, strings of which every match contains one (lower case if ``ignore_case``):
    without any of them in a batch, the ``re`` prefilter skips the pattern. Empty: no such list."""
    anchors: ClassVar[tuple[tuple[tuple[str, ...], int] | None, ...]] = ()
    """Per pattern, ``(literals, reach)``: every match contains one of the literals (lower case if
    ``ignore_case``) starting at most ``reach`` characters after the match's own start. The exact
    phase then starts each search near the next literal instead of trying every position (tested
    on the corpora). None or absent: plain ``finditer``."""
    ignore_case: ClassVar[bool] = False
    priority: ClassVar[int] = 50
    """Which finding names a span when findings overlap (the higher wins)."""
    opt_in: ClassVar[str | None] = None
    """Name of the ``MaskingRules`` switch that enables this detector; None: always on."""
    hint: ClassVar[bool] = False
    """A hint finds nothing to mask itself; it tells the engine to look closer (e.g. parse JSON)."""
    nested: ClassVar[bool] = False
    """The value is an encoding (base64) whose decoded text is scanned one level deep."""
    within_match: ClassVar[bool] = True
    """``locate`` returns a span inside ``value_span(match)`` (the default, and ``trimmed``): the
    exact phase then skips a match inside a stronger finding without validating it."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def accept(self, value: str, match: re.Match[str]) -> bool:
        """Whether ``value`` is the real thing (not a look-alike). Default: yes."""
        return True

    def locate(self, match: re.Match[str]) -> tuple[int, int, str] | None:
        """The span to mask and its type, or None to leave this match alone."""
        start, end = value_span(match)
        if start == end or not self.accept(match.string[start:end], match):
            return None
        return start, end, self.type

    def decode(self, value: str) -> str | None:
        """For ``nested`` detectors: the decoded text to scan, or None."""
        return None


@lru_cache(maxsize=512)
def _value_groups(pattern: re.Pattern[str]) -> tuple[int, ...]:
    return tuple(i for name, i in pattern.groupindex.items() if name.startswith("value"))


def value_span(match: re.Match[str]) -> tuple[int, int]:
    """The span of the first participating ``value*`` group, else of the whole match."""
    for i in _value_groups(match.re):
        if match.start(i) >= 0:
            return match.span(i)
    return match.span()


def trimmed(match: re.Match[str], accept: object, max_trims: int = 4) -> tuple[int, int] | None:
    """Try the value, then drop trailing space/dash-separated groups until ``accept`` agrees.

    Greedy number patterns can swallow a neighbouring number ("+44 20 7946 0958 2024"); the
    real value is a prefix of what matched.
    """
    start, end = value_span(match)
    text = match.string
    for _ in range(max_trims + 1):
        if end <= start:
            return None
        if accept(text[start:end]):  # type: ignore[operator]
            return start, end
        cut = max(text.rfind(" ", start, end), text.rfind("-", start, end), text.rfind(".", start, end))
        if cut <= start:
            return None
        end = cut
        while end > start and not text[end - 1].isalnum():
            end -= 1
    return None
