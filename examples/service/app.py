"""The business microservice of the LLM Twin architecture: FastAPI over one AsyncLLMTwin.

Run it (the embedded footing; see README.md)::

    uvicorn --app-dir examples --factory service.app:create_app --port 8000

The pattern the SDK recommends for serving (docs/service.md): the twin is built once, in the
lifespan (its models load in a worker thread, off the event loop), shared by every request
and closed at shutdown; routes are ``async`` and await the twin, which never blocks the loop.
Tests hand their own twin in: ``create_app(settings, twin=twin)`` borrows it (the caller
closes it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import ValidationError

from llm_twin_sdk import AsyncLLMTwin, LLMTwinError, TwinSettings

from .errors import Problem, ServiceError, install_error_handlers, invalid_request, request_id_of
from .events import AnswerEvents
from .guard import RequestGuard
from .schemas import ErrorBody, RagRequest, RagResponse
from .settings import ServiceSettings

__all__ = ["create_app"]

_JSON_TYPES = frozenset({"application/json"})


def create_app(
    settings: ServiceSettings | None = None,
    *,
    twin: AsyncLLMTwin | None = None,
    twin_settings: TwinSettings | None = None,
) -> FastAPI:
    """The service's ASGI app.

    Args:
        settings: the service's limits and API key (default: ``LLM_TWIN_SERVICE_*``).
        twin: a twin to serve, borrowed (its creator closes it). Without one, the lifespan
            builds ``AsyncLLMTwin.from_settings(twin_settings)`` (``LLM_TWIN_*``) and closes
            it at shutdown.
        twin_settings: the settings of the twin built when ``twin`` is not given.
    """
    service = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if twin is not None:
            app.state.twin = twin
            yield
            return
        built = await asyncio.to_thread(AsyncLLMTwin.from_settings, twin_settings)
        app.state.twin = built
        try:
            yield
        finally:
            await built.aclose()

    errors = {status: {"model": ErrorBody} for status in (400, 401, 413, 415, 429, 503, 504)}
    app = FastAPI(
        title="LLM Twin service",
        summary="RAG answers in a person's voice: retrieval + the LLM microservice.",
        lifespan=lifespan,
        responses=errors,  # type: ignore[arg-type]  # FastAPI's dict of status -> schema
    )
    app.state.settings = service
    app.add_middleware(RequestGuard, settings=service)
    install_error_handlers(app, service)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", readyz, methods=["GET"])
    body = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RagRequest.model_json_schema()}},
        }
    }
    app.add_api_route("/rag", rag, methods=["POST"], response_model=RagResponse, openapi_extra=body)
    app.add_api_route(
        "/rag/stream",
        rag_stream,
        methods=["POST"],
        openapi_extra=body,
        response_class=AnswerEvents,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    return app


def _twin(request: Request) -> AsyncLLMTwin:
    twin: AsyncLLMTwin = request.app.state.twin
    return twin


def _settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


Twin = Annotated[AsyncLLMTwin, Depends(_twin)]
Settings = Annotated[ServiceSettings, Depends(_settings)]


async def _read(request: Request, settings: ServiceSettings) -> RagRequest:
    """The request body as a :class:`RagRequest`: 415 unless JSON, 400 / 413 when invalid."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in _JSON_TYPES:
        raise ServiceError(
            Problem(
                415,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`, "
                f"not {media or 'nothing'!r}",
            )
        )
    raw = await request.body()  # bounded by RequestGuard
    try:
        return RagRequest.model_validate_json(raw, context={"settings": settings})
    except ValidationError as exc:
        raise invalid_request(exc) from None


async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Touches neither the model nor the store."""
    return {"status": "ok"}


async def readyz(request: Request, twin: Twin, settings: Settings) -> dict[str, Any]:
    """Readiness: the store counts its documents and the model's tokenizer a tiny prompt, within
    ``ready_timeout_s``; 503 otherwise."""
    try:
        async with asyncio.timeout(settings.ready_timeout_s):
            documents = await twin.count()
            await asyncio.to_thread(twin.client.count_tokens, "ready?")
    except (LLMTwinError, TimeoutError) as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else f"failed ({type(exc).__name__})"
        raise ServiceError(
            Problem(
                503,
                "not_ready",
                f"the readiness check {what}",
                {"Retry-After": str(settings.retry_after_s)},
            )
        ) from exc
    return {
        "status": "ready",
        "documents": documents,
        "context_window": twin.client.context_window,
    }


async def rag(request: Request, twin: Twin, settings: Settings) -> RagResponse:
    """Answer a question with its sources, usage and stage timings."""
    ask = await _read(request, settings)
    answer = await twin.ask(
        ask.query, k=ask.k, params=ask.params(twin.client.params), filters=ask.filters
    )
    return RagResponse.answering(answer, request_id_of(request))


async def rag_stream(request: Request, twin: Twin, settings: Settings) -> AnswerEvents:
    """Answer as server-sent events: ``sources``, ``text``..., then ``done`` (or ``error``).

    The stream is entered here, so a request that fails before its first piece (bad input,
    model unavailable, throttled) gets its HTTP status, not a 200 with an error event.
    """
    ask = await _read(request, settings)
    stream = twin.stream(
        ask.query, k=ask.k, params=ask.params(twin.client.params), filters=ask.filters
    )
    await stream  # retrieves, assembles and opens the generation; raises before any piece
    return AnswerEvents(stream, request_id=request_id_of(request), settings=settings)
