"""AsyncLLMTwin: the same answers as LLMTwin, never blocking the event loop, on every footing.

Real embedder, real Qdrant Edge folder, real SmolLM2 (in-process, behind a TGI-like server over
HTTP, and behind the SageMaker-runtime wire server).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from fakes.sagemaker import WireServer
from fakes.tgi import TGIServer
from llm_twin_sdk import (
    Answer,
    AsyncInferenceClient,
    AsyncLLMTwin,
    Document,
    Embedder,
    EmptyQueryError,
    EmptyStoreWarning,
    GenerationParams,
    HttpBackend,
    InferenceClient,
    InferenceError,
    LLMTwin,
    LocalBackend,
    PromptTooLongError,
    QdrantStore,
    RAGPipeline,
    TwinSettings,
)
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.inference.backends.sagemaker import SageMakerBackend

SHORT = GenerationParams(max_new_tokens=16, temperature=0.0, seed=3)
LONG = GenerationParams(max_new_tokens=96, temperature=0.0, seed=3, stop=())
QUESTION = "Which response header stops nginx from buffering server-sent events?"
T = TypeVar("T")


@pytest.fixture(scope="module")
def rag(
    embedder: Embedder, corpus: list[Document], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RAGPipeline]:
    store = QdrantStore.local(tmp_path_factory.mktemp("async-twin") / "qdrant")
    pipeline = RAGPipeline(embedder, store, top_k=3)
    pipeline.ingest(corpus)
    yield pipeline
    pipeline.close()
    store.close()


@pytest.fixture(scope="module")
def twin(rag: RAGPipeline, client: InferenceClient) -> LLMTwin:
    return LLMTwin(rag, client)


async def _heartbeat_lag(work: Awaitable[T]) -> tuple[T, float]:
    """``work``'s result and the longest the event loop was late for a 5 ms tick meanwhile."""
    lag = 0.0
    done = asyncio.Event()

    async def beat() -> None:
        nonlocal lag
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lag = max(lag, time.perf_counter() - before - 0.005)

    ticker = asyncio.create_task(beat())
    try:
        result = await work
    finally:
        done.set()
        await ticker
    return result, lag


async def _streamed(atwin: AsyncLLMTwin, query: str, params: GenerationParams) -> Answer:
    async with atwin.stream(query, params=params) as stream:
        sources = stream.sources  # known before any text
        assert sources
        pieces = [piece async for piece in stream]
    assert stream.answer is not None
    assert stream.answer.sources == sources
    assert "".join(pieces) == stream.answer.text == stream.text
    return stream.answer


# -- the same results as the sync twin -------------------------------------------------------


def test_ask_gives_the_sync_twins_answer(twin: LLMTwin) -> None:
    expected = twin.ask(QUESTION, params=SHORT)

    async def main() -> Answer:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            return await atwin.ask(QUESTION, params=SHORT)

    answer = asyncio.run(main())
    assert answer.text == expected.text
    assert [s.id for s in answer.sources] == [s.id for s in expected.sources]
    assert answer.sources[0].document_id == "lukas-post-sse-streaming"
    assert answer.usage == expected.usage
    t = answer.timings
    assert t.retrieve_s > 0
    assert t.prompt_s > 0
    assert t.generate_s > 0


def test_stream_gives_sources_first_then_the_asks_text(twin: LLMTwin) -> None:
    async def main() -> tuple[Answer, Answer]:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            return await _streamed(atwin, QUESTION, SHORT), await atwin.ask(QUESTION, params=SHORT)

    streamed, asked = asyncio.run(main())
    assert streamed.text == asked.text
    assert streamed.usage == asked.usage
    assert streamed.timings.generate_s > 0


def test_k_and_filters_choose_the_sources(twin: LLMTwin) -> None:
    async def main() -> tuple[Answer, Answer]:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            one = await atwin.ask(QUESTION, k=1, params=SHORT)
            maya = await atwin.ask(QUESTION, params=SHORT, filters={"author": "Maya Okafor"})
            return one, maya

    one, maya = asyncio.run(main())
    assert len(one.sources) == 1
    assert maya.sources
    assert {s.metadata.author for s in maya.sources} == {"Maya Okafor"}


def test_sources_are_known_only_once_the_stream_is_entered(twin: LLMTwin) -> None:
    async def main() -> None:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            stream = atwin.stream(QUESTION, params=SHORT)
            with pytest.raises(InferenceError, match="known once it is entered"):
                _ = stream.sources
            await stream  # ``await`` enters it too
            assert stream.sources
            await stream.aclose()
            assert stream.closed
            assert stream.answer is None  # closed early: no answer

    asyncio.run(main())


# -- errors: raised by the awaited call, before any model work -------------------------------


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query(twin: LLMTwin, query: str) -> None:
    async def main() -> None:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            with pytest.raises(EmptyQueryError):
                await atwin.ask(query)
            with pytest.raises(EmptyQueryError):
                async with atwin.stream(query):
                    pass

    asyncio.run(main())


