"""Fault injection on a dev stack of its own: concurrent agents, faults, and the evidence that
nothing was lost, unjournaled or run twice (tests/faults, benchmarks/faults.py)."""

from devhost.faults.evidence import HEADERS, Result, table
from devhost.faults.scenarios import SCENARIOS, FaultStack, Knobs

__all__ = ["HEADERS", "SCENARIOS", "FaultStack", "Knobs", "Result", "table"]
