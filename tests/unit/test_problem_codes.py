"""One catalogue of problem codes: everything the code raises is in it, and the OpenAPI document, the
README and the served pages all say the same; the OpenAPI request schemas carry the server's limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from broker import problems
from broker.execute import ExecuteBody
from broker.problem_codes import CODES, markdown_table

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "broker/api/openapi.yaml").read_text())


def raised_codes() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "broker").rglob("*.py"):
        found |= set(re.findall(r'\bcode="([a-z_]+)"', path.read_text()))
    found |= {cls.default_code for cls in vars(problems).values()
              if isinstance(cls, type) and issubclass(cls, problems.BrokerError)}
    return found


def test_every_code_the_broker_raises_is_catalogued():
    missing = raised_codes() - set(CODES)
    assert not missing, f"add these to broker/problem_codes.py: {sorted(missing)}"


def test_the_catalogue_lists_only_codes_that_exist():
    # method_not_allowed and approval_required come from the HTTP front ends, not a code="..." literal
    unused = set(CODES) - raised_codes() - {"method_not_allowed", "approval_required"}
    assert not unused, unused


def test_the_openapi_enum_is_the_catalogue():
    assert SPEC["components"]["schemas"]["Problem"]["properties"]["code"]["enum"] == list(CODES)


def test_the_readme_table_is_generated_from_the_catalogue():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- problem-codes:start -->\n")[1].split("\n<!-- problem-codes:end -->")[0]
    assert block == markdown_table(), "run: python -m broker problems --markdown"


def test_every_extension_field_a_problem_carries_is_documented():
    documented = set(SPEC["components"]["schemas"]["Problem"]["properties"])
    extra: set[str] = set()
    for path in (ROOT / "broker").rglob("*.py"):
        for block in re.findall(r"extra=\{([^}]*)\}", path.read_text()):
            extra |= set(re.findall(r'"([a-z_]+)":', block))
    extra |= {"supported_verbs", "argument", "parser_message", "position", "risk_reason"}
    assert extra <= documented, extra - documented


def _constraints(schema: dict) -> dict:
    keys = ("minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum")
    if "anyOf" in schema:  # pydantic's Optional: the non-null branch carries the limits
        schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
    return {k: schema[k] for k in keys if k in schema}


@pytest.mark.parametrize("field", ["target", "sql", "kubectl", "reason", "ticket", "max_rows"])
def test_execute_schema_constraints_equal_the_servers(field):
    server = ExecuteBody.model_json_schema()["properties"][field]
    documented = SPEC["components"]["schemas"]["ExecuteRequest"]["properties"][field]
    assert _constraints(documented) == _constraints(server), field
    assert set(SPEC["components"]["schemas"]["ExecuteRequest"]["properties"]) == \
        set(ExecuteBody.model_json_schema()["properties"])


def test_every_refusal_says_what_to_do_next():
    """A code raised without a remedy of its own carries the catalogue's "what to do"; one with a
    remedy keeps its own (an agent acts on ``remedy``, REST and MCP alike)."""
    for code, entry in CODES.items():
        assert problems.BrokerError("x", code=code).to_problem()["remedy"] == entry.action, code
    own = problems.BadRequest("x", code="invalid_sql", remedy="Fix the typo.").to_problem()
    assert own["remedy"] == "Fix the typo."


def test_grant_schema_constraints_equal_the_servers():
    """POST /api/grants, the MCP request_grant tool and the server's model take the same bodies: a
    duration is ISO 8601 text of 3 to 20 characters (a bare number, which pydantic reads as seconds,
    is refused as the schema refuses it)."""
    from broker.api._mcp_tools import GrantIn
    from broker.grants import GrantBody

    documented = SPEC["paths"]["/grants"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    server, tool = GrantBody.model_json_schema()["properties"], GrantIn.model_json_schema()["properties"]
    for field in ("target", "reason", "ticket"):
        assert _constraints(documented["properties"][field]) == _constraints(server[field]) == \
            _constraints(tool[field]), field
    assert _constraints(documented["properties"]["duration"]) == _constraints(tool["duration"]) == \
        {"minLength": 3, "maxLength": 20}
    base = {"target": "t", "level": "read", "reason": "r"}
    for duration in (1800, 12.5, "PT", "P" + "T1S" * 7, None, ["PT1M"]):
        with pytest.raises(problems.BadRequest) as caught:
            GrantBody.parse({**base, "duration": duration})
        assert caught.value.code == "invalid_request", duration
    assert GrantBody.parse({**base, "duration": "PT30M"}).duration.total_seconds() == 1800
