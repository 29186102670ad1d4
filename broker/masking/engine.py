"""The masking engine: one ``Masker`` for rows, documents and text.

Order of work for a result: name rules first (a sensitive column or key is masked whole, whatever
it holds), then every remaining string goes into one batch, the prefilter scans the batch once,
and only strings where a pattern fired get the exact phase (``spans.py``). JSON inside a string
and base64 that decodes to text are looked into one level deep.

Fail closed: a string too large to scan, or any error while masking one, masks that value whole
(types ``oversized``, ``masking_error``) and is counted. Nothing here logs or raises a value.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from broker.masking import spans
from broker.masking.detectors import DETECTORS, Detector, Finding
from broker.masking.detectors.nested import JSON_START
from broker.masking.detectors.pii import is_card_number
from broker.masking.placeholder import Placeholders, is_placeholder
from broker.masking.rules import DEFAULT_RULES, MaskingRules, PathKey
from broker.masking.scanner import Prefilter, batches, build_prefilter, patterns

log = logging.getLogger(__name__)

MAX_CELL_CHARS = 1_000_000
"""A string value longer than this is not scanned: it is masked whole (``oversized``)."""
MAX_TEXT_CHARS = 16_000_000
"""The same for ``mask_text`` (logs, command output), which is scanned as one string."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]{0,63}")
_CARD_INT_MIN = 10**11


@dataclass
class MaskedTable:
    rows: list[list[Any]]
    counts: dict[str, int] = field(default_factory=dict)


