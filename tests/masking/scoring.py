"""Scores a masker on the labelled corpus: recall and precision by type, surviving decoys."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from broker.masking import PLACEHOLDER, Masker
from broker.masking.placeholder import Placeholders
from tests.masking.corpus import Row


def strings(value: Any) -> list[str]:
    """Every string in a (masked) cell: itself, or the leaves of a document."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, item in value.items() for s in (*strings(k), *strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [json.dumps(value)]


@dataclass
class Score:
    planted: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    true_positive: Counter[str] = field(default_factory=Counter)
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # type, value, masked row
    false_positives: list[tuple[str, str]] = field(default_factory=list)  # placeholder, masked row
    broken_decoys: list[tuple[str, str]] = field(default_factory=list)  # decoy, masked row

    def recall(self, kind: str) -> float:
        return self.true_positive[kind] / self.planted[kind] if self.planted[kind] else 1.0

    def precision(self, kind: str) -> float:
        return self.true_positive[kind] / self.found[kind] if self.found[kind] else 1.0

    def table(self) -> str:
        lines = [f"{'type':22} {'planted':>8} {'found':>8} {'recall':>8} {'precision':>9}"]
        for kind in sorted(set(self.planted) | set(self.found)):
            lines.append(f"{kind:22} {self.planted[kind]:8d} {self.found[kind]:8d} {self.recall(kind):8.4f} "
                         f"{self.precision(kind):9.4f}")
        return "\n".join(lines)


def score(masker: Masker, key: bytes, rows: list[Row]) -> Score:
    placeholders = Placeholders(key)
    result = Score()
    by_table: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for i, row in enumerate(rows):
        by_table.setdefault((row.table, tuple(row.columns)), []).append(i)
    masked: dict[int, list[Any]] = {}
    for (_, columns), indexes in by_table.items():
        table = masker.mask_table(list(columns), [rows[i].values for i in indexes])
        masked.update(zip(indexes, table.rows, strict=True))
    for i, row in enumerate(rows):
        texts = [s for cell in masked[i] for s in strings(cell)]
        shown = json.dumps(masked[i], ensure_ascii=False)[:600]
        emitted = Counter(m.group(0) for t in texts for m in PLACEHOLDER.finditer(t))
        expected = Counter(placeholders.text(p.type, p.value) for p in row.planted)
        for p in row.planted:
            result.planted[p.type] += 1
        for ph, n in emitted.items():
            kind = ph[1:].split(":", 1)[0]
            result.found[kind] += n
            hit = min(n, expected[ph])
            result.true_positive[kind] += hit
            if n > hit:
                result.false_positives.append((ph, shown))
        for p in row.planted:
            ph = placeholders.text(p.type, p.value)
            if emitted[ph] < expected[ph]:
                result.misses.append((p.type, p.value, shown))
        for decoy in row.decoys:
            if not any(decoy in t for t in texts):
                result.broken_decoys.append((decoy, shown))
    return result
