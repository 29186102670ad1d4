"""The devhost's HTTP front end under the conditions Azure's front end handles: methods it does not
serve, bodies that stop short, bursts of clients; and `broker dev` restarting at once."""

from __future__ import annotations

import importlib
import json
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devhost import server as devhost_server
from devhost.server import FunctionsHttpServer
from devhost.stack import Ports

APP = """
    import azure.functions as func
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo", methods=["POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(str(len(req.get_body())))

    @app.route(route="slow", methods=["GET"])
    async def slow(req: func.HttpRequest) -> func.HttpResponse:
        import asyncio
        await asyncio.sleep(3)
        return func.HttpResponse("late")

    @app.route(route="items/{id}", methods=["GET", "DELETE"])
    def item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.route_params["id"])
"""


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("http_app")
    (folder / "http_app.py").write_text(textwrap.dedent(APP))
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        srv = devhost_server.serve("127.0.0.1", 0, "http_app")
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        yield srv.base_url
        srv.shutdown()
        srv.server_close()
    finally:
        sys.path.remove(str(folder))


def raw(base_url: str, data: bytes, timeout: float = 20) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(data)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def problem_of(response: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, json.loads(body)


@pytest.mark.parametrize("method", ["TRACE", "PUT", "PATCH", "DELETE", "BREW", "CONNECT"])
def test_a_method_the_route_does_not_serve_is_a_405_problem_with_allow(base_url: str, method: str) -> None:
    status, headers, body = problem_of(raw(base_url, f"{method} /api/echo HTTP/1.1\r\nHost: x\r\n"
                                                     "Connection: close\r\n\r\n".encode()))
    assert status == 405
    assert headers["allow"] == "POST"
    assert headers["content-type"] == "application/problem+json"
    assert body["type"] == "about:blank" and body["code"] == "method_not_allowed" and body["status"] == 405


def test_allow_lists_every_method_of_the_path(base_url: str) -> None:
    r = httpx.post(f"{base_url}/api/items/7")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
    assert httpx.delete(f"{base_url}/api/items/7").text == "7"


def test_an_unknown_path_is_a_404_problem_for_any_method(base_url: str) -> None:
    status, _, body = problem_of(raw(base_url, b"TRACE /api/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 404 and body["code"] == "not_found" and body["type"] == "about:blank"


def test_a_body_shorter_than_its_content_length_is_a_prompt_400(base_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devhost_server, "BODY_READ_TIMEOUT", 1.0)
    started = time.monotonic()
    status, _, body = problem_of(raw(base_url, b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                                               b"only ten b"))
    assert status == 400 and body["code"] == "incomplete_body"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", ["abc", "-1", "1e3", "10, 10"])
def test_a_malformed_content_length_is_a_400(base_url: str, value: str) -> None:
    status, _, body = problem_of(raw(base_url, f"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n"
                                               "\r\n".encode()))
    assert status == 400 and body["code"] == "invalid_content_length"


def test_a_garbled_request_line_is_a_problem_too(base_url: str) -> None:
    status, headers, body = problem_of(raw(base_url, b"GARBAGE\r\n\r\n"))
    assert status == 400 and headers["content-type"] == "application/problem+json" and body["type"] == "about:blank"


def test_a_function_slower_than_the_front_ends_limit_gets_its_504(base_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devhost_server, "HTTP_ANSWER_TIMEOUT", 0.5)  # Azure: 230 s
    r = httpx.get(f"{base_url}/api/slow", timeout=10)
    assert r.status_code == 504 and r.json()["code"] == "host_timeout"


def test_fifty_clients_connecting_at_once_are_all_served(base_url: str) -> None:
    assert FunctionsHttpServer.request_queue_size >= 128
    barrier = threading.Barrier(50)

    def call(i: int) -> int:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            barrier.wait()
            return client.post("/api/echo", content=b"x" * i).status_code

    with ThreadPoolExecutor(50) as pool:
        assert list(pool.map(call, range(50))) == [200] * 50


def _time_wait_port() -> int:
    """A port whose only socket is the server side of a closed connection, in TIME-WAIT."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first: its end waits in TIME-WAIT
    time.sleep(0.05)
    client.close()
    listener.close()
    return port


def test_a_port_left_in_time_wait_by_a_stop_is_free_again_at_once() -> None:
    ports = Ports.free()
    ports.devhost = _time_wait_port()
    assert ports.busy() == []
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        ports.devhost = listening.getsockname()[1]
        assert ports.busy() == [f"devhost:{ports.devhost}"]

