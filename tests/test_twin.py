"""End to end: real embedder, real Qdrant (local folder), real llama.cpp model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_twin_sdk import (
    Document,
    Embedder,
    EmptyQueryError,
    GenerationParams,
    InferenceClient,
    InferenceError,
    InvalidParameterError,
    LLMTwin,
    LocalBackend,
    PromptTooLongError,
    QdrantStore,
    RAGPipeline,
    TwinSettings,
    VectorStoreLockedError,
)
from llm_twin_sdk.validation import MAX_K

SHORT = GenerationParams(max_new_tokens=24, temperature=0.0, seed=3)
QUESTION = "Which response header stops nginx from buffering server-sent events?"


@pytest.fixture(scope="module")
def twin(
    embedder: Embedder,
    client: InferenceClient,
    corpus: list[Document],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LLMTwin]:
    store = QdrantStore.local(tmp_path_factory.mktemp("twin") / "qdrant")
    rag = RAGPipeline(embedder, store, top_k=3)
    rag.ingest(corpus)
    yield LLMTwin(rag, client)
    store.close()


def test_ask_answers_with_sources_usage_and_timings(twin: LLMTwin) -> None:
    answer = twin.ask(QUESTION, params=SHORT)
    assert answer.query == QUESTION
    assert answer.text.strip()
    assert len(answer.sources) == 3
    assert answer.sources[0].document_id == "lukas-post-sse-streaming"
    assert all(s.id and s.score is not None and s.metadata.author for s in answer.sources)
    assert 0 < answer.usage.completion_tokens <= 24
    assert answer.usage.prompt_tokens <= twin.client.context_window - 24
    t = answer.timings
    assert t.retrieve_s > 0
    assert t.generate_s > 0
    assert t.prompt_s > 0
    assert t.total_s == pytest.approx(t.retrieve_s + t.prompt_s + t.generate_s)
    # The prompt the model saw holds the sources' text.
    assert answer.usage.prompt_tokens > 3 * 40


def test_stream_gives_sources_first_then_text(twin: LLMTwin) -> None:
    with twin.stream(QUESTION, params=SHORT) as stream:
        sources = stream.sources
        assert stream.answer is None
        pieces = list(stream)
    assert [s.id for s in sources] == [s.id for s in twin.ask(QUESTION, params=SHORT).sources]
    assert stream.answer is not None
    assert "".join(pieces) == stream.answer.text == twin.ask(QUESTION, params=SHORT).text
    assert stream.answer.sources == sources
    assert stream.answer.timings.generate_s > 0
    assert stream.closed  # an AnswerStream is a TextStream
    assert stream.generation is not None
    assert stream.text == stream.generation.text == stream.answer.text


def test_stream_closed_early(twin: LLMTwin) -> None:
    with twin.stream(QUESTION, params=GenerationParams(max_new_tokens=100)) as stream:
        next(stream)
    assert stream.answer is None
    assert twin.ask(QUESTION, params=SHORT).text  # model released
    with twin.stream(QUESTION, params=SHORT) as unread:
        pass  # closed before its first piece was read
    assert unread.closed
    assert unread.answer is None
    assert list(unread) == []
    assert twin.ask(QUESTION, params=SHORT).text  # model released


def test_k_selects_the_number_of_sources(twin: LLMTwin) -> None:
    assert len(twin.ask(QUESTION, k=1, params=SHORT).sources) == 1
    with pytest.raises(InvalidParameterError):
        twin.ask(QUESTION, k=0)
    with pytest.raises(InvalidParameterError, match=f"k must be a positive integer up to {MAX_K}"):
        twin.ask(QUESTION, k=2**64)


def test_max_new_tokens_beyond_the_context_window_is_refused_before_retrieval(
    twin: LLMTwin, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_retrieval(*args: object, **kwargs: object) -> object:
        raise AssertionError("retrieval ran")

    monkeypatch.setattr(twin.rag, "retrieve", no_retrieval)
    window = twin.client.context_window
    huge = GenerationParams(max_new_tokens=10**12)
    message = (
        rf"max_new_tokens \(1000000000000\) must be below .*context window \({window} tokens\)"
    )
    with pytest.raises(InvalidParameterError, match=message):
        twin.ask(QUESTION, params=huge)
    with pytest.raises(InvalidParameterError, match=message):
        twin.stream(QUESTION, params=huge)


@pytest.mark.parametrize("query", ["", "  \n "])
def test_empty_query(twin: LLMTwin, query: str) -> None:
    with pytest.raises(EmptyQueryError):
        twin.ask(query)
    with pytest.raises(EmptyQueryError):
        twin.stream(query)


def test_query_over_the_budget(twin: LLMTwin) -> None:
    with pytest.raises(PromptTooLongError, match="question is too long") as info:
        twin.ask("why " * 2100, params=SHORT)
    assert info.value.budget == twin.client.context_window - 24


def test_small_context_window_keeps_best_sources_only(embedder: Embedder, twin: LLMTwin) -> None:
    rag = RAGPipeline(embedder, twin.rag.store, top_k=5)  # reads the module's store
    with InferenceClient(LocalBackend(n_ctx=512)) as small:
        params = GenerationParams(max_new_tokens=150, temperature=0.0)
        answer = LLMTwin(rag, small).ask(QUESTION, params=params)
        ranked = rag.retrieve(QUESTION, k=5)
        assert 0 < len(answer.sources) < 5
        assert [s.id for s in answer.sources] == [c.id for c in ranked[: len(answer.sources)]]
        assert answer.usage.prompt_tokens <= 512 - 150


def test_from_settings_builds_the_embedded_footing(
    corpus: list[Document], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_TWIN_QDRANT_PATH", str(tmp_path / "q"))
    monkeypatch.setenv("LLM_TWIN_GENERATION__MAX_NEW_TOKENS", "16")
    with LLMTwin.from_settings() as twin:
        assert isinstance(twin.client.backend, LocalBackend)
        assert twin.client.params.max_new_tokens == 16
        twin.ingest(corpus[:4])
        answer = twin.ask("What is this about?")
        assert answer.usage.completion_tokens <= 16
        assert answer.sources
    assert (tmp_path / "q").is_dir()
    # The folder lock is released on close: a new twin can open it and sees the data.
    with LLMTwin.from_settings() as again:
        assert again.rag.store.count() > 0


def test_from_settings_gives_the_query_steps_the_twins_own_client(
    corpus: list[Document], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_TWIN_QDRANT_PATH", str(tmp_path / "q"))
    monkeypatch.setenv("LLM_TWIN_SELF_QUERY", "true")
    monkeypatch.setenv("LLM_TWIN_QUERY_EXPANSION", "2")
    monkeypatch.setenv("LLM_TWIN_GENERATION__MAX_NEW_TOKENS", "8")
    with LLMTwin.from_settings() as twin:
        assert twin.rag.self_query is not None
        assert twin.rag.self_query.client is twin.client
        assert twin.rag.expander is not None
        assert twin.rag.expander.client is twin.client
        assert twin.rag.expander.n == 2
        twin.ingest(corpus[:6])
        answer = twin.ask("What did Maya Okafor post about retries?", k=2)
        assert 1 <= len(answer.sources) <= 2  # the LLM steps never break an answer


def test_from_settings_on_a_locked_folder(locked_folder: Path) -> None:
    with pytest.raises(VectorStoreLockedError):
        LLMTwin.from_settings(TwinSettings(qdrant_path=locked_folder))


def test_repr_is_informative(twin: LLMTwin) -> None:
    text = repr(twin)
    assert "LLMTwin" in text
    assert "SmolLM2" in text
    assert "local folder" in text


def test_works_inside_a_running_event_loop(twin: LLMTwin) -> None:
    """Jupyter runs cells inside an event loop: nothing here may start or need one."""
    import asyncio

    async def cell() -> str:
        return twin.ask(QUESTION, params=SHORT).text

    assert asyncio.run(cell())


@pytest.mark.slow
def test_a_twin_that_cannot_be_built_closes_the_client_it_was_to_own(locked_folder: Path) -> None:
    """The one way every factory (from_settings, AsyncLLMTwin, TwinDeployment.up) builds a
    twin: the client made for it is closed when the pipeline cannot be built."""
    client = InferenceClient.from_settings(
        TwinSettings(backend="http", http_url="http://127.0.0.1:9")
    )
    with pytest.raises(VectorStoreLockedError):
        LLMTwin._compose(TwinSettings(qdrant_path=locked_folder), client, llm=client)
    with pytest.raises(InferenceError, match="closed"):
        client.backend.generate("hi", SHORT)
