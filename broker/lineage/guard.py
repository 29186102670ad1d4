"""Lineage on the execute path: one small interface for ``broker/execute/service.py``.

``refine`` adds a statement's lineage to its classification before the policy is asked (a sensitive
predicate makes a read ``sensitive-predicate``), ``mask`` masks a result's outputs by it before any
other masking, and ``withhold`` says whether a failure's message must not be echoed. The lineage
travels in ``Classification.details["lineage"]``, so it is journaled with the decision and
recomputed, never trusted, when an approved command runs later.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from broker.catalog import Target
from broker.guard import Classification, Risk
from broker.lineage.analyse import UNRESOLVED, Lineage, analyse
from broker.lineage.schema import Schema, SchemaCache
from broker.lineage.sensitivity import ColumnKey, Sensitivity, sensitive_columns
from broker.masking import Masker

Discovered = Callable[[str], Iterable[tuple[ColumnKey, str]]]
"""target name -> the sensitive columns discovery found there (``python -m broker data classify``)."""

REFRESH_SECONDS = 5.0
"""A statement naming something the cached schema lacks re-reads it, at most this often per target."""

_DIALECTS = {"postgres": "postgres", "mysql": "mysql", "tsql": "tsql"}


class LineageGuard:
    """Column lineage for every SQL statement of every target whose catalog entry wants it."""

    def __init__(self, *, ttl: float = 60.0, discovered: Discovered | None = None) -> None:
        self._schemas = SchemaCache(ttl)
        self._discovered = discovered
        self._sensitivity: dict[str, tuple[int, Sensitivity]] = {}
        self._refreshed: dict[str, float] = {}
        self._lock = threading.Lock()

    def applies(self, target: Target, dialect: str) -> bool:
        return target.sensitive.lineage and dialect in _DIALECTS

    def lineage(self, target: Target, dialect: str, sql: str, read: Callable[[], Schema]) -> Lineage:
        """The statement's lineage against the target's (cached) schema; one refresh when it names
        a table or column the cache does not hold."""
        schema = self._schemas.get(target.name, read)
        lineage = analyse(sql, _DIALECTS[dialect], schema, self.sensitivity(target, schema))
        if lineage.outputs is None and self._may_refresh(target.name):
            self._schemas.invalidate(target.name)
            schema = self._schemas.get(target.name, read)
            lineage = analyse(sql, _DIALECTS[dialect], schema, self.sensitivity(target, schema))
        return lineage

    def sensitivity(self, target: Target, schema: Schema) -> Sensitivity:
        with self._lock:
            cached = self._sensitivity.get(target.name)
        if cached is not None and cached[0] == id(schema):
            return cached[1]
        found = list(self._discovered(target.name)) if self._discovered is not None else []
        sensitivity = sensitive_columns(schema, target, found)
        with self._lock:
            self._sensitivity[target.name] = (id(schema), sensitivity)
        return sensitivity

    def schema(self, target: Target, read: Callable[[], Schema]) -> Schema:
        return self._schemas.get(target.name, read)

    def forget(self, target: str) -> None:
        """The target said a table or column does not exist: read its schema again next time."""
        self._schemas.invalidate(target)
        with self._lock:
            self._sensitivity.pop(target, None)

    def _may_refresh(self, target: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._refreshed.get(target, -REFRESH_SECONDS) < REFRESH_SECONDS:
                return False
            self._refreshed[target] = now
            return True

    def refine(self, target: Target, dialect: str, sql: str, classification: Classification,
               read: Callable[[], Schema]) -> Classification:
        """``classification`` with the statement's lineage; a read whose sensitive columns shape the
        answer becomes ``sensitive-predicate`` (the policy decides: allow, approve or deny)."""
        lineage = self.lineage(target, dialect, sql, read)
        details = {**classification.details, "lineage": lineage.to_dict()}
        risk, reason = classification.risk, classification.reason
        if lineage.predicates and risk in (Risk.READ, Risk.READ_SECRET):
            risk = Risk.SENSITIVE_PREDICATE
            reason = f"a sensitive column shapes the answer: {lineage.predicates[0]}"
        return Classification(risk=risk, reason=reason, language=classification.language,
                              statement=classification.statement, details=details)


def mask_outputs(lineage: dict[str, Any] | None, width: int, rows: list[list[Any]], masker: Masker,
                 counts: Counter[str]) -> None:
    """Mask, in place, every output column lineage marks, each value whole as one keyed placeholder.
    Unknown lineage, or a result whose width lineage did not predict, masks every column."""
    if lineage is None or lineage.get("applies") is False or not rows:
        return
    outputs = lineage.get("outputs")
    if outputs is None or len(outputs) != width:
        masks: list[str | None] = [UNRESOLVED] * width
    else:
        masks = [o.get("mask") for o in outputs]
    for j, kind in enumerate(masks):
        if kind:
            for row in rows:
                if j < len(row) and row[j] is not None:
                    row[j] = masker.mask_whole(row[j], kind, counts)


def withhold(classification: Classification) -> bool:
    """A failing statement that reads a sensitive column gets a generic sentence, never the message."""
    lineage = classification.details.get("lineage")
    return isinstance(lineage, dict) and bool(lineage.get("touches_sensitive", True))
