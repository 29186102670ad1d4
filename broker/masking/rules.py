"""Masking rules added per target (catalog) or per call (Kubernetes objects, the CLI).

Built-in name rules (``names.py``) and content detection always apply; these rules only add:
columns or keys to mask whole, field paths in documents to mask whole, and two policy switches.
``keep_columns`` lifts the name rule for a column, never content detection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from broker.masking.names import classify_name

PathKey = str | int


@dataclass(frozen=True)
class FieldRule:
    """Mask every value found at ``path`` whole, as ``type``.

    ``path`` is dotted; ``*`` stands for any one key or list index, ``**`` for any number of them:
    ``data.*`` masks each value of a Kubernetes Secret's ``data`` (keys stay visible), and
    ``items.*.data.*`` does the same for each Secret in a list. Containers found at a path have
    each of their leaves masked, so their shape stays visible.
    """

    path: str
    type: str = "secret"

    @cached_property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("."))

    def matches(self, path: tuple[PathKey, ...]) -> bool:
        return _match(self.segments, tuple(str(p) for p in path))


def _match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and (head in ("*", path[0])) and _match(rest, path[1:])


@dataclass(frozen=True)
class MaskingRules:
    """Per-target (or per-call) additions to the built-in rules.

    columns: names masked whole (case-insensitive), in tables and as keys in documents.
    column_patterns: regular expressions searched in those names (case-insensitive).
    keep_columns: names the built-in name rules must not mask whole (content is still scanned).
    fields: document paths masked whole (``FieldRule`` or its path as a string).
    keep_card_last_four: card placeholders end with the card's last four digits.
    ip_addresses: IP addresses are masked too (off by default: agents usually need them).
    """

    columns: tuple[str, ...] = ()
    column_patterns: tuple[str, ...] = ()
    keep_columns: tuple[str, ...] = ()
    fields: tuple[FieldRule | str, ...] = ()
    keep_card_last_four: bool = False
    ip_addresses: bool = False
    _field_rules: tuple[FieldRule, ...] = field(init=False, repr=False, compare=False, default=())
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        rules = tuple(f if isinstance(f, FieldRule) else FieldRule(f) for f in self.fields)
        try:
            patterns = tuple(re.compile(p, re.IGNORECASE) for p in self.column_patterns)
        except re.error as exc:
            raise ValueError(f"invalid masking column pattern: {exc}") from None
        object.__setattr__(self, "_field_rules", rules)
        object.__setattr__(self, "_patterns", patterns)
        object.__setattr__(self, "columns", tuple(c.lower() for c in self.columns))
        object.__setattr__(self, "keep_columns", tuple(c.lower() for c in self.keep_columns))

    def name_type(self, name: str) -> str | None:
        """The type to mask values under ``name`` as, or None (built-in rules plus these)."""
        lowered = name.lower()
        if lowered in self.keep_columns:
            return None
        builtin = classify_name(name)
        if builtin is not None:
            return builtin
        if lowered in self.columns or any(p.search(name) for p in self._patterns):
            return "column"
        return None

    def field_type(self, path: tuple[PathKey, ...]) -> str | None:
        for rule in self._field_rules:
            if rule.matches(path):
                return rule.type
        return None

    @property
    def has_fields(self) -> bool:
        return bool(self._field_rules)


DEFAULT_RULES = MaskingRules()
