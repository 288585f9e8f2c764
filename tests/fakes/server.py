"""The one base of the in-test servers: 127.0.0.1, an ephemeral port, a thread per connection.

One vocabulary for every fake server:

- ``server.fail(*faults, route=None)`` queues :class:`Fault`\\ s; each is consumed by the next
  request (of ``route`` only, when given). ``Fault.http`` / ``raw`` / ``text`` answer an
  error at once, ``slow`` waits before answering, ``drop`` closes the connection (at once, or
  ``after`` that many stream events), ``stall`` pauses a stream, ``error_event`` ends a stream
  with the server's error event.
- ``server.reply(*replies)`` queues canned answers, for servers that take them.
- ``server.requests`` holds every :class:`Request` (method, path, route name, route params,
  query, headers, parsed ``body``, ``raw`` bytes, the client's ``peer``); ``server.to(route)``
  and ``server.routes()`` filter them. ``connections``, ``max_in_flight``,
  ``completed_streams`` / ``aborted_streams`` and ``disconnected`` count what happened;
  ``handler_errors`` keeps a handler's unexpected exceptions for the test to assert on.

Every answer goes out as one write (status line, headers and body) on a socket with
TCP_NODELAY, so Nagle's algorithm and delayed ACKs add nothing to what benchmarks measure.
Importable without pytest (benchmarks add ``tests/`` to ``sys.path``).
"""

from __future__ import annotations

import itertools
import json
import re
import select
import socket
import ssl
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

__all__ = ["Exchange", "FakeServer", "Fault", "Request"]

FaultKind = Literal["status", "text", "slow", "drop", "stall", "error_event"]
STREAM_FAULTS = frozenset({"stall", "error_event"})


