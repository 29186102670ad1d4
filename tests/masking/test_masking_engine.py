"""The engine's behaviour on each output shape (rows, documents, text), its rules and policy
switches, and how it fails: closed, counted, and without ever logging a value."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import re
from collections import Counter

import pytest

from broker.masking import PLACEHOLDER, FieldRule, Masker, MaskingRules
from broker.masking.detectors import DETECTORS, Detector
from tests.masking.conftest import KEY

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"


def test_rows_keep_their_shape_and_report_counts_by_type(masker: Masker) -> None:
    columns = ["id", "email", "notes", "created_at", "score", "active"]
    rows = [[1, EMAIL, f"paid with {CARD}, call +44 20 7946 0958", "2024-03-15T12:00:00Z", 0.5, True],
            [2, None, "nothing to see", "2024-03-16T12:00:00Z", None, False]]
    original = json.loads(json.dumps(rows))
    table = masker.mask_table(columns, rows)
    assert rows == original  # the input is not modified
    assert table.counts == {"email": 1, "card": 1, "phone": 1}
    first, second = table.rows
    assert first[0] == 1 and first[3:] == ["2024-03-15T12:00:00Z", 0.5, True]
    assert re.fullmatch(r"\[email:[0-9a-f]{6}\]", first[1])
    assert re.fullmatch(r"paid with \[card:[0-9a-f]{6}\], call \[phone:[0-9a-f]{6}\]", first[2])
    assert second == rows[1]


def test_equal_values_get_equal_placeholders_and_the_key_matters(masker: Masker) -> None:
    table = masker.mask_table(["email", "note"], [[EMAIL, f"from {EMAIL.upper()}"], [EMAIL, "x"]])
    column_placeholder = table.rows[0][0]
    assert table.rows[1][0] == column_placeholder
    assert table.rows[0][1] == f"from {column_placeholder}"  # content and column rule agree
    other = Masker(b"another-key-0123456789").mask_table(["email"], [[EMAIL]])
    assert other.rows[0][0] != column_placeholder


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Masker(b"short")


def test_name_rules_mask_whole_values_whatever_they_look_like(masker: Masker) -> None:
    table = masker.mask_table(["pin", "password_updated_at", "card_number", "ssn"],
                              [["1234", "2024-01-01", 4111111111111111, "not-a-number"]])
    pin, updated, card, ssn = table.rows[0]
    assert pin.startswith("[password:") and updated == "2024-01-01"
    assert card.startswith("[card:") and ssn.startswith("[ssn:")


def test_target_rules_add_columns_and_keep_columns_lifts_only_the_name_rule(masker: Masker) -> None:
    rules = MaskingRules(columns=("internal_ref",), column_patterns=(r"^legacy_",), keep_columns=("pin", "email"))
    table = masker.mask_table(["internal_ref", "legacy_x", "pin", "email"], [["A-1", "B-2", "1234", EMAIL]], rules)
    ref, legacy, pin, email = table.rows[0]
    assert ref.startswith("[column:") and legacy.startswith("[column:")
    assert pin == "1234"
    assert email.startswith("[email:")  # kept from the name rule, still caught by content


def test_policy_can_keep_a_cards_last_four(masker: Masker) -> None:
    rules = MaskingRules(keep_card_last_four=True)
    table = masker.mask_table(["card", "note"], [["4111111111111111", f"card {CARD}"]], rules)
    assert re.fullmatch(r"\[card:[0-9a-f]{6}:1111\]", table.rows[0][0])
    assert re.fullmatch(r"card \[card:[0-9a-f]{6}:1111\]", table.rows[0][1])


def test_integers_that_are_card_numbers_are_masked_other_numbers_are_not(masker: Masker) -> None:
    table = masker.mask_table(["a", "b", "c", "d"], [[4111111111111111, 4111111111111112, 1710505496123, 3.5]])
    assert table.rows[0][0].startswith("[card:")
    assert table.rows[0][1:] == [4111111111111112, 1710505496123, 3.5]


def test_values_that_are_not_json_are_scanned_as_text(masker: Masker) -> None:
    when = datetime.datetime(2024, 3, 15, 12, 0, tzinfo=datetime.UTC)
    table = masker.mask_table(["when", "who"], [[when, _Opaque(EMAIL)]])
    assert table.rows[0][0] == str(when)
    assert table.rows[0][1].startswith("[email:")


class _Opaque:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def test_jsonb_cells_get_name_rules_at_every_depth(masker: Masker) -> None:
    cell = {"user": {"email": "x", "token_type": "Bearer", "credentials": {"user": "svc", "password": "p"}},
            "history": [{"note": f"wrote from {EMAIL}"}], "count": 3}
    table = masker.mask_table(["payload"], [[cell]])
    out = table.rows[0][0]
    assert out["user"]["email"].startswith("[email:") and out["user"]["token_type"] == "Bearer"
    assert set(out["user"]["credentials"]) == {"user", "password"}
    assert all(v.startswith("[secret:") for v in out["user"]["credentials"].values())
    assert out["history"][0]["note"].startswith("wrote from [email:") and out["count"] == 3
    assert table.counts == {"email": 2, "secret": 2}


def test_json_in_a_string_is_masked_as_a_document_and_stays_json(masker: Masker) -> None:
    text = json.dumps({"customer": {"ssn": "536221234", "note": "vip"}, "release": "1.2.3"})
    table = masker.mask_table(["raw"], [[text]])
    out = json.loads(table.rows[0][0])
    assert out["customer"]["ssn"].startswith("[ssn:") and out["customer"]["note"] == "vip"
    untouched = '{"a":  1, "b": "ok",\n "password_min_length": 12}'
    assert masker.mask_table(["raw"], [[untouched]]).rows[0][0] == untouched  # formatting kept


def test_base64_that_decodes_to_text_is_looked_into_once(masker: Masker) -> None:
    inner = base64.b64encode(f"contact: {EMAIL}\n".encode()).decode()
    twice = base64.b64encode(inner.encode()).decode()
    assert masker.mask_text(f"blob {inner}").startswith("blob [email:")
    assert masker.mask_text(twice) == twice  # one level deep, no further


def test_kubernetes_secret_data_is_masked_by_field_rules(masker: Masker) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "payments"},
              "type": "Opaque", "data": {"username": "YWRtaW4=", "password": "aHVudGVyMg=="},
              "stringData": {"config": {"nested": "x", "list": ["a", None]}}}
    counts: Counter[str] = Counter()
    out = masker.mask_document(secret, counts, MaskingRules(fields=("data.*", FieldRule("stringData.*", "secret"))))
    assert out["metadata"] == secret["metadata"] and out["type"] == "Opaque"
    assert set(out["data"]) == {"username", "password"}
    assert all(PLACEHOLDER.fullmatch(v) for v in out["data"].values())
    assert PLACEHOLDER.fullmatch(out["stringData"]["config"]["nested"])
    assert out["stringData"]["config"]["list"][1] is None
    assert counts == {"secret": 4}
    listed = {"kind": "List", "items": [secret, secret]}
    out = masker.mask_document(listed, rules=MaskingRules(fields=("items.*.data.*",)))
    assert all(PLACEHOLDER.fullmatch(v) for item in out["items"] for v in item["data"].values())


def test_secret_values_found_without_rules_in_kubernetes_objects(masker: Masker) -> None:
    pem_b64 = base64.b64encode(PEM.encode()).decode()
    pod = {"spec": {"containers": [{"env": [{"name": "DB_PASSWORD", "value": "hunter2"},
                                            {"name": "LOG_LEVEL", "value": "info"}],
                                    "args": ["--token", "abc123def", "--port", "8080"]}]},
           "data": {"tls.key": pem_b64, "tls.crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"}}
    out = masker.mask_document(pod)
    container = out["spec"]["containers"][0]
    assert container["env"][0]["value"].startswith("[password:") and container["env"][1]["value"] == "info"
    assert container["args"][0] == "--token" and container["args"][1].startswith("[secret:")
    assert container["args"][2:] == ["--port", "8080"]
    assert out["data"]["tls.key"].startswith("[private_key:")
    assert out["data"]["tls.crt"] == pod["data"]["tls.crt"]


def test_keys_that_hold_data_are_masked_too(masker: Masker) -> None:
    out = masker.mask_document({EMAIL: {"visits": 3}, "plain_key": 1})
    assert next(iter(out)).startswith("[email:") and out["plain_key"] == 1


def test_text_keeps_everything_but_the_secrets(masker: Masker) -> None:
    log = (f"2024-03-15T12:00:00Z INFO user {EMAIL} logged in\n"
           f"2024-03-15T12:00:01Z DEBUG loaded key\n{PEM}"
           "2024-03-15T12:00:02Z INFO build 20240315.1234 sha 3f4c2a9e8b7d\n")
    counts: Counter[str] = Counter()
    out = masker.mask_text(log, counts)
    assert counts == {"email": 1, "private_key": 1}
    assert "BEGIN" not in out and "MIIEvQ" not in out
    assert out.endswith("build 20240315.1234 sha 3f4c2a9e8b7d\n")


def test_a_truncated_private_key_is_masked_to_its_last_line(masker: Masker) -> None:
    out = masker.mask_text("key=-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJ\nMIIEowIBA")
    assert "MIIE" not in out and "private_key" in out


# --- failing closed --------------------------------------------------------------------------
def test_an_oversized_cell_is_masked_whole() -> None:
    masker = Masker(KEY, max_cell_chars=100, max_text_chars=200)
    table = masker.mask_table(["note", "short"], [["x" * 101, "fine"]])
    assert table.rows[0][0].startswith("[oversized:") and table.rows[0][1] == "fine"
    assert table.counts == {"oversized": 1}
    counts: Counter[str] = Counter()
    assert masker.mask_text("y" * 201, counts).startswith("[oversized:") and counts == {"oversized": 1}


class _Broken(Detector):
    """Fails on every match (stands for any bug in a detector).

    Caught: ``boom`` Passed: ``-``
    """

    type = "broken"
    patterns = (r"boom",)

    def locate(self, match: re.Match[str]) -> tuple[int, int, str] | None:
        raise RuntimeError(f"bug while looking at {match.string!r}")


@pytest.mark.parametrize("scanner", ["auto", "re"])
def test_an_engine_error_masks_the_value_and_never_logs_it(scanner: str, caplog: pytest.LogCaptureFixture) -> None:
    masker = Masker(KEY, scanner=scanner, detectors=(*DETECTORS, _Broken()))
    secret_ish = "boom hunter2-is-here"
    with caplog.at_level(logging.DEBUG, logger="broker.masking"):
        table = masker.mask_table(["note", "other"], [[secret_ish, f"mail {EMAIL}"]])
    assert table.rows[0][0].startswith("[masking_error:")
    assert table.rows[0][1].startswith("mail [email:")
    assert table.counts == {"masking_error": 1, "email": 1}
    assert caplog.records and all("hunter2" not in r.getMessage() for r in caplog.records)


def test_text_hyperscan_cannot_take_falls_back_to_re(auto_masker: Masker) -> None:
    text = f"broken \ud800 surrogate next to {EMAIL}"
    out = auto_masker.mask_text(text)
    assert "[email:" in out and EMAIL not in out