def test_query_over_the_budget_fails_when_the_stream_is_entered(twin: LLMTwin) -> None:
    async def main() -> None:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            stream = atwin.stream("word " * 3000, params=SHORT)
            with pytest.raises(PromptTooLongError):
                async with stream:
                    pytest.fail("the body must not run")
            assert stream.closed

    asyncio.run(main())


# -- never blocking the event loop, with concurrent users ------------------------------------


def test_the_loop_keeps_ticking_while_the_twin_works(twin: LLMTwin) -> None:
    async def main() -> tuple[tuple[Answer, float], tuple[Answer, float]]:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            asked = await _heartbeat_lag(atwin.ask(QUESTION, params=LONG))
            streamed = await _heartbeat_lag(_streamed(atwin, QUESTION, LONG))
            return asked, streamed

    (asked, ask_lag), (streamed, stream_lag) = asyncio.run(main())
    # Blocking the loop would make it late by the whole generation (about a second here).
    assert asked.timings.total_s > 0.3
    assert ask_lag < asked.timings.total_s / 3, (ask_lag, asked.timings)
    assert stream_lag < streamed.timings.total_s / 3, (stream_lag, streamed.timings)


def test_concurrent_asks_and_streams_share_one_twin(twin: LLMTwin) -> None:
    questions = [
        QUESTION,
        "How do I retry throttled requests?",
        "What is reciprocal rank fusion?",
        "How should I size MAX_TOTAL_TOKENS?",
    ]

    async def main() -> list[Answer]:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            calls: list[Awaitable[Answer]] = []
            for q in questions:
                calls += [atwin.ask(q, params=SHORT), _streamed(atwin, q, SHORT)]
            return await asyncio.gather(*calls)

    answers = asyncio.run(main())
    assert len(answers) == 8
    for asked, streamed in zip(answers[::2], answers[1::2], strict=True):
        assert asked.text == streamed.text  # greedy, seeded: the same answer either way
        assert asked.sources == streamed.sources


def test_leaving_a_stream_early_frees_the_model_for_the_next_question(twin: LLMTwin) -> None:
    async def main() -> Answer:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            async with atwin.stream(QUESTION, params=LONG) as stream:
                await anext(stream)
            assert stream.closed
            return await asyncio.wait_for(atwin.ask(QUESTION, params=SHORT), timeout=30)

    assert asyncio.run(main()).text


def test_a_cancelled_request_frees_the_model(twin: LLMTwin) -> None:
    async def main() -> Answer:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            started = asyncio.Event()

            async def consume() -> None:
                async with atwin.stream(QUESTION, params=LONG) as stream:
                    async for _ in stream:
                        started.set()

            task = asyncio.create_task(consume())
            await started.wait()
            task.cancel()  # a client that disconnects
            with pytest.raises(asyncio.CancelledError):
                await task
            return await asyncio.wait_for(atwin.ask(QUESTION, params=SHORT), timeout=30)

    assert asyncio.run(main()).text


# -- footings: the same code over HTTP and SageMaker -----------------------------------------


async def _ask_and_stream(atwin: AsyncLLMTwin) -> tuple[Answer, Answer, float]:
    (asked, lag) = await _heartbeat_lag(atwin.ask(QUESTION, params=LONG))
    streamed = await _streamed(atwin, QUESTION, LONG)
    return asked, streamed, lag


def _check_remote(asked: Answer, streamed: Answer, lag: float) -> None:
    assert asked.text == streamed.text
    assert asked.sources[0].document_id == "lukas-post-sse-streaming"
    assert asked.usage.completion_tokens > 0
    # The model runs in this process (behind the fake server), so the loop shares the GIL with
    # it: a blocked loop would be late by the whole call, a free one by a few switch intervals.
    assert lag < asked.timings.total_s / 2, (lag, asked.timings)


def test_http_footing(rag: RAGPipeline, local_backend: LocalBackend) -> None:
    with TGIServer(backend=local_backend) as server:

        async def main() -> tuple[Answer, Answer, float]:
            async with (
                HttpBackend(server.url, api="openai", model="twin") as backend,
                AsyncInferenceClient(backend) as client,
            ):
                return await _ask_and_stream(AsyncLLMTwin(rag, client))

        _check_remote(*asyncio.run(main()))
        assert server.handler_errors == []


def test_sagemaker_footing(
    rag: RAGPipeline, local_backend: LocalBackend, aws_credentials: None
) -> None:
    with WireServer(local_backend) as server:
        aws = AWSClients(region="us-east-1", endpoint_url=server.url)

        async def main() -> tuple[Answer, Answer, float]:
            backend = SageMakerBackend("twin-endpoint", aws=aws)
            try:
                async with AsyncInferenceClient(backend) as client:
                    return await _ask_and_stream(AsyncLLMTwin(rag, client))
            finally:
                backend.close()

        _check_remote(*asyncio.run(main()))
        assert [r.endpoint for r in server.requests] == ["twin-endpoint"] * 2
        assert server.handler_errors == []


