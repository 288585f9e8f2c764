"""Wire protocols: one module per request format, shared by every connection.

- :mod:`.tgi`: TGI generate (``inputs`` / ``parameters``; SSE token events).
- :mod:`.openai`: OpenAI-compatible chat and text completions (vLLM, llama.cpp, TGI's
  Messages API); the ``response_format`` shapes; the ``repetition_penalty`` decision.
- :mod:`.lmi`: LMI containers (DJL Serving) and vLLM-native ``outputs``; JSON-lines streams.
- :mod:`.base`, :mod:`.framing`, :mod:`.streams`: what they share -- the request and answer
  types, one finish-reason mapping, SSE and JSON-lines decoding, one stream state with one stop
  filter and one rule for stream failures.

A connection (:class:`~llm_twin_sdk.inference.backends.http.HttpBackend`,
:class:`~llm_twin_sdk.inference.backends.sagemaker.SageMakerBackend`) picks a protocol and sends
what it builds; it never builds or parses a payload itself.
"""

from .base import Answer, ErrorBody, StreamEvent, WireProtocol, WireRequest, finish_reason
from .lmi import LMI
from .openai import JsonSchemaFormat, OpenAICompatible
from .streams import StopFilter, StreamState
from .tgi import TGIGenerate

__all__ = [
    "LMI",
    "Answer",
    "ErrorBody",
    "JsonSchemaFormat",
    "OpenAICompatible",
    "StopFilter",
    "StreamEvent",
    "StreamState",
    "TGIGenerate",
    "WireProtocol",
    "WireRequest",
    "finish_reason",
]
