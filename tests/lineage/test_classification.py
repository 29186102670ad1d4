"""Discovery end to end on the real PostgreSQL and MariaDB, with the store in a real Azurite and a
real journal: a free-text column that no catalog entry or name rule marks is found holding emails,
after which lineage masks its transformations whole and calls a predicate on it an oracle. And the
attacker's side: an insider who edits, forges or deletes the stored rows cannot lift a finding."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from azure.data.tables import TableClient, UpdateMode

from broker.catalog import Catalog, Target
from broker.classification import ClassificationRun, ClassificationStore, Classifier, ClassifyLimits, derive_key
from broker.classification.review import review
from broker.classification.store import RUN_ROW, column_row
from broker.guard.sql import classify_sql
from broker.journal import JournalReader, JournalStorage, JournalWriter
from broker.lineage.guard import LineageGuard, mask_outputs
from broker.masking import Masker
from broker.problems import BadRequest
from broker.secrets import SecretValue
from broker.targets import Command, ExecutionLimits, create_engine
from tests.journal.conftest import journal_settings

KEY = b"m" * 32
MASKER = Masker(KEY)
EMAILS = ["ada.lovelace@example.com", "grace.hopper@example.org", "alan.turing@example.net"]
BODIES = [f"please call back, write to {e} before friday" for e in EMAILS] + ["no contact given", None]
OPERATOR = {"kind": "operator", "display_name": "test@host", "object_id": "", "tenant_id": ""}


class Credentials:
    """The broker's credential for the target (in production: Key Vault through CredentialResolver)."""

    def __init__(self, secret: SecretValue) -> None:
        self.secret = secret

    def resolve(self, credential: object) -> SecretValue:
        return self.secret


@dataclass
class Setup:
    engine: object
    target: Target
    dialect: str
    reader: SecretValue
    table: TableClient
    store: ClassificationStore
    classifier: Classifier
    journal: JournalReader
    guard: LineageGuard

    def catalog_target(self, **sensitive: object) -> Target:
        return Target.model_validate({**self.target.model_dump(), "sensitive": sensitive})

    def refine(self, sql: str, target: Target | None = None):
        target = target or self.target
        return self.guard.refine(target, self.dialect, sql, classify_sql(sql, self.dialect),
                                 lambda: self.engine.read_schema(target, self.reader))

    def answer(self, sql: str, target: Target | None = None) -> tuple[list[list[object]], dict]:
        classification = self.refine(sql, target)
        result = self.engine.execute(target or self.target, Command("sql", sql=sql), self.reader, ExecutionLimits(),
                                     read_only=True)
        mask_outputs(classification.details["lineage"], len(result.columns), result.rows, MASKER, Counter())
        return result.rows, classification.details["lineage"]


def _seed_pg(pg) -> None:
    with pg.server.admin("demo") as db:
        db.execute("DROP TABLE IF EXISTS tickets")
        db.execute("CREATE TABLE tickets (id int PRIMARY KEY, title text, body text, opened date)")
        for i, body in enumerate(BODIES, start=1):
            db.execute("INSERT INTO tickets VALUES (%s, %s, %s, '2026-01-01')", (i, f"ticket {i}", body))
        db.execute("GRANT SELECT ON tickets TO reader")


def _seed_maria(maria) -> None:
    with maria.server.admin() as admin, admin.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS demo.tickets")
        cur.execute("CREATE TABLE demo.tickets (id INT PRIMARY KEY, title VARCHAR(40), body TEXT, opened DATE)")
        for i, body in enumerate(BODIES, start=1):
            cur.execute("INSERT INTO demo.tickets VALUES (%s, %s, %s, '2026-01-01')", (i, f"ticket {i}", body))


@pytest.fixture(params=["postgres", "mariadb"])
def setup(request, azurite) -> Iterator[Setup]:
    if request.param == "postgres":
        db = request.getfixturevalue("pg")
        _seed_pg(db)
        engine, dialect = create_engine("postgres"), "postgres"
    else:
        db = request.getfixturevalue("maria")
        _seed_maria(db)
        engine, dialect = create_engine("mysql"), "mysql"
    name = uuid.uuid4().hex[:12]
    storage = JournalStorage.from_settings(journal_settings(azurite, name))
    storage.ensure()
    writer = JournalWriter(storage)
    table = TableClient.from_connection_string(azurite.connection_string, f"c{name}")
    store = ClassificationStore(TableClient.from_connection_string(azurite.connection_string, f"c{name}"),
                                lambda: derive_key(KEY))
    guard = LineageGuard(discovered=store.findings)
    classifier = Classifier(catalog=Catalog(targets={db.target.name: db.target}), engines={db.target.engine: engine},
                            credentials=Credentials(db.reader), masker=lambda: MASKER, store=store,
                            journal=writer, limits=ClassifyLimits(rows=50), on_stored=guard.forget)
    yield Setup(engine, db.target, dialect, db.reader, table, store, classifier, JournalReader(storage), guard)
    writer.close()
    storage.close()
    store.close()
    table.close()
    engine.close()


