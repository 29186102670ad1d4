"""Masking on the execute path: the current masker, every output shape of a result, and a
target's error message (which can quote row data)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from broker.catalog import Target
from broker.lineage.guard import mask_outputs
from broker.masking import Masker, MaskingRules
from broker.problems import BrokerError, CommandFailed
from broker.secrets import CredentialResolver
from broker.targets import ResultSet, TargetEngine
from broker.targets.base import CallsJournaled, PresentedResult, StructuredMasking


class MaskerSource:
    """The masker keyed by the current masking key (a Key Vault secret, rotated by version)."""

    def __init__(self, credentials: CredentialResolver, secret_name: str) -> None:
        from broker.catalog import KeyVaultCredential

        self._credential = KeyVaultCredential(secret=secret_name)
        self._credentials = credentials
        self._cached: tuple[str, Masker] | None = None

    def get(self) -> Masker:
        secret = self._credentials.resolve(self._credential)
        cached = self._cached
        if cached is None or cached[0] != secret.version:
            cached = (secret.version, Masker(secret.value.encode("utf-8")))
            self._cached = cached
        return cached[1]


def mask_result(engine: TargetEngine, masker: Masker, result: ResultSet, target: Target,
                lineage: dict[str, Any] | None = None) -> dict[str, int]:
    """Mask every output shape in place: first each output column that lineage derives from a sensitive
    column (whole, one placeholder per value), then rows, the document and text (the generic scan, then
    the engine's structural rules, e.g. Kubernetes Secret values, which must not be undone or re-scanned),
    then render text from the masked document. Values the engine knows are secret (``result.known``) are
    masked before all of that. Returns the counts by kind."""
    overrides = target.masking
    rules = MaskingRules(overrides.columns, overrides.column_patterns, overrides.keep_columns,
                         keep_card_last_four=overrides.keep_card_last_four, ip_addresses=overrides.ip_addresses)
    counts: Counter[str] = Counter()
    known = result.known
    if known is not None:  # known plaintext first: the whole value becomes one placeholder
        result.rows = known.mask_rows(result.rows, masker, counts)
        result.document = known.mask_document(result.document, masker, counts)
        result.text = known.mask_text(result.text, masker, counts) if result.text is not None else None
    mask_outputs(lineage, len(result.columns), result.rows, masker, counts)
    table = masker.mask_table([c.name for c in result.columns], result.rows, rules)
    result.rows = table.rows
    counts.update(table.counts)
    structure = engine.mask_structure if isinstance(engine, StructuredMasking) else None
    if result.document is not None:
        document = masker.mask_document(result.document, counts, rules)
        result.document = structure(document, masker, counts) if structure else document
    if result.text is not None:
        text = masker.mask_text(result.text, counts, rules)
        result.text = structure(text, masker, counts) if structure else text
    shown = result.presentation() if isinstance(result, PresentedResult) else None
    if shown is not None:
        result.text = shown.render(result.document)
        if known is not None:
            result.text = known.mask_text(result.text, masker, counts)
        if not shown.keep_document:
            result.document = None
    return dict(counts)


def api_calls(result: ResultSet) -> list[dict[str, Any]]:
    """The target API calls that ran, for the journal (none for wire-protocol engines)."""
    return result.api_calls() if isinstance(result, CallsJournaled) else []


def response_of(result: ResultSet) -> dict[str, Any]:
    """The masked response as journaled."""
    response: dict[str, Any] = {"columns": [c.name for c in result.columns], "rows": result.rows}
    if result.document is not None:
        response["document"] = result.document
    if result.text is not None:
        response["text"] = result.text
    return response


_MISSING_RELATION = {"sqlstate": ("42P01", "42703", "42S02", "42S22"), "errno": (1146, 1054),
                     "native_error": (208, 207)}
"""A table or column the statement names does not exist (then a cached schema is stale): PostgreSQL
SQLSTATEs, ODBC's for SQL Server, MySQL/MariaDB error numbers, SQL Server native errors."""
_MISSING_OTHER = {"sqlstate": ("42883", "42704", "3F000"), "errno": (1049, 1305), "native_error": (2812,)}
"""A function, type, schema or database it names does not exist."""
_NO_PRIVILEGE = {"sqlstate": ("42501",), "errno": (1142, 1143, 1227), "native_error": (229, 230, 262, 297)}


def names_missing(problem: dict[str, Any], *, relations_only: bool = False) -> bool:
    """Whether a ``query_failed`` (its problem or its extras) says the statement names something the
    target does not have; ``relations_only``: a table or column."""
    tables = (_MISSING_RELATION,) if relations_only else (_MISSING_RELATION, _MISSING_OTHER)
    return any(problem.get(key) in values for table in tables for key, values in table.items())


def query_failed_remedy(problem: dict[str, Any]) -> str | None:
    """What to do about the database's refusal, from its error code alone (the message may be withheld)."""
    state = str(problem.get("sqlstate") or "")
    if names_missing(problem):
        return ("A table, column, function or schema the statement names does not exist on the target (or is not "
                "visible to the broker): describe_target (GET /api/targets/{name}) lists the tables, views and "
                "columns; fix the name and send it again.")
    if any(problem.get(key) in values for key, values in _NO_PRIVILEGE.items()):
        return ("The broker's own database role may not do this; no policy or grant changes that. Ask an "
                "operator, or read something else.")
    if state.startswith("22"):
        return "A value does not fit its type or range (describe_target shows the column types); fix it."
    if state.startswith("23"):
        return "The change breaks a constraint (unique, foreign key, not null, check); read the rows it touches first."
    if state in ("40001", "40P01"):
        return "It lost a conflict with another transaction; send it again."
    if state.startswith("42"):
        return "The database rejects the statement as written; fix it (explain shows how the broker reads it)."
    return None


def masked_failure(failure: BrokerError, masker: MaskerSource, *, withhold: bool = False) -> BrokerError:
    """A target's error message can quote row data (a duplicate key, a bad value): mask it too. When the
    statement reads a sensitive column the message is withheld: only its SQLSTATE (or error number) and a
    generic sentence (``withhold``: ``a cast of a transformed value echoes it``)."""
    if isinstance(failure, CommandFailed) and failure.code == "query_failed" and not failure.remedy:
        failure.remedy = query_failed_remedy(failure.extra)
    if isinstance(failure, CommandFailed) and withhold and failure.code == "query_failed":
        extra = failure.extra or {}
        state = extra.get("sqlstate") or extra.get("errno") or "unknown"
        failure.detail = (f"The target refused the command (error {state}); its message is withheld because "
                          "the statement reads a sensitive column.")
        failure.args = (failure.detail,)
        return failure
    if isinstance(failure, CommandFailed):
        try:
            failure.detail = masker.get().mask_text(failure.detail)
        except BrokerError:
            failure.detail = "The target refused the command (its message could not be masked)."
        failure.args = (failure.detail,)
    return failure


