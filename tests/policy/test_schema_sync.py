"""The JSON Schema (for editors and start-up errors) and the typed models say the same thing."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from broker.guard import Risk
from broker.policy import ApprovalRequirement, GrantCoverage, KubernetesMatch, Limits, Match, PolicyDocument, Rule
from broker.policy.loader import schema


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(schema())


def test_risk_classes_are_the_guards() -> None:
    assert schema()["$defs"]["risk"]["enum"] == [r.value for r in Risk]


def test_every_model_field_is_in_the_schema_and_back() -> None:
    defs = schema()["$defs"]
    pairs = [
        (set(schema()["properties"]), set(PolicyDocument.model_fields)),
        (set(defs["rule"]["properties"]), set(Rule.model_fields)),
        (set(defs["match"]["properties"]), set(Match.model_fields)),
        (set(defs["kubernetes"]["properties"]), set(KubernetesMatch.model_fields)),
        (set(defs["limits"]["properties"]), set(Limits.model_fields)),
        (set(defs["approval"]["properties"]) - {"timeout"}, set(ApprovalRequirement.model_fields)),
        (set(schema()["properties"]["grants"]["properties"]), set(GrantCoverage.model_fields)),
    ]
    for in_schema, in_model in pairs:
        assert in_schema == in_model
