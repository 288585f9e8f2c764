"""llm-twin-sdk: deploy, call and compose a fine-tuned LLM Twin from Python.

Quick start (offline, embedded footing)::

    from llm_twin_sdk import LLMTwin

    with LLMTwin.from_settings() as twin:
        twin.ingest([{"id": "p1", "text": "Quantize before you scale out.",
                      "metadata": {"author": "Maya Okafor", "kind": "post"}}])
        answer = twin.ask("How do I cut GPU cost?")
        print(answer.text, answer.sources, answer.timings)

Public names are loaded on first use, so ``import llm_twin_sdk`` stays fast: heavy
libraries (llama.cpp, torch, sentence-transformers, qdrant-client) load only when the
object that needs them is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AccessDeniedError,
    AWSError,
    AWSThrottledError,
    CollectionMismatchError,
    ConfigurationError,
    DeploymentError,
    EmbeddingError,
    EmptyQueryError,
    EndpointTimeoutError,
    InferenceError,
    InvalidDocumentError,
    InvalidInputError,
    InvalidParameterError,
    LLMTwinError,
    ModelLoadError,
    PromptTooLongError,
    ResourceNotFoundError,
    ScalingError,
    StreamInUseError,
    ThrottledError,
    VectorStoreError,
    VectorStoreLockedError,
)

if TYPE_CHECKING:
    from .config import TwinSettings
    from .inference.backend import Backend
    from .inference.backends.local import LocalBackend
    from .inference.client import InferenceClient
    from .inference.stream import TextStream
    from .rag.embedder import Embedder
    from .rag.pipeline import RAGPipeline
    from .rag.prompt import AssembledPrompt, PromptTemplate, assemble_prompt
    from .rag.store import QdrantStore
    from .twin import AnswerStream, LLMTwin
    from .types import (
        Answer,
        Chunk,
        Document,
        DocumentMetadata,
        Generation,
        GenerationParams,
        IngestReport,
        Message,
        StageTimings,
        Usage,
    )

__version__ = "0.1.0"

_LAZY = {
    "TwinSettings": ".config",
    "Backend": ".inference.backend",
    "LocalBackend": ".inference.backends.local",
    "InferenceClient": ".inference.client",
    "TextStream": ".inference.stream",
    "Embedder": ".rag.embedder",
    "RAGPipeline": ".rag.pipeline",
    "AssembledPrompt": ".rag.prompt",
    "PromptTemplate": ".rag.prompt",
    "assemble_prompt": ".rag.prompt",
    "QdrantStore": ".rag.store",
    "AnswerStream": ".twin",
    "LLMTwin": ".twin",
    "Answer": ".types",
    "Chunk": ".types",
    "Document": ".types",
    "DocumentMetadata": ".types",
    "Generation": ".types",
    "GenerationParams": ".types",
    "IngestReport": ".types",
    "Message": ".types",
    "StageTimings": ".types",
    "Usage": ".types",
}

__all__ = [
    "AWSError",
    "AWSThrottledError",
    "AccessDeniedError",
    "Answer",
    "AnswerStream",
    "AssembledPrompt",
    "Backend",
    "Chunk",
    "CollectionMismatchError",
    "ConfigurationError",
    "DeploymentError",
    "Document",
    "DocumentMetadata",
    "Embedder",
    "EmbeddingError",
    "EmptyQueryError",
    "EndpointTimeoutError",
    "Generation",
    "GenerationParams",
    "InferenceClient",
    "InferenceError",
    "IngestReport",
    "InvalidDocumentError",
    "InvalidInputError",
    "InvalidParameterError",
    "LLMTwin",
    "LLMTwinError",
    "LocalBackend",
    "Message",
    "ModelLoadError",
    "PromptTemplate",
    "PromptTooLongError",
    "QdrantStore",
    "RAGPipeline",
    "ResourceNotFoundError",
    "ScalingError",
    "StageTimings",
    "StreamInUseError",
    "TextStream",
    "ThrottledError",
    "TwinSettings",
    "Usage",
    "VectorStoreError",
    "VectorStoreLockedError",
    "__version__",
    "assemble_prompt",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_twin_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
