"""Many writers at once, threads and processes, through the real writer: nothing lost, every
chain intact, no two writers sharing a chain."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import timedelta

from journal_samples import execute, write_in_a_process

from broker.journal import JournalWriter, Sealer, Verifier
from broker.journal.envelope import parse_record_id


def test_parallel_threads_and_processes_lose_nothing_and_chains_verify(azurite, settings, storage):
    writer = JournalWriter(storage, max_lanes=8)
    context = multiprocessing.get_context("spawn")  # a clean interpreter, like another instance
    with ProcessPoolExecutor(3, mp_context=context) as processes:
        futures = [processes.submit(write_in_a_process, azurite.connection_string, settings.journal_table,
                                    settings.journal_container, 40) for _ in range(3)]
        try:
            with ThreadPoolExecutor(16) as threads:
                local = [rid for pair in threads.map(lambda _: execute(writer), range(120)) for rid in pair]
        finally:
            writer.close()
        remote = [rid for f in futures for rid in f.result(timeout=120)]
    written = local + remote
    assert len(written) == len(set(written)) == 2 * (120 + 3 * 40)

    stored = {(e["PartitionKey"], e["RowKey"]) for e in storage.table.list_entities(select=["PartitionKey",
                                                                                            "RowKey"])}
    assert stored == {parse_record_id(rid) for rid in written}

    chains = Counter(parse_record_id(rid)[0] for rid in written)
    local_chains = {parse_record_id(rid)[0] for rid in local}
    remote_chains = {parse_record_id(rid)[0] for rid in remote}
    assert not local_chains & remote_chains
    assert 1 < len(local_chains) <= 8  # 16 threads share at most max_lanes chains
    for chain, count in chains.items():  # every chain is gap-free: 1..count
        seqs = sorted(int(parse_record_id(rid)[1]) for rid in written if rid.startswith(chain))
        assert seqs == list(range(1, count + 1))

    assert Sealer(storage, margin=timedelta(0)).seal().records == len(written)
    report = Verifier(storage).verify()
    assert report.intact, report.render()
    assert report.records == len(written) and report.chains == len(chains)
