"""Structural masking of Kubernetes output, as a case table: (value, what must vanish, what must stay)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from broker.masking import Masker
from broker.targets.kubernetes._masking import mask_structure

MASKER = Masker(b"structural-masking-test-key")

SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "demo"},
          "type": "Opaque", "data": {"url": "cG9zdGdyZXM6Ly94", "weird-key.name": "aHVudGVyMg=="},
          "stringData": {"plain": "hunter2"}}

CASES = [
    # a Secret's values, whatever the keys are called
    (SECRET, ["cG9zdGdyZXM6Ly94", "aHVudGVyMg==", "hunter2"], ["url", "weird-key.name", "plain", "Opaque"]),
    # inside a List, and inside a describe document
    ({"kind": "List", "items": [SECRET]}, ["aHVudGVyMg=="], ["weird-key.name"]),
    ({"items": [{"object": SECRET, "events": []}]}, ["hunter2"], ["plain"]),
    # the last-applied annotation carries the whole object as JSON
    ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(SECRET), "team": "payments"}}},
     ["aHVudGVyMg==", "hunter2"], ["payments", "weird-key.name"]),
    # env vars named like secrets, in specs and in text
    ({"env": [{"name": "DB_PASSWORD", "value": "pa55"}, {"name": "API_TOKEN", "value": "t0k"},
              {"name": "LOG_LEVEL", "value": "debug"}]}, ["pa55", "t0k"], ["debug", "DB_PASSWORD"]),
    ("PATH=/bin\nSTRIPE_API_KEY=sk_abc\nAWS_SECRET_ACCESS_KEY=xyz\nHOME=/root\n",
     ["sk_abc", "=xyz"], ["PATH=/bin", "HOME=/root", "STRIPE_API_KEY=["]),
    # what is not a Secret is left to the generic scan
    ({"apiVersion": "v1", "kind": "ConfigMap", "data": {"url": "cG9zdGdyZXM6Ly94"}}, [], ["cG9zdGdyZXM6Ly94"]),
    ({"apiVersion": "example.com/v1", "kind": "Secret", "data": {"a": "b"}}, [], ['"a": "b"']),
    ({"name": "password-reset", "value": "enabled", "extra": 1, "more": 2}, [], ["enabled"]),
]


@pytest.mark.parametrize(("value", "gone", "kept"), CASES)
def test_structural_masking(value: object, gone: list[str], kept: list[str]) -> None:
    counts: Counter[str] = Counter()
    masked = mask_structure(value, MASKER, counts)
    text = masked if isinstance(masked, str) else json.dumps(masked)
    for item in gone:
        assert item not in text
    for item in kept:
        assert item in text
    assert bool(gone) == bool(counts["secret"])


def test_equal_values_get_equal_placeholders_and_the_input_is_untouched() -> None:
    original = json.dumps(SECRET)
    one = mask_structure(SECRET, MASKER, Counter())
    two = mask_structure(SECRET, MASKER, Counter())
    assert one == two and json.dumps(SECRET) == original
    assert one["data"]["url"] != one["data"]["weird-key.name"]
