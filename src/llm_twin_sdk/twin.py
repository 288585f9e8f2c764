"""LLMTwin: retrieval plus generation, one question in, one answer with sources out.

Example::

    from llm_twin_sdk import LLMTwin

    with LLMTwin.from_settings() as twin:                 # embedded, offline footing
        twin.ingest(documents)
        answer = twin.ask("How should I size MAX_TOTAL_TOKENS?")
        print(answer.text, [s.document_id for s in answer.sources], answer.timings)

        with twin.stream("And for batching?") as stream:
            print([s.document_id for s in stream.sources])  # known before any text
            for piece in stream:
                print(piece, end="")
        print(stream.answer.usage)

Everything is synchronous and thread-safe; it runs unchanged inside Jupyter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
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

__all__ = ["AnswerStream", "LLMTwin"]


class LLMTwin:
    """A RAG pipeline and an inference client composed into one question-answering object.

    Args:
        rag: retrieval over the author's content.
        client: the LLM (any backend).
        template: how question and sources become the prompt.
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
        return Answer(
            query=query,
            text=generation.text,
            sources=prompt.sources,
            usage=generation.usage,
            finish_reason=generation.finish_reason,
            timings=StageTimings(
                retrieve_s=retrieve_s, prompt_s=prompt_s, generate_s=generation.latency_s
            ),
        )

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
        text_stream = self.client.stream(prompt.messages, params)
        return AnswerStream(
            query,
            sources=prompt.sources,
            text=text_stream,
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


class AnswerStream(Iterator[str]):
    """A streamed answer: :attr:`sources` at once, then text pieces, then :attr:`answer`.

    Use it in a ``with`` block; leaving early stops generation.
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
        self.query = query
        self.sources = sources
        self._text = text
        self._retrieve_s = retrieve_s
        self._prompt_s = prompt_s
        self._started = started
        self._answer: Answer | None = None

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._text)
        except StopIteration:
            self._finish()
            raise

    @property
    def text(self) -> str:
        """The text received so far."""
        return self._text.text

    @property
    def answer(self) -> Answer | None:
        """The complete answer; ``None`` until the stream is exhausted."""
        return self._answer

    def close(self) -> None:
        """Stop generating. Safe to call more than once."""
        self._text.close()

    def __enter__(self) -> AnswerStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _finish(self) -> None:
        generation = self._text.generation
        if generation is None or self._answer is not None:
            return
        self._answer = Answer(
            query=self.query,
            text=generation.text,
            sources=self.sources,
            usage=generation.usage,
            finish_reason=generation.finish_reason,
            timings=StageTimings(
                retrieve_s=self._retrieve_s,
                prompt_s=self._prompt_s,
                generate_s=time.perf_counter() - self._started,
            ),
        )
