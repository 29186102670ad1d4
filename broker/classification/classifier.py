"""One classification run: read the target's schema, sample every base table, scan the values,
store the evidence (signed), journal the run (intent before the first statement, outcome with the
counts after), and tell lineage to read the result.

Runs with the broker's own credential for the target through the engine directly (a read-only
transaction, ``rows`` rows per table, a statement timeout per table): never through the agent's
execute path, so no policy, grant or admission slot is involved, and nothing reaches a caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.catalog import Catalog, Target
from broker.classification.sample import ColumnFinding, sample_sql, sampled_tables, scan_columns
from broker.classification.store import ClassificationRun, ClassificationStore
from broker.guard.languages import SQL
from broker.journal import JournalWriter
from broker.journal import events as journaled
from broker.journal.events import Subject
from broker.journal.records import utc_now_iso
from broker.masking import Masker, MaskingRules
from broker.masking.names import classify_name
from broker.problems import BadRequest, BrokerError
from broker.secrets import CredentialResolver
from broker.targets import Command, ExecutionLimits, TargetEngine
from broker.targets.base import SchemaSource

MAX_SAMPLE_ROWS = 10_000


@dataclass(frozen=True)
class ClassifyLimits:
    """How much one run reads: rows per table, a statement timeout and a byte cap per table."""

    rows: int = 100
    timeout_ms: int = 5000
    max_bytes: int = 4 * 1024 * 1024


class Classifier:
    def __init__(self, *, catalog: Catalog, engines: dict[str, TargetEngine], credentials: CredentialResolver,
                 masker: Callable[[], Masker], store: ClassificationStore, journal: JournalWriter,
                 limits: ClassifyLimits = ClassifyLimits(),
                 on_stored: Callable[[str], None] | None = None) -> None:
        self._catalog = catalog
        self._engines = engines
        self._credentials = credentials
        self._masker = masker
        self._store = store
        self._journal = journal
        self._limits = limits
        self._on_stored = on_stored

    @property
    def store(self) -> ClassificationStore:
        return self._store

    def targets(self) -> list[Target]:
        """Every target whose engine can list its columns (the SQL targets lineage covers)."""
        return [t for t in self._catalog.targets.values() if self.classifiable(t)]

    def classifiable(self, target: Target) -> bool:
        engine = self._engines.get(target.engine)
        return (engine is not None and isinstance(engine, SchemaSource) and engine.language == SQL.name
                and engine.unavailable_reason() is None)

    def classify(self, name: str, by: dict[str, Any], *, rows: int | None = None) -> ClassificationRun:
        """Classify one target now; raises BrokerError (journaled) when it cannot."""
        target = self._catalog.get(name)
        rows = self._limits.rows if rows is None else rows
        if not 1 <= rows <= MAX_SAMPLE_ROWS:
            raise BadRequest(f"The sample is 1 to {MAX_SAMPLE_ROWS} rows per table.", code="invalid_request")
        if not self.classifiable(target):
            raise BadRequest(f"Target {target.name} is not an SQL target whose columns the broker can list.",
                             code="unsupported_command")
        run_id = str(uuid.uuid4())
        subject = Subject(request_id=run_id, principal=by, target=target.name,
                          command={"classify": {"sample_rows": rows, "timeout_ms": self._limits.timeout_ms}})
        intent = self._journal.write(journaled.classify_intent(subject))
        try:
            run = self._run(target, run_id, by, rows)
            self._store.save(run)
        except BrokerError as failure:
            self._journal.write(journaled.classify_outcome(subject, {
                "intent": intent, "status": "error", "code": failure.code}))
            raise
        self._journal.write(journaled.classify_outcome(subject, {"intent": intent, "status": "ok", **run.counts()}))
        if self._on_stored is not None:
            self._on_stored(target.name)
        return run

    def _run(self, target: Target, run_id: str, by: dict[str, Any], rows: int) -> ClassificationRun:
        engine = self._engines[target.engine]
        assert isinstance(engine, SchemaSource)
        secret = self._credentials.resolve(target.credential)
        schema = engine.read_schema(target, secret)
        masker = self._masker()
        overrides = target.masking
        rules = MaskingRules(keep_card_last_four=overrides.keep_card_last_four, ip_addresses=overrides.ip_addresses)
        limits = ExecutionLimits(rows, self._limits.max_bytes, self._limits.timeout_ms)
        found: list[ColumnFinding] = []
        skipped: dict[str, str] = {}
        for table in sampled_tables(schema):
            columns = schema.tables[table]
            names = {c: classify_name(c) for c in columns}
            sql = sample_sql(engine.dialect, table, columns, rows)
            try:
                result = engine.execute(target, Command("sql", sql=sql), secret, limits, read_only=True)
            except BrokerError as failure:  # no SELECT right, a timeout: the agent cannot read it either
                skipped[".".join(table)] = failure.code
                continue
            found.extend(scan_columns(masker, rules, table, columns, result.rows, names))
        return ClassificationRun(target.name, run_id, utc_now_iso(), by, rows, tuple(found), skipped)
