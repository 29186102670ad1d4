"""The fault suite's own dev stack (devhost/faults): Azurite on disk behind a cuttable proxy,
PostgreSQL logging every statement, the Durable engine on the manual clock. Small knobs keep
``make test`` short; ``benchmarks/faults.py`` runs the same scenarios with 20 agents and longer
outages, and the load run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devhost.faults import FaultStack, Knobs


@pytest.fixture(scope="package")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    knobs = Knobs(agents=8, warmup_s=0.5, outage_s=1.0, after_s=0.5, approvals=4, verify_cli=False)
    fs = FaultStack.start(tmp_path_factory.mktemp("faults"), knobs)
    yield fs
    fs.stop()
