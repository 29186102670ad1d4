"""Pod exec over the v4.channel.k8s.io websocket: output, exit codes, limits, and literal arguments."""

from __future__ import annotations

import time

import pytest

from broker.problems import BrokerError
from broker.targets.base import ExecutionLimits
from devhost.kubernetes.demo import DEMO_PASSWORD


def test_stdout_and_exit_code(run, pods) -> None:
    result = run("exec", pods()[0], "-n", "demo", "--", "cat", "/etc/hostname")
    assert result.document == {"stdout": pods()[0] + "\n", "stderr": "", "exit_code": 0, "truncated": False,
                               "timed_out": False}
    assert result.status == "exit 0"
    assert result.operations[-1] == {"group": "", "version": "v1", "resource": "pods", "verb": "create",
                                     "namespace": "demo", "name": pods()[0], "subresource": "exec"}


def test_stderr_and_non_zero_exit_codes(run, pods) -> None:
    missing = run("exec", pods()[0], "-n", "demo", "-c", "web", "--", "cat", "/nope")
    assert missing.document["exit_code"] == 1
    assert missing.document["stderr"] == "cat: /nope: No such file or directory\n"
    assert run("exec", pods()[0], "-n", "demo", "--", "sh", "-c", "echo hi; exit 3").document["exit_code"] == 3
    assert run("exec", pods()[0], "-n", "demo", "--", "nosuchtool").document["exit_code"] == 127


def test_shell_metacharacters_are_literal_arguments(run, pods) -> None:
    result = run("exec", pods()[0], "-n", "demo", "--", "echo", "$(id)", ";", "rm -rf /", "|", "`reboot`", "&&")
    assert result.document["stdout"] == "$(id) ; rm -rf / | `reboot` &&\n"


def test_environment_secrets_are_masked(run, pods) -> None:
    result = run("exec", pods()[0], "-n", "demo", "--", "env")
    stdout = result.document["stdout"]
    assert DEMO_PASSWORD not in stdout
    assert "DATABASE_PASSWORD=[secret:" in stdout and "DATABASE_HOST=db.demo.svc.cluster.local" in stdout
    assert result.masked["secret"] >= 1


def test_time_limit_stops_the_command(run, pods) -> None:
    started = time.monotonic()
    result = run("exec", pods()[0], "-n", "demo", "--", "sleep", "10", limits=ExecutionLimits(timeout_ms=1000))
    assert time.monotonic() - started < 5
    assert result.document["timed_out"] and result.document["exit_code"] is None
    assert result.status == "timed out after 1s"


def test_size_limit_stops_the_command(run, pods) -> None:
    result = run("exec", pods()[0], "-n", "demo", "--", "seq", "200000", limits=ExecutionLimits(max_bytes=4096))
    assert result.truncated and result.document["truncated"]
    assert len(result.document["stdout"]) <= 4096 and result.document["stdout"].startswith("1\n2\n3\n")


def test_exec_errors(run, pods) -> None:
    with pytest.raises(BrokerError) as missing:
        run("exec", "nope", "-n", "demo", "--", "true")
    assert missing.value.code == "kubernetes_not_found"
    with pytest.raises(BrokerError) as container:
        run("exec", pods()[0], "-n", "demo", "-c", "sidecar", "--", "true")
    assert container.value.code == "kubernetes_invalid"
