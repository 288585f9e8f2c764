"""How :meth:`RAGPipeline.ingest <llm_twin_sdk.rag.pipeline.RAGPipeline.ingest>` chunks, embeds
and writes its batches.

:class:`ChunkFeed` chunks the documents: all at once, or, for a remote embedder, in a thread
ahead of the batches, so that the first requests leave while the rest is still cut. No write
happens before every document is chunked, so a document that cannot be chunked still leaves
the store untouched.

:class:`BatchWriter` embeds batch n+1 (in the caller's thread, so Ctrl-C stops it at once: the
dense vectors from a local model or from a server with several requests in flight; the BM25
vectors beside them in a thread) while a worker thread writes batch n, batches in input order,
one write at a time; a third thread reads batch n+2 against the store meanwhile, so that no
request waits for it. A failure stops it with every earlier batch written (and counted) and
none half-written; before the first write, the collections are checked against the embedder's
vector size. Example (what ``ingest`` does)::

    feed = ChunkFeed(chunk, docs, ahead=True)   # chunk(a few docs) -> [(doc, chunks)]
    with BatchWriter(rag, lock=lock, tally=tally, sizer=sizer) as writer:
        # begin(), once all is chunked and before the first write: totals, first report,
        # the collections checked
        writer.run(sizer.batches(feed), begin=begin, ready=feed.done)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .embedder_base import Vectors
from .embedder_process import ProcessEmbedder
from .embedder_tei import RemoteEmbedder
from .ingestion import BatchSizer, IngestProgress, Tally
from .sparse import SparseVector
from .versions import StoredVersions

if TYPE_CHECKING:
    from ..types import Chunk, Document
    from .pipeline import RAGPipeline

__all__ = ["BatchWriter", "ChunkFeed"]

Batch = Sequence[tuple["Document", list["Chunk"]]]
Chunked = list[tuple["Document", list["Chunk"]]]
SLICE = 8
"""Documents chunked at a time (token offsets in one call; their tuples die young)."""


class ChunkFeed:
    """The documents of one ingest, chunked by ``chunk`` :data:`SLICE` documents at a time:
    at once in the constructor (``ahead=False``: a chunking error is raised there), or in a
    thread (``ahead=True``), ahead of the batches that read them. Iterating gives
    ``(document, chunks)`` in input order, waiting for the thread where it must; a chunking
    error is raised where the iteration reaches it, and by :meth:`result`.

    Example::

        feed = ChunkFeed(chunk, docs, ahead=True)  # chunk(a few docs) -> [(doc, chunks)]
        for doc, chunks in feed: ...              # while the rest is still chunked
        chunked = feed.result()                   # all of them (or the chunking error)
    """

    def __init__(
        self,
        chunk: Callable[[Sequence[Document]], Chunked],
        docs: Sequence[Document],
        *,
        ahead: bool,
    ) -> None:
        self._items: Chunked = []
        self._error: BaseException | None = None
        self._stopped = False
        self._changed = threading.Condition()
        self._done = threading.Event()
        if not ahead:
            for start in range(0, len(docs), SLICE):
                self._items += chunk(docs[start : start + SLICE])
            self._done.set()
            return
        thread = threading.Thread(
            target=self._chunk, args=(chunk, docs), name="llm-twin-chunk", daemon=True
        )
        thread.start()

    def _chunk(
        self, chunk: Callable[[Sequence[Document]], Chunked], docs: Sequence[Document]
    ) -> None:
        try:
            for start in range(0, len(docs), SLICE):
                if self._stopped:
                    return
                part = chunk(docs[start : start + SLICE])
                with self._changed:
                    self._items += part
                    self._changed.notify_all()
                time.sleep(0)  # the GIL to the request threads: their answers wait on it
        except BaseException as exc:  # handed to the ingest, which raises it
            self._error = exc
        finally:
            with self._changed:
                self._done.set()
                self._changed.notify_all()

    @property
    def error(self) -> BaseException | None:
        """What chunking raised, if it failed."""
        return self._error

    def done(self) -> bool:
        """Whether every document is chunked (or chunking failed)."""
        return self._done.is_set()

    def __iter__(self) -> Iterator[tuple[Document, list[Chunk]]]:
        index = 0
        while True:
            with self._changed:
                while index >= len(self._items) and not self._done.is_set():
                    self._changed.wait()
                if index < len(self._items):
                    item = self._items[index]
                elif self._error is not None:
                    raise self._error
                else:
                    return
            index += 1
            yield item

    def result(self) -> Chunked:
        """Every document with its chunks, once all are chunked; the chunking error if any."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._items

    def close(self) -> None:
        """Stop a thread still chunking (after the slice under way)."""
        self._stopped = True


