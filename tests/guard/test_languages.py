"""The command-language registry is the one place that names a language: each record's classifier
answers in its ``kind``, its body field is a field of the execute body, every engine speaks a
registered language, and a command in one language is never classified as another."""

from __future__ import annotations

import pytest

from broker.execute.request import ExecuteBody
from broker.guard import Risk
from broker.guard.languages import KUBECTL, LANGUAGES, SQL, by_kind
from broker.problems import BadRequest
from broker.targets import ENGINES, Command

SAMPLES = {"sql": Command("sql", sql="SELECT 1"), "kubectl": Command("kubectl", argv=("get", "pods"))}


@pytest.mark.parametrize("name", sorted(LANGUAGES))
def test_each_language_classifies_in_its_own_kind(name):
    language = LANGUAGES[name]
    for dialect in language.dialects:
        found = language.classify(SAMPLES[name], dialect)
        assert found.language == language.kind and found.risk is Risk.READ
    assert by_kind(language.kind) is language


@pytest.mark.parametrize("name", sorted(LANGUAGES))
def test_each_language_has_its_field_in_the_execute_body(name):
    assert LANGUAGES[name].body_field in ExecuteBody.model_fields
    body = ExecuteBody.model_validate({"target": "t", LANGUAGES[name].body_field:
                                       "SELECT 1" if name == "sql" else ["get", "pods"]})
    assert body.command().language == name


def test_the_public_names_stay():
    """``kubectl`` on the wire and in /api/targets, ``kubernetes`` in classifications and the policy."""
    assert (SQL.name, SQL.kind, KUBECTL.name, KUBECTL.kind) == ("sql", "sql", "kubectl", "kubernetes")
    assert by_kind("kubectl") is None and by_kind("postgres") is None


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_engine_speaks_a_registered_language(engine):
    entry = ENGINES[engine]
    assert LANGUAGES[entry.language.name] is entry.language and entry.dialect in entry.language.dialects


@pytest.mark.parametrize("command, dialect", [
    (Command("sql", sql="get pods"), "postgres"),
    (Command("kubectl", argv=("SELECT", "1")), ""),
    (Command("sql", sql="SELECT 1"), "oracle"),  # an unregistered dialect
])
def test_a_command_in_another_language_is_never_a_read(command, dialect):
    language = SQL if command.language == "sql" else KUBECTL
    try:
        found = language.classify(command, dialect)
    except BadRequest as refused:  # kubectl refuses what it cannot parse
        assert refused.code
    else:
        assert found.risk is not Risk.READ