class Masker:
    """Masks secrets and personal data under one key.

    key: the masking key (at least 16 bytes); placeholders are keyed hashes under it.
    scanner: ``auto`` (Hyperscan when importable, else ``re``), ``hyperscan`` or ``re``.
    detectors: the detectors to run (default: all of ``broker.masking.detectors.DETECTORS``).
    """

    def __init__(self, key: bytes, *, scanner: str = "auto", max_cell_chars: int = MAX_CELL_CHARS,
                 max_text_chars: int = MAX_TEXT_CHARS, detectors: tuple[Detector, ...] = DETECTORS) -> None:
        self._placeholders = Placeholders(key)
        self._detectors = detectors
        self._prefilter: Prefilter = build_prefilter(scanner, detectors)
        self._table = patterns(detectors)
        self._json_hints = frozenset(p.id for p in self._table if p.detector.hint)
        self.max_cell_chars = max_cell_chars
        self.max_text_chars = max_text_chars

    @property
    def scanner(self) -> str:
        return self._prefilter.name

    # --- public surface ---------------------------------------------------------------------
    def placeholder(self, kind: str, value: Any) -> str:
        """The placeholder of ``value`` as type ``kind`` (no counting)."""
        return self._placeholders.value(kind, value)

    def mask_table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   rules: MaskingRules | None = None) -> MaskedTable:
        """Mask every cell of a result set; the rows come back as new lists, same shape."""
        rules = rules or DEFAULT_RULES
        counts: Counter[str] = Counter()
        kinds = [rules.name_type(c) for c in columns]
        batch = _Batch(self, rules, counts)
        out: list[list[Any]] = []
        for row in rows:
            new = list(row)
            for i, value in enumerate(new):
                if value is None:
                    continue
                kind = kinds[i] if i < len(kinds) else None
                if kind is not None:
                    new[i] = self._whole(value, kind, counts, rules)
                    continue
                path = (columns[i],) if rules.has_fields and i < len(columns) else None
                self._cell(new, i, value, path, rules, counts, batch)
            out.append(new)
        batch.run()
        return MaskedTable(out, dict(counts))

    def mask_text(self, text: str, counts: Counter[str] | None = None, rules: MaskingRules | None = None) -> str:
        """Mask free text (a log, command output, an error message) as one string."""
        counts = counts if counts is not None else Counter()
        rules = rules or DEFAULT_RULES
        if len(text) > self.max_text_chars:
            return self._whole(text, "oversized", counts, rules)
        return self._mask_many([text], rules, counts, allow_json=True).get(0, text)

    def mask_document(self, value: Any, counts: Counter[str] | None = None,
                      rules: MaskingRules | None = None) -> Any:
        """Mask a JSON document (e.g. a Kubernetes object): name rules on keys, ``rules.fields``
        paths, and content detection on every string. Returns a new document."""
        counts = counts if counts is not None else Counter()
        rules = rules or DEFAULT_RULES
        if isinstance(value, str):
            return self.mask_text(value, counts, rules)
        holder = [value]
        batch = _Batch(self, rules, counts)
        self._cell(holder, 0, value, () if rules.has_fields else None, rules, counts, batch)
        batch.run()
        return holder[0]

    def mask_value(self, value: Any, kind: str, counts: Counter[str] | None = None,
                   rules: MaskingRules | None = None) -> Any:
        """Mask ``value`` whole as ``kind``; in a container each leaf is masked and keys stay."""
        return self._whole(value, kind, counts if counts is not None else Counter(), rules or DEFAULT_RULES)

    # --- walking values -----------------------------------------------------------------------
    def _cell(self, container: list[Any] | dict[Any, Any], key: Any, value: Any, path: tuple[PathKey, ...] | None,
              rules: MaskingRules, counts: Counter[str], batch: _Batch) -> None:
        """Mask ``container[key]`` (already holding ``value``) in place or via the batch."""
        kind = type(value)
        if kind is str:
            batch.add(container, key, value)
        elif kind is dict or kind is list:
            try:
                container[key] = self._walk(value, path, rules, counts, batch)
            except RecursionError:
                container[key] = self._error(value, counts)
        elif kind is int:
            if (value >= _CARD_INT_MIN or value <= -_CARD_INT_MIN) and is_card_number(str(abs(value))):
                container[key] = self._whole(value, "card", counts, rules)
        elif kind is float or kind is bool or value is None:
            return
        else:  # not JSON-ready: scan its text rather than pass it through unscanned
            text = str(value)
            container[key] = text
            batch.add(container, key, text)

    def _walk(self, value: dict[Any, Any] | list[Any], path: tuple[PathKey, ...] | None, rules: MaskingRules,
              counts: Counter[str], batch: _Batch) -> dict[Any, Any] | list[Any]:
        if isinstance(value, list):
            items = list(value)
            flag_kind = None
            for i, item in enumerate(items):
                sub = (*path, i) if path is not None else None
                kind = rules.field_type(sub) if sub is not None else None
                if kind is None and flag_kind is not None and isinstance(item, str):
                    kind = flag_kind
                flag_kind = _flag_kind(item, rules)
                if kind is not None:
                    items[i] = self._whole(item, kind, counts, rules)
                elif item is not None:
                    self._cell(items, i, item, sub, rules, counts, batch)
            return items
        out: dict[Any, Any] = {}
        pair_key, pair_kind = _name_value_pair(value, rules)
        for key, item in value.items():
            sub = (*path, key) if path is not None else None
            kind = rules.field_type(sub) if sub is not None else None
            if kind is None and key == pair_key:
                kind = pair_kind
            name = key if isinstance(key, str) else str(key)
            if kind is None:
                kind = rules.name_type(name)
            if not _PLAIN_KEY.fullmatch(name):
                key = self._mask_many([name], rules, counts, allow_json=False).get(0, key)
            if kind is not None:
                out[key] = self._whole(item, kind, counts, rules)
            else:
                out[key] = item
                if item is not None:
                    self._cell(out, key, item, sub, rules, counts, batch)
        return out

    def _whole(self, value: Any, kind: str, counts: Counter[str], rules: MaskingRules) -> Any:
        if value is None or isinstance(value, bool) or (isinstance(value, str) and is_placeholder(value)):
            return value  # nothing to hide (masking twice changes nothing)
        if isinstance(value, dict):
            return {k: self._whole(v, kind, counts, rules) for k, v in value.items()}
        if isinstance(value, list):
            return [self._whole(v, kind, counts, rules) for v in value]
        last_four = None
        if kind == "card" and rules.keep_card_last_four:
            digits = [c for c in str(value) if c.isdigit()]
            last_four = "".join(digits[-4:]) if len(digits) >= 12 else None
        counts[kind] += 1
        return self._placeholders.value(kind, value, last_four)

    def _error(self, value: Any, counts: Counter[str]) -> str:
        counts["masking_error"] += 1
        return self._placeholders.value("masking_error", value)

    # --- scanning strings ------------------------------------------------------------------
    def _mask_many(self, texts: Sequence[str], rules: MaskingRules, counts: Counter[str], *,
                   allow_json: bool) -> dict[int, str]:
        """Masked forms of the strings that changed, by index. ``allow_json``: look into JSON."""
        changed: dict[int, str] = {}
        always_json = allow_json and bool(rules.columns or rules.column_patterns)
        for part in batches([len(t) for t in texts]):
            chunk = texts[part.start:part.stop]
            fired = self._fired(chunk)
            if fired is None:  # neither scanner could run: mask the whole batch
                for i, text in enumerate(chunk):
                    changed[part.start + i] = self._error(text, counts)
                continue
            if always_json:
                for i, text in enumerate(chunk):
                    if i not in fired and JSON_START.match(text):
                        fired[i] = set()
            for i, ids in fired.items():
                text = chunk[i]
                local: Counter[str] = Counter()
                try:
                    masked = self._mask_string(text, ids, rules, local, allow_json=allow_json)
                except Exception as exc:  # fail closed, whatever went wrong
                    log.warning("masking: %s while scanning a value; it is masked whole", type(exc).__name__)
                    masked = self._error(text, counts)
                else:
                    counts.update(local)
                if masked is not text:
                    changed[part.start + i] = masked
        return changed

    def _fired(self, chunk: Sequence[str]) -> dict[int, set[int]] | None:
        try:
            return self._prefilter.fired(chunk)
        except Exception as exc:
            log.warning("masking: the %s scanner failed (%s); scanning with re", self._prefilter.name,
                        type(exc).__name__)
        try:
            return build_prefilter("re", self._detectors).fired(chunk)
        except Exception as exc:
            log.error("masking: the re scanner failed too (%s); masking the batch whole", type(exc).__name__)
            return None

    def _mask_string(self, text: str, ids: set[int], rules: MaskingRules, counts: Counter[str], *,
                     allow_json: bool) -> str:
        if allow_json and (ids & self._json_hints or rules.columns or rules.column_patterns) \
                and JSON_START.match(text):
            masked = self._mask_json(text, rules, counts)
            if masked is not None:
                return masked
        findings = spans.find(text, ids, self._table, rules, partial(self._nested, rules))
        return spans.replace(text, spans.resolve(text, findings), self._placeholders, counts)

    def _mask_json(self, text: str, rules: MaskingRules, counts: Counter[str]) -> str | None:
        """A string holding a JSON object or array: mask it as a document (one level: strings in
        it are not parsed again). None if it is not JSON. Unchanged JSON keeps its formatting."""
        try:
            document = json.loads(text)
        except ValueError:
            return None
        if not isinstance(document, dict | list):
            return None
        local: Counter[str] = Counter()
        batch = _Batch(self, rules, local, allow_json=False)
        holder = [document]
        self._cell(holder, 0, document, None, rules, local, batch)
        batch.run()
        if not local:
            return text
        counts.update(local)
        return json.dumps(holder[0], ensure_ascii=False)

    def _nested(self, rules: MaskingRules, decoded: str) -> list[Finding]:
        """Findings in decoded base64 text (one level: no further decoding)."""
        if len(decoded) > self.max_cell_chars:
            return []
        fired = self._prefilter.fired([decoded]).get(0)
        if not fired:
            return []
        return spans.find(decoded, fired, self._table, rules, None)


