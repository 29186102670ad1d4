"""Classification results in Table Storage: one partition per target, one row per column (for
review) and one ``run`` row (the authority lineage reads), each row signed with a key the broker
holds (an HMAC over its canonical JSON, RFC 8785).

Someone who can write the table but does not hold the key cannot lift a finding: a row whose MAC
does not verify is *tampered*, and a tampered ``run`` row (or column rows left without their run
row) makes every column of the target free text for lineage (fail closed) until the next run.
What the key cannot prevent is documented in ``docs/masking.md``: deleting the whole partition
(the target is then undiscovered, as before its first run; the journal keeps every run) or putting
back an older signed run (``data show`` compares it with the journal's last run).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from broker.classification.sample import ColumnFinding
from broker.lineage.sensitivity import ANY_COLUMN, FREE_TEXT, ColumnKey
from broker.problems import Unavailable

RUN_ROW = "run"
_CHUNK = 30_000  # characters per property (Table Storage: 64 KiB of UTF-16 per string property)
_CHUNKS = 30  # at most ~900k characters of findings in the run row (an entity holds 1 MiB)
_KEY_CONTEXT = b"broker/classification/v1"


def derive_key(masking_key: bytes) -> bytes:
    """The rows' MAC key, derived from the masking key (one secret fewer to rotate; a different key
    all the same, so a MAC never equals a placeholder's keyed hash)."""
    return hmac.new(masking_key, _KEY_CONTEXT, hashlib.sha256).digest()


@dataclass(frozen=True)
class ClassificationRun:
    """One run over one target: who ran it, when, how big the sample was, and every column's evidence."""

    target: str
    run_id: str
    classified_at: str
    by: dict[str, Any]
    sample_rows: int
    columns: tuple[ColumnFinding, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)
    """``schema.table`` -> why it could not be sampled (the problem code)."""

    @property
    def sensitive(self) -> list[ColumnFinding]:
        return [c for c in self.columns if c.sensitive]

    def counts(self) -> dict[str, Any]:
        """What the journal keeps: numbers and column names, never a value."""
        types: dict[str, int] = {}
        for column in self.sensitive:
            for kind in column.types:
                types[kind] = types.get(kind, 0) + 1
        return {"tables": len({(c.schema, c.table) for c in self.columns}), "columns": len(self.columns),
                "sensitive": len(self.sensitive), "types": dict(sorted(types.items())),
                "skipped": dict(self.skipped), "sample_rows": self.sample_rows,
                "found": [{"column": ".".join(c.key), "types": c.types, "hits": c.hits, "sampled": c.sampled}
                          for c in self.sensitive[:200]]}


@dataclass(frozen=True)
class StoredColumn:
    finding: ColumnFinding
    run_id: str
    classified_at: str
    verified: bool
    """The row's MAC verifies and it belongs to the current run."""


@dataclass(frozen=True)
class Stored:
    """What the table holds for a target: the run row (None if absent), whether it verifies, the rows."""

    run: ClassificationRun | None
    verified: bool
    columns: tuple[StoredColumn, ...]

    @property
    def tampered(self) -> bool:
        return (self.run is not None and not self.verified) or (self.run is None and bool(self.columns))


