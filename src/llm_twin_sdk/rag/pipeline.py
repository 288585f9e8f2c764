"""RAGPipeline: ingest documents into Qdrant and retrieve the chunks most relevant to a question.

The steps of a retrieval and of an ingest: docs/architecture.md ("The request path", "Ingestion").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    ConfigurationError,
    EmptyStoreWarning,
    InvalidParameterError,
    LLMTwinError,
    ModelLoadError,
)
from ..ownership import Owner
from ..types import Chunk, Document, IngestReport
from ..validation import check_k, check_query, validate_documents
from .chunking import chunk_documents
from .documents import DeleteReport, StoredDocument
from .embedder_base import TextEmbedder
from .embedder_process import ProcessEmbedder
from .embedder_settings import close_embedder, embedder_from_settings
from .embedder_tei import RemoteEmbedder
from .filters import MetadataFilters, check_filters
from .fusion import Fusion, QueryVectors, SearchMode, check_search_mode
from .grouping import Unit, check_radius, check_unit
from .ingest_batches import SLICE as CHUNK_SLICE
from .ingest_batches import BatchWriter, ChunkFeed
from .ingestion import (
    BatchSizer,
    IngestProgress,
    Progress,
    Tally,
    check_progress,
    interrupted,
    progress_reporter,
)
from .query import Phrasing, QueryExpander, SelfQuery
from .rerank import Reranker
from .sparse import LexicalEncoder
from .store import QdrantStore

if TYPE_CHECKING:
    from ..config import TwinSettings
    from ..inference.client import InferenceClient

__all__ = ["DeleteReport", "IngestProgress", "RAGPipeline", "StoredDocument"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

FINGERPRINT_VERSION = 1
"""Part of every document fingerprint: bump it when what is stored for a text changes."""
INGEST_BATCH_SECONDS = 10.0
"""Default ``ingest_batch_seconds``: about the most embedding work an interrupt can lose."""


class RAGPipeline(Owner):
    """Chunking, embedding, storage and retrieval over one embedder and one store.

    Example::

        store = QdrantStore.memory()
        rag = RAGPipeline(Embedder(), store, self_query=SelfQuery(client),
                          expander=QueryExpander(client, n=3))   # the query steps: optional
        rag.ingest([Document(id="p1", text="Quantize before scaling.", metadata={"kind": "post"})])
        sources = rag.retrieve("How do I cut GPU cost?", k=3)   # 3 documents, best chunk each
        rag.close(); store.close()      # the pipeline borrows the store: its creator closes it

    The store (and the query steps' client) are *borrowed*: :meth:`close` leaves them open.
    :meth:`from_settings` builds its own store, which the pipeline then owns and closes.

    Args:
        embedder: encodes chunks and queries (the same model for both): the local
            :class:`Embedder` or a served one
            (:class:`~llm_twin_sdk.rag.embedder_tei.RemoteEmbedder`).
        chunk_tokens: maximum embedder tokens per chunk (at most the embedder's limit).
        chunk_overlap: tokens shared by consecutive chunks of a document.
        top_k: documents (or chunks) returned by :meth:`retrieve` when ``k`` is not given.
        search: ``"hybrid"`` (default: dense and BM25 rankings fused as ``fusion`` says),
            ``"dense"`` (embedding similarity) or ``"lexical"`` (BM25).
        fusion: how hybrid search (and expansion's phrasings) fuse their ranked lists
            (:class:`~llm_twin_sdk.rag.fusion.Fusion`; the default was chosen by measurement,
            docs/benchmarks.md section 6).
        lexical_encoder: computes the BM25 vectors of chunks and queries (default:
            ``LexicalEncoder()``, English; :meth:`from_settings`: ``LLM_TWIN_LANGUAGE``).
            Part of every document's fingerprint: another encoder re-ingests.
        self_query: the LLM query step that reads filters from the question.
        expander: the LLM query step that writes other phrasings of it.
        reranker: a cross-encoder that scores ``rerank_candidates`` candidates (at least
            ``k``; for document results, the best chunk of each of as many documents) and
            keeps the best ``k``. Checked here without loading it (:meth:`Reranker.check`): a
            model that cannot be loaded raises :class:`ModelLoadError` before any ingest.
        neighbours: chunks on each side of a best chunk that :meth:`neighbours` gives, for
            the twins to add to the prompt where its budget allows (0: none).
        ingest_batch: at most this many chunks embedded and written per batch by
            :meth:`ingest` (whole documents).
        ingest_batch_seconds: about how long a batch may take: after a small first batch,
            each is sized by the measured rate to take about this long (at most
            ``ingest_batch`` chunks), so an interrupted ingest loses at most that much work.
            Longer batches embed a little faster (docs/benchmarks.md, section 3).
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        store: QdrantStore,
        *,
        chunk_tokens: int = 128,
        chunk_overlap: int = 24,
        top_k: int = 3,
        search: SearchMode = "hybrid",
        fusion: Fusion | None = None,
        lexical_encoder: LexicalEncoder | None = None,
        self_query: SelfQuery | None = None,
        expander: QueryExpander | None = None,
        reranker: Reranker | None = None,
        rerank_candidates: int = 20,
        neighbours: int = 1,
        ingest_batch: int = 2048,
        ingest_batch_seconds: float = INGEST_BATCH_SECONDS,
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
        if (
            not isinstance(ingest_batch_seconds, (int, float))
            or not math.isfinite(ingest_batch_seconds)
            or ingest_batch_seconds <= 0
        ):
            raise ConfigurationError(
                f"ingest_batch_seconds must be a number > 0, got {ingest_batch_seconds!r}"
            )
        try:
            self.top_k = check_k(top_k, "top_k")
            self.rerank_candidates = check_k(rerank_candidates, "rerank_candidates")
            self.neighbour_radius = check_radius(neighbours, "neighbours")
            self.search: SearchMode = check_search_mode(search)
        except InvalidParameterError as exc:
            raise ConfigurationError(str(exc)) from None
        if reranker is not None:
            reranker.check()  # a model that cannot load fails now, not after an ingest
        self.embedder = embedder
        self.store = store
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.fusion = fusion or Fusion()
        self.lexical_encoder = lexical_encoder or LexicalEncoder()
        self.self_query = self_query
        self.expander = expander
        self.reranker = reranker
        self.ingest_batch = ingest_batch
        self.ingest_batch_seconds = float(ingest_batch_seconds)
        self._store_lock = threading.Lock()  # one store call at a time per pipeline
        self._known: dict[str, list[str]] | None = None  # authors / platforms, for self-query
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: TwinSettings | None = None, *, llm: InferenceClient | None = None
    ) -> RAGPipeline:
        """Build the embedder, the store and the query steps ``settings`` describe; ``llm`` is
        the client of self-query and expansion when the settings turn them on (borrowed).
        The pipeline owns the store it builds: :meth:`close` closes it."""
        from ..config import DATA_FOLDER, TwinSettings
        from ..extras import require_for_rag
        from .folders import ignored_by_git

        s = settings or TwinSettings()
        if (s.self_query or s.query_expansion > 1) and llm is None:
            raise ConfigurationError(
                "self-query and query expansion need an LLM client: pass llm=... "
                "(LLMTwin.from_settings does)"
            )
        require_for_rag(s)  # a thin install using the local embedder fails here, not later
        reranker = None
        if s.reranker_model:
            reranker = Reranker(s.reranker_model, device=s.embedding_device)
            try:
                reranker.check()
            except ModelLoadError as exc:
                raise ModelLoadError(
                    f"the setting reranker_model (LLM_TWIN_RERANKER_MODEL) names a model that "
                    f"cannot be used: {exc}"
                ) from exc
        embedder = embedder_from_settings(s)
        if s.qdrant_url:
            key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
            store = QdrantStore.server(
                s.qdrant_url, api_key=key, collections=s.collections, cluster=s.qdrant_cluster
            )
        else:
            path, cluster = s.qdrant_path, s.qdrant_cluster
            store = QdrantStore.local(path, collections=s.collections, cluster=cluster)
            if s.qdrant_path.parent.name == DATA_FOLDER:  # the project's .llm-twin
                ignored_by_git(s.qdrant_path.parent)
        try:
            rag = cls(
                embedder,
                store,
                chunk_tokens=s.chunk_tokens,
                chunk_overlap=s.chunk_overlap,
                top_k=s.top_k,
                search=s.search,
                fusion=Fusion(s.fusion),
                lexical_encoder=LexicalEncoder(language=s.language),
                self_query=SelfQuery(llm) if s.self_query and llm is not None else None,
                expander=QueryExpander(llm, n=s.query_expansion, weight=s.query_expansion_weight)
                if s.query_expansion > 1
                else None,
                reranker=reranker,
                rerank_candidates=s.rerank_candidates,
            )
        except BaseException:
            store.close()
            close_embedder(embedder)
            raise
        rag._own(store)  # built here: closed with the pipeline
        if isinstance(embedder, RemoteEmbedder | ProcessEmbedder):
            rag._own(embedder)
        return rag

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
        return ChunkFeed(self._chunk_slice, docs, ahead=False).result()

    def _chunk_slice(self, docs: Sequence[Document]) -> list[tuple[Document, list[Chunk]]]:
        """A few documents with their chunks (their token offsets in one call)."""
        return chunk_documents(
            docs, self.embedder.token_offsets, self.chunk_tokens, self.chunk_overlap
        )

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
        self, documents: Iterable[Document | Mapping[str, Any]], *, progress: Progress = None
    ) -> IngestReport:
        """Chunk, embed and store documents, in batches. Re-ingesting a document replaces it.

        ``documents``: :class:`Document` objects or mappings with ``id``, ``text`` and optional
        ``metadata`` (:mod:`~llm_twin_sdk.rag.sources` reads files). All are validated and
        chunked before the first write, so a bad document leaves the store untouched (with a
        remote embedder the first batches embed while the rest is still chunked). Chunks
        are then embedded and written in batches of whole documents, each taking about
        :attr:`ingest_batch_seconds` (at most :attr:`ingest_batch` chunks); batch n+1 is
        embedded while batch n is written (:mod:`~llm_twin_sdk.rag.ingest_batches`), after
        the collections were checked against the embedder's size. Documents stored
        exactly as given are skipped, so an interrupted run resumes where it stopped: a
        Ctrl-C keeps every finished batch and raises ``KeyboardInterrupt`` saying how many
        documents are stored.

        ``progress``: ``True`` shows a bar (tqdm, on stderr; a widget in a notebook with
        ipywidgets), ``False`` nothing, ``None`` a bar in a terminal or a notebook; a function
        is called with an :class:`IngestProgress` before the first batch and after each::

            rag.ingest(docs, progress=lambda p: print(p.documents_done, "/", p.documents_total))
        """
        started = time.perf_counter()
        progress = check_progress(progress)
        docs = validate_documents(documents)
        # A remote embedder's first requests leave while the rest is still chunked (by a
        # thread: a local model's tokenizer is not shared with one); no write before all is.
        remote = isinstance(self.embedder, RemoteEmbedder | ProcessEmbedder)
        ahead = remote and len(docs) > CHUNK_SLICE
        feed = ChunkFeed(self._chunk_slice, docs, ahead=ahead)
        tally = Tally(IngestProgress(0, len(docs), 0, 0), started=started)
        sizer = BatchSizer(self.ingest_batch, self.ingest_batch_seconds)
        try:
            with contextlib.ExitStack() as stack:
                stack.callback(feed.close)
                writer = stack.enter_context(
                    BatchWriter(self, lock=self._store_lock, tally=tally, sizer=sizer)
                )

                def begin() -> Callable[[IngestProgress], None]:
                    """Every document chunked: the totals, the first report, the collections
                    checked against the embedder's size (before the first write)."""
                    chunked = feed.result()
                    total = sum(len(chunks) for _, chunks in chunked)
                    tally.progress = replace(tally.progress, chunks_total=total)
                    report = stack.enter_context(progress_reporter(progress, total))
                    report(tally.progress)
                    if total:
                        writer.ensure_collections(chunked)
                    return report

                try:
                    if docs:
                        writer.check_sizes(docs)  # before anything is embedded
                    writer.run(sizer.batches(feed), begin=begin, ready=feed.done)
                except LLMTwinError as exc:
                    if exc is not feed.error:  # a document that cannot be chunked: no resume
                        p = tally.progress
                        exc.add_note(
                            f"{p.documents_done} of {p.documents_total} documents were stored "
                            "before this failure; ingest the same documents again to resume."
                        )
                    raise
        except KeyboardInterrupt:
            # A fresh interrupt, raised here: the user sees what was kept, not torch's frames.
            raise KeyboardInterrupt(interrupted(tally)) from None
        finally:
            self._known = None
        report_ = IngestReport(
            documents=tally.written_documents,
            chunks=tally.written_chunks,
            unchanged=tally.unchanged,
            seconds=time.perf_counter() - started,
        )
        logger.info(
            "ingested %d documents as %d chunks (%d unchanged) in %.2fs",
            report_.documents,
            report_.chunks,
            report_.unchanged,
            report_.seconds,
        )
        return report_

    # -- the documents stored ----------------------------------------------------------------

    def count(self, *, chunks: bool = False) -> int:
        """How many documents the store holds, in every collection (``chunks=True``: how
        many chunks). Example: ``if rag.count() == 0: rag.ingest(documents)``."""
        with self._store_lock:
            return self.store.count(documents=not chunks)

    def documents(self, filters: MetadataFilters | None = None) -> Iterator[StoredDocument]:
        """The documents stored (id, metadata, number of chunks, collection), read a page at
        a time from their first chunks (no text, no vectors); ``filters`` as in
        :meth:`retrieve`. Bad filters raise :class:`InvalidParameterError` at once::

            for doc in rag.documents({"author": "Maya Okafor"}):
                print(doc.id, doc.metadata.title, doc.chunks)
            ids = [doc.id for doc in rag.documents()]
        """
        with self._store_lock:
            listing = self.store.documents(filters)
        return self._locked(listing)

    def _locked(self, items: Iterator[T]) -> Iterator[T]:
        """``items``, each read under the store lock (not held between them)."""
        while True:
            with self._store_lock:
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item

    def delete(self, ids: str | Iterable[str]) -> DeleteReport:
        """Remove the documents ``ids`` (one id or several) with all their chunks, from
        every collection. Ids the store does not hold are listed in the report's ``missing``
        (not an error: deleting twice is fine). Bad ids raise :class:`InvalidParameterError`
        before anything is deleted::

            report = rag.delete(["post-1", "post-9"])
            report.documents, report.chunks, report.missing    # 1, 3, ("post-9",)
        """
        with self._store_lock:
            report = self.store.delete_documents(ids)
        self._known = None
        return report

    # -- retrieval -------------------------------------------------------------------------

    def retrieve(
        self,
        query: str,
        k: int | None = None,
        *,
        filters: MetadataFilters | None = None,
        collections: Iterable[str] | None = None,
        unit: Unit = "document",
    ) -> list[Chunk]:
        """The ``k`` documents most relevant to ``query`` (default ``top_k``; at most
        :data:`~llm_twin_sdk.validation.MAX_K`), each as its best chunk, best first, ranked
        as :attr:`search` says (scores: cosines, BM25, reciprocal-rank-fusion or the
        reranker's). ``unit="chunk"``: the ``k`` best chunks instead, several of one document
        possibly. Fewer documents are returned only when fewer match. ``filters`` restricts
        the results by metadata, e.g. ``{"author": "Maya Okafor", "kind": ["post"]}`` (fields
        it names win over self-query's); ``collections``: search only those. Over a store
        that holds no documents at all, it warns (:class:`EmptyStoreWarning`)::

            best = rag.retrieve("How do I cut GPU cost?", k=5)    # 5 distinct documents
            [c.document_id for c in best]
            chunks = rag.retrieve("How do I cut GPU cost?", k=5, unit="chunk")
            context = rag.neighbours(best)           # the chunks around each best chunk
        """
        query = check_query(query)  # every argument checked before any work
        limit = self.top_k if k is None else check_k(k)
        checked, names = check_filters(filters), self.store.check_collections(collections)
        documents = check_unit(unit) == "document"
        queries, extracted = self._rewrite(query, checked)
        merged = {**extracted, **checked}
        chunks = self._candidates(queries, limit, documents, merged, names)
        if not chunks and extracted:
            logger.info("no result with the self-query filters %s; searching without", extracted)
            chunks = self._candidates(queries, limit, documents, checked, names)
        if self.reranker is not None and chunks:
            chunks = self.reranker.rerank(query, chunks, keep_top_k=limit)
        if not chunks and self.count(chunks=True) == 0:  # counted only when nothing was found
            warnings.warn(
                EmptyStoreWarning(
                    f"the vector store ({self.store.where}) holds no documents: nothing to "
                    "retrieve, so answers have no sources. Ingest documents first "
                    "(rag.ingest / twin.ingest), or check the store's folder or URL."
                ),
                stacklevel=2,
            )
        return chunks[:limit]

    async def aretrieve(
        self,
        query: str,
        k: int | None = None,
        *,
        filters: MetadataFilters | None = None,
        collections: Iterable[str] | None = None,
        unit: Unit = "document",
    ) -> list[Chunk]:
        """:meth:`retrieve` for async code: runs in a worker thread, never blocking the loop
        (store access is serialised per pipeline, so concurrent requests queue in threads).
        Example, in an async web handler: ``sources = await rag.aretrieve(question, k=5)``.
        """
        return await asyncio.to_thread(
            functools.partial(
                self.retrieve, query, k, filters=filters, collections=collections, unit=unit
            )
        )

    def neighbours(self, chunks: Sequence[Chunk]) -> list[Chunk]:
        """The stored chunks just before and after each of ``chunks`` in its document
        (:attr:`neighbour_radius` positions on each side, the constructor's ``neighbours``;
        none when it is 0), not among ``chunks``:
        one store lookup (:meth:`QdrantStore.neighbours`). The twins add them to the prompt
        where its budget allows. Example: ``rag.neighbours(rag.retrieve(question))``."""
        if not self.neighbour_radius or not chunks:
            return []
        with self._store_lock:
            return self.store.neighbours(chunks, self.neighbour_radius)

    def _candidates(
        self,
        queries: Sequence[Phrasing],
        limit: int,
        documents: bool,
        filters: Mapping[str, tuple[str, ...]],
        collections: Sequence[str],
    ) -> list[Chunk]:
        """The chunks to rank: ``limit`` chunks, or the best chunk of each of the ``limit``
        best documents (fused per document by the store, :meth:`QdrantStore.search_many`);
        with a reranker, ``rerank_candidates`` of them if that is more."""
        depth = max(limit, self.rerank_candidates) if self.reranker is not None else limit
        return self._search(queries, depth, filters, collections, per_document=documents)

    def _rewrite(
        self, query: str, explicit: Mapping[str, tuple[str, ...]]
    ) -> tuple[list[Phrasing], dict[str, tuple[str, ...]]]:
        """The phrasings to search (the question first, weighing most) and the self-query
        filters: the two LLM steps at once."""
        self_query = self.self_query
        if self_query is None or {"author", "platform", "kind"} <= set(explicit):
            return self._phrasings(query), {}
        extracted = self._pool().submit(
            lambda: self_query.extract(query, known=self.known_values())
        )
        phrasings = self._phrasings(query)
        return phrasings, {f: v for f, v in extracted.result().items() if f not in explicit}

    def _phrasings(self, query: str) -> list[Phrasing]:
        return self.expander.phrasings(query) if self.expander is not None else [Phrasing(query)]

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
        phrasings: Sequence[Phrasing],
        k: int,
        filters: Mapping[str, tuple[str, ...]],
        collections: Sequence[str],
        *,
        per_document: bool = False,
    ) -> list[Chunk]:
        # Written phrasings are embedded (in one batch with the question) even for a lexical
        # search: those that drifted from the question are not searched.
        drifting = self.expander is not None and len(phrasings) > 1
        texts = [p.text for p in phrasings]
        dense = self.embedder.encode(texts) if self.search != "lexical" or drifting else None
        if drifting and self.expander is not None and dense is not None:
            kept = self.expander.close_to_question(phrasings, dense)
            phrasings, dense = [phrasings[i] for i in kept], dense[kept]
        vectors = [
            QueryVectors(
                dense=None if dense is None or self.search == "lexical" else dense[i],
                sparse=None
                if self.search == "dense"
                else self.lexical_encoder.encode_query(phrasing.text),
                weight=phrasing.weight,
            )
            for i, phrasing in enumerate(phrasings)
        ]
        with self._store_lock:
            return self.store.search_many(
                vectors,
                k,
                mode=self.search,
                filters=filters,
                collections=collections,
                fusion=self.fusion,
                per_document=per_document,
            )

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(2, thread_name_prefix="llm-twin-query")
            return self._executor

    def close(self) -> None:
        """Stop the query-step threads and close what :meth:`from_settings` built (its
        store); a store passed to the constructor stays open. Safe to call twice."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._close_owned()

    def __enter__(self) -> RAGPipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
