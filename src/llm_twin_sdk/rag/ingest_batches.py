"""How :meth:`RAGPipeline.ingest <llm_twin_sdk.rag.pipeline.RAGPipeline.ingest>` embeds and
writes its batches: :class:`BatchWriter` embeds batch n+1 (in worker threads: the dense
vectors, from a local model or a server with several requests in flight, and beside them the
lexical ones) while batch n is written, and writes in input order. A failure stops it with every
earlier batch written and none half-written; before the first write, the collections are
checked against the embedder's vector size. Example (what ``ingest`` does)::

    with BatchWriter(rag, lock=lock, tally=tally, sizer=sizer, report=report) as writer:
        writer.check_dimension(chunked)          # CollectionMismatchError before any write
        writer.run(sizer.batches(chunked))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .embedder_base import Vectors
from .ingestion import BatchSizer, IngestProgress, Tally
from .sparse import SparseVector
from .versions import StoredVersions

if TYPE_CHECKING:
    from ..types import Chunk, Document
    from .pipeline import RAGPipeline

__all__ = ["BatchWriter"]

Batch = Sequence[tuple["Document", list["Chunk"]]]


@dataclass(frozen=True, slots=True)
class _Embedding:
    """One batch on its way: what is stored of it, and its vectors to come."""

    batch: Batch
    fingerprints: dict[str, str]
    previous: StoredVersions
    same: int
    todo: list[Chunk]
    vectors: Future[Vectors] | None
    sparse: Future[list[SparseVector]] | None
    started: float


class BatchWriter:
    """Embeds and writes the batches of one ingest, two at a time (module docstring)."""

    def __init__(
        self,
        rag: RAGPipeline,
        *,
        lock: threading.Lock,
        tally: Tally,
        sizer: BatchSizer,
        report: Callable[[IngestProgress], None],
    ) -> None:
        self.rag = rag
        self.lock = lock  # the pipeline's store lock
        # One thread for the dense vectors, batch after batch; one for the BM25 vectors.
        self.embedding = ThreadPoolExecutor(1, thread_name_prefix="llm-twin-embed")
        self.lexical = ThreadPoolExecutor(1, thread_name_prefix="llm-twin-bm25")
        self.tally = tally
        self.sizer = sizer
        self.report = report

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        """Stop the threads: after what they run (no request outlives an ingest), except
        on Ctrl-C, which returns at once (nothing they do is written anyway)."""
        interrupted = kind is not None and issubclass(kind, KeyboardInterrupt)
        for pool in (self.embedding, self.lexical):
            pool.shutdown(wait=not interrupted, cancel_futures=True)

    def check_dimension(self, chunked: Batch) -> None:
        """The collections this ingest writes to exist with the embedder's vector size
        (created if missing, nothing written), or
        :class:`~llm_twin_sdk.errors.CollectionMismatchError` says which differs."""
        store = self.rag.store
        dimension = self.rag.embedder.dimension  # a remote embedder may ask its server once
        names = {store.collection_for(doc.metadata.kind) for doc, _ in chunked}
        with self.lock:
            for name in sorted(names):
                store.ensure_collection(dimension, name)

    def run(self, batches: Iterable[Batch]) -> None:
        """Embed and write every batch in order; batch n+1 embeds while batch n is written.
        On a failure, a batch still embedding is waited for (nothing runs on) and dropped."""
        pending: list[_Embedding] = []
        try:
            for batch in batches:
                pending.append(self._start(batch))
                if len(pending) > 1:
                    self._write(pending.pop(0))
            while pending:
                self._write(pending.pop(0))
        except BaseException:
            for embedding in pending:  # not started yet: never will be
                for future in (embedding.vectors, embedding.sparse):
                    if future is not None:
                        future.cancel()
            raise

    def _start(self, batch: Batch) -> _Embedding:
        """Find the documents of ``batch`` not stored as they are; start embedding them."""
        started = time.perf_counter()
        rag = self.rag
        fingerprints = {doc.id: rag.fingerprint(doc) for doc, _ in batch}
        chunks = [chunk for _, doc_chunks in batch for chunk in doc_chunks]
        with self.lock:
            previous = rag.store.stored_versions(chunks)
        same = previous.unchanged(chunks, fingerprints, rag.store.collection_for)
        todo = [c for c in chunks if c.document_id not in same]
        texts = [c.text for c in todo]
        dense = sparse = None
        if todo:  # each in a thread of its own: BM25 runs while dense requests are out
            dense = self.embedding.submit(self.rag.embedder.encode, texts)
            sparse = self.lexical.submit(self.rag.lexical_encoder.encode_documents, texts)
        return _Embedding(batch, fingerprints, previous, len(same), todo, dense, sparse, started)

    def _write(self, embedded: _Embedding) -> None:
        """Wait for the vectors of ``embedded``, write its documents, count them."""
        todo = embedded.todo
        if embedded.vectors is not None and embedded.sparse is not None:
            vectors, sparse = embedded.vectors.result(), embedded.sparse.result()
            with self.lock:
                self.rag.store.write_documents(
                    todo,
                    vectors,
                    sparse,
                    fingerprints=embedded.fingerprints,
                    previous=embedded.previous,
                )
        chunks = sum(len(doc_chunks) for _, doc_chunks in embedded.batch)
        self.tally.add(len(embedded.batch), chunks, embedded.same, len(todo))
        self.sizer.measured(len(todo), time.perf_counter() - embedded.started)
        self.report(self.tally.progress)
