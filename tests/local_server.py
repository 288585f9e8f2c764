"""The plumbing shared by the HTTP test servers: 127.0.0.1, an ephemeral port, a background
thread, a context manager, and handler errors kept for tests to inspect."""

from __future__ import annotations

import ssl
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["LocalHTTPServer"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalHTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError, ssl.SSLError)):
            return  # a client that went away or failed its TLS handshake: expected in tests
        self.owner.handler_errors.append("".join(traceback.format_exc()))


class LocalHTTPServer:
    """An HTTP(S) server on 127.0.0.1 running ``handler`` in a background thread.

    Use as a context manager (or :meth:`start` / :meth:`stop`). Errors raised in handler
    threads are collected in :attr:`handler_errors` instead of being printed.
    """

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.handler_errors: list[str] = []
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.owner = self
        self._scheme = "http"
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the server stops."""
        self._stopping.wait(seconds)
