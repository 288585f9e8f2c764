"""Document-level results: ``retrieve`` gives k distinct documents by default (the best chunk
of each, searched deeper when one document fills the first page), ``unit="chunk"`` the chunk
ranking of before; ``QdrantStore.neighbours`` on the embedded engine, qdrant-client's local
mode and a Qdrant REST server; the twins' sources, one per document, with neighbours in the
prompt within its budget. A real pipeline and store over the HashingEmbedder fake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from qdrant_client import QdrantClient

from fakes import HashingEmbedder, QdrantServer, ScriptedBackend
from llm_twin_sdk import (
    AsyncLLMTwin,
    Chunk,
    Document,
    Embedder,
    InferenceClient,
    InvalidParameterError,
    LLMTwin,
    QdrantStore,
    RAGPipeline,
)
from llm_twin_sdk.inference.backend import NormalizedPrompt
from llm_twin_sdk.rag.grouping import passage
from llm_twin_sdk.rag.prompt import assemble_prompt
from llm_twin_sdk.rag.store import QueryVectors

QUERY = "quantization gpu cost"
MANUAL = " ".join(f"Step {i}: quantization cuts gpu cost, quantization again." for i in range(40))


def _documents() -> list[Document]:
    """One long manual whose every chunk matches, and five short notes without the query's
    words (found by the dense search only, after every chunk of the manual)."""
    notes = [
        Document(
            id=f"note-{i}",
            text=f"Note {i} is about travel and food, nothing else.",
            metadata={"author": "Lukas Brenner" if i % 2 else "Maya Okafor", "kind": "post"},
        )
        for i in range(5)
    ]
    manual = Document(
        id="manual", text=MANUAL, metadata={"author": "Maya Okafor", "kind": "article"}
    )
    return [manual, *notes]


def _pipeline(store: QdrantStore, **options: Any) -> RAGPipeline:
    return RAGPipeline(HashingEmbedder(), store, chunk_tokens=12, chunk_overlap=3, **options)


@pytest.fixture(scope="module")
def rag() -> Iterator[RAGPipeline]:
    store = QdrantStore.memory()
    pipeline = _pipeline(store)
    pipeline.ingest(_documents(), progress=False)
    yield pipeline
    store.close()


def _spy(
    monkeypatch: pytest.MonkeyPatch, obj: object, method: str
) -> list[tuple[tuple[Any, ...], dict[str, Any], Any]]:
    """Record the calls of ``obj.method`` (args, kwargs, result) for the test; the real method
    still runs."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = []
    real = getattr(obj, method)

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(obj, method, spy)
    return calls


# -- retrieve: documents ----------------------------------------------------------------------


def test_k_distinct_documents_when_one_document_has_many_matching_chunks(
    rag: RAGPipeline,
) -> None:
    chunks = rag.retrieve(QUERY, k=10, unit="chunk")
    assert {c.document_id for c in chunks} == {"manual"}  # the chunk ranking: one document
    documents = rag.retrieve(QUERY, k=4)
    assert len(documents) == 4
    assert len({d.document_id for d in documents}) == 4
    assert documents[0].document_id == "manual"
    assert all(d.score is not None for d in documents)
    assert [d.score for d in documents] == sorted((d.score or 0 for d in documents), reverse=True)


