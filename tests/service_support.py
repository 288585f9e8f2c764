"""What the service tests share: an httpx client over the app in process (its lifespan run)
and a parser of server-sent events. (pytest puts examples/ on the path: ``import service``.)"""

from __future__ import annotations

import json
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