@dataclass(frozen=True)
class Fault:
    """One scripted failure, consumed by one request.

    ``error`` is a message each server wraps in its own error body; ``body`` is sent as it
    is; ``after`` counts the stream events sent before a stream fault strikes.
    """

    kind: FaultKind
    status: int = 503
    error: str | None = None
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    after: int | None = None

    @classmethod
    def http(
        cls, status: int, error: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> Fault:
        """Answer ``status`` with the server's own error body for ``error``."""
        return cls("status", status=status, error=error, headers=tuple((headers or {}).items()))

    @classmethod
    def raw(cls, status: int, body: Any, *, headers: Mapping[str, str] | None = None) -> Fault:
        """Answer ``status`` with exactly ``body`` (JSON; ``None``: an empty body)."""
        body = b"" if body is None else body
        return cls("status", status=status, body=body, headers=tuple((headers or {}).items()))

    @classmethod
    def validation(cls, message: str = "Input validation error: `inputs` is too long") -> Fault:
        """The server's 422 for an invalid request."""
        return cls.http(422, message)

    @classmethod
    def text(cls, status: int, text: str) -> Fault:
        """Answer ``status`` with an HTML page (a proxy, or another service at the URL)."""
        return cls("text", status=status, body=text)

    @classmethod
    def slow(cls, delay_s: float) -> Fault:
        """Answer correctly, after ``delay_s`` (past a client's read timeout)."""
        return cls("slow", delay_s=delay_s)

    @classmethod
    def drop(cls, after: int | None = None) -> Fault:
        """Close the connection: before answering, or after ``after`` stream events."""
        return cls("drop", after=after)

    @classmethod
    def stall(cls, delay_s: float, after: int = 0) -> Fault:
        """Streams: pause ``delay_s`` after ``after`` events (ends early if the client goes)."""
        return cls("stall", delay_s=delay_s, after=after)

    @classmethod
    def error_event(cls, after: int = 0, body: Any = None) -> Fault:
        """Streams: end with the server's error event (or ``body``) after ``after`` events."""
        return cls("error_event", after=after, body=body)


@dataclass(frozen=True)
class Request:
    """One request as it reached the server."""

    method: str
    path: str
    route: str | None
    params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    raw: bytes = b""
    peer: tuple[str, int] = ("", 0)  # the same for requests on one kept-alive connection
    at: float = field(default_factory=time.monotonic)


R = TypeVar("R", bound=Request)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many concurrent clients (benchmarks) connect at once
    fake: FakeServer[Any]

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
            self.fake.handler_errors.append(traceback.format_exc())


class FakeServer(Generic[R]):
    """A server on 127.0.0.1 in background threads; use as a context manager.

    Subclasses declare :attr:`route_table` (method, path regex, route name), the routes that
    take faults (:attr:`faulted_routes`, ``None``: all) and answer in :meth:`answer`.
    """

    route_table: ClassVar[Sequence[tuple[str, str, str]]] = ()
    faulted_routes: ClassVar[frozenset[str] | None] = None
    request_type: ClassVar[type[Request]] = Request

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[R] = []
        self.handler_errors: list[str] = []
        self.replies: deque[Any] = deque()
        self.connections = self.in_flight = self.max_in_flight = 0
        self.completed_streams = self.aborted_streams = 0
        self.answer_delay_s = 0.0  # every answer waits this long (a slow model)
        self.disconnected = threading.Event()  # a client hung up on a stream
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self._faults: list[tuple[str | None, Fault]] = []
        self._routes = [(m, re.compile(p), n) for m, p, n in self.route_table]
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._scheme = "http"
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- script and records -------------------------------------------------------------

    def fail(self, *faults: Fault, route: str | None = None) -> None:
        """Queue faults, each consumed by one request (of ``route`` only, when given)."""
        known = {name for _, _, name in self.route_table}
        if route is not None and route not in known:
            raise ValueError(f"unknown route {route!r}; known: {sorted(known)}")
        with self.lock:
            self._faults.extend((route, fault) for fault in faults)

    def reply(self, *replies: Any) -> None:
        """Queue canned answers, each taken by one request (servers that take them)."""
        with self.lock:
            self.replies.extend(replies)

    def reset(self) -> None:
        """Forget faults, replies, requests, counters and handler errors."""
        with self.lock:
            self._faults.clear()
            self.replies.clear()
            self.requests.clear()
            self.handler_errors.clear()
            self.connections = self.max_in_flight = 0
            self.completed_streams = self.aborted_streams = 0
        self.disconnected.clear()

    @property
    def pending(self) -> int:
        """Faults and replies not consumed yet."""
        with self.lock:
            return len(self._faults) + len(self.replies)

    def to(self, route: str) -> list[R]:
        """The recorded requests of ``route``, in order."""
        with self.lock:
            return [request for request in self.requests if request.route == route]

    def routes(self) -> list[str | None]:
        """The route of every recorded request, in order."""
        with self.lock:
            return [request.route for request in self.requests]

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not condition():
            time.sleep(0.01)
        return condition()

    def next_reply(self) -> Any:
        """The next canned answer, or ``None``."""
        with self.lock:
            return self.replies.popleft() if self.replies else None

    # -- for subclasses -----------------------------------------------------------------

    def answer(self, exchange: Exchange) -> None:  # pragma: no cover - every server answers
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        """The server's error body for ``message`` (a :meth:`Fault.http`)."""
        return {"error": message}

    def _take_fault(self, route: str | None) -> Fault | None:
        if self.faulted_routes is not None and route not in self.faulted_routes:
            return None
        with self.lock:
            for index, (wanted, fault) in enumerate(self._faults):
                if wanted is None or wanted == route:
                    del self._faults[index]
                    return fault
        return None


class Exchange:
    """One request and the ways to answer it (each answer is one write)."""

    def __init__(self, handler: _Handler, request: Request, fault: Fault | None) -> None:
        self._handler = handler
        self.server: FakeServer[Any] = handler.fake
        self.request = request
        self.fault = fault

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """A whole answer: status line, headers and body in one write."""
        lines = [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        self._write(self._head(status, lines) + body)

    def json(self, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        self.send(status, body, headers=headers)

    def stream(
        self,
        parts: Iterable[bytes],
        *,
        content_type: str,
        write: Callable[[bytes], None] | None = None,
        error_event: Callable[[Fault], None] | None = None,
        headers: Iterable[tuple[str, str]] = (),
        delay_s: float = 0.0,
    ) -> None:
        """A chunked stream of ``parts`` (each written by ``write``, default one chunk), with
        the request's stream fault applied (``error_event`` writes the server's error event);
        the counters record how it ended."""
        head = [
            f"Content-Type: {content_type}",
            "Transfer-Encoding: chunked",
            *(f"{n}: {v}" for n, v in headers),
        ]
        self._write(self._head(200, head))
        write = write or self.chunk
        fault = self.fault if self.fault is not None and self.fault.after is not None else None
        try:
            for index, part in enumerate(itertools.chain(parts, [None])):
                if fault is not None and index == fault.after:
                    if fault.kind == "stall" and self.pause(fault.delay_s):
                        raise BrokenPipeError("the client hung up")
                    if fault.kind == "drop":
                        self.drop()
                        return
                    if fault.kind == "error_event" and error_event is not None:
                        error_event(fault)  # writes the server's own error event
                        break
                if part is None:
                    break
                if index and delay_s and self.pause(delay_s):
                    raise BrokenPipeError("the client hung up")
                write(part)
            self._write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            with self.server.lock:
                self.server.aborted_streams += 1
            self.server.disconnected.set()
            self._handler.close_connection = True
            return
        with self.server.lock:
            self.server.completed_streams += 1

    def chunk(self, data: bytes) -> None:
        """One chunk of a chunked body."""
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def drop(self) -> None:
        """Close the connection without ending the answer."""
        self._handler.close_connection = True
        self._handler.connection.shutdown(socket.SHUT_RDWR)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; ``True`` (at once) when the client hangs up meanwhile."""
        sock = self._handler.connection
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.server.stopping.is_set():
            readable, _, _ = select.select([sock], [], [], min(left, 0.05))
            if readable:
                try:
                    if not sock.recv(1, socket.MSG_PEEK):
                        return True
                except (OSError, ValueError):
                    return True
                time.sleep(min(left, 0.05))  # data of a next request: not a hang-up
        return False

    def _head(self, status: int, lines: list[str]) -> bytes:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        text = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{line}\r\n" for line in lines)
        return (text + "\r\n").encode("latin-1")

    def _write(self, data: bytes) -> None:
        self._handler.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    @property
    def fake(self) -> FakeServer[Any]:
        return self.server.fake

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake.lock:
            self.fake.connections += 1

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        route, params = None, {}
        for method, pattern, name in fake._routes:
            found = pattern.fullmatch(parts.path)
            if method == self.command and found:
                route, params = name, found.groupdict()
                break
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request: Any = fake.request_type(
            method=self.command,
            path=parts.path,
            route=route,
            params=params,
            query={key: values[-1] for key, values in parse_qs(parts.query).items()},
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw=raw,
            peer=(str(self.client_address[0]), int(self.client_address[1])),
        )
        with fake.lock:
            fake.requests.append(request)
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._answer(request, fake._take_fault(route))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        finally:
            with fake.lock:
                fake.in_flight -= 1

    def _answer(self, request: Request, fault: Fault | None) -> None:
        fake, exchange = self.fake, Exchange(self, request, fault)
        if fault is not None and fault.kind == "drop" and fault.after is None:
            exchange.drop()
            return
        if fault is not None and fault.kind == "status":
            body = fault.body
            if body is None:
                body = fake.error_body(fault.status, fault.error or f"scripted {fault.status}")
            if isinstance(body, bytes):
                exchange.send(fault.status, body, headers=fault.headers)
            else:
                exchange.json(fault.status, body, fault.headers)
            return
        if fault is not None and fault.kind == "text":
            exchange.send(fault.status, str(fault.body).encode(), "text/html; charset=utf-8")
            return
        delay = (
            fault.delay_s if fault is not None and fault.kind == "slow" else 0
        ) + fake.answer_delay_s
        if delay and exchange.pause(delay):
            return
        fake.answer(exchange)
