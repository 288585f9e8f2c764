"""LMI: the protocol of AWS's Large Model Inference containers (DJL Serving; vLLM, TensorRT-LLM
and LMI-Dist engines), and the vLLM-native ``outputs`` shape.

- Text: ``{"inputs": str, "parameters": {...}, "stream": bool}`` to ``/invocations`` (on
  SageMaker and on a container of its own). ``parameters`` are TGI's, except that stop
  sequences are ``stop_sequences``; ``details: true`` asks for the finish reason and counts.
- Chat: with ``messages`` in the body LMI speaks the chat-completions schema (the fields of
  :class:`~.openai.OpenAICompatible`, without ``stream_options``).
- Answer: ``{"generated_text", "details": {"finish_reason", "generated_tokens", "inputs"}}``
  (an object; a one-element list with ``tgi_compat``), or a ``chat.completion``.
- Stream: JSON lines (``application/jsonlines``), one token per line:
  ``{"token": {"id", "text", "log_prob", "special_token"?}}``; the last line also carries
  ``generated_text`` and ``details``. Dynamic batching (and vLLM-native handlers) send
  ``{"outputs": ["text", ...]}`` lines and no final line: the body's end ends the stream. Chat
  streams send ``chat.completion.chunk`` lines without ``[DONE]``. LMI's ``sse`` formatter
  (and ``tgi_compat``) prefixes lines with ``data:``: read as well.
- Errors: ``{"error": str, "code": int}`` (a status, or a line of a stream); a failure during
  generation ends the answer or stream with ``details.finish_reason == "error"``.

``repetition_penalty`` is sent as ``parameters.repetition_penalty`` (chat: a top-level
``repetition_penalty``, as vLLM reads it). LMI's documented schemas have no JSON-schema
constraint: ``GenerationParams(json_schema=...)`` raises :class:`InvalidParameterError` before
anything is sent.
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
