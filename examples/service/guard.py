"""RequestGuard: the ASGI middleware in front of every route.

In order: give the request an id (a sane incoming ``X-Request-ID`` is kept, else a new one)
and send it back on every answer; check the API key (constant-time; ``/healthz`` and
``/readyz`` are open, for probes); refuse a body over the limit with 413 before reading more
of it; answer an unexpected exception with a bare 500 (the traceback goes to the log, never to
the client). A pure ASGI middleware, so streamed answers and disconnects pass through as they
are (Starlette's ``BaseHTTPMiddleware`` would buffer them).
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import Problem, problem_for, problem_response
from .settings import ServiceSettings

__all__ = ["OPEN_PATHS", "RequestGuard"]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Routes answered without an API key (liveness and readiness probes)."""

_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

log = logging.getLogger("service")


class RequestGuard:
    """Request id, API key, body limit and last-resort 500 for ``app``."""

    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.app = app
        self.settings = settings
        key = settings.api_key.get_secret_value() if settings.api_key else None
        self._key = key.encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        incoming = headers.get("x-request-id", "")
        rid = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        problem = self._refused(scope, headers)
        if problem is None and scope["method"] in _BODY_METHODS:
            body = await _read_body(receive, self.settings.max_body_bytes)
            if body is None:
                return  # the client left while sending
            if isinstance(body, Problem):
                problem = body
            else:
                receive = _replay(body, receive)
        if problem is not None:
            await problem_response(problem, rid)(scope, receive, send_with_id)
            return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.exception("request %s: unexpected %s", rid, type(exc).__name__)
            if started:
                raise  # headers went out: the server closes the connection
            await problem_response(problem_for(exc, self.settings), rid)(
                scope, receive, send_with_id
            )

    def _refused(self, scope: Scope, headers: Headers) -> Problem | None:
        """401 without the right API key, 413 for a declared body over the limit."""
        if self._key is not None and scope["path"] not in OPEN_PATHS:
            given = _presented_key(headers)
            if given is None:
                return _unauthorized(
                    "an API key is required: send `Authorization: Bearer <key>` or "
                    "`X-API-Key: <key>`"
                )
            if not hmac.compare_digest(given.encode(), self._key):
                return _unauthorized("the API key is not valid")
        declared = headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.settings.max_body_bytes
        ):
            return _too_large(self.settings.max_body_bytes)
        return None


def _presented_key(headers: Headers) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""
    return headers.get("x-api-key")


def _unauthorized(message: str) -> Problem:
    return Problem(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def _too_large(limit: int) -> Problem:
    return Problem(413, "too_large", f"the request body is over the limit of {limit} bytes")


async def _read_body(receive: Receive, limit: int) -> bytes | Problem | None:
    """The whole body, a 413 problem once it passes ``limit`` (nothing more is read), or
    ``None`` if the client disconnected."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            return _too_large(limit)
        parts.append(part)
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then the client's own messages (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
