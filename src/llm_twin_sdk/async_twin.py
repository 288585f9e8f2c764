"""AsyncLLMTwin: the asyncio twin of :class:`~llm_twin_sdk.LLMTwin`, for async applications.

Same capabilities and results (ask, stream with sources first, ingest, timings, usage,
filters); nothing it does blocks the event loop: retrieval and prompt assembly run in a
worker thread, generation through :class:`~llm_twin_sdk.AsyncInferenceClient`. Example::

    async with AsyncLLMTwin.from_settings() as twin:        # or AsyncLLMTwin.from_twin(twin)
        answer = await twin.ask("How should I size MAX_TOTAL_TOKENS?")
        async with twin.stream("And for batching?") as stream:
            print([s.document_id for s in stream.sources])  # known before any text
            async for piece in stream:
                print(piece, end="")
        print(stream.answer.usage)
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import InferenceError
from .inference.async_client import AsyncInferenceClient
from .inference.async_stream import AsyncTextStream
from .inference.client import InferenceClient
from .rag.documents import DeleteReport, StoredDocument
from .rag.filters import MetadataFilters
from .rag.ingestion import Progress
from .twin import Prepared, TwinCore, stream_html, stream_repr
from .types import Answer, Chunk, Document, Generation, GenerationParams, IngestReport

if TYPE_CHECKING:
    from .config import TwinSettings
    from .twin import LLMTwin

__all__ = ["AsyncAnswerStream", "AsyncLLMTwin"]


class AsyncLLMTwin(TwinCore[AsyncInferenceClient]):
    """A RAG pipeline and an async inference client composed into one question-answering
    object, for asyncio code (a FastAPI route, an async notebook cell).

    ``rag`` and ``client`` are borrowed: :meth:`aclose` leaves them open for their creator;
    :meth:`from_settings` builds (and closes) its own; :meth:`from_twin` shares a sync twin's
    models and store, which that twin keeps owning.
    """

    @classmethod
    def from_settings(cls, settings: TwinSettings | None = None) -> AsyncLLMTwin:
        """Build a twin from settings, like :meth:`LLMTwin.from_settings` (which it mirrors:
        same footings, same defaults); the twin owns and closes what it builds.

        Loading models blocks: call it at application start-up (a FastAPI lifespan), or as
        ``await asyncio.to_thread(AsyncLLMTwin.from_settings)``.
        """
        from .config import TwinSettings
        from .extras import require_for_settings

        s = settings or TwinSettings()
        require_for_settings(s)  # MissingExtraError before any part is built
        client = AsyncInferenceClient.from_settings(s)
        # Self-query and expansion run in the retrieval thread: a sync client on the same
        # backend (borrowed: the async client owns the backend).
        llm = InferenceClient(
            client.backend,
            params=client.params,
            timeout=client.timeout,
            prompt_format=client.prompt_format,
        )
        return cls._compose(s, client, llm=llm)

    @classmethod
    def from_twin(cls, twin: LLMTwin) -> AsyncLLMTwin:
        """An async twin over ``twin``'s backend, pipeline and template: no model is loaded
        again. ``twin`` keeps owning them; closing the async twin stops only its own threads.

        Example: ``atwin = AsyncLLMTwin.from_twin(LLMTwin.from_settings())``.
        """
        c = twin.client
        client = AsyncInferenceClient(
            c.backend,
            params=c.params,
            retry=c.retry,
            timeout=c.timeout,
            prompt_format=c.prompt_format,
        )
        atwin = cls(twin.rag, client, template=twin.template)
        atwin._own(client)
        return atwin

    async def ingest(
        self, documents: Iterable[Document | Mapping[str, Any]], *, progress: Progress = None
    ) -> IngestReport:
        """:meth:`RAGPipeline.ingest` in a worker thread (a ``progress`` function is called
        there). Cancelling the awaiting task does not stop the thread: the ingest runs to its
        end (run it again after an interrupt: it resumes)."""
        call = functools.partial(self.rag.ingest, documents, progress=progress)
        return await asyncio.to_thread(call)

    async def count(self, *, chunks: bool = False) -> int:
        """Documents stored (``chunks=True``: chunks); see :meth:`RAGPipeline.count`."""
        return await asyncio.to_thread(functools.partial(self.rag.count, chunks=chunks))

    async def documents(self, filters: MetadataFilters | None = None) -> list[StoredDocument]:
        """The documents stored, without text, read in a worker thread; see
        :meth:`RAGPipeline.documents`. Example: ``ids = [d.id for d in await twin.documents()]``.
        """
        return await asyncio.to_thread(lambda: list(self.rag.documents(filters)))

    async def delete(self, ids: str | Iterable[str]) -> DeleteReport:
        """Remove documents and their chunks; see :meth:`RAGPipeline.delete`."""
        return await asyncio.to_thread(self.rag.delete, ids)

    async def ask(
        self,
        query: str,
        *,
        k: int | None = None,
        params: GenerationParams | None = None,
        filters: MetadataFilters | None = None,
    ) -> Answer:
        """Answer ``query`` from the ``k`` best documents that fit the model's input budget
        (:meth:`LLMTwin.ask`, awaited). Example: ``answer = await twin.ask("Why RRF?", k=5)``.
        """
        params = params or self.client.params
        prepared = await self._ready(query, k, params, filters)
        generation = await self.client.generate(prepared.prompt.messages, params)
        return prepared.answer(generation, generation.latency_s)

    def stream(
        self,
        query: str,
        *,
        k: int | None = None,
        params: GenerationParams | None = None,
        filters: MetadataFilters | None = None,
    ) -> AsyncAnswerStream:
        """Like :meth:`ask`, but the sources come first, then the text piece by piece.

        Use it in an ``async with`` block (or ``await`` it): entering retrieves the sources,
        assembles the prompt and opens the generation (its first piece received, retried
        like ``ask``), so every error of a request is raised there, before any piece.
        Leaving the block early stops generation and frees the model.
        """
        params = params or self.client.params
        return AsyncAnswerStream(self, query, k, params, filters)

    async def _ready(
        self,
        query: str,
        k: int | None,
        params: GenerationParams,
        filters: MetadataFilters | None,
    ) -> Prepared:
        """:meth:`TwinCore._prepare` in a worker thread (embedding, Qdrant, token counts)."""
        return await asyncio.to_thread(self._prepare, query, k, params, filters)

    async def aclose(self) -> None:
        """Release what this twin created; what it was handed stays open. Safe to call twice."""
        await self._aclose_owned()

    async def __aenter__(self) -> AsyncLLMTwin:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncAnswerStream(AsyncTextStream):
    """A streamed answer for async code: :attr:`sources` once entered, then text pieces,
    then :attr:`answer`. An :class:`AsyncTextStream` of the answer's text."""

    def __init__(
        self,
        twin: AsyncLLMTwin,
        query: str,
        k: int | None,
        params: GenerationParams,
        filters: MetadataFilters | None,
    ) -> None:
        super().__init__(self._relay(), opener=self._start, on_close=self._stop)
        self.query = query
        self._request = (twin, k, params, filters)
        self._prepared: Prepared | None = None
        self._text: AsyncTextStream | None = None
        self._started = 0.0
        self._answer: Answer | None = None

    @property
    def sources(self) -> tuple[Chunk, ...]:
        """The sources placed in the prompt, one chunk per document, best first; known once
        the stream is entered (before that: :class:`~llm_twin_sdk.errors.InferenceError`)."""
        if self._prepared is None:
            raise InferenceError(
                "this stream's sources are known once it is entered: "
                "`async with twin.stream(...) as s:` (or `await stream`)"
            )
        return self._prepared.prompt.sources

    @property
    def answer(self) -> Answer | None:
        """The complete answer; ``None`` until the stream is exhausted."""
        return self._answer

    def __repr__(self) -> str:
        return stream_repr(self, self.query, self._sources())

    def _repr_html_(self) -> str:
        """The stream in Jupyter: its state, the text so far and the sources (once entered)."""
        return stream_html(self, self.query, self._sources())

    def _sources(self) -> tuple[Chunk, ...] | None:
        return None if self._prepared is None else self._prepared.prompt.sources

    async def _start(self) -> None:
        twin, k, params, filters = self._request
        self._prepared = await twin._ready(self.query, k, params, filters)
        self._started = time.perf_counter()
        self._text = twin.client.stream(self._prepared.prompt.messages, params)
        await self._text  # opened: its errors are the caller's, before any piece

    async def _relay(self) -> AsyncGenerator[str | Generation, None]:
        assert self._text is not None  # opened first
        assert self._prepared is not None
        async for piece in self._text:
            yield piece
        generation = self._text.generation
        assert generation is not None  # the inner stream ends only by returning it, or raises
        self._answer = self._prepared.answer(generation, time.perf_counter() - self._started)
        yield generation

    async def _stop(self) -> None:
        if self._text is not None:
            await self._text.aclose()
