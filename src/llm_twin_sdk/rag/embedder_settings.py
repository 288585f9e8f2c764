"""The embedder the settings name (docs/configuration.md, "Embeddings"): a TEI server
(``LLM_TWIN_EMBEDDING_URL``), a TEI endpoint on SageMaker
(``LLM_TWIN_EMBEDDING_SAGEMAKER_ENDPOINT``), either in a child process with
``LLM_TWIN_EMBEDDING_PROCESS=true``, else the local sentence-transformers model.
Example: ``embedder = embedder_from_settings(TwinSettings(embedding_url="http://tei:8080"))``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..types import Timeouts
from .embedder import Embedder
from .embedder_base import TextEmbedder
from .embedder_process import ProcessEmbedder
from .embedder_tei import DEFAULT_BATCH_SIZE, RemoteEmbedder

if TYPE_CHECKING:
    from ..config import TwinSettings

__all__ = ["close_embedder", "embedder_from_settings"]


def embedder_from_settings(settings: TwinSettings) -> TextEmbedder:
    """The embedder ``settings`` name (a remote one asks its server's ``/info`` now)."""
    s = settings
    timeout = Timeouts(connect_s=s.connect_timeout_s, read_s=s.read_timeout_s)
    factory: Callable[[], RemoteEmbedder] | None = None
    if s.embedding_url:
        key = s.embedding_api_key.get_secret_value() if s.embedding_api_key else None
        factory = functools.partial(
            RemoteEmbedder.http,
            s.embedding_url,
            api_key=key,
            batch_size=s.embedding_batch_size,
            concurrency=s.embedding_concurrency,
            timeout=timeout,
        )
    elif s.embedding_sagemaker_endpoint:
        factory = functools.partial(
            RemoteEmbedder.sagemaker,
            s.embedding_sagemaker_endpoint,
            model=s.embedding_model,
            region=s.aws_region,
            profile=s.aws_profile,
            batch_size=s.embedding_batch_size or DEFAULT_BATCH_SIZE,
            concurrency=s.embedding_concurrency,
            timeout=timeout,
        )
    if factory is not None:
        return ProcessEmbedder(factory) if s.embedding_process else factory()
    return Embedder(s.embedding_model, device=s.embedding_device)


def close_embedder(embedder: TextEmbedder) -> None:
    """Close ``embedder`` if it holds connections or a process (a :class:`RemoteEmbedder`,
    a :class:`ProcessEmbedder`)."""
    if isinstance(embedder, RemoteEmbedder | ProcessEmbedder):
        embedder.close()
