"""The batch: every string of a result waiting for the one-pass scan, and where each masked
form goes. Only strings where something fired are touched again; nothing else is copied.

A string joins alone (``add_text``: a container and a key to write to) or with its whole column
(``add_texts``: a sink that writes by position). A document joins as its JSON text when that text
has no escapes (so every string in it appears verbatim) and the rules hold no custom names; it is
walked key by key only if something fired in that text.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from broker.masking.detectors.nested import JSON_START
from broker.masking.rules import MaskingRules, PathKey

if TYPE_CHECKING:
    from broker.masking.engine import Masker

log = logging.getLogger("broker.masking.engine")

_encode = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


class RowSink:
    """Writes cells of one row, copying the row on its first write (the input is never changed)."""

    __slots__ = ("copied", "index", "rows")

    def __init__(self, rows: list[Any], copied: set[int], index: int) -> None:
        self.rows, self.copied, self.index = rows, copied, index

    def __setitem__(self, column: int, value: Any) -> None:
        i = self.index
        if i not in self.copied:
            self.rows[i] = list(self.rows[i])
            self.copied.add(i)
        self.rows[i][column] = value


class ColumnSink:
    """Writes cells of one column by row number, copying each row on its first write."""

    __slots__ = ("column", "copied", "rows")

    def __init__(self, rows: list[Any], copied: set[int], column: int) -> None:
        self.rows, self.copied, self.column = rows, copied, column

    def __setitem__(self, i: int, value: Any) -> None:
        if i not in self.copied:
            self.rows[i] = list(self.rows[i])
            self.copied.add(i)
        self.rows[i][self.column] = value


class Batch:
    def __init__(self, masker: Masker, rules: MaskingRules, counts: Counter[str], *, allow_json: bool = True,
                 limit: int | None = None, names: dict[str, str | None] | None = None) -> None:
        self._masker, self._rules, self._counts, self._allow_json = masker, rules, counts, allow_json
        self._names: dict[str, str | None] = {} if names is None else names
        self._limit = masker.max_cell_chars if limit is None else limit
        self._documents_as_text = not (rules.columns or rules.column_patterns or rules.has_fields)
        self.texts: list[str] = []
        self._slots: dict[int, tuple[Any, Any]] = {}
        self._segment_starts: list[int] = []
        self._segments: list[tuple[list[Any], Any]] = []  # (the column's values, its sink)
        self._documents: dict[int, tuple[Any, tuple[PathKey, ...] | None]] = {}

    def name_type(self, name: str) -> str | None:
        """``rules.name_type``, remembered for this result only (documents repeat their keys on
        every row; nothing outlives the call)."""
        kind = self._names.get(name, self)
        if kind is self:
            kind = self._names[name] = self._rules.name_type(name)
        return kind  # type: ignore[return-value]

    def add_text(self, container: Any, key: Any, text: str) -> None:
        if len(text) > self._limit:
            container[key] = self._masker._whole(text, "oversized", self._counts, self._rules)
            return
        self._slots[len(self.texts)] = (container, key)
        self.texts.append(text)

    def add_texts(self, values: list[str | None], sink: Any) -> None:
        """A column of strings (None allowed, scanned as empty); ``sink[i] = masked`` writes row i."""
        self._segment_starts.append(len(self.texts))
        self._segments.append((values, sink))
        self.texts.extend(v if v is not None else "" for v in values)

    def add_document(self, container: Any, key: Any, document: Any, path: tuple[PathKey, ...] | None) -> bool:
        """Queue a document as JSON text; False if it must be walked instead."""
        if not self._documents_as_text:
            return False
        try:
            text = _encode(document)
        except (TypeError, ValueError, RecursionError):
            return False
        if "\\" in text or len(text) > self._limit:
            return False
        self._documents[len(self.texts)] = (document, path)
        self._slots[len(self.texts)] = (container, key)
        self.texts.append(text)
        return True

    def _target(self, index: int) -> tuple[Any, Any]:
        slot = self._slots.get(index)
        if slot is not None:
            return slot
        segment = bisect.bisect_right(self._segment_starts, index) - 1
        return self._segments[segment][1], index - self._segment_starts[segment]

    def run(self) -> None:
        masker, rules, counts = self._masker, self._rules, self._counts
        walks: Batch | None = None
        seen: set[int] = set()
        for index, ids in masker._fired(self.texts, rules):
            seen.add(index)
            container, key = self._target(index)
            document = self._documents.get(index)
            if ids is None:  # no scanner could run
                container[key] = masker._error(document[0] if document else self.texts[index], counts)
            elif document is not None:
                walks = walks or Batch(masker, rules, counts, allow_json=self._allow_json, names=self._names)
                try:
                    container[key] = masker._walk(document[0], document[1], rules, counts, walks)
                except RecursionError:
                    container[key] = masker._error(document[0], counts)
            else:
                text = self.texts[index]
                masked = self._mask(text, ids)
                if masked is not text:
                    container[key] = masked
        if self._allow_json and not self._documents_as_text:
            # custom names can match any key: every JSON string is parsed, fired or not
            for index, text in enumerate(self.texts):
                if index not in seen and index not in self._documents and JSON_START.match(text):
                    masked = self._mask(text, set())
                    if masked is not text:
                        container, key = self._target(index)
                        container[key] = masked
        if walks is not None:
            walks.run()

    def _mask(self, text: str, ids: set[int]) -> str:
        local: Counter[str] = Counter()
        try:
            masked = self._masker._mask_string(text, ids, self._rules, local, allow_json=self._allow_json)
        except Exception as exc:  # fail closed, whatever went wrong
            log.warning("masking: %s while scanning a value; it is masked whole", type(exc).__name__)
            return self._masker._error(text, self._counts)
        counts = self._counts
        for kind, n in local.items():  # what Counter.update does, without its type checks
            counts[kind] += n
        return masked
