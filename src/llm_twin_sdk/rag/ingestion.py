"""How :meth:`RAGPipeline.ingest` runs (docs/architecture.md, "Ingestion"): batches of whole
documents bounded in time as well as size (:class:`BatchSizer`), progress for a terminal, a
notebook or a callback (:class:`IngestProgress`), and what an interrupted run tells::

    def show(p: IngestProgress) -> None:
        print(f"{p.documents_done}/{p.documents_total} documents")

    rag.ingest(docs, progress=show)      # or True / False; None: a bar in a terminal or notebook
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Never, TypeAlias, cast

from ..errors import InvalidParameterError

if TYPE_CHECKING:
    from ..types import Chunk, Document

__all__ = [
    "FIRST_BATCH",
    "BatchSizer",
    "IngestProgress",
    "Progress",
    "in_notebook",
    "interrupted",
    "Tally",
    "check_progress",
    "progress_reporter",
]

FIRST_BATCH = 64
"""Chunks in the first batch of an ingest, which measures the embedding rate."""
_MIN_MEASURED = 16  # chunks a batch must embed for its rate to count


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Where an ingest stands: documents and chunks done (stored, or found unchanged) out of
    the totals, and the seconds since it started. Reported once before the first batch and
    after every batch."""

    documents_done: int
    documents_total: int
    chunks_done: int
    chunks_total: int
    seconds: float = 0.0


Progress: TypeAlias = bool | Callable[[IngestProgress], None] | None
"""``ingest(progress=...)``: ``True`` a bar, ``False`` nothing, a function called with each
:class:`IngestProgress`, ``None`` a bar when stderr is a terminal or in a notebook."""


class BatchSizer:
    """Sizes of ingestion batches, in chunks: the first is :data:`FIRST_BATCH` (or what
    fills a remote embedder's requests, :meth:`fill`); each next
    one is what the measured rate (chunks per second, smoothed) embeds and writes in about
    ``seconds``, at most ``limit``. An interrupt so loses at most about ``seconds`` of work.

    Example::

        sizer = BatchSizer(limit=2048, seconds=10.0)
        for batch in sizer.batches(chunked):          # whole documents per batch
            started = time.perf_counter()
            ...                                       # embed and write the batch
            sizer.measured(chunks, time.perf_counter() - started)
    """

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.target = min(limit, FIRST_BATCH)
        self.rate: float | None = None

    def fill(self, slots: int) -> None:
        """Make the batches before the first measurement at least ``slots`` chunks (at most
        :attr:`limit`): a remote embedder's requests in flight times its batch size, so
        that even the first batch keeps every request busy."""
        if self.rate is None:
            self.target = max(self.target, min(self.limit, slots))

    def measured(self, chunks: int, seconds: float) -> None:
        """Record that a batch of ``chunks`` took ``seconds``; sets the next :attr:`target`."""
        if chunks < _MIN_MEASURED or seconds <= 0:
            return  # too little embedded to tell (e.g. unchanged documents)
        rate = chunks / seconds
        self.rate = rate if self.rate is None else (self.rate + rate) / 2
        self.target = max(1, min(self.limit, round(self.rate * self.seconds)))

    def batches(
        self, chunked: Iterable[tuple[Document, list[Chunk]]]
    ) -> Iterator[list[tuple[Document, list[Chunk]]]]:
        """Whole documents grouped so that each batch holds at least :attr:`target` chunks
        (read as each batch starts), or what is left."""
        batch: list[tuple[Document, list[Chunk]]] = []
        count = 0
        for item in chunked:
            batch.append(item)
            count += len(item[1])
            if count >= self.target:
                yield batch
                batch, count = [], 0
        if batch:
            yield batch


def check_progress(progress: object) -> Progress:
    """``progress`` if it is a :data:`Progress`; an :class:`InvalidParameterError` if not."""
    if progress is None or isinstance(progress, bool):
        return progress
    if callable(progress):
        return cast("Callable[[IngestProgress], None]", progress)
    raise InvalidParameterError(
        f"progress must be True, False, None or a function of IngestProgress, got {progress!r:.60}"
    )


def in_notebook() -> bool:
    """Whether this runs in a Jupyter (IPython) kernel, whose stderr is no terminal."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return getattr(shell, "kernel", None) is not None


@contextmanager
def progress_reporter(
    progress: Progress, chunks_total: int
) -> Iterator[Callable[[IngestProgress], None]]:
    """The function an ingest reports to: ``progress`` itself, a tqdm bar, or nothing. In a
    notebook the bar is tqdm's widget when ipywidgets is installed, else the text bar on
    stderr (never tqdm.auto's "IProgress not found" warning)."""
    if callable(progress):
        yield progress
        return
    show = (sys.stderr.isatty() or in_notebook()) if progress is None else progress
    if not show:
        yield lambda _: None
        return
    from tqdm.std import tqdm

    bar_type: type[tqdm[Never]] = tqdm
    if in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm_notebook

        bar_type = tqdm_notebook
    with bar_type(total=chunks_total, unit="chunk", desc="ingest", file=sys.stderr) as bar:

        def update(p: IngestProgress) -> None:
            bar.set_postfix_str(f"{p.documents_done}/{p.documents_total} documents", False)
            bar.update(p.chunks_done - int(bar.n))

        yield update


@dataclass
class Tally:
    """The running counts of one ingest."""

    progress: IngestProgress
    written_documents: int = 0
    written_chunks: int = 0
    unchanged: int = 0
    started: float = 0.0

    def add(self, documents: int, chunks: int, unchanged: int, written_chunks: int) -> None:
        self.written_documents += documents - unchanged
        self.unchanged += unchanged
        self.written_chunks += written_chunks
        self.progress = replace(
            self.progress,
            documents_done=self.progress.documents_done + documents,
            chunks_done=self.progress.chunks_done + chunks,
            seconds=time.perf_counter() - self.started,
        )


def interrupted(tally: Tally) -> str:
    """What a Ctrl-C during an ingest says."""
    p = tally.progress
    return (
        f"ingest interrupted: {p.documents_done} of {p.documents_total} documents are stored "
        f"({tally.written_documents} written now, {tally.unchanged} already stored). "
        "Run the same ingest again to resume: stored documents are skipped."
    )
