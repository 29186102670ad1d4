"""The masking engine: one ``Masker`` for rows, documents and text.

Order of work for a result: name rules first (a sensitive column or key is masked whole, whatever
it holds); then every remaining string, and the JSON text of every document, goes into one batch;
the prefilter scans the batch once; only where a pattern fired does the exact phase run
(``spans.py``), and only a document where something fired is walked key by key. JSON inside a
string and base64 that decodes to text are looked into one level deep.

Fail closed: a string too large to scan, or any error while masking one, masks that value whole
(types ``oversized``, ``masking_error``) and is counted. Nothing here logs or raises a value.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from broker.masking import spans
from broker.masking.batch import Batch, ColumnSink, RowSink
from broker.masking.detectors import DETECTORS, Detection, Detector
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
_SECRET_KINDS = ("password", "secret", "connection_string")


@dataclass
class MaskedTable:
    rows: list[list[Any]]
    counts: dict[str, int] = field(default_factory=dict)


class Masker:
    """Masks secrets and personal data under one key. Thread-safe; build one per key and reuse it.

    key: the masking key (at least 16 bytes); placeholders are keyed hashes under it.
    scanner: ``auto`` (Hyperscan when importable, else ``re``), ``hyperscan`` or ``re``.
    detectors: the detectors to run (default: all of ``broker.masking.detectors.DETECTORS``).
    """

    def __init__(self, key: bytes, *, scanner: str = "auto", max_cell_chars: int = MAX_CELL_CHARS,
                 max_text_chars: int = MAX_TEXT_CHARS, detectors: tuple[Detector, ...] = DETECTORS) -> None:
        self._placeholders = Placeholders(key)
        self._detectors = detectors
        self._scanner = scanner
        self._opt_ins = frozenset(d.opt_in for d in detectors if d.opt_in)
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
        """Mask every cell of a result set. Returns rows of the same shape: a row with a masked
        cell is a new list, a row with nothing to mask may be the input's own (never changed)."""
        rules = rules or DEFAULT_RULES
        counts: Counter[str] = Counter()
        out = list(rows)
        copied: set[int] = set()
        batch = Batch(self, rules, counts)
        kinds = [rules.name_type(c) for c in columns]
        width = len(columns)
        if out and set(map(len, out)) != {width}:  # ragged rows: cell by cell
            for i, row in enumerate(rows):
                sink = RowSink(out, copied, i)
                for j, value in enumerate(row):
                    self._column_cell(sink, j, value, columns[j] if j < width else None,
                                      kinds[j] if j < width else None, rules, counts, batch)
        elif out:
            for j, name in enumerate(columns):
                values = [row[j] for row in out]
                sink = ColumnSink(out, copied, j)
                kind = kinds[j]
                types = set(map(type, values))
                types.discard(type(None))
                if kind is None and types <= {str} and not self._any_oversized(values):
                    batch.add_texts(values, sink)  # the common case: no per-cell Python at all
                elif kind is None and types <= {int, float, bool} and not _any_card_sized(values):
                    continue
                else:
                    for i, value in enumerate(values):
                        self._column_cell(sink, i, value, name, kind, rules, counts, batch)
        batch.run()
        return MaskedTable(out, dict(counts))

    def _column_cell(self, sink: Any, key: Any, value: Any, name: str | None, kind: str | None,
                     rules: MaskingRules, counts: Counter[str], batch: Batch) -> None:
        if value is None:
            return
        if kind is not None:
            sink[key] = self._whole(value, kind, counts, rules)
        else:
            path = (name,) if rules.has_fields and name is not None else None
            self._cell(sink, key, value, path, rules, counts, batch)

    def _any_oversized(self, values: list[Any]) -> bool:
        return max(map(len, filter(None, values)), default=0) > self.max_cell_chars

    def mask_text(self, text: str, counts: Counter[str] | None = None, rules: MaskingRules | None = None) -> str:
        """Mask free text (a log, command output, an error message) as one string."""
        counts = counts if counts is not None else Counter()
        rules = rules or DEFAULT_RULES
        if len(text) > self.max_text_chars:
            return self._whole(text, "oversized", counts, rules)
        holder = [text]
        batch = Batch(self, rules, counts, limit=self.max_text_chars)
        batch.add_text(holder, 0, text)
        batch.run()
        return holder[0]

    def mask_document(self, value: Any, counts: Counter[str] | None = None,
                      rules: MaskingRules | None = None) -> Any:
        """Mask a JSON document (e.g. a Kubernetes object): name rules on keys, ``rules.fields``
        paths, and content detection on every string and key. Returns a new document (parts
        where nothing was found may be shared with the input; the input is never changed)."""
        counts = counts if counts is not None else Counter()
        rules = rules or DEFAULT_RULES
        if isinstance(value, str):
            return self.mask_text(value, counts, rules)
        holder = [value]
        batch = Batch(self, rules, counts)
        self._cell(holder, 0, value, () if rules.has_fields else None, rules, counts, batch)
        batch.run()
        return holder[0]

    def mask_whole(self, value: Any, kind: str, counts: Counter[str] | None = None) -> Any:
        """``value`` as ONE placeholder of type ``kind``, containers included (their keys can be data:
        ``json_object_agg(email, 1)``). Null stays null. Used for outputs derived from sensitive columns."""
        if value is None:
            return None
        if counts is not None:
            counts[kind] += 1
        return self._placeholders.value(kind, value)

    def mask_value(self, value: Any, kind: str, counts: Counter[str] | None = None,
                   rules: MaskingRules | None = None) -> Any:
        """Mask ``value`` whole as ``kind``; in a container each leaf is masked and keys stay."""
        return self._whole(value, kind, counts if counts is not None else Counter(), rules or DEFAULT_RULES)

    # --- walking values -----------------------------------------------------------------------
    def _cell(self, container: Any, key: Any, value: Any, path: tuple[PathKey, ...] | None, rules: MaskingRules,
              counts: Counter[str], batch: Batch, *, walk: bool = False) -> None:
        """Mask ``container[key]`` (already holding ``value``) in place or via the batch.
        ``walk``: walk a document now rather than scanning its JSON text first."""
        kind = type(value)
        if kind is str:
            batch.add_text(container, key, value)
        elif kind is dict or kind is list:
            if walk or not batch.add_document(container, key, value, path):
                try:
                    container[key] = self._walk(value, path, rules, counts, batch)
                except RecursionError:
                    container[key] = self._error(value, counts)
        elif kind is int:
            if value >= _CARD_INT_MIN and is_card_number(str(value)):
                container[key] = self._whole(value, "card", counts, rules)
        elif kind is float or kind is bool or value is None:
            return
        else:  # not JSON-ready: scan its text rather than pass it through unscanned
            text = str(value)
            container[key] = text
            batch.add_text(container, key, text)

    def _walk(self, value: dict[Any, Any] | list[Any], path: tuple[PathKey, ...] | None, rules: MaskingRules,
              counts: Counter[str], batch: Batch) -> dict[Any, Any] | list[Any]:
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
                    self._cell(items, i, item, sub, rules, counts, batch, walk=True)
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
                kind = batch.name_type(name)
            if not _PLAIN_KEY.fullmatch(name):
                key = self.mask_text(name, counts, rules) if len(name) <= self.max_cell_chars else key
            if kind is not None:
                out[key] = self._whole(item, kind, counts, rules)
            else:
                out[key] = item
                if item is not None:
                    self._cell(out, key, item, sub, rules, counts, batch, walk=True)
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
    def _prefilter_for(self, rules: MaskingRules, kind: str | None = None) -> Prefilter:
        opt_ins = frozenset(name for name in self._opt_ins if getattr(rules, name, False))
        if not opt_ins and kind is None:
            return self._prefilter
        return build_prefilter(kind or self._scanner, self._detectors, opt_ins)

    def _fired(self, texts: Sequence[str], rules: MaskingRules) -> Iterator[tuple[int, set[int] | None]]:
        """(index, fired pattern ids) for each string that needs a look; ids None: the scanners
        failed, mask it whole."""
        for part in batches(texts):
            chunk = texts[part.start:part.stop]
            fired = self._scan_chunk(chunk, rules)
            if fired is None:
                for i in part:
                    yield i, None
                continue
            for i, ids in fired.items():
                yield part.start + i, ids

    def _scan_chunk(self, chunk: Sequence[str], rules: MaskingRules) -> dict[int, set[int]] | None:
        prefilter = self._prefilter
        try:
            prefilter = self._prefilter_for(rules)
            return prefilter.fired(chunk)
        except Exception as exc:
            log.warning("masking: the %s scanner failed (%s); scanning with re", prefilter.name, type(exc).__name__)
        try:
            return self._prefilter_for(rules, "re").fired(chunk)
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
        batch = Batch(self, rules, local, allow_json=False)
        holder = [document]
        self._cell(holder, 0, document, None, rules, local, batch, walk=True)
        batch.run()
        if not local:
            return text
        counts.update(local)
        return json.dumps(holder[0], ensure_ascii=False)

    def _nested(self, rules: MaskingRules, decoded: str) -> list[Detection]:
        """Findings in decoded base64 text (one level: no further decoding)."""
        if len(decoded) > self.max_cell_chars:
            return []
        fired = next(self._fired([decoded], rules), (0, None))[1]
        if not fired:
            return []
        return spans.find(decoded, fired, self._table, rules, None)


def _any_card_sized(values: list[Any]) -> bool:
    ints = [v for v in values if type(v) is int]
    return bool(ints) and max(ints) >= _CARD_INT_MIN


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


def _flag_kind(item: Any, rules: MaskingRules) -> str | None:
    """``["--token", "abc"]`` (container args, argv lists): a secret-named flag names the next item."""
    if type(item) is not str or not item.startswith("-") or "=" in item or len(item) > 64:
        return None
    kind = rules.name_type(item.lstrip("-"))
    return kind if kind in _SECRET_KINDS else None
