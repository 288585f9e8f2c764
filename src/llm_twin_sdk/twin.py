"""LLMTwin: retrieval plus generation, one question in, one answer with sources out.

Synchronous and thread-safe (it runs unchanged inside Jupyter); :class:`~llm_twin_sdk.AsyncLLMTwin`
is its asyncio twin over the same core. Example::

    with LLMTwin.from_settings() as twin:                 # embedded, offline footing
        twin.ingest(documents)
        answer = twin.ask("How should I size MAX_TOTAL_TOKENS?")
        with twin.stream("And for batching?") as stream:
            print([s.document_id for s in stream.sources])  # known before any text
            print("".join(stream), stream.answer.usage)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from .display import html_block, paragraph, short
from .inference.async_client import AsyncInferenceClient
from .inference.client import InferenceClient
from .inference.stream import StreamRecord, TextStream
from .ownership import Owner
from .rag.documents import DeleteReport, StoredDocument
from .rag.filters import MetadataFilters
from .rag.ingestion import Progress
from .rag.pipeline import RAGPipeline
from .rag.prompt import AssembledPrompt, PromptTemplate, assemble_prompt, prompt_budget
from .types import (
    Answer,
    Chunk,
    Document,
    GenerationParams,
    IngestReport,
    StageTimings,
    sources_table,
)
from .validation import check_query

if TYPE_CHECKING:
    from .config import TwinSettings
    from .types import Generation

__all__ = ["AnswerStream", "LLMTwin", "TwinCore", "stream_html", "stream_repr"]

C = TypeVar("C", InferenceClient, AsyncInferenceClient)
"""The client of a twin: sync or async."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A question made ready for the model: its prompt (and sources) and the stage times."""

    query: str
    prompt: AssembledPrompt
    retrieve_s: float
    prompt_s: float

    def answer(self, generation: Generation, generate_s: float) -> Answer:
        """The :class:`Answer` of this question once ``generation`` is complete."""
        timings = StageTimings(
            retrieve_s=self.retrieve_s, prompt_s=self.prompt_s, generate_s=generate_s
        )
        return Answer(
            query=self.query,
            text=generation.text,
            sources=self.prompt.sources,
            usage=generation.usage,
            finish_reason=generation.finish_reason,
            timings=timings,
        )


class TwinCore(Owner, Generic[C]):
    """What :class:`LLMTwin` and :class:`~llm_twin_sdk.AsyncLLMTwin` share: the pipeline, the
    client (sync or async), the prompt template, preparing a question (retrieve, then assemble
    within the model's budget) and building a twin that owns its parts. Not used on its own.

    Ownership (docs/architecture.md): the pipeline and client handed to a constructor are
    borrowed, closed by whoever created them; ``from_settings`` builds its own and closes them.
    """

    def __init__(
        self, rag: RAGPipeline, client: C, *, template: PromptTemplate | None = None
    ) -> None:
        self.rag = rag
        self.client: C = client
        self.template = template or PromptTemplate()

    @classmethod
    def _compose(cls, settings: TwinSettings, client: C, *, llm: InferenceClient) -> Self:
        """A twin owning ``client`` (built by the caller, closed here if the rest fails) and
        the pipeline ``settings`` describe, whose query steps (self-query, expansion) use
        ``llm``, a sync client on the same model."""
        try:
            rag = RAGPipeline.from_settings(settings, llm=llm)
        except BaseException:
            client._close_owned()  # sync: what a client owns is its backend
            raise
        twin = cls(rag, client)
        twin._own(client, rag)
        return twin

    def __repr__(self) -> str:
        # The model by name (its client's parameters are in ``client``), then the pipeline.
        return f"{type(self).__name__}(model={self.client.model_name!r}, rag={self.rag!r})"

    def _prepare(
        self,
        query: str,
        k: int | None,
        params: GenerationParams,
        filters: MetadataFilters | None,
    ) -> Prepared:
        """Retrieve ``k`` distinct documents and assemble the prompt: their best chunks that
        fit, then, if all do and room is left, their neighbours (fetched only then, timed as
        retrieval). Blocking: the async twin runs it in a thread."""
        query = check_query(query)
        budget = prompt_budget(self.client.context_window, params.max_new_tokens)
        started = time.perf_counter()
        sources = self.rag.retrieve(query, k, filters=filters)
        retrieve_s = time.perf_counter() - started
        assemble = functools.partial(
            assemble_prompt,
            query,
            sources,
            count_tokens=self.client.count_tokens,
            budget=budget,
            template=self.template,
        )
        prompt = assemble()
        if prompt.dropped == 0 and prompt.prompt_tokens < budget and prompt.sources:
            fetching = time.perf_counter()
            neighbours = self.rag.neighbours(prompt.sources)
            retrieve_s += time.perf_counter() - fetching
            if neighbours:
                prompt = assemble(neighbours=neighbours)
        prompt_s = time.perf_counter() - started - retrieve_s
        return Prepared(query, prompt, retrieve_s, prompt_s)


