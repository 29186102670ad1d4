"""The prefilter's contract: it may fire too often, never too rarely.

Triggers (Hyperscan-only shapes of a pattern) and literal screens (for ``re``) must hold wherever
the exact pattern matches; the names the JSON hints look for must cover every name rule.
"""

from __future__ import annotations

import json
import re

import pytest

from broker.masking.detectors import DETECTORS
from broker.masking.detectors.nested import JSON_KEY_STEMS
from broker.masking.names import COMPOUNDS, PAIRS, WORDS
from broker.masking.scanner import batches, patterns
from tests.masking.corpus import generate
from tests.masking.test_masking_detectors import CASES, _examples


def _samples() -> list[str]:
    texts = [text for text, _ in CASES] + [text for _, _, text in _examples()]
    for row in generate(1500, seed=11):
        for value in row.values:
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, dict | list):
                texts.append(json.dumps(value, ensure_ascii=False))
    return texts


SAMPLES = _samples()
CHECKED = [p for p in patterns() if p.trigger or p.literals]


@pytest.mark.parametrize("pattern", CHECKED, ids=lambda p: f"{p.detector.name}-{p.id}")
def test_triggers_and_literals_hold_wherever_the_pattern_matches(pattern) -> None:  # type: ignore[no-untyped-def]
    trigger = re.compile(pattern.trigger, pattern.regex.flags) if pattern.trigger else None
    matched = 0
    for text in SAMPLES:
        for m in pattern.regex.finditer(text):
            matched += 1
            if pattern.literals:
                found = m.group(0).lower() if pattern.detector.ignore_case else m.group(0)
                assert any(lit in found for lit in pattern.literals), (pattern.detector.name, found)
            if trigger is not None:
                assert trigger.search(f"\n{text}\n"), (pattern.detector.name, text)
    assert matched, f"no sample exercises {pattern.detector.name} pattern {pattern.id}"


def test_every_trigger_and_pattern_compiles_for_hyperscan() -> None:
    hyperscan = pytest.importorskip("hyperscan")
    from broker.masking.scanner import HyperscanPrefilter

    assert HyperscanPrefilter(patterns()).name == "hyperscan"
    assert hyperscan  # the whole table compiled in one database


def test_json_hints_cover_every_name_rule() -> None:
    stems = re.compile(JSON_KEY_STEMS, re.IGNORECASE)
    names = [*WORDS, *COMPOUNDS, *("".join(pair) for pair in PAIRS)]
    assert [n for n in names if not stems.search(n)] == []


def test_every_detector_has_a_type_patterns_and_examples() -> None:
    for detector in DETECTORS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", detector.type)
        assert detector.patterns
        assert len(detector.triggers) <= len(detector.patterns)
        assert len(detector.literals) <= len(detector.patterns)


def test_batches_split_large_inputs_in_order() -> None:
    texts = ["x" * 40] * 10
    parts = batches(texts, limit=100)
    assert [i for part in parts for i in part] == list(range(10))
    assert all(len(part) == 2 for part in parts)
    assert batches([]) == []
