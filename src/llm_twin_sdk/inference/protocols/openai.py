"""OpenAI-compatible chat and text completions: vLLM, llama.cpp servers, TGI's Messages API.

- Chat: ``{"messages": [...], "max_tokens", "temperature", "stream", ...}`` to
  ``/v1/chat/completions`` (SageMaker: ``/invocations``, where TGI and LMI read ``messages``).
- Text: ``{"prompt": str, ...}`` to ``/v1/completions``.
- Answer: ``{"choices": [{"message": {"content"} | "text", "finish_reason"}], "usage"}``.
- Stream (SSE): ``data:{"choices": [{"delta": {"content"} | "text", "finish_reason"}]}``, a
  usage chunk when asked with ``stream_options.include_usage``, then ``data: [DONE]``.
- Errors: ``{"error": {"message", "code"?}}``.

Parameters:

- ``top_p`` is sent only when sampling (``temperature > 0``) and below 1: TGI's Messages API
  rejects 1.0 and starts sampling whenever ``top_p`` is set; elsewhere 1.0 is the default.
- ``repetition_penalty`` (multiplicative, 1.0 = off) is sent as a top-level
  ``repetition_penalty`` when it is not 1.0: vLLM (and LMI's vLLM) read that field, servers
  that do not know it ignore it. It is never turned into ``presence_penalty``: that is OpenAI's
  *additive* penalty on every other server (vLLM, llama.cpp, OpenAI), where ``1.1 - 2 = -0.9``
  would *reward* repetition. TGI's Messages API alone reads ``presence_penalty + 2`` as its
  repetition penalty; with TGI, use the generate protocol (``api="tgi"`` / ``"generate"``) to
  apply one, or send ``presence_penalty`` yourself (``HttpBackend(extra_body=...)``).
- ``json_schema`` becomes ``response_format`` in the shape :data:`JsonSchemaFormat` names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

from ...types import GenerationParams, Message
from .base import Answer, ErrorBody, StreamEvent, WireProtocol, WireRequest, count_or_none

__all__ = ["JSON_SCHEMA_FORMATS", "JsonSchemaFormat", "OpenAICompatible"]

JsonSchemaFormat: TypeAlias = Literal["compatible", "json_object", "json_schema", "tgi"]
"""How ``GenerationParams.json_schema`` is sent as ``response_format``:

- ``"compatible"``: ``{"type": "json_object", "schema": ..., "value": ...}``, the schema under
  both keys: llama.cpp servers read ``schema``, TGI's Messages API reads ``value``, each
  ignores the other key. vLLM accepts it but then only guarantees *some* JSON object (use
  ``"json_schema"`` there); servers that reject unknown keys (OpenAI) need ``"json_schema"``.
- ``"json_object"``: ``{"type": "json_object", "schema": ...}`` -- llama-cpp-python's server
  (whose request model has no other type that takes a schema) and llama.cpp's ``llama-server``.
- ``"json_schema"``: OpenAI's ``{"type": "json_schema", "json_schema": {"name": "output",
  "schema": ...}}`` -- vLLM, SGLang, llama.cpp's ``llama-server``, OpenAI; rejected by
  llama-cpp-python's server and by TGI.
- ``"tgi"``: ``{"type": "json_object", "value": ...}`` -- TGI's Messages API (its
  ``response_format`` is the ``/generate`` grammar type, ``{"type", "value"}``).
"""

JSON_SCHEMA_FORMATS: tuple[JsonSchemaFormat, ...] = (
    "compatible",
    "json_object",
    "json_schema",
    "tgi",
)


def response_format(schema: dict[str, Any], shape: JsonSchemaFormat) -> dict[str, Any]:
    """``response_format`` for ``schema`` in the given shape."""
    if shape == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    if shape == "tgi":
        return {"type": "json_object", "value": schema}
    if shape == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object", "schema": schema, "value": schema}


class OpenAICompatible(WireProtocol):
    """OpenAI-style ``/v1/chat/completions`` (chat) and ``/v1/completions`` (text).

    Args:
        model: the ``model`` field (vLLM needs the served name); omitted when ``None``.
        json_schema_format: the ``response_format`` shape of ``json_schema``.
        stream_usage: ask for usage at the end of streams (``stream_options``).
        extra_body: more fields for every request (server-specific options).
    """

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
        """The sampling fields of a chat or text completion request."""
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
        usage = event.get("usage") or {}
        choices = event.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        text = delta.get("content") if "delta" in choice else choice.get("text")
        return StreamEvent(
            text=str(text or ""),
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