class LLMTwin(TwinCore[InferenceClient]):
    """A RAG pipeline and an inference client (any backend) composed into one
    question-answering object; ``template`` turns the question and its sources into the prompt.

    ``rag`` and ``client`` are borrowed: :meth:`close` leaves them open for their creator
    (:meth:`from_settings` builds and closes its own). Thread-safe: many threads may share
    one twin; a local model serves them one at a time, in arrival order.
    """

    @classmethod
    def from_settings(cls, settings: TwinSettings | None = None) -> LLMTwin:
        """Build a twin from settings; with no argument, the embedded offline footing.

        Settings come from ``LLM_TWIN_*`` environment variables and ``.env`` when not given.
        The embedded footing needs the ``local`` extra: on a thin install a
        :class:`~llm_twin_sdk.errors.MissingExtraError` names it before anything is built.
        The twin owns what it builds: :meth:`close` releases the model and the store.
        """
        from .config import TwinSettings
        from .extras import require_for_settings

        s = settings or TwinSettings()
        require_for_settings(s)  # MissingExtraError before any part is built
        client = InferenceClient.from_settings(s)
        return cls._compose(s, client, llm=client)  # self-query / expansion use it too

    def ingest(
        self, documents: Iterable[Document | Mapping[str, Any]], *, progress: Progress = None
    ) -> IngestReport:
        """Chunk, embed and store documents (see :meth:`RAGPipeline.ingest`)."""
        return self.rag.ingest(documents, progress=progress)

    def count(self, *, chunks: bool = False) -> int:
        """Documents stored (``chunks=True``: chunks); see :meth:`RAGPipeline.count`."""
        return self.rag.count(chunks=chunks)

    def documents(self, filters: MetadataFilters | None = None) -> Iterator[StoredDocument]:
        """The documents stored, without text; see :meth:`RAGPipeline.documents`.
        Example: ``[d.id for d in twin.documents({"kind": "post"})]``."""
        return self.rag.documents(filters)

    def delete(self, ids: str | Iterable[str]) -> DeleteReport:
        """Remove documents and their chunks; see :meth:`RAGPipeline.delete`."""
        return self.rag.delete(ids)

    def ask(
        self,
        query: str,
        *,
        k: int | None = None,
        params: GenerationParams | None = None,
        filters: MetadataFilters | None = None,
    ) -> Answer:
        """Answer ``query`` from the ``k`` best documents that fit the model's input budget
        (one source each; its neighbouring chunks too where the budget allows).

        ``filters`` restricts the sources by metadata, e.g. ``{"author": "Maya Okafor"}``.
        """
        params = params or self.client.params
        prepared = self._prepare(query, k, params, filters)
        generation = self.client.generate(prepared.prompt.messages, params)
        return prepared.answer(generation, generation.latency_s)

    def stream(
        self,
        query: str,
        *,
        k: int | None = None,
        params: GenerationParams | None = None,
        filters: MetadataFilters | None = None,
    ) -> AnswerStream:
        """Like :meth:`ask`, but the sources come first, then the text piece by piece."""
        params = params or self.client.params
        prepared = self._prepare(query, k, params, filters)
        started = time.perf_counter()
        text = self.client.stream(prepared.prompt.messages, params)
        return AnswerStream(prepared, text, started)

    def close(self) -> None:
        """Release what this twin created (:meth:`from_settings`: the model and the store
        with its folder lock); what it was handed stays open. Safe to call twice."""
        self._close_owned()

    def __enter__(self) -> LLMTwin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AnswerStream(TextStream):
    """A streamed answer: :attr:`sources` at once, then text pieces, then :attr:`answer`.

    A :class:`TextStream` of the answer's text (``text``, ``generation``, ``closed``). Use it
    in a ``with`` block; leaving early stops generation.
    """

    def __init__(self, prepared: Prepared, text: TextStream, started: float) -> None:
        super().__init__(self._relay(prepared, text, started), on_close=text.close)
        self.query = prepared.query
        self.sources: tuple[Chunk, ...] = prepared.prompt.sources
        self._answer: Answer | None = None

    @property
    def answer(self) -> Answer | None:
        """The complete answer; ``None`` until the stream is exhausted."""
        return self._answer

    def __repr__(self) -> str:
        return stream_repr(self, self.query, self.sources)

    def _repr_html_(self) -> str:
        """The stream in Jupyter: its state, the text so far and the sources."""
        return stream_html(self, self.query, self.sources)

    def _relay(
        self, prepared: Prepared, text: TextStream, started: float
    ) -> Generator[str, None, Generation]:
        yield from text  # closing this generator closes ``text`` too
        generation = text.generation
        assert generation is not None  # ``text`` ends only by returning it, or raises
        self._answer = prepared.answer(generation, time.perf_counter() - started)
        return generation


def _state(stream: StreamRecord) -> str:
    return "closed" if stream.closed else "open"


def stream_repr(stream: StreamRecord, query: str, sources: tuple[Chunk, ...] | None) -> str:
    """One line for an answer stream, sync or async: ``AnswerStream(query='...', open,
    sources=3, text=12 chars)``; ``sources=None``: not known yet (an async stream not entered).
    """
    parts = [f"query={short(query, 40)!r}", _state(stream)]
    parts.append("not entered" if sources is None else f"sources={len(sources)}")
    parts.append(f"text={len(stream.text)} chars")
    if stream.generation is not None:
        parts.append("answered")
    return f"{type(stream).__name__}({', '.join(parts)})"


def stream_html(stream: StreamRecord, query: str, sources: tuple[Chunk, ...] | None) -> str:
    """An answer stream in HTML: state, text so far and the sources table (all escaped)."""
    text = stream.text
    return html_block(
        f"{type(stream).__name__}: {short(query, 200)}",
        paragraph(text),
        "<p>sources not known yet</p>" if sources is None else sources_table(sources),
        fields={"state": _state(stream), "text so far": f"{len(text)} chars"},
    )
