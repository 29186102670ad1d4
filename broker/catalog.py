"""The target catalog: which databases and clusters the broker fronts, and how it reaches them.

A YAML file in the repository (path from ``BROKER_CATALOG_PATH``), validated at start-up: a
target whose engine is not registered, or whose credential source is unknown, stops the broker
before the first request instead of failing at it. The catalog never holds a credential, only
where the credential lives.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from broker.problems import NotFound
from broker.targets import ENGINES
from broker.targets.connection import ConnectionSettings, describe_errors

S = TypeVar("S", bound=ConnectionSettings)

TARGET_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"


class CatalogError(ValueError):
    """The catalog file is invalid; the message names the file and the offending field."""


class KeyVaultCredential(BaseModel):
    """A Key Vault secret; its value is engine-specific (e.g. JSON with username/password)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Literal["key-vault"] = "key-vault"
    secret: str = Field(pattern=r"^[0-9a-zA-Z-]{1,127}$")


class ManagedIdentityCredential(BaseModel):
    """The broker's managed identity, exchanged for an access token for ``scope``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Literal["managed-identity"]
    scope: str
    username: str = ""


Credential = KeyVaultCredential | ManagedIdentityCredential


class MaskingOverrides(BaseModel):
    """Per-target masking rules added to the built-in ones (see ``broker.masking.MaskingRules``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    columns: tuple[str, ...] = ()
    column_patterns: tuple[str, ...] = ()
    keep_columns: tuple[str, ...] = ()
    keep_card_last_four: bool = False
    ip_addresses: bool = False

    @field_validator("column_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"column pattern {pattern!r} is not a regular expression: {exc}") from None
        return patterns


_KIND = r"^[a-z][a-z0-9_]{0,31}$"


class SensitiveColumn(BaseModel):
    """A column the operator declares sensitive: ``table.column`` or ``schema.table.column``
    (``*`` and ``?`` match as in file names), masked as ``type`` (the placeholder's prefix)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str = Field(min_length=3, max_length=300, pattern=r"^[^.\s]+(\.[^.\s]+){1,2}$")
    type: str = Field(default="sensitive", pattern=_KIND)


class SensitivePattern(BaseModel):
    """A regular expression searched in ``schema.table.column``; matching columns are sensitive."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pattern: str = Field(min_length=1, max_length=300)
    type: str = Field(default="sensitive", pattern=_KIND)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"sensitive pattern {pattern!r} is not a regular expression: {exc}") from None
        return pattern


class DatabaseMasking(BaseModel):
    """The database masks too: the credential is a masked role, or the agent reads masked views
    (``docs/masking.md``). Recorded for approvers and auditors; the broker's own masking still runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["postgresql-anonymizer", "sql-server-ddm", "masked-views"]
    role: str = ""
    schemas: tuple[str, ...] = ()
    note: str = Field(default="", max_length=500)


class SensitiveData(BaseModel):
    """What a target holds that must never leave raw, known before any statement runs
    (``broker/lineage``): declared columns and patterns win; ``not_sensitive`` lifts what discovery
    or the name rules found (never a declared column)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    columns: tuple[SensitiveColumn, ...] = ()
    patterns: tuple[SensitivePattern, ...] = ()
    not_sensitive: tuple[str, ...] = ()
    name_rules: bool = True
    """The built-in name rules (``email``, ``card_number``, ``password``...) make columns sensitive too."""
    lineage: bool = True
    """Every statement's column lineage is resolved before it runs; off only for a target whose
    database does all the masking (``database_masking``)."""
    database_masking: DatabaseMasking | None = None

    @model_validator(mode="after")
    def _lineage_off_needs_database(self) -> SensitiveData:
        if not self.lineage and self.database_masking is None:
            raise ValueError("sensitive.lineage: false needs sensitive.database_masking (the database must mask)")
        return self


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TARGET_NAME)
    engine: str
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    read_only: bool = True
    """The credential is a read-only role: writes can never succeed, approval or not."""
    credential: Credential = Field(discriminator="source")
    connection: SerializeAsAny[ConnectionSettings] = Field(default_factory=ConnectionSettings, validate_default=True)
    """The engine's own settings model (``ENGINES[engine].settings``), validated at load."""
    masking: MaskingOverrides = MaskingOverrides()
    sensitive: SensitiveData = SensitiveData()
    max_concurrency: int | None = Field(default=None, ge=1, le=64)
    """Commands all callers together may run here at once; default ``BROKER_TARGET_CONCURRENCY``.
    Keep it at or below the database role's connection limit (the engine's pool has one more
    connection, for the guard's catalog look-ups)."""

    @field_validator("connection", mode="before")
    @classmethod
    def _engine_settings(cls, value: Any, info: ValidationInfo) -> Any:
        engine = info.data.get("engine")
        entry = ENGINES.get(engine) if isinstance(engine, str) else None
        if value is None or type(value) is ConnectionSettings:
            value = {}  # none given: the engine's defaults (or its required settings are missing)
        if entry is None:
            if value == {}:
                return ConnectionSettings()  # start-up refuses the unregistered engine (check_engines)
            raise ValueError(f"engine {engine!r} is not registered, so its connection settings cannot be "
                             f"checked (known engines: {', '.join(sorted(ENGINES))})")
        if isinstance(value, entry.settings):
            return value
        if isinstance(value, ConnectionSettings):
            raise ValueError(f"connection is {type(value).__name__}, not the {engine} engine's "
                             f"{entry.settings.__name__}")
        try:
            return entry.settings.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"not a {engine} connection: {describe_errors(exc)}") from None

    def settings(self, model: type[S]) -> S:
        """The connection settings as the engine's own model (engines call this, never read a dict)."""
        if not isinstance(self.connection, model):
            raise TypeError(f"target {self.name} ({self.engine}) has {type(self.connection).__name__} settings, "
                            f"not {model.__name__}")
        return self.connection

    def public_view(self) -> dict[str, Any]:
        """What an agent may learn about a target (no hosts, no secret names)."""
        return {"name": self.name, "engine": self.engine, "description": self.description,
                "labels": dict(self.labels), "read_only": self.read_only}


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    targets: dict[str, Target]

    @model_validator(mode="before")
    @classmethod
    def _name_targets(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("targets"), dict):
            data = dict(data)
            data["targets"] = {
                name: ({"name": name, **spec} if isinstance(spec, dict) else spec)
                for name, spec in data["targets"].items()
            }
        return data

    def get(self, name: str) -> Target:
        target = self.targets.get(name)
        if target is None:
            raise NotFound(f"No target named {name!r} is registered with the broker.",
                           code="unknown_target",
                           remedy="List the targets you may use with GET /api/targets.")
        return target

    def check_engines(self, known: set[str]) -> None:
        unknown = sorted({t.engine for t in self.targets.values()} - known)
        if unknown:
            raise CatalogError(f"catalog names engines with no implementation: {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(known))})")


def load_catalog(path: Path) -> Catalog:
    """The catalog in ``path``, every target's engine registered and its connection settings valid."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot read the catalog: {exc}") from exc
    try:
        catalog = Catalog.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(f"{path}: invalid catalog:\n{exc}") from exc
    try:
        catalog.check_engines(set(ENGINES))
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    return catalog
