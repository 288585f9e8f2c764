"""What the service tests share: an httpx client over the app in process (its lifespan run)
and a parser of server-sent events. (pytest puts examples/ on the path: ``import service``.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent

QUESTION = "Which response header stops nginx from buffering server-sent events?"


@asynccontextmanager
async def served(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on ``app`` in process, inside the app's lifespan."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://service", headers=headers
        ) as client:
            yield client


def sse_events(text: str) -> list[tuple[str, Any]]:
    """``(event, data)`` of each server-sent event in ``text``; data parsed as JSON.
    Comments (``: ping``) are skipped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
"""Socket options of every loopback client here: no Nagle delay on small requests."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """The example service under a real uvicorn process on 127.0.0.1 (a free port), as its
    README runs it; ``env`` adds ``LLM_TWIN_*`` settings. Use as a context manager: entering
    waits for ``/healthz``; leaving stops the process (SIGINT, then kill) and keeps its log.
    """

    def __init__(self, env: dict[str, str], log: Path, *, startup_s: float = 180.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.startup_s = startup_s
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_TWIN_")}
        self.env |= {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")} | env
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "examples"),
            "--factory", "service.app:create_app", "--host", "127.0.0.1",
            "--port", str(self.port), "--no-access-log", "--timeout-graceful-shutdown", "10",
        ]  # fmt: skip

    def __enter__(self) -> ServiceProcess:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command(), env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.startup_s
        with httpx.Client(transport=httpx.HTTPTransport(socket_options=NODELAY)) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the service exited at start:\n{self.output()}")
                try:
                    if client.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the service did not start in {self.startup_s} s:\n{self.output()}")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")
