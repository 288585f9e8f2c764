"""A TGI-like model server over HTTP (it also speaks LMI's ``/invocations``).

Routes, with the shapes of the real servers (:mod:`fakes.shapes`):

- ``POST /generate`` and ``/generate_stream``: TGI generate (SSE token events, the last one
  with ``generated_text`` and ``details``; no ``[DONE]``).
- ``POST /v1/chat/completions`` and ``/v1/completions``: TGI's Messages API (OpenAI chunks,
  usage when ``stream_options.include_usage``, then ``[DONE]``).
- ``POST /invocations``: LMI (``inputs`` / ``parameters`` with ``stop_sequences``, or
  ``messages``); streams are JSON lines.
- ``POST /tokenize`` -> one entry per whitespace-separated word; ``GET /health``, ``/info``.

Requests are validated as TGI validates them (422 ``{"error", "error_type": "validation"}``;
LMI: 424 ``{"error", "code"}``). Streams are written as HTTP chunks cut inside ``data:``
lines, JSON and multi-byte characters. Answers come from :class:`fakes.shapes.Model` (the token
script, ``respond``, or the real local model). Faults (``server.fail``) apply to the generation
routes only; ``Fault.error_event`` sends each protocol's own error event.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from typing import Any

from llm_twin_sdk import LocalBackend
from llm_twin_sdk.errors import LLMTwinError

from .server import Exchange, FakeServer, Fault, Request
from .shapes import (
    DEFAULT_TOKENS,
    LMI_FAILED,
    Model,
    read_ask,
    sse,
    sse_cuts,
    stream_events,
    whole_answer,
)

__all__ = ["GENERATION_ROUTES", "TGIServer"]

GENERATION_ROUTES = frozenset({"generate", "generate_stream", "chat", "completions", "invocations"})
_CUDA = "Request failed during generation: Server error: CUDA out of memory"


class TGIServer(FakeServer[Request]):
    """A TGI-like server (plus LMI's ``/invocations``) on 127.0.0.1.

    Args:
        backend: answer with this real local model instead of the token script.
        tokens: the scripted answer (``server.tokens`` can be changed between calls).
        token_delay_s: pause between streamed events.
        require_token: answer 401 unless ``Authorization: Bearer <require_token>``.
        ssl_context: serve HTTPS with this server-side context.
        respond: answer with ``respond(prompt text)``; ``backend`` wins over it.
    """

    route_table = (
        ("POST", r"/generate", "generate"),
        ("POST", r"/generate_stream", "generate_stream"),
        ("POST", r"/v1/chat/completions", "chat"),
        ("POST", r"/v1/completions", "completions"),
        ("POST", r"/invocations", "invocations"),
        ("POST", r"/tokenize", "tokenize"),
        ("GET", r"/health|/info", "info"),
    )
    faulted_routes = GENERATION_ROUTES

    def __init__(
        self,
        *,
        backend: LocalBackend | None = None,
        tokens: Sequence[str] = DEFAULT_TOKENS,
        token_delay_s: float = 0.0,
        require_token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        respond: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(ssl_context=ssl_context)
        self.model = Model(backend, tokens, respond)
        self.token_delay_s = token_delay_s
        self.require_token = require_token

    @property
    def tokens(self) -> list[str]:
        return self.model.tokens

    @tokens.setter
    def tokens(self, tokens: Sequence[str]) -> None:
        self.model.tokens = list(tokens)

    @property
    def respond(self) -> Callable[[str], str] | None:
        return self.model.respond

    @respond.setter
    def respond(self, respond: Callable[[str], str] | None) -> None:
        self.model.respond = respond

    def generation_requests(self) -> list[Request]:
        """The requests of the generation routes, in order."""
        with self.lock:
            return [r for r in self.requests if r.route in GENERATION_ROUTES]

    def error_body(self, status: int, message: str) -> Any:
        kind = {422: "validation", 429: "overloaded"}.get(status, "fault")
        return {"error": message, "error_type": kind}

    # -- answers ------------------------------------------------------------------------

    def answer(self, exchange: Exchange) -> None:
        request, route = exchange.request, exchange.request.route
        if route == "info":
            exchange.json(200, {"model_id": "scripted-tgi"})
            return
        if route is None:
            exchange.json(404, self.error_body(404, f"no route {request.path}"))
            return
        token = request.headers.get("authorization")
        if self.require_token is not None and token != f"Bearer {self.require_token}":
            exchange.json(401, {"error": "Unauthorized", "error_type": "authentication"})
            return
        if route == "tokenize":
            words = str((request.body or {}).get("inputs", "")).split()
            exchange.json(200, [{"id": i, "text": w} for i, w in enumerate(words)])
            return
        lmi = route == "invocations"
        try:
            if isinstance(request.body, str):
                raise ValueError("Failed to deserialize the JSON body")
            ask = read_ask(request.body, lmi=lmi)
        except (ValueError, TypeError, KeyError, LLMTwinError) as exc:
            if lmi:
                exchange.json(424, {"error": f"Input validation error: {exc}", "code": 424})
            else:
                exchange.json(422, self.error_body(422, f"Input validation error: {exc}"))
            return
        streaming = route == "generate_stream" or (
            route not in ("generate", "generate_stream") and bool(request.body.get("stream"))
        )
        if not streaming:
            exchange.json(200, whole_answer(self.model, ask))
            return

        def write(part: bytes) -> None:
            for cut in sse_cuts(part):
                exchange.chunk(cut)

        failure = _tgi_failure if ask.kind == "generate" else _openai_failure
        exchange.stream(
            stream_events(self.model, ask, container="lmi" if lmi else "tgi"),
            content_type="application/jsonlines" if lmi else "text/event-stream",
            write=write,
            error_event=lambda fault: write(LMI_FAILED if lmi else failure(fault)),
            delay_s=self.token_delay_s,
        )


def _tgi_failure(fault: Fault) -> bytes:
    return sse(fault.body or {"error": _CUDA, "error_type": "generation"})


def _openai_failure(fault: Fault) -> bytes:
    return sse(fault.body or {"error": {"message": _CUDA, "type": "generation"}})
