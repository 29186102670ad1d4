"""The command languages the broker understands: one record each, the one place that names them.

A language has one name (``sql``, ``kubectl``): ``Command.language``, the execute body's field that
carries it, and ``language`` in ``/api/targets``. ``kind`` is what the classification, the policy
(``when.kubernetes``) and discovery call the same thing; it differs only for ``kubectl``, whose
public spelling there has always been ``kubernetes`` (a contract, kept). Code compares against these
records, never against the literals. Engines name their language in ``broker/targets`` ``ENGINES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.guard import Classification

if TYPE_CHECKING:
    from broker.targets.base import Command


# The classifiers are imported on first use: the catalog imports this registry (through the engine
# table), and checking a catalog should not load the SQL parsers.
def _classify_sql(command: Command, dialect: str) -> Classification:
    from broker.guard.sql import classify_sql

    return classify_sql(command.sql, dialect)


def _classify_kubectl(command: Command, dialect: str) -> Classification:
    from broker.guard.kubernetes import classify_kubectl

    return classify_kubectl(command.argv, command.manifest)


@dataclass(frozen=True)
class CommandLanguage:
    """One command language: its names, its dialects and its classifier (fail closed)."""

    name: str
    """``Command.language``, the execute body's field (``body_field``), ``/api/targets`` ``language``."""
    kind: str
    """``Classification.language``, the policy's matcher name, discovery's ``kind``."""
    dialects: tuple[str, ...]
    """The guard's dialects (SQL); ``("",)`` for a language without any."""
    classifier: Callable[[Command, str], Classification]

    @property
    def body_field(self) -> str:
        """The execute body's field that carries a command in this language."""
        return self.name

    def classify(self, command: Command, dialect: str = "") -> Classification:
        """The static classification of ``command`` (no target consulted)."""
        return self.classifier(command, dialect)


SQL = CommandLanguage("sql", "sql", ("postgres", "mysql", "tsql"), _classify_sql)
KUBECTL = CommandLanguage("kubectl", "kubernetes", ("",), _classify_kubectl)

LANGUAGES: dict[str, CommandLanguage] = {language.name: language for language in (SQL, KUBECTL)}
"""Every command language, by ``Command.language``."""


def by_kind(kind: str) -> CommandLanguage | None:
    """The language a classification's ``language`` names (``kubernetes`` -> ``kubectl``)."""
    return next((language for language in LANGUAGES.values() if language.kind == kind), None)
