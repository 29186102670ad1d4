"""Loading fails closed and precisely: every invalid policy is refused with the place of each
problem, duplicate YAML keys included; the version is the hash of the exact bytes; a broken
policy stops the broker's start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.policy import Policy, PolicyError
from broker.runtime import Broker
from broker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GOOD_RULE = "  - id: r\n    effect: allow\n    when: {roles: [Broker.Caller], risk: [read]}\n"


@pytest.mark.parametrize(("text", "expected"), [
    ("", "the policy is empty"),
    ("- just\n- a list\n", "(top level): ['just', 'a list'] is not of type 'object'"),
    ("rules: []\n", "(top level): 'version' is a required property"),
    ("version: 2\nrules: []\n", "version: 1 was expected"),
    ("version: 1\nrules: []\nextras: 1\n", "(top level): unknown key(s) ('extras' was unexpected)"),
    ("version: 1\nrules:\n  - id: r\n    effect: permit\n",
     "rules[0].effect: 'permit' is not one of allow, deny, approve"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    when: {risk: [wirte]}\n",
     "rules[0].when.risk[0]: 'wirte' is not one of read, read-secret, sensitive-predicate, write"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    when: {rolez: [x]}\n",
     "rules[0].when: unknown key(s) ('rolez' was unexpected)"),
    ("version: 1\nrules:\n  - id: r\n    effect: approve\n", "rules[0]: 'approval' is a required property"),
    ("version: 1\nrules:\n  - id: r\n    effect: deny\n    approval: {quorum: 1}\n",
     "rules[0]: 'approval' only goes with effect 'approve'"),
    ("version: 1\nrules:\n  - id: r\n    effect: approve\n    approval: {timeout: 10m, timeout_seconds: 60}\n",
     "rules[0].approval: give only one of 'timeout', 'timeout_seconds'"),
    ("version: 1\nrules:\n  - id: r\n    effect: approve\n    approval: {quorum: 0}\n",
     "rules[0].approval.quorum: 0 is less than the minimum of 1"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    limits: {max_grant_duration: 3 weeks}\n",
     "rules[0].limits.max_grant_duration: '3 weeks' is not a duration"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    limits: {max_grant_duration: 8d}\n",
     "max_grant_duration"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    limits: {max_rows: 0}\n",
     "rules[0].limits.max_rows: 0 is less than the minimum of 1"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    when: {labels: {critical: yes}}\n",
     "rules[0].when.labels.critical: True is not text"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    unless: {}\n", "rules[0].unless"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    when: {kubernetes: {verb: [get]}}\n",
     "rules[0].when.kubernetes: unknown key(s) ('verb' was unexpected)"),
    ("version: 1\nrules:\n  - id: Bad Id\n    effect: allow\n", "rules[0].id: 'Bad Id' does not match"),
    ("version: 1\nrules:\n  - id: a\n    effect: allow\n  - id: a\n    effect: deny\n", "rule id 'a' is used twice"),
    ("version: 1\nrules:\n  - id: a\n    effect: allow\n    effect: deny\n", "the key 'effect' is given twice"),
    ("version: 1\nrules: [\n", "not valid YAML"),
    ("version: 1\ngrants: {write: [read, delete]}\nrules: []\n", "grants.write[1]: 'delete' is not one of"),
    # Durable timers over 6 days cannot be cancelled on Azure; an HTTP function has 230 s
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    limits: {max_grant_duration: 6d}\n",
     "518400 s is longer than 432000 s (5 days): a Durable timer of more than 6 days cannot be cancelled"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    limits: {max_grant_duration: 121h}\n",
     "435600 s is longer than 432000 s"),
    ("version: 1\nrules:\n  - id: r\n    effect: approve\n    approval: {timeout: 7d}\n",
     "rules[0].approval.timeout_seconds: 604800 s is longer than 432000 s"),
    ("version: 1\nrules:\n  - id: r\n    effect: approve\n    approval: {timeout_seconds: 432001}\n",
     "rules[0].approval.timeout_seconds: 432001 is greater than the maximum of 432000"),
    ("version: 1\nrules:\n  - id: r\n    effect: allow\n    limits: {statement_timeout_ms: 230000}\n",
     "rules[0].limits.statement_timeout_ms: 230000 is greater than the maximum of 200000"),
])
def test_invalid_policies_are_refused_precisely(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as refused:
        Policy.from_text(text, "p.yaml")
    assert expected in str(refused.value), str(refused.value)
    assert str(refused.value).startswith("p.yaml: ")


def test_every_problem_is_listed_at_once() -> None:
    text = ("version: 1\nrules:\n  - id: a\n    effect: maybe\n    when: {risk: [x]}\n"
            "  - id: b\n    effect: approve\n")
    with pytest.raises(PolicyError) as refused:
        Policy.from_text(text)
    message = str(refused.value)
    assert "(3 problem(s))" in message
    assert message.index("rules[0].effect") < message.index("rules[0].when.risk[0]") < message.index("rules[1]")


def test_the_longest_timers_and_statement_timeout_azure_allows_load() -> None:
    policy = Policy.from_text("version: 1\nrules:\n  - id: r\n    effect: approve\n    approval: {timeout: 5d}\n"
                              "    limits: {max_grant_duration: 120h, statement_timeout_ms: 200000}\n")
    rule = policy.document.rules[0]
    limits = policy.document.limits_for(rule)
    assert rule.approval.timeout_seconds == limits.max_grant_duration == 432000
    assert limits.statement_timeout_ms == 200000


def test_durations_and_label_alternatives_load_typed() -> None:
    policy = Policy.from_text("version: 1\ndefaults: {max_grant_duration: 2h}\nrules:\n  - id: r\n    effect: approve\n"
                              "    when: {labels: {env: [dev, staging], tier: web}}\n"
                              "    approval: {groups: [g], timeout: 15m}\n"
                              "    limits: {max_grant_duration: 90s}\n")
    rule = policy.document.rules[0]
    assert policy.document.defaults.max_grant_duration == 7200
    assert rule.approval is not None and rule.approval.timeout_seconds == 900
    assert rule.when.labels == {"env": ("dev", "staging"), "tier": ("web",)}
    assert policy.document.limits_for(rule).max_grant_duration == 90


def test_version_is_the_hash_of_the_bytes(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + GOOD_RULE
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(text)
    b.write_text(text + "# a comment changes the reviewed file, so the version too\n")
    assert Policy.load(a).version == Policy.from_text(text).version
    assert Policy.load(a).version != Policy.load(b).version
    assert Policy.load(a).version.startswith("sha256:") and len(Policy.load(a).version) == 23


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy"):
        Policy.load(tmp_path / "nope.yaml")


def test_shipped_policies_are_valid() -> None:
    for path in (ROOT / "config" / "examples" / "policy.yaml", ROOT / "config" / "dev" / "policy.yaml"):
        assert Policy.load(path).document.rules


def test_an_invalid_policy_stops_broker_start_up(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("targets:\n  db:\n    engine: postgres\n    credential: {source: key-vault, secret: s}\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrules:\n  - id: r\n    effect: allow\n    when: {risk: [wirte]}\n")
    settings = Settings(catalog_path=catalog, policy_path=policy, key_vault_url="https://kv.invalid")
    with pytest.raises(PolicyError, match=r"rules\[0\]\.when\.risk\[0\]"):
        Broker.from_settings(settings, credential=object())  # type: ignore[arg-type]
