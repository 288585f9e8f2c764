"""The SSE answer of ``POST /rag/stream``: a ``sources`` event, ``text`` events, then ``done``
(or ``error`` if generation fails after the stream started). Every ``data`` is one JSON line.

The twin's stream is closed when the answer ends for any reason: exhausted, failed, or the
client gone (sse-starlette cancels the event generator on ``http.disconnect``), so a
disconnect stops generation and frees the model at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from llm_twin_sdk import AsyncAnswerStream

from .errors import problem_for
from .schemas import Done, ErrorBody, ErrorDetail, Source
from .settings import ServiceSettings

__all__ = ["AnswerEvents"]

log = logging.getLogger("service")


def _event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(event=name, data=json.dumps(data, ensure_ascii=False))


class AnswerEvents(EventSourceResponse):
    """Server-sent events of an entered :class:`~llm_twin_sdk.AsyncAnswerStream`, which this
    response closes whatever happens (even if it is never sent)."""

    def __init__(
        self, stream: AsyncAnswerStream, *, request_id: str, settings: ServiceSettings
    ) -> None:
        super().__init__(self._events(), ping=settings.stream_ping_s)
        self._stream = stream
        self._request_id = request_id
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # a disconnect cancels us: close anyway
                await self._stream.aclose()

    async def _events(self) -> AsyncIterator[ServerSentEvent]:
        stream = self._stream
        yield _event("sources", {"sources": [Source.of(c).model_dump() for c in stream.sources]})
        try:
            async for piece in stream:
                yield _event("text", {"text": piece})
        except Exception as exc:
            problem = problem_for(exc, self._settings)
            log.warning(
                "request %s: stream failed: %s -> %s",
                self._request_id,
                type(exc).__name__,
                problem.type,
            )
            detail = ErrorDetail(
                type=problem.type, message=problem.message, request_id=self._request_id
            )
            yield _event("error", ErrorBody(error=detail).model_dump())
            return
        answer = stream.answer
        assert answer is not None  # the stream was exhausted
        yield _event("done", Done.of(answer).model_dump())
