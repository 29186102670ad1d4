"""The fault suite's figures: each fault of issue 18 under load from concurrent agents, then a
load run (50 agents x 100 calls), each checked against the journal, ``journal verify`` and
PostgreSQL's statement log.

    .venv/bin/python benchmarks/faults.py [--agents 20] [--outage 2] [--only azurite,postgres]
    .venv/bin/python benchmarks/faults.py --load-only [--load-agents 50] [--load-calls 100]

Starts its own dev stack (Azurite on disk behind a cuttable proxy, PostgreSQL logging every
statement, the Durable engine on the manual clock) in a temporary folder. Prints one Markdown
row per scenario (the table in docs/journal.md) and the load figures as JSON; exits 1 if any
promise broke (something lost, run twice, answered without its outcome, verify not clean).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devhost.faults import SCENARIOS, FaultStack, Knobs, Result, table
from devhost.faults.evidence import assess, copy_lag
from devhost.faults.load import Agents, statement_runs, summary


def load_run(fs: FaultStack, agents: int, calls_each: int) -> tuple[dict[str, object], Result]:
    """``agents`` callers, ``calls_each`` reads each, no fault: latency, throughput, and the same
    evidence as the fault scenarios."""
    lag_before = copy_lag(fs.stack)  # rows killed hosts left without copies stay so
    began = time.monotonic()
    calls = Agents(fs.stack, agents, timeout=60).start(calls_each=calls_each).join()
    wall = time.monotonic() - began
    figures = summary(calls, wall)
    # how far the immutable copies trail the rows when the load stops, and how long they take to catch up
    behind = copy_lag(fs.stack) - lag_before
    while copy_lag(fs.stack) > lag_before and time.monotonic() - began - wall < 120:
        time.sleep(0.2)
    figures.update(copies_behind_at_end=behind, copies_caught_up_s=time.monotonic() - began - wall)
    result = assess(fs.stack, Result(f"load {agents} agents x {calls_each} calls"), calls,
                    statement_runs(fs.stack), {}, fs.allowed_open, dead_chains=frozenset(fs.dead_chains),
                    verify_cli=fs.knobs.verify_cli)
    result.wall_s = wall
    figures.update(journaled=result.journaled, lost=result.lost, ran_twice=result.twice, verify=result.verify,
                   refused=dict(result.codes), verify_s=result.verify_s, verified_records=result.verified_records,
                   load_average=os.getloadavg()[0])
    return figures, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=20, help="concurrent agents during each fault")
    parser.add_argument("--outage", type=float, default=2.0, help="seconds each part stays down")
    parser.add_argument("--only", default="", help="comma-separated scenario method names (default: all)")
    parser.add_argument("--load-agents", type=int, default=50)
    parser.add_argument("--load-calls", type=int, default=100)
    parser.add_argument("--no-load", action="store_true", help="skip the load run")
    parser.add_argument("--load-only", action="store_true", help="only the load run")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.only or s.__name__ in args.only.split(",")]
    if args.load_only:
        chosen = []
    results: list[Result] = []
    load: dict[str, object] | None = None
    with tempfile.TemporaryDirectory(prefix="broker-faults-") as tmp:
        fs = FaultStack.start(Path(tmp), Knobs(agents=args.agents, outage_s=args.outage))
        try:
            for scenario in chosen:
                result = scenario(fs)
                results.append(result)
                phases = ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items())
                print(f"{result.scenario}: {result.wall_s:.1f} s ({phases}), refusals {result.codes}, "
                      f"verify {result.verify_s:.1f} s over {result.verified_records} records, "
                      f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
                for problem in result.problems:
                    print(f"  PROBLEM {problem}", file=sys.stderr, flush=True)
                for gap in result.gaps:
                    print(f"  GAP {gap}", file=sys.stderr, flush=True)
            if not args.no_load:
                load, load_result = load_run(fs, args.load_agents, args.load_calls)
                results.append(load_result)
                for problem in load_result.problems:
                    print(f"  PROBLEM {problem}", file=sys.stderr, flush=True)
        finally:
            fs.stop()
    print(table(results))
    if load is not None:
        print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in load.items()}, indent=2))
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
