"""Non-interactive exec through the client's websocket ``stream()``: stdout, stderr and the exit
code, within the policy's time and size limits (past either, the stream is closed and the result
says so). Nothing is forwarded to stdin and no terminal is allocated.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from broker.guard.kubectl_command import KubectlCommand
from broker.guard.kubernetes import resolve_type
from broker.problems import BrokerError, CommandFailed, NotFound, Unavailable
from broker.targets.base import DocumentResult
from broker.targets.kubernetes._context import Ctx
from broker.targets.kubernetes._resolve import resolve
from broker.targets.kubernetes._secrets import SecretValues

STDOUT, STDERR, ERROR = 1, 2, 3
_HANDSHAKE = re.compile(r"Handshake status (\d{3})")


def exec_in_pod(ctx: Ctx, cmd: KubectlCommand, secrets: SecretValues) -> DocumentResult:
    pods = resolve(ctx.cluster, resolve_type("pods"), "exec")
    ns = cmd.namespace or "default"
    name = cmd.names[0]
    pod = ctx.request(pods.operation("get", ns, name), ctx.cluster.dynamic.get, pods.resource, name=name, namespace=ns)
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = cmd.container or ((pod.get("metadata") or {}).get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container") or (containers[0] if containers else None)
    if container not in containers:
        raise CommandFailed(f"Container {container} is not in pod {name} (it has: {', '.join(containers)}).",
                            code="kubernetes_invalid")
    known = secrets.for_pods(ctx, ns, [pod], streams=True)  # before the command runs: fail closed
    ctx.operations.append(pods.operation("create", ns, name, "exec"))
    try:
        ws = stream(ctx.cluster.core.connect_get_namespaced_pod_exec, name, ns, command=list(cmd.command),
                    container=container, stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False,
                    _request_timeout=ctx.timeout)
    except ApiException as exc:
        raise _handshake_error(exc, ctx.target.name, name) from exc
    result = _collect(ws, ctx)
    result.known = known
    return result


def _collect(ws: Any, ctx: Ctx) -> DocumentResult:
    limit_s, limit_bytes = ctx.timeout, ctx.limits.max_bytes
    deadline = time.monotonic() + limit_s
    out: list[str] = []
    err: list[str] = []
    size, truncated, timed_out = 0, False, False
    try:
        while ws.is_open():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ws.update(timeout=min(remaining, 0.5))
            for channel, sink in ((STDOUT, out), (STDERR, err)):
                data = ws.read_channel(channel, timeout=0)
                if data:
                    sink.append(data)
                    size += len(data)
            if size > limit_bytes:
                truncated = True
                break
        for channel, sink in ((STDOUT, out), (STDERR, err)):
            data = ws.read_channel(channel, timeout=0) if not (truncated or timed_out) else ""
            if data:
                sink.append(data)
        status = ws.read_channel(ERROR, timeout=0) if not (truncated or timed_out) else ""
    finally:
        ws.close()
    stdout, stderr = "".join(out), "".join(err)
    if len(stdout) + len(stderr) > limit_bytes:
        truncated = True
        stdout = stdout[:limit_bytes]
        stderr = stderr[: max(limit_bytes - len(stdout), 0)]
    exit_code = None if truncated or timed_out else _exit_code(status)
    document = {"stdout": stdout, "stderr": stderr, "exit_code": exit_code, "truncated": truncated,
                "timed_out": timed_out}
    summary = (f"timed out after {limit_s:g}s" if timed_out else
               f"stopped at {limit_bytes} bytes" if truncated else f"exit {exit_code}")
    return DocumentResult(document=document, truncated=truncated, bytes=len(stdout) + len(stderr), status=summary,
                     truncated_by="max_bytes" if truncated else None)


def _exit_code(status_text: str) -> int:
    if not status_text:
        raise Unavailable("The exec stream closed without an exit status.", code="target_unavailable")
    try:
        status = json.loads(status_text)
    except ValueError as exc:
        raise Unavailable("The exec stream sent an unreadable exit status.", code="target_unavailable") from exc
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        causes = (status.get("details") or {}).get("causes") or []
        for cause in causes:
            if cause.get("reason") == "ExitCode":
                return int(cause.get("message", "1"))
    raise CommandFailed(f"exec failed: {str(status.get('message', 'unknown error'))[:500]}", code="exec_failed")


def _handshake_error(exc: ApiException, target: str, pod: str) -> BrokerError:
    m = _HANDSHAKE.search(str(exc.reason or ""))
    status = int(m.group(1)) if m else 0
    if status == 404:
        return NotFound(f'Kubernetes: pod "{pod}" not found.', code="kubernetes_not_found")
    if status == 401:
        return Unavailable(f"Target {target} refused the broker's credential.", code="target_auth_failed")
    if status == 403:
        return CommandFailed("The cluster does not let the broker's identity exec into this pod.",
                             code="kubernetes_forbidden")
    if status in (400, 422):
        return CommandFailed("The API server refused the exec request.", code="kubernetes_invalid")
    return Unavailable(f"Target {target}: the exec stream could not be opened.", code="target_unavailable")
