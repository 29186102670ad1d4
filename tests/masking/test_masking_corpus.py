"""The engine on a generated, labelled corpus: recall and precision by type, look-alikes kept,
the same result with Hyperscan and with re, and masking twice changes nothing."""

from __future__ import annotations

import pytest

from broker.masking import Masker
from tests.masking.conftest import KEY, SCANNERS
from tests.masking.corpus import generate
from tests.masking.scoring import Score, score

ROWS = 3000
RECALL, PRECISION = 0.995, 0.99


@pytest.fixture(scope="module")
def corpus():  # type: ignore[no-untyped-def]
    return generate(ROWS)


@pytest.fixture(scope="module", params=SCANNERS)
def scored(request: pytest.FixtureRequest, corpus) -> Score:  # type: ignore[no-untyped-def]
    return score(Masker(KEY, scanner=request.param), KEY, corpus)


def test_corpus_is_large_and_covers_every_type(corpus, scored: Score) -> None:  # type: ignore[no-untyped-def]
    assert len(corpus) == ROWS
    assert sum(len(r.decoys) for r in corpus) > 5000
    thin = {kind: n for kind, n in scored.planted.items() if n < 15}
    assert len(scored.planted) >= 25 and not thin, thin


def test_recall_and_precision_by_type(scored: Score) -> None:
    failing = [kind for kind in set(scored.planted) | set(scored.found)
               if scored.recall(kind) < RECALL or scored.precision(kind) < PRECISION]
    detail = "\n".join(f"miss {t}: {v!r} in {row}" for t, v, row in scored.misses[:10])
    detail += "\n".join(f"false {p} in {row}" for p, row in scored.false_positives[:10])
    assert not failing, f"\n{scored.table()}\n{detail}"


def test_look_alikes_survive(scored: Score) -> None:
    assert not scored.broken_decoys, scored.broken_decoys[:10]


def test_hyperscan_and_re_give_the_same_rows(corpus) -> None:  # type: ignore[no-untyped-def]
    if len(SCANNERS) < 2:
        pytest.skip("hyperscan is not installed")
    fast, plain = Masker(KEY, scanner="hyperscan"), Masker(KEY, scanner="re")
    columns = corpus[0].columns
    same_table = [r for r in corpus if r.columns == columns]
    rows = [r.values for r in same_table]
    assert fast.mask_table(columns, rows) == plain.mask_table(columns, rows)
    for row in corpus[:600]:
        assert fast.mask_table(row.columns, [row.values]) == plain.mask_table(row.columns, [row.values])


def test_masking_twice_changes_nothing(corpus) -> None:  # type: ignore[no-untyped-def]
    masker = Masker(KEY)
    for row in corpus[:1500]:
        once = masker.mask_table(row.columns, [row.values])
        twice = masker.mask_table(row.columns, once.rows)
        assert twice.rows == once.rows and not twice.counts, (once.rows, twice.rows)
