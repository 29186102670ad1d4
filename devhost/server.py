"""The devhost HTTP front end: routes requests to the app's HTTP functions with real
``func.HttpRequest`` objects, as the Functions host does (route prefix, templates, methods)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from devhost.functions import FunctionIndex, HttpRoute, bind_arguments, make_request

log = logging.getLogger("devhost")

MAX_BODY = 100 * 1024 * 1024  # the Functions host's default request size limit
BODY_READ_TIMEOUT = 10.0  # a body that stops short of its Content-Length gets a 400, not a hang
# Azure's front end gives an HTTP-triggered function 230 s to answer, then replies 504 itself
# (the function may go on running). The devhost does the same, so a slow path fails here too.
HTTP_ANSWER_TIMEOUT = 230.0


class AnswerTimeout(Exception):
    """The function did not answer within HTTP_ANSWER_TIMEOUT."""
BindingProvider = Callable[[Any, func.HttpRequest], Any]


class AsyncRunner:
    """One event loop thread for async functions (the durable client's are async)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="devhost-async", daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 300, name: str = "") -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise AnswerTimeout(name) from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class FunctionsHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's default backlog of 5 resets 20 agents connecting at once

    def __init__(self, address: tuple[str, int], index: FunctionIndex,
                 providers: dict[str, BindingProvider] | None = None,
                 extra_routes: dict[str, Callable[[BaseHTTPRequestHandler], bool]] | None = None) -> None:
        self.index = index
        self.providers = dict(providers or {})
        self.extra_routes = {"/admin/host/status": _host_status, **(extra_routes or {})}
        self.runner = AsyncRunner()
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def invoke(self, route: HttpRoute, request: func.HttpRequest) -> func.HttpResponse:
        kwargs = bind_arguments(route.function, route.bindings, route.trigger_param, request, self.providers, request)
        result = route.function(**kwargs)  # a sync function answers on this thread, untimed
        if inspect.isawaitable(result):
            result = self.runner.run(result, HTTP_ANSWER_TIMEOUT, route.name)
        return result

    def server_close(self) -> None:
        super().server_close()
        self.runner.stop()


def _host_status(handler: BaseHTTPRequestHandler) -> bool:
    """``GET /admin/host/status``, as the Functions host answers it: the host is up (readiness)."""
    body = json.dumps({"state": "Running"}).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: don't wait for ACKs
    server: FunctionsHttpServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK stall every keep-alive response by ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _problem(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        # a host-level refusal: RFC 9457's about:blank type, the status phrase as title
        title = HTTPStatus(status).phrase
        body = json.dumps({"type": "about:blank", "title": title, "status": status, "code": code,
                           "detail": detail}).encode()
        self._send(status, body, {"Content-Type": "application/problem+json", **(headers or {})})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (bad request line, unknown method, huge headers) as problems."""
        self.close_connection = True
        if code == HTTPStatus.NOT_IMPLEMENTED and getattr(self, "path", None):  # an unknown method
            self._refuse_method(urlsplit(self.path).path)
            return
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        if not hasattr(self, "command") or self.command is None:
            self.command = "GET"  # _send needs it (HEAD bodies); the request line was unreadable
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        self._problem(status.value, "bad_request" if status == HTTPStatus.BAD_REQUEST else f"http_{status.value}",
                      message or status.description)

    def _refuse_method(self, path: str) -> None:
        _, _, allowed = self.server.index.match(self.command, path)
        if allowed:
            self._problem(405, "method_not_allowed", f"{self.command} is not allowed here.",
                          {"Allow": ", ".join(sorted(allowed))})
        else:
            self._problem(404, "not_found", "No function serves this path.")

    def _read_body(self) -> bytes | None:
        """The body, or None after answering 400/413 (a bad or unfinished Content-Length)."""
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        if not raw.strip().isdigit():
            self.close_connection = True
            self._problem(400, "invalid_content_length", "Content-Length must be a non-negative integer.")
            return None
        length = int(raw)
        if length > MAX_BODY:
            self.close_connection = True
            self._problem(413, "body_too_large", "The request body exceeds the host's limit.")
            return None
        previous = self.connection.gettimeout()
        self.connection.settimeout(BODY_READ_TIMEOUT)
        try:
            body = self.rfile.read(length) if length else b""
        except TimeoutError:
            body = None
        finally:
            self.connection.settimeout(previous)
        if body is None or len(body) < length:
            self.close_connection = True
            self._problem(400, "incomplete_body", f"The request body ended before its Content-Length ({length} "
                                                  f"bytes) within {BODY_READ_TIMEOUT:.0f} s.")
            return None
        return body

    def _dispatch(self) -> None:
        received = time.perf_counter()
        split = urlsplit(self.path)
        for prefix, handler in self.server.extra_routes.items():
            if split.path.startswith(prefix) and handler(self):
                return
        body = self._read_body()
        if body is None:
            return
        route, route_params, _ = self.server.index.match(self.command, split.path)
        if route is None:
            self._refuse_method(split.path)
            return
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        headers = {k.lower(): v for k, v in self.headers.items()}
        # Like Azure's front end: append the peer address, so the last hop is the trusted one.
        prior = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{prior}, {self.client_address[0]}" if prior else self.client_address[0]
        request = make_request(self.command, f"http://{host}{self.path}", headers,
                               dict(parse_qsl(split.query, keep_blank_values=True)), route_params, body)
        try:
            response = self.server.invoke(route, request)
        except AnswerTimeout:
            self.close_connection = True
            self._problem(504, "host_timeout", f"Function {route.name} did not answer within "
                                               f"{HTTP_ANSWER_TIMEOUT:.0f} s (Azure's front-end limit).")
            return
        except Exception:
            log.exception("function %s failed", route.name)
            self._problem(500, "function_failed", f"Function {route.name} raised an exception.")
            return
        if response is None:
            self._send(204, b"", {})
            return
        out_headers = dict(response.headers)
        if response.mimetype and "content-type" not in {k.lower() for k in out_headers}:
            charset = f"; charset={response.charset}" if response.charset else ""
            out_headers["Content-Type"] = f"{response.mimetype}{charset}"
        body = response.get_body() or b""
        for name, value in out_headers.items():
            if name.lower() == "server-timing":
                # what the devhost itself adds (reading the body, building the request, the hop to
                # its event loop and back): benchmarks separate it from the app's own phases
                out_headers[name] = f"{value}, devhost;dur={(time.perf_counter() - received) * 1000:.2f}"
        self._send(response.status_code, body, out_headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = do_CONNECT = _dispatch


def serve(host: str = "127.0.0.1", port: int = 7071, module: str = "function_app",
          providers: dict[str, BindingProvider] | None = None) -> FunctionsHttpServer:
    """Create the server (not yet serving): call ``serve_forever`` on it."""
    return FunctionsHttpServer((host, port), FunctionIndex(module), providers)
