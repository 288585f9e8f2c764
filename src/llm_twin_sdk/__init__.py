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
    EndpointNotFoundError,
    EndpointTimeoutError,
    InferenceError,
    InferenceTimeoutError,
    InvalidDocumentError,
    InvalidInputError,
    InvalidParameterError,
    LLMTwinError,
    ModelError,
    ModelLoadError,
    ModelUnavailableError,
    PayloadTooLargeError,
    PromptTooLongError,
    ResourceNotFoundError,
    ScalingError,
    StreamBrokenError,
    StreamInUseError,
    ThrottledError,
    VectorStoreError,
    VectorStoreLockedError,
)

if TYPE_CHECKING:
    from .aws import AWSClients
    from .config import TwinSettings
    from .deploy.deployer import Deployer, Endpoint, EndpointStatus
    from .deploy.iam import ensure_execution_role
    from .deploy.plan import DeploymentPlan
    from .deploy.spec import EndpointRef, EndpointSpec, InferenceComponentSpec, RolloutSpec
    from .deploy.waiting import WaitProgress
    from .inference.backend import Backend
    from .inference.backends.local import LocalBackend
    from .inference.client import InferenceClient
    from .inference.stream import TextStream
    from .rag.embedder import Embedder
    from .rag.pipeline import RAGPipeline
    from .rag.prompt import AssembledPrompt, PromptTemplate, assemble_prompt
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

__version__ = "0.1.0"

_LAZY = {
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
    "Timeouts": ".types",
    "Usage": ".types",
}

__all__ = [
    "AccessDeniedError",
    "Answer",
    "AnswerStream",
    "assemble_prompt",
    "AssembledPrompt",
    "AutoScaler",
    "AWSClients",
    "AWSError",
    "AWSThrottledError",
    "Backend",
    "Chunk",
    "CollectionMismatchError",
    "ConfigurationError",
    "Deployer",
    "DeploymentError",
    "DeploymentPlan",
    "Document",
    "DocumentMetadata",
    "Embedder",
    "EmbeddingError",
    "EmptyQueryError",
    "Endpoint",
    "EndpointNotFoundError",
    "EndpointRef",
    "EndpointSpec",
    "EndpointStatus",
    "EndpointTimeoutError",
    "ensure_execution_role",
    "Generation",
    "GenerationParams",
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
    "ModelUnavailableError",
    "PayloadTooLargeError",
    "PromptTemplate",
    "PromptTooLongError",
    "QdrantStore",
    "RAGPipeline",
    "ResourceNotFoundError",
    "RetryPolicy",
    "RolloutSpec",
    "ScaleToZero",
    "ScalingError",
    "ScalingState",
    "Scheduled",
    "ScheduledAction",
    "StageTimings",
    "StreamBrokenError",
    "StreamInUseError",
    "TargetTracking",
    "TextStream",
    "ThrottledError",
    "Timeouts",
    "TwinSettings",
    "Usage",
    "VectorStoreError",
    "VectorStoreLockedError",
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
