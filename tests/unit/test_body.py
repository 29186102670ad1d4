"""Request bodies: every hostile spelling is a precise 400 before parsing costs anything, and every
legitimate body (astral text, 64 levels, long but sane numbers) still parses to what was sent."""

from __future__ import annotations

import json

import pytest

from broker.api._body import MAX_DEPTH, MAX_NUMBER_CHARS, parse_json
from broker.journal._canonical import MAX_DEPTH as JOURNAL_DEPTH
from broker.problems import BadRequest

QUERY = b'{"target": "demo-postgres", "sql": "SELECT 1", "reason": %s}'


def nested_manifest(depth: int) -> bytes:
    return b'{"target": "aks", "kubectl": ["apply", "-f", "-"], "manifest": ' + b'{"a": ' * depth + b"1" + \
        b"}" * depth + b"}"


HOSTILE = {
    "100,000 nested [": (b"[" * 100_000, "body_too_deep"),
    "100,000 nested [ balanced": (b"[" * 100_000 + b"]" * 100_000, "body_too_deep"),
    "nested {\"a\": 40,000": (b'{"a":' * 40_000, "body_too_deep"),
    "manifest nested 20,000 deep": (nested_manifest(20_000), "body_too_deep"),
    "nesting hidden behind whitespace": (b"[ \n\t" * 1_000, "body_too_deep"),
    "5,000-digit integer": (QUERY % (b"9" * 5_000), "number_too_long"),
    "5,000-digit negative integer": (QUERY % (b"-" + b"9" * 5_000), "number_too_long"),
    "5,000-digit fraction": (QUERY % (b"0." + b"1" * 5_000), "number_too_long"),
    "exponent beyond a double": (QUERY % b"1e999", "number_too_long"),
    "negative exponent beyond a double": (QUERY % b"-1e400", "number_too_long"),
    "NaN literal": (QUERY % b"NaN", "invalid_json"),
    "Infinity literal": (QUERY % b"-Infinity", "invalid_json"),
    "NUL in reason (escaped)": (QUERY % b'"INC-1\\u0000; DROP"', "invalid_text"),
    "NUL in a key": (b'{"tar\\u0000get": "demo-postgres"}', "invalid_text"),
    "NUL in sql": (b'{"target": "demo-postgres", "sql": "SELECT 1\\u0000"}', "invalid_text"),
    "raw NUL in a string": (QUERY % b'"a\x00b"', "invalid_json"),
    "lone high surrogate": (QUERY % b'"\\ud800"', "invalid_text"),
    "lone low surrogate": (QUERY % b'"x\\udfffy"', "invalid_text"),
    "reversed pair": (QUERY % b'"\\ude00\\ud83d"', "invalid_text"),
    "lone surrogate in a manifest key": (b'{"manifest": {"\\udbff": 1}}', "invalid_text"),
    "invalid UTF-8": (QUERY % b'"\xff\xfe"', "invalid_json"),
    "UTF-8-encoded surrogate (CESU)": (QUERY % b'"\xed\xa0\x80"', "invalid_json"),
    "overlong UTF-8 slash": (QUERY % b'"\xc0\xaf"', "invalid_json"),
    "UTF-16 body": (json.dumps({"target": "demo-postgres"}).encode("utf-16"), "invalid_json"),
    "byte order mark": (b"\xef\xbb\xbf" + QUERY % b'""', "invalid_json"),
    "repeated key": (b'{"target": "demo-postgres", "sql": "SELECT 1", "target": "prod"}', "invalid_json"),
    "unterminated string of escaped quotes": (b'["' + b'\\"' * 50_000, "invalid_json"),
    "quotes that never close": (b'"\\"' * 50_000, "invalid_json"),
    "truncated": (b'{"target": "demo-postgres", "sql": ', "invalid_json"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bodies_are_precise_400s(case):
    raw, code = HOSTILE[case]
    with pytest.raises(BadRequest) as refused:
        parse_json(raw)
    assert refused.value.code == code and refused.value.status == 400
    assert len(refused.value.detail) < 300  # the detail names the problem, never echoes the body


LEGITIMATE = {
    "astral text": ('{"reason": "deploy 🚀 \\ud83d\\ude00 𝔘"}', {"reason": "deploy 🚀 😀 𝔘"}),
    "64 levels": ("[" * MAX_DEPTH + "]" * MAX_DEPTH, None),
    "brackets inside strings do not nest": (json.dumps({"sql": "SELECT '" + "[" * 10_000 + "'"}), None),
    "escaped quotes and backslashes": (json.dumps({"sql": 'SELECT \'\\"[{\\\\\''}), None),
    "a 64-character number": ('{"n": 0.' + "1" * (MAX_NUMBER_CHARS - 2) + "}", None),
    "digits inside strings are text": (json.dumps({"reason": "9" * 5_000}), None),
    "subnormal and large doubles": ('{"a": 5e-324, "b": 1.7976931348623157e308, "c": -0.0}', None),
    "control characters other than NUL, escaped": ('{"reason": "tab\\tbell\\u0007"}', None),
}


@pytest.mark.parametrize("case", list(LEGITIMATE))
def test_legitimate_bodies_parse_to_what_was_sent(case):
    text, expected = LEGITIMATE[case]
    assert parse_json(text.encode()) == (json.loads(text) if expected is None else expected)


def test_anything_a_body_may_nest_the_journal_records_in_full():
    # a body's value sits at most a few levels below a record's top (record -> command -> manifest)
    assert MAX_DEPTH + 4 <= JOURNAL_DEPTH
