"""TGI generate: the native protocol of Hugging Face Text Generation Inference (shapes,
``repetition_penalty`` and ``json_schema``: docs/architecture.md, "Wire protocols").

Answers ``{"generated_text", "details"}`` (a one-element list on SageMaker); SSE ``token``
events without ``[DONE]``, the last with ``generated_text``; errors ``{"error", "error_type"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...types import GenerationParams, Message
from .base import (
    Answer,
    ErrorBody,
    StreamEvent,
    WireProtocol,
    WireRequest,
    count_or_none,
    need_text,
)

__all__ = ["TGI_ERROR_STATUS", "TGIGenerate", "sampling_parameters"]

TGI_ERROR_STATUS = {
    "overloaded": 429,
    "validation": 422,
    "template_error": 422,
    "tool_error": 422,
    "tokenizer": 422,
    "generation": 424,
    "incomplete_generation": 500,
}
"""TGI's ``error_type`` -> the HTTP status TGI answers it with."""


def sampling_parameters(params: GenerationParams, *, stop_key: str = "stop") -> dict[str, Any]:
    """The ``parameters`` object of TGI generate (LMI copies it). TGI rejects ``temperature
    <= 0`` and ``top_p`` outside (0, 1) and samples whenever one is set: greedy decoding sends
    ``do_sample: false`` alone."""
    parameters: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "return_full_text": False,
        "details": True,
    }
    if params.temperature > 0:
        parameters.update(do_sample=True, temperature=params.temperature)
        if params.top_p < 1:
            parameters["top_p"] = params.top_p
    else:
        parameters["do_sample"] = False
    if params.repetition_penalty != 1.0:
        parameters["repetition_penalty"] = params.repetition_penalty
    if params.stop:
        parameters[stop_key] = list(params.stop)
    if params.seed is not None:
        parameters["seed"] = params.seed
    return parameters


class TGIGenerate(WireProtocol):
    """TGI's ``/generate`` protocol (text prompts only)."""

    name = "TGI generate"

    def request(
        self, prompt: str | Sequence[Message], params: GenerationParams, *, stream: bool
    ) -> WireRequest:
        parameters = sampling_parameters(params)
        if params.json_schema is not None:
            parameters["grammar"] = {"type": "json", "value": params.json_schema}
        return WireRequest(
            route="/generate_stream" if stream else "/generate",
            body={
                "inputs": need_text(prompt, self.name),
                "parameters": parameters,
                "stream": stream,
            },
            stream=stream,
            framing=self.framing,
            stops=params.stop,
        )

    @classmethod
    def read_answer(cls, data: dict[str, Any]) -> Answer | None:
        if "generated_text" not in data or "outputs" in data:
            return None
        details = data.get("details") or {}
        prefill = details.get("prefill") or []
        return Answer(
            text=str(data["generated_text"]),
            finish_reason=details.get("finish_reason"),
            prompt_tokens=len(prefill) or None,
            completion_tokens=count_or_none(details.get("generated_tokens")),
        )

    @classmethod
    def read_event(cls, event: dict[str, Any]) -> StreamEvent | None:
        token = event.get("token")
        if not isinstance(token, dict):
            return None
        text = token.get("text")
        if token.get("special") or token.get("special_token"):
            text = ""
        elif not isinstance(text, str):
            text = str(text or "")
        final, details = event.get("generated_text"), event.get("details")
        if final is None and not details:  # a token of the stream: no more to read
            return StreamEvent(text)
        details = details or {}
        return StreamEvent(
            text,
            done=final is not None,
            finish_reason=details.get("finish_reason"),
            prompt_tokens=count_or_none(details.get("input_length")),
            completion_tokens=count_or_none(details.get("generated_tokens")),
        )

    @classmethod
    def read_error(cls, data: dict[str, Any]) -> ErrorBody | None:
        error, kind = data.get("error"), data.get("error_type")
        if not isinstance(error, str) or not isinstance(kind, str):
            return None
        return ErrorBody(f"{error} ({kind})", TGI_ERROR_STATUS.get(kind))
