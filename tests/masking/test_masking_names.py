"""Name rules: which column and key names mask their values whole."""

from __future__ import annotations

import pytest

from broker.masking.names import classify_name
from broker.masking.rules import FieldRule, MaskingRules

NAMES = [
    ("password", "password"), ("DB_PASSWORD", "password"), ("userPassword", "password"), ("passwd", "password"),
    ("password_hash", "password"), ("userpassword", "password"), ("pwd", "password"),
    ("pass", "password"), ("smtp_pw", "password"),
    ("api_key", "secret"), ("X-Api-Key", "secret"), ("apiKey", "secret"), ("client_secret", "secret"),
    ("access_token", "secret"), ("AccountKey", "secret"), ("private_key", "secret"), ("credentials", "secret"),
    ("Authorization", "secret"), ("Ocp-Apim-Subscription-Key", "secret"),
    ("email", "email"), ("customer_email", "email"), ("e_mail", "email"), ("emailAddress", "email"),
    ("phone", "phone"), ("phone_number", "phone"), ("mobile", "phone"), ("msisdn", "phone"),
    ("card_number", "card"), ("pan", "card"), ("cc_num", "card"), ("creditcardnumber", "card"),
    ("ssn", "ssn"), ("social_security_number", "ssn"), ("iban", "iban"),
    ("dsn", "connection_string"), ("connection_string", "connection_string"), ("db_conn", "connection_string"),
    # names about a secret, not holding one
    ("password_updated_at", None), ("password_min_length", None), ("token_type", None), ("token_ttl", None),
    ("tokenExpirationSeconds", None), ("secretName", None), ("secretKeyRef", None), ("imagePullSecrets", None),
    ("prompt_tokens", None), ("max_tokens", None), ("card_brand", None), ("card_last4", None), ("api_key_id", None),
    ("email_verified", None), ("company", None), ("span", None), ("classname", None), ("author", None),
    ("key", None), ("primary_key", None), ("spinning", None), ("token_endpoint", None), ("passenger", None),
    ("passed", None), ("bypass", None), ("pass_rate", None),
]


@pytest.mark.parametrize(("name", "kind"), NAMES)
def test_classify_name(name: str, kind: str | None) -> None:
    assert classify_name(name) == kind


def test_target_rules_add_to_and_lift_the_built_in_ones() -> None:
    rules = MaskingRules(columns=("Internal_Notes",), column_patterns=(r"^legacy_",), keep_columns=("email",))
    assert rules.name_type("internal_notes") == "column"
    assert rules.name_type("legacy_ref") == "column"
    assert rules.name_type("email") is None
    assert rules.name_type("password") == "password"
    assert rules.name_type("notes") is None


def test_a_bad_column_pattern_is_refused_when_the_rules_are_made() -> None:
    with pytest.raises(ValueError, match="invalid masking column pattern"):
        MaskingRules(column_patterns=("(unclosed",))


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("data.*", ("data", "tls.key"), True), ("data.*", ("data",), False), ("data.*", ("metadata", "x"), False),
    ("items.*.data.*", ("items", 3, "data", "password"), True), ("**.data.*", ("a", "b", "data", "x"), True),
    ("**.data.*", ("data", "x"), True), ("stringData", ("stringData",), True),
])
def test_field_rule_paths(pattern: str, path: tuple[str | int, ...], matches: bool) -> None:
    assert FieldRule(pattern).matches(path) is matches
