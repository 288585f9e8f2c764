"""The service's own settings, from ``LLM_TWIN_SERVICE_*`` variables (the twin's settings are
the SDK's ``LLM_TWIN_*`` ones, read by :class:`llm_twin_sdk.TwinSettings`).

Example: ``LLM_TWIN_SERVICE_API_KEY=s3cret LLM_TWIN_SERVICE_MAX_K=5 uvicorn ...``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from llm_twin_sdk import ConfigurationError
from llm_twin_sdk.types import describe_validation_error

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """Limits, the optional API key and timeouts of the business service.

    Every request field has a bound here; a request outside one gets a 400 (or 413 for
    sizes) before any retrieval or generation runs.
    """

    model_config = SettingsConfigDict(
        env_prefix="LLM_TWIN_SERVICE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    api_key: SecretStr | None = Field(
        None,
        description="When set, every route but /healthz and /readyz needs "
        "`Authorization: Bearer <key>` or `X-API-Key: <key>`.",
    )
    max_body_bytes: int = Field(16_384, gt=0, le=1_048_576, description="Largest request body.")
    max_query_chars: int = Field(2_000, gt=0, description="Longest query, in characters.")
    max_k: int = Field(20, gt=0, le=100, description="Most sources a request may ask for.")
    max_new_tokens: int = Field(512, gt=0, description="Highest max_new_tokens a request may set.")
    max_temperature: float = Field(2.0, ge=0, description="Highest temperature a request may set.")
    retry_after_s: int = Field(
        2, ge=0, description="Retry-After of a 503 (and of a 429 that gives none)."
    )
    ready_timeout_s: float = Field(2.0, gt=0, description="Longest /readyz check.")
    stream_ping_s: float = Field(15.0, gt=0, description="SSE keep-alive comment interval.")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(describe_validation_error("ServiceSettings", exc)) from None
