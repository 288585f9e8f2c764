"""Serve a fine-tuned LLM Twin from Python: deploy, call, retrieve, compose and scale it.

An LLM Twin is an LLM tuned to write like one person. This SDK owns its whole serving path,
with no web server bundled: it answers questions from the author's own documents (RAG over
Qdrant), generates with llama.cpp in-process, a model server or a SageMaker endpoint
(blocking, streaming, async, retried), and deploys and autoscales that endpoint on AWS.

Quick start (offline, embedded footing)::

    from llm_twin_sdk import LLMTwin

    with LLMTwin.from_settings() as twin:
        twin.ingest([{"id": "p1", "text": "Quantize before you scale out."}])
        print(twin.ask("How do I cut GPU cost?").text)

Where to start::

    answer from documents  LLMTwin, AsyncLLMTwin     ask / stream / ingest -> Answer
    generate text          InferenceClient, AsyncInferenceClient   over a Backend:
                           LocalBackend, HttpBackend, SageMakerBackend
    ingest and retrieve    RAGPipeline, QdrantStore, Embedder, RemoteEmbedder, ProcessEmbedder,
                           Reranker, evaluation
    deploy on SageMaker    TwinDeployment (plan / up / down), EndpointSpec, Deployer
    what it costs          TwinDeployment.plan().cost, PriceTable, estimate_cost
    scale                  AutoScaler, TargetTracking, ScaleToZero, Scheduled, BacklogScaling
    bulk and long jobs     AsyncJobs (asynchronous inference: submit / collect / resume)
    configure              TwinSettings (arguments, LLM_TWIN_* variables, .env)
    handle failures        LLMTwinError, the root of every error (llm_twin_sdk.errors)

Three footings, one code, switched by configuration alone (TwinSettings)::

    embedded (default)  llama.cpp in-process, Qdrant Edge on a folder, offline
    self-hosted         LLM_TWIN_BACKEND=http: TGI / vLLM / llama.cpp / OpenAI-compatible
                        server; LLM_TWIN_QDRANT_URL: a Qdrant server
    AWS                 LLM_TWIN_BACKEND=sagemaker: a SageMaker endpoint

Docs: the docs/ folder of the project (docs/index.md, the guides, and an API reference
built from the docstrings with ``make docs``); each object's own ``help()`` shows its usage.
``dir(llm_twin_sdk)`` lists every public name; each loads on first use, so
``import llm_twin_sdk`` imports no heavy library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors
from ._version import __version__ as __version__
from .errors import *  # noqa: F403 -- the error tree is cheap and always loaded

if TYPE_CHECKING:
    # Static twins of _LAZY for type checkers (``X as X`` re-exports the name); a test in
    # tests/test_import.py fails when they and _LAZY disagree.
    from .async_twin import AsyncAnswerStream as AsyncAnswerStream
    from .async_twin import AsyncLLMTwin as AsyncLLMTwin
    from .aws import AWSClients as AWSClients
    from .config import TwinSettings as TwinSettings
    from .deploy.async_inference import AsyncInferenceSpec as AsyncInferenceSpec
    from .deploy.costs import CostEstimate as CostEstimate
    from .deploy.costs import PriceTable as PriceTable
    from .deploy.costs import estimate_cost as estimate_cost
    from .deploy.custom_code import CustomCodeSpec as CustomCodeSpec
    from .deploy.deployer import Deployer as Deployer
    from .deploy.deployer import Endpoint as Endpoint
    from .deploy.deployer import EndpointStatus as EndpointStatus
    from .deploy.iam import ensure_execution_role as ensure_execution_role
    from .deploy.plan import DeploymentPlan as DeploymentPlan
    from .deploy.security import SecuritySpec as SecuritySpec
    from .deploy.spec import EndpointRef as EndpointRef
    from .deploy.spec import EndpointSpec as EndpointSpec
    from .deploy.spec import InferenceComponentSpec as InferenceComponentSpec
    from .deploy.spec import RolloutSpec as RolloutSpec
    from .deploy.waiting import WaitProgress as WaitProgress
    from .deployment import TwinDeployment as TwinDeployment
    from .deployment import TwinDeploymentPlan as TwinDeploymentPlan
    from .inference.async_client import AsyncInferenceClient as AsyncInferenceClient
    from .inference.async_jobs import AsyncJob as AsyncJob
    from .inference.async_jobs import AsyncJobs as AsyncJobs
    from .inference.async_jobs import JobResult as JobResult
    from .inference.async_stream import AsyncTextStream as AsyncTextStream
    from .inference.backend import Backend as Backend
    from .inference.backends.http import HttpBackend as HttpBackend
    from .inference.backends.local import LocalBackend as LocalBackend
    from .inference.backends.sagemaker import SageMakerBackend as SageMakerBackend
    from .inference.client import InferenceClient as InferenceClient
    from .inference.invocation import Invocation as Invocation
    from .inference.prompt_format import PromptFormat as PromptFormat
    from .inference.prompt_format import format_prompt as format_prompt
    from .inference.prompt_format import suggested_stop as suggested_stop
    from .inference.stream import TextStream as TextStream
    from .qdrant_cluster import QdrantClusterSettings as QdrantClusterSettings
    from .rag.documents import DeleteReport as DeleteReport
    from .rag.documents import StoredDocument as StoredDocument
    from .rag.embedder import Embedder as Embedder
    from .rag.embedder_base import TextEmbedder as TextEmbedder
    from .rag.embedder_process import ProcessEmbedder as ProcessEmbedder
    from .rag.embedder_tei import RemoteEmbedder as RemoteEmbedder
    from .rag.ingestion import IngestProgress as IngestProgress
    from .rag.pipeline import RAGPipeline as RAGPipeline
    from .rag.prompt import AssembledPrompt as AssembledPrompt
    from .rag.prompt import PromptTemplate as PromptTemplate
    from .rag.prompt import assemble_prompt as assemble_prompt
    from .rag.query import QueryExpander as QueryExpander
    from .rag.query import SelfQuery as SelfQuery
    from .rag.rerank import Reranker as Reranker
    from .rag.store import QdrantStore as QdrantStore
    from .retry import RetryPolicy as RetryPolicy
    from .scaling import AutoScaler as AutoScaler
    from .scaling import BacklogScaling as BacklogScaling
    from .scaling import ScaleToZero as ScaleToZero
    from .scaling import ScalingState as ScalingState
    from .scaling import Scheduled as Scheduled
    from .scaling import ScheduledAction as ScheduledAction
    from .scaling import TargetTracking as TargetTracking
    from .twin import AnswerStream as AnswerStream
    from .twin import LLMTwin as LLMTwin
    from .types import Answer as Answer
    from .types import Chunk as Chunk
    from .types import Document as Document
    from .types import DocumentMetadata as DocumentMetadata
    from .types import Generation as Generation
    from .types import GenerationParams as GenerationParams
    from .types import IngestReport as IngestReport
    from .types import Message as Message
    from .types import StageTimings as StageTimings
    from .types import Timeouts as Timeouts
    from .types import Usage as Usage

_LAZY: dict[str, str] = {
    name: module
    for module, names in {
        "._version": ("__version__",),
        ".errors": vars(errors)["__all__"],  # derived there, hidden from type checkers
        ".aws": ("AWSClients",),
        ".config": ("TwinSettings",),
        ".deploy.async_inference": ("AsyncInferenceSpec",),
        ".deploy.costs": ("CostEstimate", "PriceTable", "estimate_cost"),
        ".deploy.custom_code": ("CustomCodeSpec",),
        ".deploy.deployer": ("Deployer", "Endpoint", "EndpointStatus"),
        ".deploy.iam": ("ensure_execution_role",),
        ".deploy.plan": ("DeploymentPlan",),
        ".deploy.security": ("SecuritySpec",),
        ".deploy.spec": ("EndpointRef", "EndpointSpec", "InferenceComponentSpec", "RolloutSpec"),
        ".deploy.waiting": ("WaitProgress",),
        ".deployment": ("TwinDeployment", "TwinDeploymentPlan"),
        ".inference.async_client": ("AsyncInferenceClient",),
        ".inference.async_jobs": ("AsyncJob", "AsyncJobs", "JobResult"),
        ".inference.async_stream": ("AsyncTextStream",),
        ".inference.backend": ("Backend",),
        ".inference.backends.http": ("HttpBackend",),
        ".inference.backends.local": ("LocalBackend",),
        ".inference.backends.sagemaker": ("SageMakerBackend",),
        ".inference.client": ("InferenceClient",),
        ".inference.invocation": ("Invocation",),
        ".inference.prompt_format": ("PromptFormat", "format_prompt", "suggested_stop"),
        ".inference.stream": ("TextStream",),
        ".qdrant_cluster": ("QdrantClusterSettings",),
        ".rag.documents": ("DeleteReport", "StoredDocument"),
        ".rag.embedder": ("Embedder",),
        ".rag.embedder_base": ("TextEmbedder",),
        ".rag.embedder_process": ("ProcessEmbedder",),
        ".rag.embedder_tei": ("RemoteEmbedder",),
        ".rag.ingestion": ("IngestProgress",),
        ".rag.pipeline": ("RAGPipeline",),
        ".rag.prompt": ("AssembledPrompt", "PromptTemplate", "assemble_prompt"),
        ".rag.query": ("QueryExpander", "SelfQuery"),
        ".rag.rerank": ("Reranker",),
        ".rag.store": ("QdrantStore",),
        ".retry": ("RetryPolicy",),
        ".scaling": (
            "AutoScaler",
            "BacklogScaling",
            "ScaleToZero",
            "ScalingState",
            "Scheduled",
            "ScheduledAction",
            "TargetTracking",
        ),
        ".twin": ("AnswerStream", "LLMTwin"),
        ".async_twin": ("AsyncAnswerStream", "AsyncLLMTwin"),
        ".types": (
            "Answer",
            "Chunk",
            "Document",
            "DocumentMetadata",
            "Generation",
            "GenerationParams",
            "IngestReport",
            "Message",
            "StageTimings",
            "Timeouts",
            "Usage",
        ),
    }.items()
    for name in names
}
"""Every public name -> the module that defines it: the one list of the package's names.
``__version__`` and the errors are loaded at import; the rest on first use (PEP 562).

No ``__all__``, on purpose: ``help(llm_twin_sdk)`` (pydoc) documents in full every class a
module's ``__all__`` names, which ran to 18,000 lines; without one it shows the guide above.
``dir()`` lists these names (tab completion), type checkers read the imports above, and
``from llm_twin_sdk import *`` gives only what is loaded at import (the errors)."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_twin_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(_LAZY, key=str.lower)