def _body(run) -> object:
    return next(c for c in run.columns if c.table == "tickets" and c.column == "body")


def _leaks(rows: list[list[object]]) -> bool:
    text = json.dumps(rows, default=str)
    return any(e in text or e[::-1] in text for e in EMAILS)


TRANSFORMED = ["SELECT reverse(body) FROM tickets ORDER BY id", "SELECT upper(body) FROM tickets ORDER BY id",
               "SELECT concat(body, '') AS b FROM tickets ORDER BY id",
               "SELECT replace(body, '@', ' at ') FROM tickets"]


def test_a_free_text_column_holding_emails_is_discovered_then_masked_whole(setup: Setup) -> None:
    rows, lineage = setup.answer(TRANSFORMED[0])
    assert _leaks(rows), "before discovery no rule knows body: the transformation passes raw (what discovery fixes)"
    assert setup.refine("SELECT id FROM tickets WHERE body LIKE '%ada%'").risk.value == "read"

    run = setup.classifier.classify(setup.target.name, OPERATOR)
    body = _body(run)
    assert body.sensitive and body.types == {"email": 3} and (body.hits, body.sampled) == (3, 4)
    others = {c.column: c for c in run.columns if c.table == "tickets" and c.column != "body"}
    assert not any(c.sensitive for c in others.values()) and others["title"].sampled == 5

    for sql in TRANSFORMED:
        rows, lineage = setup.answer(sql)
        assert not _leaks(rows), sql
        assert lineage["outputs"][0]["mask"] == "free_text", sql
    for sql in ["SELECT id FROM tickets WHERE body LIKE '%ada%'", "SELECT id FROM tickets ORDER BY body",
                "SELECT count(*) FROM tickets WHERE length(body) > 10", "SELECT id FROM tickets WHERE body = title"]:
        assert setup.refine(sql).risk.value == "sensitive-predicate", sql
    rows, lineage = setup.answer("SELECT id, title, body FROM tickets ORDER BY id")  # selected as it is:
    assert [o["mask"] for o in lineage["outputs"]] == [None, None, None]  # masked by content after this
    assert lineage["outputs"][2]["content_only"] is True
    assert setup.refine("SELECT count(*), max(title) FROM tickets WHERE id > 1").risk.value == "read"


def test_the_run_is_journaled_with_counts_never_values(setup: Setup) -> None:
    run = setup.classifier.classify(setup.target.name, OPERATOR, rows=2)
    records = [s.record for s in setup.journal.recent(limit=10) if s.record.request_id == run.run_id]
    assert sorted(r.event for r in records) == ["classify.intent", "classify.outcome"]
    outcome = next(r for r in records if r.event == "classify.outcome").outcome
    assert outcome["status"] == "ok" and outcome["sample_rows"] == 2
    found = {f["column"].split(".", 1)[-1]: f for f in outcome["found"]}
    assert found["tickets.body"]["hits"] == 2 and found["tickets.body"]["sampled"] == 2
    text = json.dumps([r.to_dict() for r in records])
    assert not any(e in text or e.split("@")[0] in text for e in EMAILS)
    with pytest.raises(BadRequest):
        setup.classifier.classify(setup.target.name, OPERATOR, rows=0)