class ClassificationStore:
    """Reads and writes runs; ``key`` returns the MAC key (resolved from Key Vault, cached there)."""

    def __init__(self, table: TableClient, key: Callable[[], bytes]) -> None:
        self._table = table
        self._key = key
        self._ensured = False

    def close(self) -> None:
        self._table.close()

    def _ensure(self) -> None:
        if not self._ensured:
            with contextlib.suppress(ResourceExistsError):
                self._table.create_table()
            self._ensured = True

    # --- writing ---
    def save(self, run: ClassificationRun) -> None:
        """Column rows first, the run row last (the authority), then rows of columns gone since."""
        key = self._key()
        try:
            self._ensure()
            before = {e["RowKey"] for e in self._table.query_entities(
                "PartitionKey eq @p", parameters={"p": run.target}, select=["RowKey"])}
            written = set()
            for column in run.columns:
                entity = self._signed(key, _column_entity(run, column))
                self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
                written.add(entity["RowKey"])
            self._table.upsert_entity(self._signed(key, _run_entity(run)), mode=UpdateMode.REPLACE)
            for row in before - written - {RUN_ROW}:
                with contextlib.suppress(ResourceNotFoundError):
                    self._table.delete_entity(run.target, row)
        except AzureError as exc:
            raise Unavailable("The classification store cannot be written; the previous result stays.",
                              code="classification_unavailable") from exc

    # --- reading ---
    def load(self, target: str) -> Stored:
        """Everything stored for ``target``, each row checked against its MAC."""
        key = self._key()
        try:
            entities = list(self._table.query_entities("PartitionKey eq @p", parameters={"p": target}))
        except ResourceNotFoundError:
            return Stored(None, False, ())
        except AzureError as exc:
            raise Unavailable("The classification store cannot be read.", code="classification_unavailable") from exc
        run_entity = next((e for e in entities if e["RowKey"] == RUN_ROW), None)
        run = _run_from(run_entity) if run_entity is not None else None
        verified = run is not None and self._verifies(key, run_entity)  # type: ignore[arg-type]
        columns = []
        for entity in entities:
            if entity["RowKey"] == RUN_ROW:
                continue
            finding = _finding_from(entity)
            ok = (verified and run is not None and entity.get("run_id") == run.run_id
                  and self._verifies(key, entity))
            columns.append(StoredColumn(finding, str(entity.get("run_id", "")), str(entity.get("classified_at", "")),
                                        ok))
        return Stored(run, verified, tuple(columns))

    def findings(self, target: str) -> list[tuple[ColumnKey, str]]:
        """The lineage hook (``broker/lineage/guard.py``): the columns the last verified run found
        holding secrets or PII, each as free text; every column when the stored result was tampered
        with. Only the run row is read (one point read)."""
        key = self._key()
        try:
            entity = self._table.get_entity(target, RUN_ROW)
        except ResourceNotFoundError:
            return self._orphans(target)
        except AzureError as exc:
            raise Unavailable("The stored data classification cannot be read; nothing ran.",
                              code="classification_unavailable") from exc
        if not self._verifies(key, entity):
            return [(ANY_COLUMN, FREE_TEXT)]
        run = _run_from(entity)
        return [(c.key, FREE_TEXT) for c in run.columns]

    def _orphans(self, target: str) -> list[tuple[ColumnKey, str]]:
        """No run row: column rows without it mean the run row was deleted (fail closed)."""
        try:
            rows = self._table.query_entities("PartitionKey eq @p", parameters={"p": target},
                                              select=["RowKey"], results_per_page=1)
            orphan = next(iter(rows), None)
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise Unavailable("The stored data classification cannot be read; nothing ran.",
                              code="classification_unavailable") from exc
        return [(ANY_COLUMN, FREE_TEXT)] if orphan is not None else []

    # --- signing ---
    @staticmethod
    def _mac(key: bytes, entity: dict[str, Any]) -> str:
        body = {k: v for k, v in entity.items() if k != "mac"}
        return hmac.new(key, rfc8785.dumps(body), hashlib.sha256).hexdigest()

    def _signed(self, key: bytes, entity: dict[str, Any]) -> dict[str, Any]:
        return {**entity, "mac": self._mac(key, entity)}

    def _verifies(self, key: bytes, entity: Any) -> bool:
        fields = {k: entity[k] for k in entity if k in _FIELDS or k.startswith("found_")}
        for name in ("PartitionKey", "RowKey"):
            fields[name] = entity[name]
        mac = entity.get("mac")
        return isinstance(mac, str) and hmac.compare_digest(mac, self._mac(key, fields))


_FIELDS = frozenset({"PartitionKey", "RowKey", "kind", "run_id", "classified_at", "by", "sample_rows", "skipped",
                     "schema", "table", "column", "sampled", "hits", "types", "name_rule", "found_chunks"})


def column_row(key: ColumnKey) -> str:
    """A row key for any column name (Table keys refuse ``/ \\ # ?`` and control characters)."""
    return "c-" + hashlib.sha256("\x00".join(key).encode()).hexdigest()[:40]


def _column_entity(run: ClassificationRun, column: ColumnFinding) -> dict[str, Any]:
    return {"PartitionKey": run.target, "RowKey": column_row(column.key), "kind": "column", "run_id": run.run_id,
            "classified_at": run.classified_at, "schema": column.schema, "table": column.table,
            "column": column.column, "sampled": column.sampled, "hits": column.hits,
            "types": json.dumps(column.types, sort_keys=True), "name_rule": column.name_rule or ""}


def _run_entity(run: ClassificationRun) -> dict[str, Any]:
    found = json.dumps([c.to_dict() for c in run.sensitive], separators=(",", ":"), ensure_ascii=False)
    chunks = [found[i:i + _CHUNK] for i in range(0, len(found), _CHUNK)] or [""]
    if len(chunks) > _CHUNKS:
        raise Unavailable(f"The classification of {run.target} found too many sensitive columns to store "
                          f"({len(run.sensitive)}); declare them in the catalog instead.",
                          code="classification_unavailable")
    entity = {"PartitionKey": run.target, "RowKey": RUN_ROW, "kind": "run", "run_id": run.run_id,
              "classified_at": run.classified_at, "by": json.dumps(run.by, sort_keys=True),
              "sample_rows": run.sample_rows, "skipped": json.dumps(run.skipped, sort_keys=True),
              "found_chunks": len(chunks)}
    entity.update({f"found_{i}": chunk for i, chunk in enumerate(chunks)})
    return entity


def _run_from(entity: Any) -> ClassificationRun:
    try:
        text = "".join(str(entity.get(f"found_{i}", "")) for i in range(int(entity.get("found_chunks", 0))))
        found = tuple(ColumnFinding(**c) for c in json.loads(text or "[]"))
        return ClassificationRun(str(entity["PartitionKey"]), str(entity.get("run_id", "")),
                                 str(entity.get("classified_at", "")), json.loads(entity.get("by") or "{}"),
                                 int(entity.get("sample_rows", 0)), found, json.loads(entity.get("skipped") or "{}"))
    except (ValueError, TypeError, KeyError):
        return ClassificationRun(str(entity["PartitionKey"]), "", "", {}, 0)


def _finding_from(entity: Any) -> ColumnFinding:
    try:
        types = {str(k): int(v) for k, v in json.loads(entity.get("types") or "{}").items()}
    except (ValueError, TypeError, AttributeError):
        types = {}
    return ColumnFinding(str(entity.get("schema", "")), str(entity.get("table", "")), str(entity.get("column", "")),
                         int(entity.get("sampled", 0) or 0), int(entity.get("hits", 0) or 0), types,
                         str(entity.get("name_rule") or "") or None)
