"""Coverage corpus: every secret family in every context, under neutral and suggestive column
names, through ``mask_table`` with both scanners; and benign look-alikes that must come back as
they went in. Values come from ``families.py`` (our generators from the vendors' published
formats); none is copied from another project's tests."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from broker.masking import Masker
from tests.masking.conftest import KEY, SCANNERS
from tests.masking.families import CONTEXTS, FAMILIES, cells, look_alikes

RECALL = 0.99
UNCHANGED = 0.995
LOOK_ALIKES = 2400


def _leaked(value: str, masked: str) -> bool:
    """The value, or its tail (a value cut short at a length limit), is still readable."""
    return value in masked or value[-12:] in masked


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str, str, str, str, str]]:
    return cells(random.Random(16), per=4)


@pytest.fixture(scope="module", params=SCANNERS)
def results(request: pytest.FixtureRequest, corpus) -> list[tuple[str, str, str, bool]]:  # type: ignore[no-untyped-def]
    masker = Masker(KEY, scanner=request.param)
    by_column: dict[str, list[int]] = defaultdict(list)
    for i, (_, _, kind, name, _, _) in enumerate(corpus):
        by_column[name if kind == "suggestive" else "value"].append(i)
    caught: dict[int, bool] = {}
    for column, indexes in by_column.items():
        rows = masker.mask_table([column], [[corpus[i][5]] for i in indexes]).rows
        for i, row in zip(indexes, rows, strict=True):
            caught[i] = not _leaked(corpus[i][4], row[0])
    return [(family, context, kind, caught[i]) for i, (family, context, kind, _, _, _) in enumerate(corpus)]


def _recall(results: list[tuple[str, str, str, bool]], axis: int) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for row in results:
        hits[row[axis]].append(row[3])
    return {key: sum(v) / len(v) for key, v in hits.items()}


def test_the_corpus_covers_every_family_context_and_kind_of_name(corpus) -> None:  # type: ignore[no-untyped-def]
    seen = {(f, c, k) for f, c, k, _, _, _ in corpus}
    assert len(seen) == len(FAMILIES) * len(CONTEXTS) * 2
    assert len(FAMILIES) >= 33 and len(CONTEXTS) >= 16


def test_recall_per_context(results) -> None:  # type: ignore[no-untyped-def]
    low = {k: round(r, 3) for k, r in _recall(results, 1).items() if r < RECALL}
    assert not low, low


def test_recall_per_family(results) -> None:  # type: ignore[no-untyped-def]
    low = {k: round(r, 3) for k, r in _recall(results, 0).items() if r < RECALL}
    assert not low, low


def test_recall_under_neutral_names(results) -> None:  # type: ignore[no-untyped-def]
    neutral = [r for r in results if r[2] == "neutral"]
    low = {k: round(r, 3) for k, r in _recall(neutral, 1).items() if r < RECALL}
    assert not low, low


@pytest.mark.parametrize("scanner", SCANNERS)
def test_look_alikes_come_back_unchanged(scanner: str) -> None:
    masker = Masker(KEY, scanner=scanner)
    samples = look_alikes(random.Random(61), LOOK_ALIKES)
    rows = masker.mask_table(["value"], [[text] for _, text in samples]).rows
    changed = [(kind, text, row[0]) for (kind, text), row in zip(samples, rows, strict=True) if row[0] != text]
    assert len(samples) >= 2000
    assert 1 - len(changed) / len(samples) >= UNCHANGED, changed[:10]
