"""Pod exec over a websocket speaking ``v4.channel.k8s.io``, as the API server does for the real
client's ``kubernetes.stream.stream()``.

Frames are binary; the first byte is the channel (1 stdout, 2 stderr, 3 the final status as a
``Status`` JSON, with ``NonZeroExitCode`` and the exit code as its cause). The "container" is
``container.py`` (env and mounted files resolved from the pod spec as the kubelet does) running
``shell.py``'s programs. Its arguments are data: nothing is ever run on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import aiohttp.web

from devhost.kubernetes.container import Container, NotRunning
from devhost.kubernetes.shell import Exit, Io, run

PROTOCOL = "v4.channel.k8s.io"
ERROR = 3
EXEC_PATH = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/exec$")


def _status(code: int, argv: list[str]) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command {argv}, "
                       f"exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _bad_request(message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 400,
                                      "reason": "BadRequest", "message": message}, status=400)


async def serve_exec(request: aiohttp.web.BaseRequest, pod: dict[str, Any],
                     view: Callable[[str], Container]) -> aiohttp.web.StreamResponse:
    """Upgrade to a websocket, run the command, stream its output, send the status, close."""
    argv = request.query.getall("command", [])
    containers = [c["name"] for c in pod["spec"]["containers"]]
    container = request.query.get("container") or containers[0]
    if container not in containers or not argv:
        return _bad_request(f"container {container} is not valid for pod {pod['metadata']['name']}" if argv else
                            "you must specify at least one command for the container")
    try:
        seen = view(container)
    except NotRunning:  # the kubelet never started it (CreateContainerConfigError / ContainerCreating)
        return _bad_request(f'unable to upgrade connection: container not found ("{container}")')
    ws = aiohttp.web.WebSocketResponse(protocols=(PROTOCOL,))
    await ws.prepare(request)  # type: ignore[arg-type]

    async def write(channel: int, data: bytes) -> None:
        if ws.closed:
            raise Exit(137)  # the client went away: stop producing output
        await ws.send_bytes(bytes([channel]) + data)

    async def client_closes() -> None:
        """Read the client's frames as the API server does (stdin is not forwarded): a close frame is
        answered at once, so a client that stops at its time limit is not left waiting."""
        async for _ in ws:
            pass

    command = asyncio.ensure_future(run(argv, Io(seen, write)))
    closing = asyncio.ensure_future(client_closes())
    try:
        await asyncio.wait({command, closing}, return_when=asyncio.FIRST_COMPLETED)
        if not command.done():  # the client went away: stop the command
            command.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await command
            return ws
        code = command.result()
        if not ws.closed:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(_status(code, argv)).encode())
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    except Exception as exc:  # the stand-in's own bug: report it on the error channel, as a runtime would
        if not ws.closed:
            failure = {"metadata": {}, "status": "Failure", "reason": "InternalError", "message": repr(exc)}
            await ws.send_bytes(bytes([ERROR]) + json.dumps(failure).encode())
    finally:
        command.cancel()
        await ws.close()  # also ends ``client_closes`` (aiohttp lets one task close while another reads)
        closing.cancel()
    return ws