def test_documents_are_the_stores_per_document_fusion(
    rag: RAGPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches = _spy(monkeypatch, rag.store, "search_many")
    documents = rag.retrieve(QUERY, k=3)
    assert len(searches) == 1
    args, kwargs, found = searches[0]
    assert args[1] == 3
    assert kwargs["per_document"] is True
    assert documents == found
    assert len({d.document_id for d in documents}) == 3


def test_a_first_page_of_one_document_is_searched_again_deeper(
    rag: RAGPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = QueryVectors(rag.embedder.encode([QUERY])[0], rag.lexical_encoder.encode_query(QUERY))
    lists = _spy(monkeypatch, rag.store, "_lists")
    # Dense: the manual's chunks fill the first 18 (3 x k), so 4 x deeper finds every note.
    documents = rag.store.search_many([vectors], 6, mode="dense", per_document=True)
    assert [args[1][0].limit for args, _, _ in lists] == [18, 72]
    assert len({d.document_id for d in documents}) == len(documents) == 6
    assert documents[0].document_id == "manual"
    # Lexical: only the manual has the words; the deeper page is short, so the search stops
    # with the one document that matches.
    lists.clear()
    documents = rag.store.search_many([vectors], 6, mode="lexical", per_document=True)
    assert [args[1][0].limit for args, _, _ in lists] == [18, 72]
    assert [d.document_id for d in documents] == ["manual"]


def test_no_deeper_search_when_no_collection_had_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three collections of one long document each: their lists together exceed the depth,
    but none filled its page, so every matching chunk was seen: no second search."""
    text = " ".join(f"Part {i}: quantization cuts gpu cost." for i in range(12))
    kinds = ("post", "article", "repository")
    with QdrantStore.memory() as store:
        rag = _pipeline(store)
        rag.ingest(
            [Document(id=kind, text=text, metadata={"kind": kind}) for kind in kinds],
            progress=False,
        )
        sizes = [rag.store.count(documents=False)]
        assert 18 < sizes[0] < 3 * 18  # more than one page in all, under a page each
        lists = _spy(monkeypatch, rag.store, "_lists")
        vectors = QueryVectors(rag.embedder.encode([QUERY])[0], None)
        documents = rag.store.search_many([vectors], 6, mode="dense", per_document=True)
        assert [args[1][0].limit for args, _, _ in lists] == [18]
        assert sorted(d.document_id for d in documents) == sorted(kinds)


def test_fewer_documents_than_k_gives_all_of_them(rag: RAGPipeline) -> None:
    documents = rag.retrieve(QUERY, k=50)
    assert sorted(d.document_id for d in documents) == sorted(d.id for d in _documents())
    assert len(rag.retrieve(QUERY, k=50, unit="chunk")) == rag.count(chunks=True)


def test_unit_chunk_is_the_store_ranking_unchanged(rag: RAGPipeline) -> None:
    vectors = QueryVectors(rag.embedder.encode([QUERY])[0], rag.lexical_encoder.encode_query(QUERY))
    expected = rag.store.search_many([vectors], 7, mode="hybrid")
    assert rag.retrieve(QUERY, k=7, unit="chunk") == expected
    assert len({c.document_id for c in expected}) < 7  # several chunks of one document


def test_filters_apply_before_grouping(rag: RAGPipeline) -> None:
    documents = rag.retrieve(QUERY, k=5, filters={"author": "Maya Okafor"})
    assert sorted(d.document_id for d in documents) == ["manual", "note-0", "note-2", "note-4"]
    posts = rag.retrieve(QUERY, k=2, filters={"kind": "post", "author": "Lukas Brenner"})
    assert sorted(d.document_id for d in posts) == ["note-1", "note-3"]
    assert rag.retrieve(QUERY, k=2, collections=["articles"]) == rag.retrieve(
        QUERY, k=1, filters={"document_id": "manual"}
    )


@pytest.mark.parametrize("unit", ["documents", "", None, 1])
def test_a_bad_unit_is_refused_before_any_work(
    rag: RAGPipeline, unit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodes = _spy(monkeypatch, rag.embedder, "encode")
    with pytest.raises(InvalidParameterError, match="unit must be one of document, chunk"):
        rag.retrieve(QUERY, unit=unit)
    with pytest.raises(InvalidParameterError, match="unit must be one of"):
        asyncio.run(rag.aretrieve(QUERY, unit=unit))
    assert encodes == []


def test_aretrieve_takes_the_unit(rag: RAGPipeline) -> None:
    assert asyncio.run(rag.aretrieve(QUERY, k=3)) == rag.retrieve(QUERY, k=3)
    chunks = asyncio.run(rag.aretrieve(QUERY, k=3, unit="chunk"))
    assert chunks == rag.retrieve(QUERY, k=3, unit="chunk")


def test_ten_distinct_documents_with_the_real_embedder(
    embedder: Embedder, corpus: list[Document]
) -> None:
    with QdrantStore.memory() as store:
        real = RAGPipeline(embedder, store)
        real.ingest(corpus, progress=False)
        question = "How do I stream tokens to the browser without buffering?"
        chunks = real.retrieve(question, k=10, unit="chunk")
        documents = real.retrieve(question, k=10)
        neighbours = real.neighbours(documents[:1])
    assert len({c.document_id for c in chunks}) < 10  # chunks: several of one document
    assert len({d.document_id for d in documents}) == len(documents) == 10
    assert documents[0].document_id == chunks[0].document_id
    assert neighbours
    assert {n.document_id for n in neighbours} == {documents[0].document_id}


# -- neighbours ---------------------------------------------------------------------------------


def _edge() -> QdrantStore:
    return QdrantStore.memory()


def _client_local() -> QdrantStore:
    return QdrantStore(QdrantClient(location=":memory:"), payload_indexes=False)


@pytest.fixture(params=["edge", "qdrant-client local", "server"])
def footing(request: pytest.FixtureRequest) -> Iterator[QdrantStore]:
    if request.param == "server":
        with QdrantServer() as server:
            store = QdrantStore.server(server.url)
            yield store
            store.close()
            assert server.handler_errors == []
        return
    make: Callable[[], QdrantStore] = _edge if request.param == "edge" else _client_local
    store = make()
    yield store
    store.close()


def test_neighbours_on_every_footing(footing: QdrantStore, monkeypatch: pytest.MonkeyPatch) -> None:
    rag = _pipeline(footing)
    rag.ingest(_documents(), progress=False)
    manual = rag.retrieve(QUERY, k=100, unit="chunk", filters={"document_id": "manual"})
    middle = next(c for c in manual if c.position == 10)
    note = rag.retrieve(QUERY, k=1, filters={"document_id": "note-1"})[0]
    assert note.position == 0  # a one-chunk document: no neighbour
    lookups = _spy(monkeypatch, footing._client, "retrieve")
    found = footing.neighbours([middle, note])
    assert [(c.document_id, c.position) for c in found] == [
        ("manual", middle.position - 1),
        ("manual", middle.position + 1),
    ]
    assert all(c.score is None and c.text for c in found)
    assert [args[0] for args, _, _ in lookups] == ["articles", "posts"]  # one per collection
    # The overlap of consecutive chunks is written once in their passage.
    text = passage([*found, middle])
    assert text in MANUAL  # one slice of the document ...
    assert text.startswith(found[0].text)
    assert text.endswith(found[1].text)
    assert len(text) < sum(len(c.text) for c in [*found, middle])  # ... overlaps once
    assert footing.neighbours([middle], radius=0) == []
    assert [c.position for c in footing.neighbours([middle], radius=2)] == [8, 9, 11, 12]


@pytest.mark.parametrize("radius", [-1, 1.5, True, "1"])
def test_a_bad_radius_is_refused(rag: RAGPipeline, radius: Any) -> None:
    chunk = rag.retrieve(QUERY, k=1)[0]
    with pytest.raises(InvalidParameterError, match="radius must be an integer"):
        rag.store.neighbours([chunk], radius=radius)


def test_the_pipeline_gives_neighbours_unless_told_not_to(rag: RAGPipeline) -> None:
    best = rag.retrieve(QUERY, k=2)
    around = rag.neighbours(best)
    assert {c.document_id for c in around} == {"manual"}
    assert _pipeline(rag.store, neighbours=0).neighbours(best) == []
    assert rag.neighbours([]) == []


# -- the twins ----------------------------------------------------------------------------------


class WordCounting(ScriptedBackend):
    """The script, counting a prompt's words as its tokens, with a small context window; it
    records the prompts it is given."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window
        self.prompts: list[str] = []

    @property
    def context_window(self) -> int:
        return self.window

    def count_tokens(self, prompt: NormalizedPrompt) -> int:
        return len(_flat(prompt).split())

    def generate(self, prompt: NormalizedPrompt, *args: Any, **kwargs: Any) -> Any:
        self.prompts.append(_flat(prompt))
        return super().generate(prompt, *args, **kwargs)


def _flat(prompt: NormalizedPrompt) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m.content for m in prompt)


def _ask(rag: RAGPipeline, window: int, k: int) -> tuple[Any, str]:
    backend = WordCounting(window)
    with LLMTwin(rag, InferenceClient(backend)) as twin:
        answer = twin.ask(QUERY, k=k)
    return answer, backend.prompts[-1]


def test_the_twins_sources_are_distinct_documents(rag: RAGPipeline) -> None:
    answer, prompt = _ask(rag, 4096, 3)
    assert len(answer.sources) == 3
    assert len({s.document_id for s in answer.sources}) == 3
    assert answer.sources[0].document_id == "manual"
    assert prompt.count("[1] ") == prompt.count("[2] ") == prompt.count("[3] ") == 1
    assert "[4] " not in prompt

    async def streamed() -> tuple[Chunk, ...]:
        backend = WordCounting(4096)
        async with (
            AsyncLLMTwin(rag, _async_client(backend)) as twin,
            twin.stream(QUERY, k=3) as stream,
        ):
            return stream.sources

    assert asyncio.run(streamed()) == answer.sources


def _async_client(backend: WordCounting) -> Any:
    from llm_twin_sdk import AsyncInferenceClient

    return AsyncInferenceClient(backend)


def test_neighbours_fill_the_prompt_only_within_its_budget(rag: RAGPipeline) -> None:
    roomy, prompt = _ask(rag, 4096, 2)
    best = roomy.sources[0]
    around = rag.neighbours([best])
    assert len(around) == 2
    assert passage([best, *around]) in prompt  # the manual's passage: three chunks, one block
    # A window that holds the best chunks and not a word more: no neighbour.
    client = InferenceClient(WordCounting(4096))
    bare = assemble_prompt(QUERY, roomy.sources, count_tokens=client.count_tokens, budget=4096)
    window = bare.prompt_tokens + client.params.max_new_tokens
    tight, tight_prompt = _ask(rag, window, 2)
    assert tight.sources == roomy.sources
    assert len(tight_prompt.split()) == bare.prompt_tokens
    assert best.text in tight_prompt
    assert all(c.text not in tight_prompt for c in around)
    # A few words more: still no neighbour (none fits whole), never over the budget.
    _, prompt = _ask(rag, window + 5, 2)
    assert len(prompt.split()) == bare.prompt_tokens
