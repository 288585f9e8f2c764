"""RAGPipeline: ingest documents into Qdrant and retrieve the chunks most relevant to a question.

The steps of a retrieval and of an ingest: docs/architecture.md ("The request path", "Ingestion").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, InvalidDocumentError, InvalidParameterError, LLMTwinError
from ..types import Chunk, Document, IngestReport
from ..validation import check_k, check_query, validate_documents
from .chunking import chunk_document
from .embedder import Embedder
from .filters import MetadataFilters, check_filters
from .fusion import QueryVectors, SearchMode, check_search_mode
from .query import QueryExpander, SelfQuery
from .rerank import Reranker
from .sparse import LexicalEncoder
from .store import QdrantStore

if TYPE_CHECKING:
    from ..config import TwinSettings
    from ..inference.client import InferenceClient

__all__ = ["RAGPipeline"]

logger = logging.getLogger(__name__)

FINGERPRINT_VERSION = 1
"""Part of every document fingerprint: bump it when what is stored for a text changes."""


class RAGPipeline:
    """Chunking, embedding, storage and retrieval over one embedder and one store.

    Example::

        rag = RAGPipeline(Embedder(), QdrantStore.memory(), self_query=SelfQuery(client),
                          expander=QueryExpander(client, n=3))   # the query steps: optional
        rag.ingest([Document(id="p1", text="Quantize before scaling.", metadata={"kind": "post"})])
        chunks = rag.retrieve("How do I cut GPU cost?", k=3)

    Args:
        embedder: encodes chunks and queries (the same model for both).
        chunk_tokens: maximum embedder tokens per chunk (at most the embedder's limit).
        chunk_overlap: tokens shared by consecutive chunks of a document.
        top_k: chunks returned by :meth:`retrieve` when ``k`` is not given.
        search: ``"hybrid"`` (default: dense and BM25 rankings fused by reciprocal rank
            fusion), ``"dense"`` (embedding similarity) or ``"lexical"`` (BM25).
        self_query, expander: the LLM query steps (filters from the question; phrasings).
        reranker: a cross-encoder that scores ``rerank_candidates`` chunks (at least ``k``)
            and keeps the best ``k``.
        ingest_batch: chunks embedded and written per batch by :meth:`ingest` (whole
            documents). Bigger batches pad less (sentence-transformers sorts a call's texts by
            length: 256-chunk batches cost ~15% more encode time than one call, 2048 a few %);
            smaller ones lose less work to an interruption.
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
        self_query: SelfQuery | None = None,
        expander: QueryExpander | None = None,
        reranker: Reranker | None = None,
        rerank_candidates: int = 20,
        ingest_batch: int = 2048,
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
        if not isinstance(ingest_batch, int) or ingest_batch < 1:
            raise ConfigurationError(f"ingest_batch must be an integer >= 1, got {ingest_batch!r}")
        try:
            self.top_k = check_k(top_k, "top_k")
            self.rerank_candidates = check_k(rerank_candidates, "rerank_candidates")
            self.search: SearchMode = check_search_mode(search)
        except InvalidParameterError as exc:
            raise ConfigurationError(str(exc)) from None
        self.embedder = embedder
        self.store = store
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.lexical_encoder = lexical_encoder or LexicalEncoder()
        self.self_query = self_query
        self.expander = expander
        self.reranker = reranker
        self.ingest_batch = ingest_batch
        self._store_lock = threading.Lock()  # one store call at a time per pipeline
        self._known: dict[str, list[str]] | None = None  # authors / platforms, for self-query
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: TwinSettings | None = None, *, llm: InferenceClient | None = None
    ) -> RAGPipeline:
        """Build the embedder, the store and the query steps ``settings`` describe; ``llm`` is
        the client of self-query and expansion when the settings turn them on."""
        from ..config import TwinSettings

        s = settings or TwinSettings()
        if (s.self_query or s.query_expansion > 1) and llm is None:
            raise ConfigurationError(
                "self-query and query expansion need an LLM client: pass llm=... "
                "(LLMTwin.from_settings does)"
            )
        embedder = Embedder(s.embedding_model, device=s.embedding_device)
        if s.qdrant_url:
            key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
            store = QdrantStore.server(s.qdrant_url, api_key=key, collections=s.collections)
        else:
            store = QdrantStore.local(s.qdrant_path, collections=s.collections)
        return cls(
            embedder,
            store,
            chunk_tokens=s.chunk_tokens,
            chunk_overlap=s.chunk_overlap,
            top_k=s.top_k,
            search=s.search,
            self_query=SelfQuery(llm) if s.self_query and llm is not None else None,
            expander=QueryExpander(llm, n=s.query_expansion) if s.query_expansion > 1 else None,
            reranker=Reranker(s.reranker_model, device=s.embedding_device)
            if s.reranker_model
            else None,
            rerank_candidates=s.rerank_candidates,
        )

    def __repr__(self) -> str:
        steps = {"self_query": self.self_query, "expansion": self.expander, "rerank": self.reranker}
        return (
            f"RAGPipeline(embedder={self.embedder!r}, store={self.store!r}, "
            f"search={self.search!r}, steps={[n for n, st in steps.items() if st is not None]!r})"
        )

    # -- ingestion -------------------------------------------------------------------------

    def chunk(self, documents: Iterable[Document | Mapping[str, Any]]) -> list[Chunk]:
        """Validate documents and split them into chunks, without embedding or storing."""
        docs = validate_documents(documents)
        return [chunk for _, chunks in self._chunked(docs) for chunk in chunks]

    def _chunked(self, docs: Sequence[Document]) -> list[tuple[Document, list[Chunk]]]:
        offsets = self.embedder.token_offsets([d.text for d in docs])
        chunked: list[tuple[Document, list[Chunk]]] = []
        for doc, doc_offsets in zip(docs, offsets, strict=True):
            if not doc_offsets:
                raise InvalidDocumentError(
                    f"document {doc.id!r} has no words the embedding model can read"
                )
            chunks = chunk_document(doc, doc_offsets, self.chunk_tokens, self.chunk_overlap)
            chunked.append((doc, chunks))
        return chunked

    def fingerprint(self, document: Document) -> str:
        """Hash of everything that decides what is stored for ``document``: its text and
        metadata, the embedding model, the lexical encoder and the chunking settings."""
        identity = [
            FINGERPRINT_VERSION,
            self.embedder.model_name,
            repr(self.lexical_encoder),
            self.chunk_tokens,
            self.chunk_overlap,
            document.text,
            document.metadata.model_dump(mode="json"),
        ]
        encoded = json.dumps(identity, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(encoded).hexdigest()[:32]

    def ingest(
        self, documents: Iterable[Document | Mapping[str, Any]], *, progress: bool | None = None
    ) -> IngestReport:
        """Chunk, embed and store documents, in batches. Re-ingesting a document replaces it.

        ``documents``: :class:`Document` objects or mappings with ``id``, ``text`` and optional
        ``metadata`` (:mod:`~llm_twin_sdk.rag.sources` reads files). All are validated and
        chunked before the first write, so a bad document leaves the store untouched; chunks
        are then embedded and written :attr:`ingest_batch` at a time, whole documents per
        batch. Documents stored exactly as given are skipped, so an interrupted run resumes
        where it stopped. ``progress``: a tqdm bar on stderr (``None``: if it is a terminal).
        """
        started = time.perf_counter()
        chunked = self._chunked(validate_documents(documents))
        total = sum(len(chunks) for _, chunks in chunked)
        show = sys.stderr.isatty() if progress is None else progress
        written_docs = written_chunks = unchanged = 0
        from tqdm.auto import tqdm

        with tqdm(
            total=total, unit="chunk", desc="ingest", disable=not show, file=sys.stderr
        ) as bar:
            for batch in _batches(chunked, self.ingest_batch):
                fingerprints = {doc.id: self.fingerprint(doc) for doc, _ in batch}
                chunks = [chunk for _, doc_chunks in batch for chunk in doc_chunks]
                try:
                    with self._store_lock:
                        previous = self.store.stored_versions(chunks)
                    same = previous.unchanged(chunks, fingerprints, self.store.collection_for)
                    todo = [c for c in chunks if c.document_id not in same]
                    if todo:
                        texts = [c.text for c in todo]
                        vectors = self.embedder.encode(texts)
                        sparse = self.lexical_encoder.encode_documents(texts)
                        with self._store_lock:
                            self.store.write_documents(
                                todo, vectors, sparse, fingerprints=fingerprints, previous=previous
                            )
                except LLMTwinError as exc:
                    exc.add_note(
                        f"{written_docs + unchanged} of {len(chunked)} documents were stored "
                        "before this failure; ingest the same documents again to resume."
                    )
                    raise
                unchanged += len(same)
                written_docs += len(batch) - len(same)
                written_chunks += len(todo)
                bar.update(len(chunks))
        self._known = None
        report = IngestReport(
            documents=written_docs,
            chunks=written_chunks,
            unchanged=unchanged,
            seconds=time.perf_counter() - started,
        )
        logger.info(
            "ingested %d documents as %d chunks (%d unchanged) in %.2fs",
            report.documents,
            report.chunks,
            report.unchanged,
            report.seconds,
        )
        return report

    # -- retrieval -------------------------------------------------------------------------

    def retrieve(
        self,
        query: str,
        k: int | None = None,
        *,
        filters: MetadataFilters | None = None,
        collections: Iterable[str] | None = None,
    ) -> list[Chunk]:
        """The ``k`` chunks most relevant to ``query`` (default ``top_k``; at most
        :data:`~llm_twin_sdk.validation.MAX_K`), best first, ranked as :attr:`search` says
        (scores: cosines, BM25, reciprocal-rank-fusion or the reranker's). ``filters``
        restricts the results by metadata, e.g. ``{"author": "Maya Okafor", "kind": ["post"]}``
        (fields it names win over self-query's); ``collections``: search only those.
        """
        query = check_query(query)  # every argument checked before any work
        limit = self.top_k if k is None else check_k(k)
        checked, names = check_filters(filters), self.store.check_collections(collections)
        queries, extracted = self._rewrite(query, checked)
        depth = max(limit, self.rerank_candidates) if self.reranker is not None else limit
        merged = {**extracted, **checked}
        chunks = self._search(queries, depth, merged, names)
        if not chunks and extracted:
            logger.info("no result with the self-query filters %s; searching without", extracted)
            chunks = self._search(queries, depth, checked, names)
        if self.reranker is not None and chunks:
            chunks = self.reranker.rerank(query, chunks, keep_top_k=limit)
        return chunks[:limit]

    async def aretrieve(
        self,
        query: str,
        k: int | None = None,
        *,
        filters: MetadataFilters | None = None,
        collections: Iterable[str] | None = None,
    ) -> list[Chunk]:
        """:meth:`retrieve` for async code: runs in a worker thread, never blocking the loop
        (store access is serialised per pipeline, so concurrent requests queue in threads).
        Example, in an async web handler: ``chunks = await rag.aretrieve(question, k=5)``.
        """
        return await asyncio.to_thread(
            self.retrieve, query, k, filters=filters, collections=collections
        )

    def _rewrite(
        self, query: str, explicit: Mapping[str, tuple[str, ...]]
    ) -> tuple[list[str], dict[str, tuple[str, ...]]]:
        """The phrasings to search and the self-query filters, the two LLM steps at once."""
        self_query, expander = self.self_query, self.expander
        if self_query is None or {"author", "platform", "kind"} <= set(explicit):
            return (expander.expand(query) if expander is not None else [query]), {}
        extracted = self._pool().submit(
            lambda: self_query.extract(query, known=self.known_values())
        )
        queries = expander.expand(query) if expander is not None else [query]
        return queries, {f: v for f, v in extracted.result().items() if f not in explicit}

    def known_values(self) -> dict[str, list[str]]:
        """Authors and platforms stored, which self-query matches names against (cached
        until the next :meth:`ingest`)."""
        if self._known is None:
            with self._store_lock:
                self._known = {
                    "author": self.store.distinct("author"),
                    "platform": self.store.distinct("platform"),
                }
        return self._known

    def _search(
        self,
        queries: Sequence[str],
        k: int,
        filters: Mapping[str, tuple[str, ...]],
        collections: Sequence[str],
    ) -> list[Chunk]:
        dense = self.embedder.encode(list(queries)) if self.search != "lexical" else None
        vectors = [
            QueryVectors(
                dense=None if dense is None else dense[i],
                sparse=None if self.search == "dense" else self.lexical_encoder.encode_query(q),
            )
            for i, q in enumerate(queries)
        ]
        with self._store_lock:
            return self.store.search_many(
                vectors, k, mode=self.search, filters=filters, collections=collections
            )

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(2, thread_name_prefix="llm-twin-query")
            return self._executor

    def close(self) -> None:
        """Release the store (and its folder lock) and the query-step threads."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self.store.close()


def _batches(
    chunked: Sequence[tuple[Document, list[Chunk]]], size: int
) -> Iterator[list[tuple[Document, list[Chunk]]]]:
    """Whole documents grouped so that each batch holds about ``size`` chunks."""
    batch: list[tuple[Document, list[Chunk]]] = []
    count = 0
    for item in chunked:
        batch.append(item)
        count += len(item[1])
        if count >= size:
            yield batch
            batch, count = [], 0
    if batch:
        yield batch
