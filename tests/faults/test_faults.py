"""Each fault of issue 18 under load, against the real parts (Azurite, embedded PostgreSQL, the
Key Vault stand-in, the devhost with the Durable engine): no call answered 200 without its
outcome record, nothing ran without its intent or twice, ``open_intent`` only where a call was
cut, and the broker serves again without a restart of its own. The tests run in file order; the
clock jump is last (the engine's clock only moves forward)."""

from __future__ import annotations

import uuid

import pytest

from broker.journal.copies import MAX_BACKLOG
from devhost.faults import FaultStack, Result
from devhost.faults.evidence import assess
from devhost.faults.load import Call, read_sql, statement_runs

pytestmark = pytest.mark.e2e

# What a refusal during a fault may say: a dependency is down, retry later. Never a 500, never a
# 4xx that blames the caller's command for the broker's or the target's failure.
# classification_unavailable: the stored column classification (Table storage) could not be read,
# so lineage cannot know which columns are sensitive: refused, as with the journal.
FAIL_CLOSED = {"503 journal_unavailable", "503 target_unavailable", "503 target_busy", "503 secrets_unavailable",
               "503 classification_unavailable"}


def held(result: Result) -> None:
    """The promises every scenario keeps."""
    assert not result.problems, "\n".join(result.problems)
    assert {key.split(" (")[0] for key in result.codes} <= FAIL_CLOSED, result.codes
    assert result.lost == 0 and result.twice == 0
    assert result.recovered_s is not None
    assert result.journaled >= result.ok  # every answered call is closed in the journal


def refused_with(result: Result, status_code: str) -> int:
    """Refusals with this status and code, whatever their ``reason``."""
    return sum(n for key, n in result.codes.items() if key.split(" (")[0] == status_code)


def felt(result: Result) -> int:
    """Calls the fault touched (refused, cut, or not reachable): a fault nobody felt proves nothing."""
    return result.refused + result.cut + result.unreachable


def test_the_evidence_catches_a_lost_outcome_and_an_unjournaled_run(faults: FaultStack):
    """The checker itself can fail: an answer 200 with no record behind it, and a statement that
    ran in PostgreSQL without passing through the broker."""
    answered = Call(f"fault-{uuid.uuid4().hex}", "read", 0.0, 0.1, status=200, record_id="20991231-x-0000000001")
    bypass = f"fault-{uuid.uuid4().hex}"
    assert faults.stack.postgres
    with faults.stack.postgres.admin("demo") as db:
        db.execute(read_sql(bypass))
    ran = Call(bypass, "read", 0.0, 0.1, status=403, code="policy_denied")
    result = assess(faults.stack, Result("self-check"), [answered, ran], statement_runs(faults.stack), {}, set(),
                    verify_cli=False)
    assert result.lost == 2, result.problems
    assert any("without its outcome record" in p for p in result.problems)
    assert any("without a journaled intent" in p for p in result.problems)
    assert result.verify.startswith("clean")


def test_azurite_killed_and_restarted(faults: FaultStack):
    result = faults.azurite_restart()
    held(result)
    assert felt(result) > 0
    # fail closed with a precise problem while storage is gone: nothing ran unjournaled
    assert refused_with(result, "503 journal_unavailable") > 0, result.codes
    assert result.verify.startswith("clean"), result.verify


def test_key_vault_down_while_connections_reopen(faults: FaultStack):
    result = faults.key_vault_down()
    held(result)
    assert refused_with(result, "503 secrets_unavailable") > 0, result.codes
    assert result.verify.startswith("clean"), result.verify


def test_postgres_killed_mid_query(faults: FaultStack):
    result = faults.postgres_killed()
    held(result)
    assert felt(result) > 0
    assert result.verify.startswith("clean"), result.verify


def _only_lost_copies(result: Result) -> None:
    """A SIGKILLed host loses its queued immutable copies (broker/journal/copies.py); the sealer
    records those rows (journal.copies_lost) and verify names each as ``copy_lost``, a warning:
    nothing reported as inserted, truncated or missing, and no more rows than the copy backlog's
    bound per kill (docs/journal.md "What a crash still costs")."""
    assert all("lost their immutable copy, recorded" in g or "interrupted by the kill" in g for g in result.gaps), \
        result.gaps
    assert result.verify.startswith("clean"), result.verify  # evidence.assess: copy_lost only on killed hosts
    assert result.uncopied <= MAX_BACKLOG, result.uncopied


def test_devhost_killed_mid_call_and_mid_approval(faults: FaultStack):
    """One SIGKILL with agents' calls in flight and approved writes starting to run (the benchmark
    also kills it with calls alone): each write ran at most once, nothing else is wrong."""
    result = faults.devhost_killed_mid_approval()
    held(result)
    assert result.cut + result.unreachable > 0
    _only_lost_copies(result)


def test_durable_clock_jumps_past_every_deadline(faults: FaultStack):
    result = faults.clock_jump()
    held(result)
    _only_lost_copies(result)  # the killed hosts' rows from the scenarios before stay as they were
