"""The exact phase's shortcuts give the verdicts of the slow way: national phone plans checked
by one regex per region against ``phonenumbers`` itself, skipping matches inside a stronger
finding against masking with the skip turned off, and anchored searches against ``finditer``."""

from __future__ import annotations

import json
import random

import phonenumbers
import pytest

from broker.masking import Masker, spans
from broker.masking.detectors import pii
from broker.masking.detectors.base import Detector
from broker.masking.scanner import patterns
from tests.masking.corpus import generate
from tests.masking.families import FAMILIES, cells, look_alikes


def _library_verdict(digits: str) -> bool:
    """``0…`` digits as phonenumbers sees them: valid national number of a trunk region (9 to 17
    digits: shorter or longer is refused before any plan)."""
    if not 9 <= len(digits) <= 17:
        return False
    for region in pii.TRUNK_REGIONS:
        code = phonenumbers.country_code_for_region(region)
        if region == "IT":
            number = phonenumbers.PhoneNumber(country_code=code, national_number=int(digits),
                                              italian_leading_zero=True)
        else:
            number = phonenumbers.PhoneNumber(country_code=code, national_number=int(digits[1:]))
        if phonenumbers.is_valid_number_for_region(number, region):
            return True
    return False


def _national_candidates() -> list[str]:
    rng = random.Random(16)
    out = ["0" + str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(rng.randint(7, 15)))
           for _ in range(4000)]
    for region in pii.TRUNK_REGIONS:  # every number type's example, and its neighbours
        for kind in range(12):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            digits = "".join(c for c in phonenumbers.format_number(
                example, phonenumbers.PhoneNumberFormat.NATIONAL) if c.isdigit())
            if digits.startswith("0") and not digits.startswith("00"):
                out += [digits, digits[:-1], digits + "5", digits[:-1] + str((int(digits[-1]) + 1) % 10)]
    return out


def test_national_plans_agree_with_phonenumbers() -> None:
    pii.clear_caches()
    candidates = _national_candidates()
    verdicts = [pii._national_digits(d) for d in candidates]
    assert verdicts == [_library_verdict(d) for d in candidates]
    assert 100 < sum(verdicts) < len(candidates)  # both kinds were exercised


def _rows() -> list[tuple[list[str], list[list[object]]]]:
    rows = generate(400, seed=16)
    rng = random.Random(16)
    dense = [[f"{pii_text} and {FAMILIES[family](rng)}"] for family in sorted(FAMILIES)
             for pii_text in ("IBAN ES30 9427 5060 0225 4498 3751, call +39 06 8272 6223",
                              "card 4111 1111 1111 1111 or 020 7946 0958 [email:0a1b2c] 0151 23456789")]
    return [(row.columns, [row.values]) for row in rows] + [(["note"], dense)]


@pytest.mark.parametrize("scanner", ["re"])
def test_skipping_matches_inside_stronger_findings_changes_nothing(scanner: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    masker = Masker(b"fast-path-test-key-0123", scanner=scanner)
    tables = _rows()
    fast = [masker.mask_table(columns, rows) for columns, rows in tables]
    monkeypatch.setattr(Detector, "within_match", False)  # every match validated, as before
    slow = [masker.mask_table(columns, rows) for columns, rows in tables]
    assert [t.rows for t in fast] == [t.rows for t in slow]
    assert [t.counts for t in fast] == [t.counts for t in slow]
    assert sum(sum(t.counts.values()) for t in fast) > 500


def _texts() -> list[str]:
    rng = random.Random(17)
    out = [c[5] for c in cells(rng, per=1)] + [text for _, text in look_alikes(rng, 400)]
    for row in generate(600, seed=17):
        for value in row.values:
            out.append(value if isinstance(value, str) else json.dumps(value))
    return [*out, "x" * 60 + "token=abc", "subscription_key" * 6 + "=v", "@" * 70 + "a@b.io", "a://" * 20 + "u:p@h"]


def test_anchored_searches_find_what_finditer_finds() -> None:
    table = patterns()
    anchored = [p for p in table if p.anchors]
    assert {p.detector.name for p in anchored} >= {"Email", "UrlPassword", "SecretAssignment"}
    texts = _texts()
    total = 0
    for pattern in anchored:
        for text in texts:
            expected = [m.span() for m in pattern.regex.finditer(text)]
            assert [m.span() for m in spans.matches(pattern, text)] == expected, (pattern.detector.name, text)
            haystack = text.lower() if pattern.detector.ignore_case else text
            for start, _ in expected:  # the reach claim itself: a literal within reach of every start
                assert any(0 <= haystack.find(lit, start) <= start + pattern.reach for lit in pattern.anchors)
            total += len(expected)
    assert total > 500