_PAIR_NAMES = ("name", "Name", "key", "Key")
_PAIR_VALUES = ("value", "Value")


def _name_value_pair(item: dict[Any, Any], rules: MaskingRules) -> tuple[Any, str | None]:
    """``{"name": "DB_PASSWORD", "value": "..."}`` (Kubernetes env, tags, settings lists): the
    name names the value. Returns the value's key and type, or (None, None)."""
    for value_key in _PAIR_VALUES:
        if value_key in item:
            for name_key in _PAIR_NAMES:
                name = item.get(name_key)
                if isinstance(name, str):
                    kind = rules.name_type(name)
                    return (value_key, kind) if kind else (None, None)
    return None, None


_SECRET_KINDS = ("password", "secret", "connection_string")


def _flag_kind(item: Any, rules: MaskingRules) -> str | None:
    """``["--token", "abc"]`` (container args, argv lists): a secret-named flag names the next item."""
    if not isinstance(item, str) or not item.startswith("-") or "=" in item or len(item) > 64:
        return None
    kind = rules.name_type(item.lstrip("-"))
    return kind if kind in _SECRET_KINDS else None


class _Batch:
    """Strings waiting for the one-pass scan, and where each one's masked form goes."""

    def __init__(self, masker: Masker, rules: MaskingRules, counts: Counter[str], *, allow_json: bool = True) -> None:
        self._masker, self._rules, self._counts, self._allow_json = masker, rules, counts, allow_json
        self.texts: list[str] = []
        self._slots: list[tuple[Any, Any]] = []

    def add(self, container: Any, key: Any, text: str) -> None:
        if len(text) > self._masker.max_cell_chars:
            container[key] = self._masker._whole(text, "oversized", self._counts, self._rules)
            return
        self.texts.append(text)
        self._slots.append((container, key))

    def run(self) -> None:
        changed = self._masker._mask_many(self.texts, self._rules, self._counts, allow_json=self._allow_json)
        for index, masked in changed.items():
            container, key = self._slots[index]
            container[key] = masked
