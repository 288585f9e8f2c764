"""LLMTwin: retrieval plus generation, one question in, one answer with sources out.

Synchronous and thread-safe (it runs unchanged inside Jupyter). Example::

    with LLMTwin.from_settings() as twin:                 # embedded, offline footing
        twin.ingest(documents)
        answer = twin.ask("How should I size MAX_TOTAL_TOKENS?")
        with twin.stream("And for batching?") as stream:
            print([s.document_id for s in stream.sources])  # known before any text
            print("".join(stream), stream.answer.usage)
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .inference.client import InferenceClient
from .inference.stream import TextStream
from .rag.filters import MetadataFilters
from .rag.pipeline import RAGPipeline
from .rag.prompt import AssembledPrompt, PromptTemplate, assemble_prompt, prompt_budget
from .types import Answer, Chunk, Document, GenerationParams, IngestReport, StageTimings
from .validation import check_query

if TYPE_CHECKING:
    from .config import TwinSettings
    from .types import Generation

__all__ = ["AnswerStream", "LLMTwin"]


class LLMTwin:
    """A RAG pipeline and an inference client (any backend) composed into one
    question-answering object; ``template`` turns the question and its sources into the prompt.
    """

    def __init__(
        self, rag: RAGPipeline, client: InferenceClient, *, template: PromptTemplate | None = None
    ) -> None:
        self.rag = rag
        self.client = client
        self.template = template or PromptTemplate()

    @classmethod
    def from_settings(cls, settings: TwinSettings | None = None) -> LLMTwin:
        """Build a twin from settings; with no argument, the embedded offline footing.

        Settings come from ``LLM_TWIN_*`` environment variables and ``.env`` when not given.
        """
        from .config import TwinSettings

        s = settings or TwinSettings()
        client = InferenceClient.from_settings(s)
        try:
            rag = RAGPipeline.from_settings(s, llm=client)  # self-query / expansion use it
        except BaseException:
            client.close()
            raise
        return cls(rag, client)

    def __repr__(self) -> str:
        return f"LLMTwin(rag={self.rag!r}, client={self.client!r})"

    def ingest(self, documents: Iterable[Document | Mapping[str, Any]]) -> IngestReport:
        """Chunk, embed and store documents (see :meth:`RAGPipeline.ingest`)."""
        return self.rag.ingest(documents)

    def ask(
        self,
        query: str,
        *,
        k: int | None = None,
        params: GenerationParams | None = None,
        filters: MetadataFilters | None = None,
    ) -> Answer:
        """Answer ``query`` from the ``k`` best chunks that fit the model's input budget.

        ``filters`` restricts the sources by metadata, e.g. ``{"author": "Maya Okafor"}``.
        """
        params = params or self.client.params
        prompt, retrieve_s, prompt_s = self._prepare(query, k, params, filters)
        generation = self.client.generate(prompt.messages, params)
        timings = StageTimings(
            retrieve_s=retrieve_s, prompt_s=prompt_s, generate_s=generation.latency_s
        )
        return _answer(query, prompt.sources, generation, timings)

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
        prompt, retrieve_s, prompt_s = self._prepare(query, k, params, filters)
        started = time.perf_counter()
        return AnswerStream(
            query,
            sources=prompt.sources,
            text=self.client.stream(prompt.messages, params),
            retrieve_s=retrieve_s,
            prompt_s=prompt_s,
            started=started,
        )

    def close(self) -> None:
        """Release the model and the vector store (and its folder lock)."""
        try:
            self.client.close()
        finally:
            self.rag.close()

    def __enter__(self) -> LLMTwin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _prepare(
        self,
        query: str,
        k: int | None,
        params: GenerationParams,
        filters: MetadataFilters | None,
    ) -> tuple[AssembledPrompt, float, float]:
        query = check_query(query)
        budget = prompt_budget(self.client.context_window, params.max_new_tokens)
        started = time.perf_counter()
        chunks = self.rag.retrieve(query, k, filters=filters)
        retrieved = time.perf_counter()
        prompt = assemble_prompt(
            query,
            chunks,
            count_tokens=self.client.count_tokens,
            budget=budget,
            template=self.template,
        )
        return prompt, retrieved - started, time.perf_counter() - retrieved


class AnswerStream(TextStream):
    """A streamed answer: :attr:`sources` at once, then text pieces, then :attr:`answer`.

    A :class:`TextStream` of the answer's text (``text``, ``generation``, ``closed``). Use it
    in a ``with`` block; leaving early stops generation.
    """

    def __init__(
        self,
        query: str,
        *,
        sources: tuple[Chunk, ...],
        text: TextStream,
        retrieve_s: float,
        prompt_s: float,
        started: float,
    ) -> None:
        super().__init__(self._relay(text, retrieve_s, prompt_s, started), on_close=text.close)
        self.query = query
        self.sources = sources
        self._answer: Answer | None = None

    @property
    def answer(self) -> Answer | None:
        """The complete answer; ``None`` until the stream is exhausted."""
        return self._answer

    def _relay(
        self, text: TextStream, retrieve_s: float, prompt_s: float, started: float
    ) -> Generator[str, None, Generation]:
        yield from text  # closing this generator closes ``text`` too
        generation = text.generation
        assert generation is not None  # ``text`` ends only by returning it, or raises
        timings = StageTimings(
            retrieve_s=retrieve_s, prompt_s=prompt_s, generate_s=time.perf_counter() - started
        )
        self._answer = _answer(self.query, self.sources, generation, timings)
        return generation


def _answer(
    query: str, sources: tuple[Chunk, ...], generation: Generation, timings: StageTimings
) -> Answer:
    return Answer(
        query=query,
        text=generation.text,
        sources=sources,
        usage=generation.usage,
        finish_reason=generation.finish_reason,
        timings=timings,
    )