# -- building and ownership ------------------------------------------------------------------


def test_from_twin_loads_nothing_and_leaves_the_sync_twin_open(twin: LLMTwin) -> None:
    """The reported bug: leaving an async client over the twin's backend closed its model."""

    async def main() -> None:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            assert atwin.client.backend is twin.client.backend
            assert atwin.rag is twin.rag
            assert atwin.template is twin.template
            await atwin.ask(QUESTION, params=SHORT)
        async with AsyncInferenceClient(twin.client.backend) as client:
            await client.generate("Hi", SHORT)

    asyncio.run(main())
    assert twin.ask(QUESTION, params=SHORT).text  # the model and the store are still open


def test_from_settings_owns_what_it_builds(
    corpus: list[Document], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_TWIN_QDRANT_PATH", str(tmp_path / "q"))
    monkeypatch.setenv("LLM_TWIN_GENERATION__MAX_NEW_TOKENS", "8")

    async def main() -> tuple[AsyncLLMTwin, Answer]:
        twin = await asyncio.to_thread(AsyncLLMTwin.from_settings)
        async with twin:
            assert isinstance(twin.client.backend, LocalBackend)
            report = await twin.ingest(corpus[:4])
            assert report.documents == 4
            return twin, await twin.ask("What is this about?")

    twin, answer = asyncio.run(main())
    assert answer.usage.completion_tokens <= 8
    assert answer.sources
    with pytest.raises(Exception, match="closed"):  # the twin closed its own model
        twin.client.backend.count_tokens("Hi")
    # ... and released the store's folder: a sync twin opens it and sees the documents.
    with LLMTwin.from_settings(TwinSettings(qdrant_path=tmp_path / "q")) as again:
        assert again.rag.store.count() > 0


def test_from_settings_with_query_steps_gives_them_a_client_on_its_backend(
    tmp_path: Path,
) -> None:
    settings = TwinSettings(qdrant_path=tmp_path / "q", self_query=True, query_expansion=2)

    async def main() -> None:
        async with AsyncLLMTwin.from_settings(settings) as twin:
            assert twin.rag.self_query is not None
            assert twin.rag.expander is not None
            assert twin.rag.self_query.client.backend is twin.client.backend

    asyncio.run(main())


def test_sync_twin_borrows_what_it_is_handed(
    embedder: Embedder, local_backend: LocalBackend
) -> None:
    store = QdrantStore.memory()
    rag = RAGPipeline(embedder, store)
    client = InferenceClient(local_backend)
    with LLMTwin(rag, client):
        pass
    assert client.generate("Hi", SHORT).text is not None  # the model is still open
    assert store.count() == 0  # the store too
    store.close()


def test_repr(twin: LLMTwin) -> None:
    async def main() -> str:
        async with AsyncLLMTwin.from_twin(twin) as atwin:
            return repr(atwin)

    text = asyncio.run(main())
    assert text.startswith("AsyncLLMTwin(")
    assert "SmolLM2" in text


# -- the store's documents, and an empty store, through both twins ---------------------------


def test_both_twins_count_list_delete_and_warn_on_an_empty_store(
    embedder: Embedder, client: InferenceClient, corpus: list[Document]
) -> None:
    with QdrantStore.memory() as store, RAGPipeline(embedder, store) as rag:
        twin = LLMTwin(rag, client)
        with pytest.warns(EmptyStoreWarning):
            empty = twin.ask(QUESTION, params=SHORT)
        assert empty.sources == ()
        assert twin.count() == 0
        twin.ingest(corpus[:3], progress=False)
        assert twin.count() == 3
        assert twin.count(chunks=True) >= 3
        ids = sorted(d.id for d in twin.documents())
        assert ids == sorted(d.id for d in corpus[:3])

        async def main() -> None:
            async with AsyncLLMTwin.from_twin(twin) as atwin:
                assert await atwin.count() == 3
                author = corpus[0].metadata.author
                assert author is not None
                listed = await atwin.documents({"author": author})
                assert corpus[0].id in {d.id for d in listed}
                report = await atwin.delete([corpus[0].id, "no-such-document"])
                assert (report.documents, report.missing) == (1, ("no-such-document",))
                assert await atwin.count() == 2
                await atwin.delete([d.id for d in corpus[1:3]])
                with pytest.warns(EmptyStoreWarning):
                    answer = await atwin.ask(QUESTION, params=SHORT)
                assert answer.sources == ()

        asyncio.run(main())
        assert twin.count() == 0
