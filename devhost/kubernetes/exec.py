"""Pod exec over a websocket speaking ``v4.channel.k8s.io``, as the API server does for the real
client's ``kubernetes.stream.stream()``.

Frames are binary; the first byte is the channel (1 stdout, 2 stderr, 3 the final status as a
``Status`` JSON, with ``NonZeroExitCode`` and the exit code as its cause). The "container" is a
tiny interpreter: ``echo``, ``env``/``printenv``, ``cat`` of a few files, ``hostname``, ``id``,
``ls``, ``true``/``false``, ``exit N``, ``sleep N``, ``seq N`` and ``sh -c`` over those. Its
arguments are data: nothing is ever run on this machine.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import aiohttp.web

PROTOCOL = "v4.channel.k8s.io"
STDOUT, STDERR, ERROR = 1, 2, 3
EXEC_PATH = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/exec$")

Write = Callable[[int, str], Awaitable[None]]


class Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def container_env(pod: dict[str, Any], container: str,
                  secrets: Callable[[str, str], dict[str, Any] | None]) -> dict[str, str]:
    """The environment the container would see: the spec's env, Secret references resolved."""
    import base64

    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOSTNAME": pod["metadata"]["name"], "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    for item in spec.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            secret = secrets(pod["metadata"]["namespace"], ref["name"]) or {}
            raw = (secret.get("data") or {}).get(ref["key"])
            if raw is not None:
                env[item["name"]] = base64.b64decode(raw).decode()
    return env


async def run(argv: list[str], env: dict[str, str], write: Write) -> int:
    """Run one command line in the stand-in "container"; return its exit code."""
    try:
        await _run(argv, env, write)
    except Exit as done:
        return done.code
    return 0


async def _run(argv: list[str], env: dict[str, str], write: Write) -> None:
    if not argv:
        return
    name, args = argv[0].rsplit("/", 1)[-1], argv[1:]
    if name == "echo":
        await write(STDOUT, " ".join(args) + "\n")
    elif name in ("env", "printenv"):
        if args:
            if args[0] not in env:
                raise Exit(1)
            await write(STDOUT, env[args[0]] + "\n")
        else:
            await write(STDOUT, "".join(f"{k}={v}\n" for k, v in env.items()))
    elif name == "hostname":
        await write(STDOUT, env["HOSTNAME"] + "\n")
    elif name == "id":
        await write(STDOUT, "uid=101(nginx) gid=101(nginx) groups=101(nginx)\n")
    elif name == "cat":
        for path in args:
            if path not in FILES:
                await write(STDERR, f"cat: {path}: No such file or directory\n")
                raise Exit(1)
            await write(STDOUT, FILES[path].replace("{HOSTNAME}", env["HOSTNAME"]))
    elif name == "ls":
        await write(STDOUT, "bin\ndev\netc\nhome\nproc\nroot\nsys\ntmp\nusr\nvar\n")
    elif name == "true":
        return
    elif name == "false":
        raise Exit(1)
    elif name == "exit":
        raise Exit(int(args[0]) if args else 0)
    elif name == "sleep":
        await asyncio.sleep(float(args[0]) if args else 0)
    elif name == "seq":
        for start in range(1, int(args[-1]) + 1, 1000):
            await write(STDOUT, "".join(f"{i}\n" for i in range(start, min(start + 1000, int(args[-1]) + 1))))
    elif name in ("sh", "bash") and args[:1] == ["-c"] and len(args) > 1:
        try:
            lexer = shlex.shlex(args[1], posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError:
            await write(STDERR, f"{name}: syntax error\n")
            raise Exit(2) from None
        command: list[str] = []
        for token in [*tokens, ";"]:
            if token in (";", "&&"):
                await _run(command, env, write)
                command = []
            else:
                command.append(token)
    else:
        await write(STDERR, f"sh: {name}: not found\n")
        raise Exit(127)


FILES = {
    "/etc/hostname": "{HOSTNAME}\n",
    "/etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    "/usr/share/nginx/html/index.html": "<h1>demo web</h1>\n",
}


def _status(code: int, argv: list[str]) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command {argv}, "
                       f"exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


async def serve_exec(request: aiohttp.web.BaseRequest, pod: dict[str, Any], env_for: Callable[[str], dict[str, str]]
                     ) -> aiohttp.web.StreamResponse:
    """Upgrade to a websocket, run the command, stream its output, send the status, close."""
    argv = request.query.getall("command", [])
    containers = [c["name"] for c in pod["spec"]["containers"]]
    container = request.query.get("container") or containers[0]
    if container not in containers or not argv:
        problem = f"container {container} is not valid for pod {pod['metadata']['name']}" if argv else \
            "you must specify at least one command for the container"
        return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 400,
                                          "reason": "BadRequest", "message": problem}, status=400)
    ws = aiohttp.web.WebSocketResponse(protocols=(PROTOCOL,))
    await ws.prepare(request)  # type: ignore[arg-type]

    async def write(channel: int, text: str) -> None:
        if ws.closed:
            raise Exit(137)  # the client went away: stop producing output
        await ws.send_bytes(bytes([channel]) + text.encode())

    try:
        code = await run(argv, env_for(container), write)
        if not ws.closed:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(_status(code, argv)).encode())
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    except Exception as exc:  # the stand-in's own bug: report it on the error channel, as a runtime would
        if not ws.closed:
            failure = {"metadata": {}, "status": "Failure", "reason": "InternalError", "message": repr(exc)}
            await ws.send_bytes(bytes([ERROR]) + json.dumps(failure).encode())
    finally:
        await ws.close()
    return ws
