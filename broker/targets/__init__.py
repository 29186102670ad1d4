"""Target engines behind one interface (``TargetEngine``), and the explicit registry.

Adding an engine: one module here, one line in ``ENGINES``. A catalog that names an engine that is
not registered stops start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from broker.targets.base import Column, Command, ExecutionLimits, ResultSet, TargetEngine

__all__ = ["ENGINES", "POOLED_ENGINES", "Column", "Command", "ExecutionLimits", "ResultSet", "TargetEngine",
           "create_engine"]

# engine name -> "module:Class"; imported on first use so an unused driver costs nothing at cold start
ENGINES: dict[str, str] = {
    "postgres": "broker.targets.postgres:PostgresEngine",
    "mysql": "broker.targets.mysql:MySQLEngine",  # MySQL and MariaDB
    "mssql": "broker.targets.mssql:AzureSqlEngine",  # Azure SQL Database / SQL Server
    "kubernetes": "broker.targets.kubernetes:KubernetesEngine",
}

POOLED_ENGINES = frozenset({"postgres", "mysql", "mssql"})
"""Engines whose constructor takes ``pool_max_size`` (connections kept per target)."""


def create_engine(name: str, **config: object) -> TargetEngine:
    module_name, _, class_name = ENGINES[name].partition(":")
    factory: Callable[..., TargetEngine] = getattr(import_module(module_name), class_name)
    return factory(**config)
