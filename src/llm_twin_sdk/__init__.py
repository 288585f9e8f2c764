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

from ._version import __version__
from .errors import (
    AccessDeniedError,
    AWSError,
    AWSThrottledError,
    CollectionMismatchError,
    ConfigurationError,
    ConnectTimeoutError,
    DeploymentError,
    EmbeddingError,
    EmptyQueryError,
    EndpointAccessDeniedError,
    EndpointNotFoundError,
    EndpointThrottledError,
    EndpointTimeoutError,
    InferenceError,
    InferenceTimeoutError,
    InvalidDocumentError,
    InvalidInputError,
    InvalidParameterError,
    LLMTwinError,
    ModelError,
    ModelLoadError,
    ModelThrottledError,
    ModelUnavailableError,
    PayloadTooLargeError,
    PromptTooLongError,
    RerankError,
    ResourceNotFoundError,
    ScalingError,
    StreamBrokenError,
    StreamInUseError,
    ThrottledError,
    VectorStoreError,
    VectorStoreLockedError,
    VectorStoreUnavailableError,
)

if TYPE_CHECKING:
    from .aws import AWSClients
    from .config import TwinSettings
    from .deploy.deployer import Deployer, Endpoint, EndpointStatus
    from .deploy.iam import ensure_execution_role
    from .deploy.plan import DeploymentPlan
    from .deploy.spec import EndpointRef, EndpointSpec, InferenceComponentSpec, RolloutSpec
    from .deploy.waiting import WaitProgress
    from .inference.async_client import AsyncInferenceClient
    from .inference.async_stream import AsyncTextStream
    from .inference.backend import Backend
    from .inference.backends.http import HttpBackend
    from .inference.backends.local import LocalBackend
    from .inference.backends.sagemaker import SageMakerBackend
    from .inference.client import InferenceClient
    from .inference.prompt_format import PromptFormat, format_prompt, suggested_stop
    from .inference.stream import TextStream
    from .rag.embedder import Embedder
    from .rag.pipeline import RAGPipeline
    from .rag.prompt import AssembledPrompt, PromptTemplate, assemble_prompt
    from .rag.query import QueryExpander, SelfQuery
    from .rag.rerank import Reranker
    from .rag.store import QdrantStore
    from .retry import RetryPolicy
    from .scaling import (
        AutoScaler,
        ScaleToZero,
        ScalingState,
        Scheduled,
        ScheduledAction,
        TargetTracking,
    )
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
        Timeouts,
        Usage,
    )


_LAZY = {
    "SageMakerBackend": ".inference.backends.sagemaker",
    "HttpBackend": ".inference.backends.http",
    "AWSClients": ".aws",
    "RetryPolicy": ".retry",
    "Deployer": ".deploy.deployer",
    "Endpoint": ".deploy.deployer",
    "EndpointStatus": ".deploy.deployer",
    "DeploymentPlan": ".deploy.plan",
    "WaitProgress": ".deploy.waiting",
    "EndpointSpec": ".deploy.spec",
    "EndpointRef": ".deploy.spec",
    "InferenceComponentSpec": ".deploy.spec",
    "RolloutSpec": ".deploy.spec",
    "ensure_execution_role": ".deploy.iam",
    "AutoScaler": ".scaling",
    "TargetTracking": ".scaling",
    "ScaleToZero": ".scaling",
    "Scheduled": ".scaling",
    "ScheduledAction": ".scaling",
    "ScalingState": ".scaling",
    "TwinSettings": ".config",
    "Backend": ".inference.backend",
    "LocalBackend": ".inference.backends.local",
    "InferenceClient": ".inference.client",
    "AsyncInferenceClient": ".inference.async_client",
    "AsyncTextStream": ".inference.async_stream",
    "PromptFormat": ".inference.prompt_format",
    "format_prompt": ".inference.prompt_format",
    "suggested_stop": ".inference.prompt_format",
    "TextStream": ".inference.stream",
    "Embedder": ".rag.embedder",
    "RAGPipeline": ".rag.pipeline",
    "QueryExpander": ".rag.query",
    "SelfQuery": ".rag.query",
    "Reranker": ".rag.rerank",
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
    "Timeouts": ".types",
    "Usage": ".types",
}

__all__ = [
    "AccessDeniedError",
    "Answer",
    "AnswerStream",
    "assemble_prompt",
    "AssembledPrompt",
    "AsyncInferenceClient",
    "AsyncTextStream",
    "AutoScaler",
    "AWSClients",
    "AWSError",
    "AWSThrottledError",
    "Backend",
    "Chunk",
    "CollectionMismatchError",
    "ConfigurationError",
    "ConnectTimeoutError",
    "Deployer",
    "DeploymentError",
    "DeploymentPlan",
    "Document",
    "DocumentMetadata",
    "Embedder",
    "EmbeddingError",
    "EmptyQueryError",
    "Endpoint",
    "EndpointAccessDeniedError",
    "EndpointNotFoundError",
    "EndpointRef",
    "EndpointSpec",
    "EndpointStatus",
    "EndpointThrottledError",
    "EndpointTimeoutError",
    "ensure_execution_role",
    "format_prompt",
    "Generation",
    "GenerationParams",
    "HttpBackend",
    "InferenceClient",
    "InferenceComponentSpec",
    "InferenceError",
    "InferenceTimeoutError",
    "IngestReport",
    "InvalidDocumentError",
    "InvalidInputError",
    "InvalidParameterError",
    "LLMTwin",
    "LLMTwinError",
    "LocalBackend",
    "Message",
    "ModelError",
    "ModelLoadError",
    "ModelThrottledError",
    "ModelUnavailableError",
    "PayloadTooLargeError",
    "PromptFormat",
    "PromptTemplate",
    "PromptTooLongError",
    "QdrantStore",
    "QueryExpander",
    "RAGPipeline",
    "RerankError",
    "Reranker",
    "ResourceNotFoundError",
    "RetryPolicy",
    "RolloutSpec",
    "SageMakerBackend",
    "ScaleToZero",
    "ScalingError",
    "ScalingState",
    "Scheduled",
    "ScheduledAction",
    "SelfQuery",
    "StageTimings",
    "StreamBrokenError",
    "StreamInUseError",
    "suggested_stop",
    "TargetTracking",
    "TextStream",
    "ThrottledError",
    "Timeouts",
    "TwinSettings",
    "Usage",
    "VectorStoreError",
    "VectorStoreLockedError",
    "VectorStoreUnavailableError",
    "WaitProgress",
    "__version__",
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
