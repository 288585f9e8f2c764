"""What the service reads and answers: the request body, the answer, the SSE events and the
error body. Bounds that depend on :class:`~service.settings.ServiceSettings` are checked
against the settings passed as validation context (``{"settings": ...}``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from llm_twin_sdk import Answer, Chunk, GenerationParams, StageTimings, Usage

from .settings import ServiceSettings

__all__ = [
    "QUERY_TOO_LONG",
    "SOURCE_TEXT_CHARS",
    "Done",
    "ErrorBody",
    "ErrorDetail",
    "RagRequest",
    "RagResponse",
    "Source",
]

QUERY_TOO_LONG = "query_too_long"
"""The validation error type of a query over the limit (answered 413, not 400)."""

SOURCE_TEXT_CHARS = 280
"""Characters of a source's text shown in an answer (the start of the chunk)."""

FilterValue = Annotated[str, Field(max_length=200)]


class RagRequest(BaseModel):
    """A question for the twin. Unknown fields are rejected; JSON types are strict (``"3"`` is
    not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    query: str = Field(description="The question (at most `max_query_chars` characters).")
    k: int | None = Field(None, ge=1, description="Sources to retrieve (1..`max_k`).")
    filters: dict[str, FilterValue | list[FilterValue]] | None = Field(
        None,
        max_length=8,
        description='Metadata filters, e.g. {"author": "Maya Okafor", "kind": ["post"]}.',
    )
    max_new_tokens: int | None = Field(None, ge=1, description="At most `max_new_tokens`.")
    temperature: float | None = Field(None, ge=0, description="0 (greedy) to `max_temperature`.")

    @field_validator("query")
    @classmethod
    def _query_fits(cls, query: str, info: ValidationInfo) -> str:
        limit = _settings(info).max_query_chars
        if len(query) > limit:
            raise PydanticCustomError(
                QUERY_TOO_LONG,
                "query has {length} characters; the limit is {limit}",
                {"length": len(query), "limit": limit},
            )
        return query

    @field_validator("k")
    @classmethod
    def _k_fits(cls, k: int | None, info: ValidationInfo) -> int | None:
        _at_most(k, _settings(info).max_k)
        return k

    @field_validator("max_new_tokens")
    @classmethod
    def _tokens_fit(cls, tokens: int | None, info: ValidationInfo) -> int | None:
        _at_most(tokens, _settings(info).max_new_tokens)
        return tokens

    @field_validator("temperature")
    @classmethod
    def _temperature_fits(cls, temperature: float | None, info: ValidationInfo) -> float | None:
        _at_most(temperature, _settings(info).max_temperature)
        return temperature

    def params(self, defaults: GenerationParams) -> GenerationParams:
        """``defaults`` with this request's ``max_new_tokens`` and ``temperature``."""
        update = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature}
        return defaults.model_copy(update={k: v for k, v in update.items() if v is not None})


def _settings(info: ValidationInfo) -> ServiceSettings:
    context = info.context or {}
    settings = context.get("settings")
    return settings if isinstance(settings, ServiceSettings) else ServiceSettings()


def _at_most(value: float | None, limit: float) -> None:
    if value is not None and value > limit:
        raise ValueError(f"must be at most {limit}")


class Source(BaseModel):
    """One chunk the answer was given, best first; ``text`` is its start."""

    id: str
    document_id: str
    title: str | None
    author: str | None
    score: float | None
    text: str

    @classmethod
    def of(cls, chunk: Chunk) -> Source:
        text = chunk.text
        if len(text) > SOURCE_TEXT_CHARS:
            text = text[: SOURCE_TEXT_CHARS - 1].rstrip() + "…"
        return cls(
            id=chunk.id,
            document_id=chunk.document_id,
            title=chunk.metadata.title,
            author=chunk.metadata.author,
            score=chunk.score,
            text=text,
        )


class Done(BaseModel):
    """The end of an answer: why it stopped, tokens used, seconds per stage."""

    finish_reason: str
    usage: Usage
    timings: StageTimings

    @classmethod
    def of(cls, answer: Answer) -> Done:
        return cls(finish_reason=answer.finish_reason, usage=answer.usage, timings=answer.timings)


class RagResponse(Done):
    """The answer of ``POST /rag``."""

    request_id: str
    answer: str
    sources: list[Source]

    @classmethod
    def answering(cls, answer: Answer, request_id: str) -> RagResponse:
        return cls(
            request_id=request_id,
            answer=answer.text,
            sources=[Source.of(chunk) for chunk in answer.sources],
            finish_reason=answer.finish_reason,
            usage=answer.usage,
            timings=answer.timings,
        )


class ErrorDetail(BaseModel):
    type: str = Field(description="Stable, machine-readable: invalid_request, throttled...")
    message: str = Field(description="For people; never internals.")
    request_id: str


class ErrorBody(BaseModel):
    """Every error answer, and the data of an SSE ``error`` event."""

    error: ErrorDetail
