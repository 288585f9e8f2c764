"""LMI: AWS's Large Model Inference containers (DJL Serving: vLLM, TensorRT-LLM, LMI-Dist),
and the vLLM-native ``outputs`` shape (docs/architecture.md, "Wire protocols").

Streams are JSON lines (a ``data:`` prefix is read too): TGI-style ``token`` events,
``{"outputs": [...]}`` lines ended by the body's end, or chat chunks without ``[DONE]``.
Errors: ``{"error": str, "code": int}``, or ``details.finish_reason == "error"`` midway. No
JSON-schema constraint: ``json_schema`` raises :class:`InvalidParameterError` before sending.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import InvalidParameterError
from ...types import GenerationParams, Message
from .base import Answer, ErrorBody, StreamEvent, WireProtocol, WireRequest, count_or_none
from .openai import OpenAICompatible
from .tgi import TGIGenerate, sampling_parameters

__all__ = ["LMI"]

_FAILED = ErrorBody("the model failed during generation (LMI finish_reason 'error')")


class LMI(WireProtocol):
    """LMI's ``/invocations`` protocol: text (``inputs``) and chat (``messages``)."""

    name = "LMI"
    framing = "jsonlines"

    def request(
        self, prompt: str | Sequence[Message], params: GenerationParams, *, stream: bool
    ) -> WireRequest:
        if params.json_schema is not None:
            raise InvalidParameterError(
                "GenerationParams.json_schema is not supported by the LMI protocol (its "
                "schemas have no JSON-schema constraint); use an OpenAI-compatible route of "
                "the server, or leave json_schema unset"
            )
        body: dict[str, Any]
        if isinstance(prompt, str):
            parameters = sampling_parameters(params, stop_key="stop_sequences")
            body = {"inputs": prompt, "parameters": parameters, "stream": stream}
        else:
            body = {"messages": [{"role": m.role, "content": m.content} for m in prompt]}
            body.update(OpenAICompatible.options(params, stream=stream))
        return WireRequest("/invocations", body, stream, self.framing, params.stop)

    @classmethod
    def read_answer(cls, data: dict[str, Any]) -> Answer | ErrorBody | None:
        outputs = data.get("outputs")
        if isinstance(outputs, list):
            return Answer("".join(str(text) for text in outputs))
        if (data.get("details") or {}).get("finish_reason") == "error":
            return _FAILED
        return TGIGenerate.read_answer(data)

    @classmethod
    def read_event(cls, event: dict[str, Any]) -> StreamEvent | None:
        outputs = event.get("outputs")
        if isinstance(outputs, list):
            return StreamEvent(text="".join(str(text) for text in outputs), open_ended=True)
        if (event.get("details") or {}).get("finish_reason") == "error":
            return StreamEvent(error=_FAILED, done=True)
        return TGIGenerate.read_event(event)

    @classmethod
    def read_error(cls, data: dict[str, Any]) -> ErrorBody | None:
        error, code = data.get("error"), count_or_none(data.get("code"))
        if not isinstance(error, str) or code is None:
            return None
        return ErrorBody(error[:500], code if 100 <= code < 600 else None)
