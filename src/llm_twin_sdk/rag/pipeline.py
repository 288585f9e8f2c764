"""RAGPipeline: ingest documents into Qdrant and retrieve the chunks nearest a question.

Example::

    rag = RAGPipeline(Embedder(), QdrantStore.memory())
    rag.ingest([Document(id="p1", text="Quantize before you scale out.")])
    chunks = rag.retrieve("How do I cut GPU cost?", k=3)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, InvalidDocumentError, InvalidParameterError
from ..types import Chunk, Document, IngestReport
from ..validation import check_k, check_query, validate_documents
from .chunking import chunk_document
from .embedder import Embedder
from .filters import MetadataFilters, check_filters
from .sparse import LexicalEncoder
from .store import QdrantStore, SearchMode, check_search_mode

if TYPE_CHECKING:
    from ..config import TwinSettings

__all__ = ["RAGPipeline"]

logger = logging.getLogger(__name__)


class RAGPipeline:
    """Chunking, embedding, storage and retrieval over one embedder and one store.

    Args:
        embedder: encodes chunks and queries (the same model for both).
        store: where chunks and vectors live.
        chunk_tokens: maximum embedder tokens per chunk (at most the embedder's limit).
        chunk_overlap: tokens shared by consecutive chunks of a document.
        top_k: chunks returned by :meth:`retrieve` when ``k`` is not given.
        search: ``"hybrid"`` (default) fuses dense and lexical (BM25) rankings with
            reciprocal rank fusion in Qdrant; ``"dense"`` is embedding similarity only;
            ``"lexical"`` is BM25 only.
        lexical_encoder: computes the lexical vectors of chunks and queries (default
            :class:`LexicalEncoder` settings).
    """

    def __init__(
        self,
        embedder: Embedder,
        store: QdrantStore,
        *,
        chunk_tokens: int = 128,
        chunk_overlap: int = 24,
        top_k: int = 3,
        search: SearchMode = "hybrid",
        lexical_encoder: LexicalEncoder | None = None,
    ) -> None:
        if not 0 < chunk_tokens <= embedder.max_tokens:
            raise ConfigurationError(
                f"chunk_tokens must be between 1 and the embedder's limit "
                f"({embedder.max_tokens}), got {chunk_tokens}"
            )
        if not 0 <= chunk_overlap < chunk_tokens:
            raise ConfigurationError(
                f"chunk_overlap must be >= 0 and < chunk_tokens ({chunk_tokens}), "
                f"got {chunk_overlap}"
            )
        self.embedder = embedder
        self.store = store
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.top_k = check_k(top_k)
        self._retrieve_lock = threading.Lock()
        try:
            self.search: SearchMode = check_search_mode(search)
        except InvalidParameterError as exc:
            raise ConfigurationError(str(exc)) from None
        self.lexical_encoder = lexical_encoder or LexicalEncoder()

    @classmethod
    def from_settings(cls, settings: TwinSettings | None = None) -> RAGPipeline:
        """Build the embedder and the store that ``settings`` describe (defaults: embedded)."""
        from ..config import TwinSettings

        s = settings or TwinSettings()
        embedder = Embedder(s.embedding_model, device=s.embedding_device)
        if s.qdrant_url:
            key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
            store = QdrantStore.server(s.qdrant_url, api_key=key, collection=s.collection)
        else:
            store = QdrantStore.local(s.qdrant_path, collection=s.collection)
        return cls(
            embedder,
            store,
            chunk_tokens=s.chunk_tokens,
            chunk_overlap=s.chunk_overlap,
            top_k=s.top_k,
            search=s.search,  # TwinSettings.search, once it exists
        )

    def __repr__(self) -> str:
        return (
            f"RAGPipeline(embedder={self.embedder!r}, store={self.store!r}, search={self.search!r})"
        )

    def chunk(self, documents: Iterable[Document | Mapping[str, Any]]) -> list[Chunk]:
        """Validate documents and split them into chunks, without embedding or storing."""
        docs = validate_documents(documents)
        offsets = self.embedder.token_offsets([d.text for d in docs])
        chunks: list[Chunk] = []
        for doc, doc_offsets in zip(docs, offsets, strict=True):
            if not doc_offsets:
                raise InvalidDocumentError(
                    f"document {doc.id!r} has no words the embedding model can read"
                )
            chunks.extend(chunk_document(doc, doc_offsets, self.chunk_tokens, self.chunk_overlap))
        return chunks

    def ingest(self, documents: Iterable[Document | Mapping[str, Any]]) -> IngestReport:
        """Chunk, embed and store documents. Re-ingesting a document replaces its chunks.

        Every document is validated and every chunk embedded before the first write, so a
        bad document or an embedding failure leaves the store untouched.
        """
        started = time.perf_counter()
        chunks = self.chunk(documents)
        texts = [c.text for c in chunks]
        vectors = self.embedder.encode(texts)
        sparse = self.lexical_encoder.encode_documents(texts)
        self.store.write_documents(chunks, vectors, sparse)
        report = IngestReport(
            documents=len({c.document_id for c in chunks}),
            chunks=len(chunks),
            seconds=time.perf_counter() - started,
        )
        logger.info(
            "ingested %d documents as %d chunks in %.2fs",
            report.documents,
            report.chunks,
            report.seconds,
        )
        return report

    def retrieve(
        self, query: str, k: int | None = None, *, filters: MetadataFilters | None = None
    ) -> list[Chunk]:
        """The ``k`` chunks most relevant to ``query`` (default ``top_k``), best first.

        Ranked as :attr:`search` says; scores are cosines (dense), BM25 scores (lexical) or
        reciprocal-rank-fusion scores (hybrid). ``filters`` restricts the results by metadata,
        e.g. ``{"author": "Maya Okafor", "kind": ["post", "article"]}``.
        """
        query = check_query(query)
        limit = self.top_k if k is None else check_k(k)
        checked = check_filters(filters)
        with self._retrieve_lock:  # the embedded Qdrant engine is not made for concurrent use
            vector = None if self.search == "lexical" else self.embedder.encode([query])[0]
            sparse = None if self.search == "dense" else self.lexical_encoder.encode_query(query)
            return self.store.search(
                vector, limit, sparse=sparse, mode=self.search, filters=checked
            )

    async def aretrieve(
        self, query: str, k: int | None = None, *, filters: MetadataFilters | None = None
    ) -> list[Chunk]:
        """:meth:`retrieve` for async code: runs in a worker thread, never blocking the loop.

        Retrievals run one at a time per pipeline, so concurrent requests queue in threads
        rather than in the event loop.

        Example (inside an async web handler)::

            chunks = await rag.aretrieve("How do I scale to zero?", k=5)
        """
        query = check_query(query)
        limit = self.top_k if k is None else check_k(k)
        checked = check_filters(filters)
        return await asyncio.to_thread(self.retrieve, query, limit, filters=checked)

    def close(self) -> None:
        """Release the store (and its folder lock)."""
        self.store.close()
