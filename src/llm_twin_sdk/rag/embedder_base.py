"""The embedder interface the pipeline uses: :class:`TextEmbedder`, implemented by the local
sentence-transformers :class:`~llm_twin_sdk.rag.embedder.Embedder` and the remote
:class:`~llm_twin_sdk.rag.embedder_tei.RemoteEmbedder` (Text Embeddings Inference over HTTP
or on SageMaker). Either goes where the other goes::

    def index(embedder: TextEmbedder, texts: list[str]) -> Vectors:
        return embedder.encode(texts)            # (len(texts), embedder.dimension) float32

    vectors = await embedder.aencode(["a question"])     # async code: never blocks the loop
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["TextEmbedder", "TokenOffsets", "Vectors"]

Vectors: TypeAlias = npt.NDArray[np.float32]
"""Embeddings, one row per text."""

TokenOffsets: TypeAlias = list[list[tuple[int, int]]]
"""Character spans of each text's tokens (no special tokens): what chunking cuts on."""


class TextEmbedder(Protocol):
    """What :class:`~llm_twin_sdk.rag.pipeline.RAGPipeline` needs of an embedder: the same
    model for chunks and queries, its name (part of every document's fingerprint), its vector
    size and token limit, sync and async encoding, and token offsets for chunking. A static
    interface (not ``runtime_checkable``: checking it would read ``dimension``, which a
    remote embedder may ask its server for)."""

    @property
    def model_name(self) -> str:
        """The model's name: another name re-ingests stored documents."""
        ...

    @property
    def dimension(self) -> int:
        """The size of a vector."""
        ...

    @property
    def max_tokens(self) -> int:
        """The most tokens of one text the model reads (longer chunks are not allowed)."""
        ...

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embeddings of ``texts``, shape ``(len(texts), dimension)``, in their order."""
        ...

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        """:meth:`encode` for async code, without blocking the event loop."""
        ...

    def token_offsets(self, texts: Sequence[str]) -> TokenOffsets:
        """Character spans of each text's tokens (no special tokens)."""
        ...
