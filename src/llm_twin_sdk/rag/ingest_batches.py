"""How :meth:`RAGPipeline.ingest <llm_twin_sdk.rag.pipeline.RAGPipeline.ingest>` embeds and
writes its batches: :class:`BatchWriter` embeds batch n+1 (in the caller's thread, so Ctrl-C
stops it at once: the dense vectors from a local model or from a server with several requests
in flight; the BM25 vectors beside them in a thread) while a worker thread writes batch n,
batches in input order, one write at a time; a third thread reads batch n+2 against the store
meanwhile, so that no request waits for it. A failure stops it with every earlier batch
written (and counted) and none half-written; before the first write, the collections are
checked against the embedder's vector size. Example (what ``ingest`` does)::

    with BatchWriter(rag, lock=lock, tally=tally, sizer=sizer, report=report) as writer:
        writer.check_dimension(chunked)          # CollectionMismatchError before any write
        writer.run(sizer.batches(chunked))
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .embedder_base import Vectors
from .embedder_tei import RemoteEmbedder
from .ingestion import BatchSizer, IngestProgress, Tally
from .sparse import SparseVector
from .versions import StoredVersions

if TYPE_CHECKING:
    from ..types import Chunk, Document
    from .pipeline import RAGPipeline

__all__ = ["BatchWriter"]

Batch = Sequence[tuple["Document", list["Chunk"]]]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One batch read against the store: its documents not stored as they are (``todo``)."""

    batch: Batch
    fingerprints: dict[str, str]
    previous: StoredVersions
    same: int
    todo: list[Chunk]
    started: float


class BatchWriter:
    """Embeds and writes the batches of one ingest, two at a time (module docstring); a
    context manager that owns its threads."""

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
        self.tally = tally
        self.sizer = sizer
        self.report = report
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="llm-twin-write")
        self.lexical = ThreadPoolExecutor(1, thread_name_prefix="llm-twin-bm25")
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="llm-twin-read")
        if isinstance(rag.embedder, RemoteEmbedder):
            sizer.fill(rag.embedder.concurrency * rag.embedder.batch_size)
        self._counted: set[Future[None]] = set()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A write under way was awaited by run().
        for pool in (self.writer, self.lexical, self.reader):
            pool.shutdown(wait=True, cancel_futures=True)

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
        """Embed and write every batch in order; batch n+1 embeds while batch n is written,
        and is read against the store (a thread) while batch n embeds, so that the next
        requests leave as soon as batch n's are answered. On any failure (Ctrl-C too) a
        write under way is finished and counted first."""
        writing: tuple[_Prepared, Future[None]] | None = None
        reading: Future[_Prepared | None] | None = None
        iterator = iter(batches)
        try:
            prepared = self._next(iterator)
            while prepared is not None:
                reading = self.reader.submit(self._next, iterator)
                vectors = self._vectors(prepared)
                if writing is not None:
                    self._count(*writing)
                    writing = None
                upcoming, reading = reading.result(), None
                writing = (prepared, self.writer.submit(self._write, prepared, vectors))
                prepared = upcoming
            if writing is not None:
                self._count(*writing)
                writing = None
        except BaseException:
            if reading is not None:
                with contextlib.suppress(BaseException):  # a read only: nothing to keep
                    reading.result()
            if writing is not None:
                with contextlib.suppress(Exception):  # the first failure is the one raised
                    self._count(*writing)
            raise

    def _next(self, iterator: Iterator[Batch]) -> _Prepared | None:
        """The next batch read against the store, or ``None`` after the last. Taken while
        the batch before it embeds, it is sized by the rate measured up to two batches
        back."""
        batch = next(iterator, None)
        return None if batch is None else self._prepare(batch)

    def _prepare(self, batch: Batch) -> _Prepared:
        """Find the documents of ``batch`` not stored as they are."""
        started = time.perf_counter()
        rag = self.rag
        fingerprints = {doc.id: rag.fingerprint(doc) for doc, _ in batch}
        chunks = [chunk for _, doc_chunks in batch for chunk in doc_chunks]
        with self.lock:
            previous = rag.store.stored_versions(chunks)
        same = previous.unchanged(chunks, fingerprints, rag.store.collection_for)
        todo = [c for c in chunks if c.document_id not in same]
        return _Prepared(batch, fingerprints, previous, len(same), todo, started)

    def _vectors(self, prepared: _Prepared) -> tuple[Vectors, list[SparseVector]] | None:
        """The dense vectors (here) and the BM25 ones (beside, in a thread) of its ``todo``."""
        if not prepared.todo:
            return None
        texts = [c.text for c in prepared.todo]
        sparse = self.lexical.submit(self.rag.lexical_encoder.encode_documents, texts)
        try:
            dense = self.rag.embedder.encode(texts)
        except BaseException:
            sparse.cancel()
            raise
        return dense, sparse.result()

    def _write(
        self, prepared: _Prepared, vectors: tuple[Vectors, list[SparseVector]] | None
    ) -> None:
        if vectors is None:
            return
        with self.lock:
            self.rag.store.write_documents(
                prepared.todo,
                vectors[0],
                vectors[1],
                fingerprints=prepared.fingerprints,
                previous=prepared.previous,
            )

    def _count(self, prepared: _Prepared, written: Future[None]) -> None:
        """Wait for the write of ``prepared`` (raising its failure), then count it, once
        (an interrupt may strike while it reports: the failure path counts again)."""
        written.result()
        if written in self._counted:
            return
        self._counted.add(written)
        chunks = sum(len(doc_chunks) for _, doc_chunks in prepared.batch)
        self.tally.add(len(prepared.batch), chunks, prepared.same, len(prepared.todo))
        self.sizer.measured(len(prepared.todo), time.perf_counter() - prepared.started)
        self.report(self.tally.progress)
