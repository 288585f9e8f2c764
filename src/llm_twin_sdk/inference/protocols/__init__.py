"""Wire protocols: one module per request format, shared by every connection.

:mod:`.tgi` (TGI generate), :mod:`.openai` (OpenAI-compatible chat and completions, TGI's
Messages API), :mod:`.lmi` (LMI containers, vLLM-native ``outputs``); what they share --
requests, answers, one finish-reason mapping (:mod:`.base`), SSE and JSON-lines decoding
(:mod:`.framing`), one stream state, stop filter and stream-failure rule (:mod:`.streams`).
The connections (``HttpBackend``, ``SageMakerBackend``) never build or parse a payload.
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
