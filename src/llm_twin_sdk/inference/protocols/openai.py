"""OpenAI-compatible chat and text completions: vLLM, llama.cpp servers, TGI's Messages API
(shapes: docs/architecture.md, "Wire protocols").

``top_p`` is sent only when sampling and below 1 (TGI's Messages API rejects 1.0 and samples
whenever it is set); ``repetition_penalty`` is a top-level field, never ``presence_penalty``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, get_args

from ...types import GenerationParams, Message
from .base import Answer, ErrorBody, StreamEvent, WireProtocol, WireRequest, count_or_none

__all__ = ["JSON_SCHEMA_FORMATS", "JsonSchemaFormat", "OpenAICompatible"]

JsonSchemaFormat: TypeAlias = Literal["compatible", "json_object", "json_schema", "tgi"]
"""How ``GenerationParams.json_schema`` is sent as ``response_format``:
``"compatible"`` ``{"type": "json_object", "schema": s, "value": s}`` (llama.cpp servers read
``schema``, TGI's Messages API ``value``; vLLM then only guarantees *some* JSON object);
``"json_object"`` ``{"type": "json_object", "schema": s}`` (llama-cpp-python's server);
``"json_schema"`` OpenAI's ``{"type": "json_schema", "json_schema": {"name", "schema"}}``
(vLLM, SGLang, llama-server, OpenAI; rejected by llama-cpp-python and TGI); ``"tgi"``
``{"type": "json_object", "value": s}`` (TGI's Messages API, its grammar type)."""

JSON_SCHEMA_FORMATS: tuple[JsonSchemaFormat, ...] = get_args(JsonSchemaFormat)


def response_format(schema: dict[str, Any], shape: JsonSchemaFormat) -> dict[str, Any]:
    if shape == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    if shape == "tgi":
        return {"type": "json_object", "value": schema}
    if shape == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object", "schema": schema, "value": schema}


class OpenAICompatible(WireProtocol):
    """OpenAI-style chat and text completions, with the ``model`` field (omitted when
    ``None``), the ``response_format`` shape, whether streams ask for usage, and extra fields
    for every request."""

    name = "OpenAI-compatible"

    def __init__(
        self,
        *,
        model: str | None = None,
        json_schema_format: JsonSchemaFormat = "compatible",
        stream_usage: bool = True,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.json_schema_format = json_schema_format
        self.stream_usage = stream_usage
        self.extra_body = dict(extra_body or {})

    def request(
        self, prompt: str | Sequence[Message], params: GenerationParams, *, stream: bool
    ) -> WireRequest:
        body: dict[str, Any] = {} if self.model is None else {"model": self.model}
        if isinstance(prompt, str):
            route, body["prompt"] = "/v1/completions", prompt
        else:
            route = "/v1/chat/completions"
            body["messages"] = [{"role": m.role, "content": m.content} for m in prompt]
        body.update(self.options(params, stream=stream))
        if stream and self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        if params.json_schema is not None:
            body["response_format"] = response_format(params.json_schema, self.json_schema_format)
        body.update(self.extra_body)
        return WireRequest(route, body, stream, self.framing, params.stop)

    @staticmethod
    def options(params: GenerationParams, *, stream: bool) -> dict[str, Any]:
        """The sampling fields of a chat or text completion (LMI's chat schema shares them)."""
        options: dict[str, Any] = {
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "stream": stream,
        }
        if params.temperature > 0 and params.top_p < 1:
            options["top_p"] = params.top_p
        if params.repetition_penalty != 1.0:
            options["repetition_penalty"] = params.repetition_penalty
        if params.stop:
            options["stop"] = list(params.stop)
        if params.seed is not None:
            options["seed"] = params.seed
        return options

    @classmethod
    def read_answer(cls, data: dict[str, Any]) -> Answer | None:
        if "choices" not in data:
            return None
        choice = data["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice.get("text")
        if text is not None and not isinstance(text, str):
            raise TypeError(f"content is not text: {text!r}")
        usage = data.get("usage") or {}
        return Answer(
            text=text or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=count_or_none(usage.get("prompt_tokens")),
            completion_tokens=count_or_none(usage.get("completion_tokens")),
        )

    @classmethod
    def read_event(cls, event: dict[str, Any]) -> StreamEvent | None:
        if "choices" not in event:
            return None
        choices = event.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        text = delta.get("content") if "delta" in choice else choice.get("text")
        if not isinstance(text, str):
            text = str(text or "")
        usage = event.get("usage")
        if not usage:  # a chunk of text: no counts to read
            return StreamEvent(text, finish_reason=choice.get("finish_reason"))
        return StreamEvent(
            text,
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=count_or_none(usage.get("prompt_tokens")),
            completion_tokens=count_or_none(usage.get("completion_tokens")),
        )

    @classmethod
    def read_error(cls, data: dict[str, Any]) -> ErrorBody | None:
        error = data.get("error")
        if not isinstance(error, dict):
            return None
        message = error.get("message") or error.get("msg") or error
        code = error.get("code")
        status = code if isinstance(code, int) and 100 <= code < 600 else None
        return ErrorBody(str(message)[:500], status)
