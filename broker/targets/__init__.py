"""Target engines behind one interface (``TargetEngine``), and the explicit registry.

Adding an engine: one module (or folder) here, a light module with its connection settings, one
entry in ``ENGINES``. A catalog that names an engine that is not registered stops start-up; a
target whose ``connection:`` does not fit its engine's settings model stops the catalog load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from broker.guard.languages import KUBECTL, SQL, CommandLanguage
from broker.targets.base import Column, Command, ExecutionLimits, ResultSet, TargetEngine
from broker.targets.connection import ConnectionSettings
from broker.targets.kubernetes_connection import KubernetesConnection
from broker.targets.mssql_connection import AzureSqlConnection
from broker.targets.mysql_connection import MySQLConnection
from broker.targets.postgres_connection import PostgresConnection

__all__ = ["ENGINES", "Column", "Command", "EngineEntry", "ExecutionLimits", "ResultSet", "TargetEngine",
           "create_engine"]


@dataclass(frozen=True)
class EngineEntry:
    """One registered engine: where its class is, what it speaks, what its catalog entry holds."""

    factory: str
    """``module:Class``, imported on first use so an unused driver costs nothing at cold start."""
    language: CommandLanguage
    dialect: str
    """The guard's dialect of ``language`` (``postgres``, ``mysql``, ``tsql``; ``""`` for kubectl)."""
    settings: type[ConnectionSettings]
    """The model of the target's ``connection:`` (validated when the catalog loads)."""
    pooled: bool = False
    """The constructor takes ``pool_max_size`` (connections kept per target)."""

    def load(self) -> Callable[..., TargetEngine]:
        module_name, _, class_name = self.factory.partition(":")
        factory: Callable[..., TargetEngine] = getattr(import_module(module_name), class_name)
        return factory


ENGINES: dict[str, EngineEntry] = {
    "postgres": EngineEntry("broker.targets.postgres:PostgresEngine", SQL, "postgres", PostgresConnection,
                            pooled=True),
    "mysql": EngineEntry("broker.targets.mysql:MySQLEngine", SQL, "mysql", MySQLConnection,  # and MariaDB
                         pooled=True),
    "mssql": EngineEntry("broker.targets.mssql:AzureSqlEngine", SQL, "tsql", AzureSqlConnection,  # Azure SQL
                         pooled=True),
    "kubernetes": EngineEntry("broker.targets.kubernetes:KubernetesEngine", KUBECTL, "", KubernetesConnection),
}
"""Engine name (the catalog's ``engine:``, a contract) -> its entry."""


def create_engine(name: str, **config: object) -> TargetEngine:
    return ENGINES[name].load()(**config)
