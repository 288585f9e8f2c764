"""Errors to HTTP answers: one table from the SDK's error classes (by base class, so a new
subclass lands in its family's status) to a status, a stable ``type`` and a message.

Input errors (the 4xx of the client's own request) keep the SDK's message, which names what
to fix; every other error gets a fixed message: no internals (URLs, paths, hosts, stack
frames) reach a client. Every error body is ``{"error": {"type", "message", "request_id"}}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from llm_twin_sdk import errors
from llm_twin_sdk.types import describe_validation_error

from .schemas import QUERY_TOO_LONG, ErrorBody, ErrorDetail
from .settings import ServiceSettings

__all__ = [
    "SDK_ERRORS",
    "Problem",
    "ServiceError",
    "install_error_handlers",
    "invalid_request",
    "problem_for",
    "problem_response",
    "request_id_of",
]

log = logging.getLogger("service")


@dataclass(frozen=True)
class Problem:
    """One error answer: status, ``type``, message and extra headers (``Retry-After``...)."""

    status: int
    type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class ServiceError(Exception):
    """An error the service itself raises (authentication, request format, readiness)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


# (SDK error class, status, type, fixed message or None to keep the SDK's), first match wins.
# ModelBusyError (the local model's bounded queue wait) is a TimeoutError, but the request
# never ran: 503 with Retry-After, not 504.
SDK_ERRORS: tuple[tuple[tuple[type[Exception], ...], int, str, str | None], ...] = (
    ((errors.PromptTooLongError, errors.PayloadTooLargeError), 413, "too_large", None),
    ((errors.InvalidInputError,), 400, "invalid_request", None),
    ((errors.ThrottledError,), 429, "throttled", "the model is throttled; retry later"),
    (
        (errors.ModelBusyError,),
        503,
        "model_busy",
        "the model is busy with other requests; retry later",
    ),
    (
        (errors.ModelUnavailableError, errors.EndpointNotFoundError, errors.ModelLoadError),
        503,
        "model_unavailable",
        "the model is unavailable; retry later",
    ),
    ((errors.VectorStoreError,), 503, "store_unavailable", "the document store is unavailable"),
    ((TimeoutError,), 504, "timeout", "the model did not answer in time"),
    ((errors.InferenceError,), 502, "model_error", "the model failed to answer"),
)
_RETRY_AFTER = frozenset({429, 503})


def request_id_of(request: Request) -> str:
    """The request's id (set by :class:`~service.guard.RequestGuard`)."""
    return str(getattr(request.state, "request_id", "-"))


def problem_for(exc: BaseException, settings: ServiceSettings) -> Problem:
    """The answer to ``exc``: from :data:`SDK_ERRORS`, else a 500 that says nothing more."""
    if isinstance(exc, ServiceError):
        return exc.problem
    for classes, status, kind, message in SDK_ERRORS:
        if classes and isinstance(exc, classes):
            headers = {"Retry-After": str(settings.retry_after_s)} if status in _RETRY_AFTER else {}
            return Problem(status, kind, message or str(exc), headers)
    return Problem(500, "internal", "internal error; the request id identifies it in the logs")


def problem_response(problem: Problem, request_id: str) -> JSONResponse:
    """The JSON answer of ``problem``, with the request id in the body."""
    body = ErrorBody(
        error=ErrorDetail(type=problem.type, message=problem.message, request_id=request_id)
    )
    return JSONResponse(body.model_dump(), status_code=problem.status, headers=problem.headers)


def invalid_request(exc: ValidationError) -> ServiceError:
    """A request body that failed validation: malformed JSON and other problems -> 400, a
    query over the length limit -> 413. The message names each field (never the values of
    unknown fields)."""
    kinds = {e["type"] for e in exc.errors()}
    if "json_invalid" in kinds:
        detail = next(e["msg"] for e in exc.errors() if e["type"] == "json_invalid")
        return ServiceError(Problem(400, "invalid_json", f"the body is not valid JSON: {detail}"))
    status = 413 if QUERY_TOO_LONG in kinds else 400
    kind = "too_large" if status == 413 else "invalid_request"
    return ServiceError(Problem(status, kind, describe_validation_error("request", exc)))


def install_error_handlers(app_: FastAPI, settings: ServiceSettings) -> None:
    """Answer SDK errors, service errors and Starlette's own (404, 405) in the one format."""

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        problem = problem_for(exc, settings)
        rid = request_id_of(request)
        if problem.status >= 500:
            log.warning(
                "request %s failed: %s -> %d %s", rid, type(exc).__name__, problem.status, exc
            )
        return problem_response(problem, rid)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        problem = Problem(exc.status_code, kind, str(exc.detail), dict(exc.headers or {}))
        return problem_response(problem, request_id_of(request))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        problem = Problem(400, "invalid_request", f"invalid request: {message}")
        return problem_response(problem, request_id_of(request))

    app_.add_exception_handler(errors.LLMTwinError, on_error)
    app_.add_exception_handler(ServiceError, on_error)
    app_.add_exception_handler(HTTPException, on_http)
    app_.add_exception_handler(RequestValidationError, on_validation)
