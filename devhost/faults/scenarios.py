"""The fault scenarios: each kills or stalls one part of a dev stack while 20 agents call, heals
it, and collects the evidence (``evidence.assess``).

The stack is the fault suite's own (never the shared test stack): Azurite keeps its state on
disk so a restart finds the journal again, PostgreSQL logs every statement, the Durable engine
runs on the manual clock, and secrets are cached for one second so a Key Vault outage is felt.
Scenarios run in the order of ``SCENARIOS``; the clock jump comes last (the engine's clock only
moves forward, see tests/approvals/e2e/test_zz_clock.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from devhost.faults.evidence import Result, assess, chains, seal
from devhost.faults.load import Agents, Call, Writes, execute, read_sql, statement_runs
from devhost.faults.proxy import CuttableProxy
from devhost.stack import DevStack, Ports


@dataclass
class Knobs:
    agents: int = 20
    warmup_s: float = 1.0  # load before the fault
    outage_s: float = 2.0  # how long the part stays down
    after_s: float = 1.5  # load after it is back
    approvals: int = 8
    verify_cli: bool = True  # run `python -m broker journal verify` (False: the same Verifier in-process)


@dataclass
class FaultStack:
    stack: DevStack
    knobs: Knobs = field(default_factory=Knobs)
    allowed_open: set[str] = field(default_factory=set)  # intents of calls that were cut
    dead_chains: set[str] = field(default_factory=set)  # chains of SIGKILLed hosts (evidence.assess)
    proxies: list[CuttableProxy] = field(default_factory=list)  # the broker's way to Azurite

    @classmethod
    def start(cls, state_dir: Path, knobs: Knobs | None = None) -> FaultStack:
        stack = DevStack(state_dir, Ports.free(), log_statements=True, durable_clock="manual", quiet=True,
                         azurite_on_disk=True)
        stack.start(devhost=False)
        proxies: list[CuttableProxy] = []
        try:
            assert stack.azurite
            connection = stack.azurite.connection_string
            for port in stack.azurite.ports.values():
                proxy = CuttableProxy(port).start()
                proxies.append(proxy)
                connection = connection.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{proxy.port}/")
            stack.env.update(BROKER_STORAGE_CONNECTION_STRING=connection, AzureWebJobsStorage=connection,
                             BROKER_SECRET_CACHE_TTL_SECONDS="1")  # noqa: S106 - a TTL, not a secret
            stack.start_devhost()
        except BaseException:
            for proxy in proxies:
                proxy.stop()
            stack.stop()
            raise
        return cls(stack, knobs or Knobs(), proxies=proxies)

    def stop(self) -> None:
        self.stack.stop()
        for proxy in self.proxies:
            proxy.stop()

    # --- the faults ---
    def kill_azurite(self) -> None:
        """Every connection to Azurite is reset at once and new ones are refused (see proxy.py);
        behind the proxy Azurite stops and saves its state."""
        for proxy in self.proxies:
            proxy.cut()
        azurite = self.stack.azurite
        assert azurite and azurite.process
        azurite.process.send_signal(signal.SIGTERM)
        try:
            azurite.process.wait(15)
        except subprocess.TimeoutExpired:
            azurite.process.kill()
            azurite.process.wait(5)
        azurite.process = None

    def restart_azurite(self) -> None:
        assert self.stack.azurite
        self.stack.azurite.start(timeout=90)
        for proxy in self.proxies:
            proxy.start()

    def kill_postgres(self) -> None:
        """SIGQUIT to the postmaster: immediate shutdown, every backend dies mid-query, crash
        recovery on the next start. Sent while one of the agents' slow reads is running (waited for
        up to 5 s), so that a query really is cut: a kill between calls would prove nothing."""
        assert self.stack.postgres
        deadline = time.monotonic() + 5
        with self.stack.postgres.admin("demo") as db:
            while time.monotonic() < deadline and not db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'broker_agent' AND state = 'active' "
                    "AND query LIKE '%generate_series%'").fetchone()[0]:
                time.sleep(0.01)
        pid = self.stack.postgres.pid()
        assert pid
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 15
        while self.stack.postgres.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill_devhost(self) -> None:
        """SIGKILL the host (a crash); every chain it wrote is now a dead writer's."""
        self.stack.kill_devhost()
        self.dead_chains |= chains(self.stack)

    def restart_postgres(self) -> None:
        assert self.stack.postgres
        self.stack.postgres.start()

    # --- running one ---
    def probe(self) -> Call:
        headers = {"Authorization": f"Bearer {self.stack.token('devin')}"}
        with httpx.Client(base_url=self.stack.base_url, timeout=30) as client:
            marker = f"fault-{os.urandom(16).hex()}"
            return execute(client, headers, marker, "read", read_sql(marker))

    def recovery(self, result: Result, healed_at: float, during: list[Call], timeout: float = 60.0) -> list[Call]:
        """The time from the heal to the first call sent after it that answered 200 (the agents'
        calls, else probes), then every one of the agents' concurrent calls must succeed: the
        broker recovered without a restart of its own."""
        after = [c.ended - healed_at for c in during if c.status == 200 and c.started >= healed_at]
        if after:
            result.recovered_s = min(after)
        probes = []
        while result.recovered_s is None and time.monotonic() - healed_at < timeout:
            call = self.probe()
            probes.append(call)
            if call.status == 200:
                result.recovered_s = call.ended - healed_at
                break
            time.sleep(0.1)
        if result.recovered_s is None:
            result.problems.append(f"no call succeeded within {timeout:.0f} s of the heal")
            return probes
        batch = Agents(self.stack, self.knobs.agents).start(calls_each=1).join()
        bad = [f"{c.status} {c.code} {c.reason}".strip() for c in batch if c.status != 200]
        if bad:
            result.problems.append(f"after recovery, {len(bad)} of {len(batch)} concurrent calls failed: {bad[:5]}")
        return probes + batch

    def run(self, name: str, fault: Callable[[], None], heal: Callable[[], None], *, slow_every: int = 0,
            writes: Writes | None = None) -> Result:
        knobs = self.knobs
        result = Result(name)
        began = time.monotonic()
        agents = Agents(self.stack, knobs.agents, slow_every=slow_every).start()
        time.sleep(knobs.warmup_s)
        t = time.monotonic()
        fault()
        result.phases["fault"] = time.monotonic() - t
        time.sleep(knobs.outage_s)
        t = time.monotonic()
        heal()
        healed = time.monotonic()
        result.phases["heal"] = healed - t
        time.sleep(knobs.after_s)
        calls = agents.stop()
        calls += self.recovery(result, healed, calls)
        time.sleep(0.5)  # the immutable copies trail the rows by milliseconds
        runs = writes.runs() if writes else {}
        t = time.monotonic()
        if self.dead_chains:  # as the journal_seal timer would, sooner: lost copies get recorded
            seal(self.stack)
        result.phases["seal"] = time.monotonic() - t
        t = time.monotonic()
        assess(self.stack, result, calls + (writes.calls if writes else []), statement_runs(self.stack), runs,
               self.allowed_open, dead_chains=frozenset(self.dead_chains), verify_cli=knobs.verify_cli)
        result.phases["evidence"] = time.monotonic() - t
        result.wall_s = time.monotonic() - began
        return result

    # --- the scenarios ---
    def azurite_restart(self) -> Result:
        return self.run("Azurite killed, restarted", self.kill_azurite, self.restart_azurite)

    def key_vault_down(self) -> Result:
        return self.run("Key Vault down, connections must reopen", self.cut_key_vault, self.stack.start_keyvault)

    def cut_key_vault(self) -> None:
        """Key Vault goes away and every pooled connection of the broker's agent login is ended, so
        the next calls need the target's secret again (cached for one second here): the outage is
        felt, not hidden by warm pools."""
        self.stack.stop_keyvault()
        time.sleep(1.1)  # past the secret cache's TTL
        assert self.stack.postgres
        with self.stack.postgres.admin("demo") as db:
            db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'broker_agent'")

    def postgres_killed(self) -> Result:
        return self.run("PostgreSQL killed mid-query, restarted", self.kill_postgres, self.restart_postgres,
                        slow_every=3)

    def devhost_killed_mid_call(self) -> Result:
        return self.run("devhost killed mid-call, restarted", self.kill_devhost, self.stack.start_devhost)

    def devhost_killed_mid_approval(self) -> Result:
        writes = Writes(self.stack)
        pending = writes.request(self.knobs.approvals)

        def fault() -> None:
            writes.approve(pending)  # the approved commands start running ...
            time.sleep(0.05)
            self.kill_devhost()  # ... and the host dies under them

        result = self.run("devhost killed mid-approval, restarted", fault, self.stack.start_devhost, writes=writes)
        self._check_writes(result, writes, pending, approved=True)
        return result

    def clock_jump(self) -> Result:
        writes = Writes(self.stack)
        approved = writes.request(self.knobs.approvals // 2)
        waiting = writes.request(self.knobs.approvals // 2)

        def fault() -> None:
            writes.approve(approved)
            # past every approval's deadline (15 min from the wall clock, which the broker uses),
            # all at once; "to" because the engine's manual clock stood still while the wall moved
            moment = datetime.now(UTC) + timedelta(minutes=16)
            self.stack.durable_admin("POST", "clock/advance", json={"to": moment.isoformat()}).raise_for_status()

        result = self.run("Durable clock jumps 16 min", fault, lambda: None, writes=writes)
        self._check_writes(result, writes, approved, approved=True)
        self._check_writes(result, writes, waiting, approved=False)
        return result

    def _check_writes(self, result: Result, writes: Writes, calls: list[Call], *, approved: bool) -> None:
        states = writes.wait(calls, ("done", "failed", "expired", "denied"))
        runs = writes.runs()
        for call in calls:
            state, ran = states[call.request_id], runs[call.marker]
            view = writes.view(call) if state == "failed" else {}
            code = str(view.get("error", {}).get("code", ""))
            # interrupted: the host died mid-run; it may have run (at most once), and the agent must
            # be told so, never simply to send it again
            interrupted = code == "interrupted" and ran <= 1 and "may have run" in str(view.get("next_step"))
            if approved and not ((state == "done" and ran == 1) or (state == "failed" and ran == 0) or interrupted):
                result.problems.append(f"approved write {call.marker}: status {state} {code}, ran {ran}x, "
                                       f"next step {view.get('next_step')!r}")
            if interrupted:
                result.gaps.append(f"approved write {call.marker}: interrupted by the kill, ran {ran}x; the agent "
                                   "is told it may have run")
            if not approved and (state != "expired" or ran):
                result.problems.append(f"unapproved write {call.marker}: status {state}, ran {ran}x")


SCENARIOS: list[Callable[[FaultStack], Result]] = [
    FaultStack.azurite_restart, FaultStack.key_vault_down, FaultStack.postgres_killed,
    FaultStack.devhost_killed_mid_call, FaultStack.devhost_killed_mid_approval, FaultStack.clock_jump,
]