_Vectors = tuple[Vectors, list[SparseVector]] | None
"""A batch's dense and BM25 vectors (``None``: nothing of it to write)."""


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
    ) -> None:
        self.rag = rag
        self.lock = lock  # the pipeline's store lock
        self.tally = tally
        self.sizer = sizer
        self.report: Callable[[IngestProgress], None] = lambda _: None  # set by run's begin
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="llm-twin-write")
        self.lexical = ThreadPoolExecutor(1, thread_name_prefix="llm-twin-bm25")
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="llm-twin-read")
        if isinstance(rag.embedder, RemoteEmbedder | ProcessEmbedder):
            sizer.fill(rag.embedder.concurrency * rag.embedder.batch_size)
        self._counted: set[Future[None]] = set()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A write under way was awaited by run().
        for pool in (self.writer, self.lexical, self.reader):
            pool.shutdown(wait=True, cancel_futures=True)

    def check_sizes(self, docs: Sequence[Document]) -> None:
        """Before anything is embedded: no collection ``docs`` go to exists with another
        vector size than the embedder's (:class:`~llm_twin_sdk.errors.CollectionMismatchError`;
        nothing is created)."""
        store = self.rag.store
        dimension = self.rag.embedder.dimension  # a remote embedder may ask its server once
        names = sorted({store.collection_for(doc.metadata.kind) for doc in docs})
        with self.lock:
            store.check_dimension(dimension, names)

    def ensure_collections(self, chunked: Batch) -> None:
        """Before the first write: the collections this ingest writes to exist with the
        embedder's vector size (created if missing, nothing written), or
        :class:`~llm_twin_sdk.errors.CollectionMismatchError` says which differs."""
        store = self.rag.store
        dimension = self.rag.embedder.dimension
        names = {store.collection_for(doc.metadata.kind) for doc, _ in chunked}
        with self.lock:
            for name in sorted(names):
                store.ensure_collection(dimension, name)

    def run(
        self,
        batches: Iterable[Batch],
        *,
        begin: Callable[[], Callable[[IngestProgress], None]],
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        """Embed and write every batch in order; batch n+1 embeds while batch n is written,
        and is read against the store (a thread) while batch n embeds, so that the next
        requests leave as soon as batch n's are answered. No batch is written before
        ``ready()`` (every document chunked) and ``begin()`` (which checks what must hold
        before the first write and gives the function progress is reported to): batches
        embedded before are held, then written in order. On any failure (Ctrl-C too) the
        writes under way are finished and counted first."""
        held: list[tuple[_Prepared, _Vectors]] = []
        writing: deque[tuple[_Prepared, Future[None], bool]] = deque()
        reading: Future[_Prepared | None] | None = None
        began = False

        def start() -> None:
            nonlocal began
            self.report = begin()
            began = True
            for prepared, vectors in held:  # embedded while chunking: not measured
                writing.append(
                    (prepared, self.writer.submit(self._write, prepared, vectors), False)
                )
            held.clear()

        iterator = iter(batches)
        try:
            if ready():
                start()
            prepared = self._next(iterator)
            while prepared is not None:
                reading = self.reader.submit(self._next, iterator)
                vectors = self._vectors(prepared)
                while writing:
                    self._count(*writing.popleft())
                upcoming, reading = reading.result(), None
                if not began and (upcoming is None or ready()):
                    start()
                if began:
                    writing.append(
                        (prepared, self.writer.submit(self._write, prepared, vectors), True)
                    )
                else:
                    held.append((prepared, vectors))
                prepared = upcoming
            if not began:
                start()
            while writing:
                self._count(*writing.popleft())
        except BaseException:
            if reading is not None:
                with contextlib.suppress(BaseException):  # a read only: nothing to keep
                    reading.result()
            while writing:
                with contextlib.suppress(Exception):  # the first failure is the one raised
                    self._count(*writing.popleft())
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

    def _vectors(self, prepared: _Prepared) -> _Vectors:
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

    def _write(self, prepared: _Prepared, vectors: _Vectors) -> None:
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

    def _count(self, prepared: _Prepared, written: Future[None], measure: bool) -> None:
        """Wait for the write of ``prepared`` (raising its failure), then count it, once
        (an interrupt may strike while it reports: the failure path counts again), and feed
        the time it took to the sizer (``measure``)."""
        written.result()
        if written in self._counted:
            return
        self._counted.add(written)
        chunks = sum(len(doc_chunks) for _, doc_chunks in prepared.batch)
        self.tally.add(len(prepared.batch), chunks, prepared.same, len(prepared.todo))
        if measure:
            self.sizer.measured(len(prepared.todo), time.perf_counter() - prepared.started)
        self.report(self.tally.progress)