def test_operator_overrides_win_over_discovery(setup: Setup) -> None:
    setup.classifier.classify(setup.target.name, OPERATOR)
    lifted = setup.catalog_target(not_sensitive=["tickets.body"])
    guard = LineageGuard(discovered=setup.store.findings)
    sql = TRANSFORMED[0]
    classification = guard.refine(lifted, setup.dialect, sql, classify_sql(sql, setup.dialect),
                                  lambda: setup.engine.read_schema(lifted, setup.reader))
    assert classification.details["lineage"]["outputs"][0]["mask"] is None
    declared = setup.catalog_target(columns=[{"column": "tickets.title", "type": "name"}])
    report = review(declared, setup.store.load(setup.target.name))
    by_column = {c["column"].split(".", 1)[-1]: c for c in report["columns"]}
    assert report["status"] == "verified", report
    assert (by_column["tickets.body"]["kind"], by_column["tickets.body"]["decided_by"]) == ("free_text", "discovery")
    assert (by_column["tickets.title"]["kind"], by_column["tickets.title"]["decided_by"]) == ("name", "catalog")
    assert by_column["tickets.opened"]["decided_by"] == "none"
    assert review(lifted, setup.store.load(setup.target.name))["columns"][0]["decided_by"] == "not_sensitive"


def _run_row(setup: Setup) -> dict:
    return dict(setup.table.get_entity(setup.target.name, RUN_ROW))


def _tampered_everywhere(setup: Setup) -> None:
    """After any tampering, every column is free text: even the harmless title is masked when transformed."""
    setup.guard.forget(setup.target.name)
    for sql in [TRANSFORMED[0], "SELECT reverse(title) FROM tickets"]:
        rows, lineage = setup.answer(sql)
        assert not _leaks(rows) and lineage["outputs"][0]["mask"] == "free_text", sql
    assert setup.refine("SELECT id FROM tickets WHERE body LIKE 'a%'").risk.value == "sensitive-predicate"
    assert review(setup.target, setup.store.load(setup.target.name))["status"] == "tampered"


@pytest.mark.parametrize("spelling", ["empty findings, old mac", "fewer chunks", "mac recomputed with a guessed key",
                                      "mac removed", "other target's run row"])
def test_an_edited_run_row_cannot_lift_a_finding(setup: Setup, spelling: str) -> None:
    setup.classifier.classify(setup.target.name, OPERATOR)
    row = _run_row(setup)
    if spelling == "empty findings, old mac":
        row["found_0"] = "[]"
    elif spelling == "fewer chunks":
        row["found_chunks"] = 0
    elif spelling == "mac recomputed with a guessed key":
        row["found_0"] = "[]"
        row["mac"] = ClassificationStore._mac(derive_key(b"x" * 32), {k: v for k, v in row.items() if k != "mac"})
    elif spelling == "mac removed":
        row["found_0"] = "[]"
        del row["mac"]
    else:  # a genuinely signed run row of another target (with no findings) copied over this one
        setup.store.save(ClassificationRun("other-target", "r-1", "2026-01-01T00:00:00+00:00", OPERATOR, 10))
        row = dict(setup.table.get_entity("other-target", RUN_ROW))
        row["PartitionKey"] = setup.target.name
    setup.table.upsert_entity(row, mode=UpdateMode.REPLACE)
    _tampered_everywhere(setup)


def test_a_deleted_run_row_with_its_columns_left_fails_closed(setup: Setup) -> None:
    setup.classifier.classify(setup.target.name, OPERATOR)
    setup.table.delete_entity(setup.target.name, RUN_ROW)
    _tampered_everywhere(setup)


def test_an_edited_column_row_is_flagged_and_changes_nothing(setup: Setup) -> None:
    run = setup.classifier.classify(setup.target.name, OPERATOR)
    key = _body(run).key
    row = dict(setup.table.get_entity(setup.target.name, column_row(key)))
    row["hits"], row["types"] = 0, "{}"
    setup.table.upsert_entity(row, mode=UpdateMode.REPLACE)
    report = review(setup.target, setup.store.load(setup.target.name))
    body = next(c for c in report["columns"] if c["column"] == ".".join(key))
    assert report["status"] == "verified" and body["verified"] is False and body["kind"] == "free_text"
    setup.guard.forget(setup.target.name)
    rows, _ = setup.answer(TRANSFORMED[0])
    assert not _leaks(rows)


def test_a_forged_finding_only_adds(setup: Setup) -> None:
    """The agent can write PII into a column to make it sensitive: harmless. A stored finding never
    weakens a name rule: a column named email stays masked whole as an email, not as free text."""
    from broker.lineage.sensitivity import column_sensitivity

    assert column_sensitivity(setup.target, ("demo", "tickets", "email"), "free_text") == ("email", "name rule")
    assert column_sensitivity(setup.target, ("demo", "tickets", "body"), None) == (None, "none")
