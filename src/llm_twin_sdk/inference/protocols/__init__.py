"""Wire protocols: one module per request format, shared by every connection
(docs/architecture.md, "Wire protocols").
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
