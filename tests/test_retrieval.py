"""The whole retrieval path: collections by kind, batched multi-query search, fusion, the LLM
query steps (self-query and expansion over real HTTP against the TGI-like test server), the
cross-encoder reranker (a tiny local model), and the settings that turn them on."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes import Fault, TGIServer
from llm_twin_sdk import (
    Chunk,
    ConfigurationError,
    Document,
    Embedder,
    InferenceClient,
    InvalidParameterError,
    QdrantStore,
    QueryExpander,
    RAGPipeline,
    Reranker,
    SelfQuery,
    TwinSettings,
)
from llm_twin_sdk.inference.backends.http import HttpBackend
from llm_twin_sdk.rag.fusion import Fusion
from llm_twin_sdk.rag.query import EXPANSION_SEPARATOR, EXPANSION_WEIGHT
from llm_twin_sdk.retry import NO_RETRY

QUESTION = "How did Lukas Brenner stop nginx from buffering server-sent events?"


@pytest.fixture(scope="module")
def filled(embedder: Embedder, corpus: list[Document]) -> Iterator[QdrantStore]:
    """The sample corpus in the default collections; tests only read it."""
    store = QdrantStore.memory()
    RAGPipeline(embedder, store).ingest(corpus)
    yield store
    store.close()


def _calls(store: QdrantStore, method: str) -> list[tuple[Any, ...]]:
    """Record the calls of one qdrant-client method (the real method still runs)."""
    calls: list[tuple[Any, ...]] = []
    real = getattr(store._client, method)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((*args, kwargs))
        return real(*args, **kwargs)

    setattr(store._client, method, spy)
    return calls


@pytest.fixture
def batch_calls(filled: QdrantStore) -> Iterator[list[tuple[Any, ...]]]:
    calls = _calls(filled, "query_batch_points")
    yield calls
    del filled._client.query_batch_points  # back to the class's method


def _llm(respond: Callable[[str], str]) -> Iterator[tuple[InferenceClient, TGIServer]]:
    with (
        TGIServer(respond=respond) as server,
        InferenceClient(HttpBackend(server.url, api="openai"), retry=NO_RETRY) as client,
    ):
        yield client, server


def _answers(metadata: dict[str, Any] | None, phrasings: list[str]) -> Callable[[str], str]:
    """A model that answers self-query prompts with ``metadata`` and expansion prompts with
    ``phrasings``."""

    def respond(prompt: str) -> str:
        if SelfQuery.SYSTEM[:40] in prompt:
            return json.dumps(metadata)
        return f"\n{EXPANSION_SEPARATOR}\n".join(phrasings)

    return respond


# -- collections -------------------------------------------------------------------------


def test_chunks_are_stored_in_their_kinds_collection(
    filled: QdrantStore, embedder: Embedder, corpus: list[Document]
) -> None:
    chunks = RAGPipeline(embedder, filled).chunk(corpus)  # chunking reads no store
    expected = dict.fromkeys(("posts", "articles", "repositories"), 0)
    for chunk in chunks:
        expected[f"{chunk.metadata.kind}s".replace("repositorys", "repositories")] += 1
    stored = {name: filled._client.count(name).count for name in expected}
    assert stored == expected
    assert all(stored.values())
    assert filled.count() == len(chunks)


def test_a_document_that_changes_kind_moves_collection(embedder: Embedder) -> None:
    rag = RAGPipeline(embedder, QdrantStore.memory())
    doc = Document(id="d", text="Scale to zero with a step policy.", metadata={"kind": "post"})
    rag.ingest([doc])
    rag.ingest(
        [doc.model_copy(update={"metadata": doc.metadata.model_copy(update={"kind": None})})]
    )
    client = rag.store._client
    assert (client.count("posts").count, client.count("articles").count) == (0, 1)
    assert rag.store.count() == 1


def test_splitting_into_collections_does_not_change_the_dense_ranking(
    filled: QdrantStore, embedder: Embedder, corpus: list[Document]
) -> None:
    one = RAGPipeline(embedder, QdrantStore.memory("everything"), search="dense")
    one.ingest(corpus)
    split = RAGPipeline(embedder, filled, search="dense")
    for question in (QUESTION, "How should retries back off?", "LoRA rank and alpha"):
        a, b = one.retrieve(question, k=8), split.retrieve(question, k=8)
        assert [c.id for c in a] == [c.id for c in b]
        assert [c.score for c in a] == pytest.approx([c.score for c in b])


def test_collections_argument_and_unknown_collection(
    filled: QdrantStore, embedder: Embedder, batch_calls: list[tuple[Any, ...]]
) -> None:
    rag = RAGPipeline(embedder, filled)
    hits = rag.retrieve(QUESTION, k=5, collections=["repositories"])
    assert hits
    assert {h.metadata.kind for h in hits} == {"repository"}
    assert [call[0] for call in batch_calls] == ["repositories"]
    batch_calls.clear()
    with pytest.raises(InvalidParameterError, match=r"unknown collection 'tweets'.*posts"):
        rag.retrieve(QUESTION, collections=["tweets"])
    with pytest.raises(InvalidParameterError, match="no collection given"):
        rag.retrieve(QUESTION, collections=[])
    assert batch_calls == []  # refused before any search


def test_a_kind_filter_searches_that_kinds_collection_only(
    filled: QdrantStore, embedder: Embedder, batch_calls: list[tuple[Any, ...]]
) -> None:
    hits = RAGPipeline(embedder, filled).retrieve(QUESTION, k=4, filters={"kind": "post"})
    assert {h.metadata.kind for h in hits} == {"post"}
    assert [call[0] for call in batch_calls] == ["posts"]


def test_store_routes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_COLLECTIONS__REPOSITORY", "code")
    store = QdrantStore.memory(TwinSettings().collections)
    assert store.routes == {"post": "posts", "article": "articles", "repository": "code"}
    assert QdrantStore.memory("one").collections == ("one",)
    with pytest.raises(ConfigurationError, match="unknown kinds: tweet"):
        QdrantStore.memory({"tweet": "t"})
    with pytest.raises(ConfigurationError, match="invalid collection name"):
        TwinSettings(collections={"post": "a/b"})


# -- expansion, fusion, batching -----------------------------------------------------------


def test_expansion_embeds_once_and_sends_one_batch_per_collection(
    filled: QdrantStore, embedder: Embedder, batch_calls: list[tuple[Any, ...]]
) -> None:
    phrasings = ["Which header disables proxy buffering for SSE?", "nginx SSE buffering fix"]
    encoded: list[list[str]] = []
    real_encode = embedder.encode

    class CountingEmbedder(Embedder):
        def __init__(self) -> None:  # shares the loaded model, counts encode calls
            self.__dict__.update(embedder.__dict__)

        def encode(self, texts: Any) -> Any:
            encoded.append(list(texts))
            return real_encode(texts)

    for client, server in _llm(_answers(None, phrasings)):
        rag = RAGPipeline(CountingEmbedder(), filled, expander=QueryExpander(client, n=3))
        hits = rag.retrieve(QUESTION, k=10)
        assert len(server.generation_requests()) == 1
    assert encoded == [[QUESTION, *phrasings]]  # every phrasing in one batch
    assert sorted(call[0] for call in batch_calls) == ["articles", "posts", "repositories"]
    for call in batch_calls:  # 3 phrasings x (dense + lexical) in each collection's batch
        requests = call[-1]["requests"]
        assert sorted(r.using for r in requests) == ["bm25"] * 3 + ["dense"] * 3
    assert len({h.id for h in hits}) == len(hits) == 10  # deduplicated by chunk id
    assert hits[0].document_id == "lukas-post-sse-streaming"
    scores = [h.score or 0.0 for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_fusion_is_reciprocal_rank_fusion_of_every_list(
    filled: QdrantStore, embedder: Embedder
) -> None:
    other = "Which header disables proxy buffering for SSE?"
    for client, _ in _llm(_answers(None, [other])):
        rrf = Fusion("rrf", rrf_constant=1)
        fused = RAGPipeline(embedder, filled, fusion=rrf, expander=QueryExpander(client, n=2))
        hits = fused.retrieve(QUESTION, k=6, unit="chunk")
    # The four lists, each computed alone (24 = the fusion depth for k=6), fused by hand
    # with RRF's formula (constant 1): sum over lists of weight / (rank + 2), rank from 0; the lists
    # of the written phrasing weigh EXPANSION_WEIGHT, the question's 1.
    expected: dict[str, float] = {}
    for search in ("dense", "lexical"):
        alone = RAGPipeline(embedder, filled, search=search)
        for question, weight in ((QUESTION, 1.0), (other, EXPANSION_WEIGHT)):
            for rank, chunk in enumerate(alone.retrieve(question, k=24, unit="chunk")):
                expected[chunk.id] = expected.get(chunk.id, 0.0) + weight / (rank + 2)
    best = sorted(expected.values(), reverse=True)[:6]
    assert [h.score for h in hits] == pytest.approx(best)
    assert all(h.score == pytest.approx(expected[h.id]) for h in hits)


# -- self-query ------------------------------------------------------------------------------


def test_self_query_filters_by_the_author_it_names(filled: QdrantStore, embedder: Embedder) -> None:
    for client, _ in _llm(_answers({"author": "Brenner", "platform": None, "kind": None}, [])):
        rag = RAGPipeline(embedder, filled, self_query=SelfQuery(client))
        hits = rag.retrieve("What did Lukas Brenner write about retries?", k=6)
    assert len(hits) == 6
    assert {h.metadata.author for h in hits} == {"Lukas Brenner"}
    assert sorted(rag.known_values()["author"]) == ["Lukas Brenner", "Maya Okafor"]


def test_explicit_filters_win_over_self_query(filled: QdrantStore, embedder: Embedder) -> None:
    for client, _ in _llm(_answers({"author": "Lukas Brenner", "kind": "post"}, [])):
        rag = RAGPipeline(embedder, filled, self_query=SelfQuery(client))
        hits = rag.retrieve(
            "Which posts did Lukas Brenner write on retries?",
            k=4,
            filters={"author": "Maya Okafor"},
        )
    assert {h.metadata.author for h in hits} == {"Maya Okafor"}
    assert {h.metadata.kind for h in hits} == {"post"}  # the field not given explicitly


def test_a_kind_the_question_does_not_name_is_ignored(
    filled: QdrantStore, embedder: Embedder
) -> None:
    # small models put "kind" in every answer; only a kind the question names is kept
    for client, _ in _llm(_answers({"author": None, "platform": None, "kind": "post"}, [])):
        self_query = SelfQuery(client)
        assert self_query.extract("How do I stop nginx buffering SSE?") == {}
        assert self_query.extract("Which repos or posts cover SSE?") == {"kind": ("post",)}


def test_self_query_filters_that_match_nothing_are_dropped(
    filled: QdrantStore, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    # Maya Okafor has no repositories in the corpus
    for client, _ in _llm(_answers({"author": "Maya Okafor", "kind": "repository"}, [])):
        rag = RAGPipeline(embedder, filled, self_query=SelfQuery(client))
        with caplog.at_level("INFO", logger="llm_twin_sdk.rag.pipeline"):
            hits = rag.retrieve("Which repository of Maya Okafor has the autoscaler?", k=3)
    assert len(hits) == 3
    assert "searching without" in caplog.text


def test_llm_failures_leave_plain_retrieval(filled: QdrantStore, embedder: Embedder) -> None:
    plain = [c.id for c in RAGPipeline(embedder, filled).retrieve(QUESTION, k=5)]
    for client, server in _llm(_answers({"author": "Lukas Brenner"}, ["x"])):
        server.fail(Fault.http(500), Fault.http(500))
        rag = RAGPipeline(
            embedder, filled, self_query=SelfQuery(client), expander=QueryExpander(client, n=3)
        )
        assert [c.id for c in rag.retrieve(QUESTION, k=5)] == plain
        assert len(server.generation_requests()) == 2


def test_self_query_and_expansion_run_at_the_same_time(
    filled: QdrantStore, embedder: Embedder
) -> None:
    # Each answer waits until both requests have arrived: run one after the other, the
    # barrier would time out, the server would fail both steps, and nothing would be filtered.
    barrier = threading.Barrier(2, timeout=10)
    answer = _answers({"author": "Lukas Brenner"}, ["SSE buffering header in nginx"])

    def respond(prompt: str) -> str:
        barrier.wait()
        return answer(prompt)

    for client, server in _llm(respond):
        rag = RAGPipeline(
            embedder, filled, self_query=SelfQuery(client), expander=QueryExpander(client, n=2)
        )
        hits = rag.retrieve(QUESTION, k=5)
        assert not server.handler_errors
    assert {h.metadata.author for h in hits} == {"Lukas Brenner"}


# -- reranking -----------------------------------------------------------------------------


def test_reranker_reorders_the_candidates(
    filled: QdrantStore, embedder: Embedder, tiny_cross_encoder: Path
) -> None:
    reranker = Reranker(tiny_cross_encoder)
    candidates = RAGPipeline(embedder, filled).retrieve(QUESTION, k=12, unit="chunk")
    rag = RAGPipeline(embedder, filled, reranker=reranker, rerank_candidates=12)
    hits = rag.retrieve(QUESTION, k=3, unit="chunk")
    expected = reranker.rerank(QUESTION, candidates, keep_top_k=3)
    assert [(h.id, h.score) for h in hits] == [(c.id, c.score) for c in expected]
    assert len(hits) == 3


def test_reranker_reorders_the_best_chunk_of_each_candidate_document(
    filled: QdrantStore, embedder: Embedder, tiny_cross_encoder: Path
) -> None:
    reranker = Reranker(tiny_cross_encoder)
    # The candidates: the rerank_candidates best documents, each as its best chunk.
    candidates = RAGPipeline(embedder, filled).retrieve(QUESTION, k=12)
    assert len({c.document_id for c in candidates}) == len(candidates) == 12
    rag = RAGPipeline(embedder, filled, reranker=reranker, rerank_candidates=12)
    hits = rag.retrieve(QUESTION, k=3)
    expected = reranker.rerank(QUESTION, candidates, keep_top_k=3)
    assert [(h.id, h.score) for h in hits] == [(c.id, c.score) for c in expected]
    assert len({h.document_id for h in hits}) == 3


@pytest.mark.asyncio
async def test_aretrieve_takes_the_same_arguments(filled: QdrantStore, embedder: Embedder) -> None:
    rag = RAGPipeline(embedder, filled)
    hits = await rag.aretrieve(
        QUESTION, k=3, collections=["posts"], filters={"author": "Lukas Brenner"}
    )
    assert hits == rag.retrieve(
        QUESTION, k=3, collections=["posts"], filters={"author": "Lukas Brenner"}
    )
    with pytest.raises(InvalidParameterError, match="unknown collection"):
        await rag.aretrieve(QUESTION, collections=["nope"])


# -- settings ------------------------------------------------------------------------------


def test_query_steps_from_settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tiny_cross_encoder: Path,
    client: InferenceClient,
) -> None:
    settings = TwinSettings(
        qdrant_path=tmp_path / "q",
        self_query=True,
        query_expansion=3,
        reranker_model=str(tiny_cross_encoder),
        rerank_candidates=8,
    )
    with pytest.raises(ConfigurationError, match="need an LLM client"):
        RAGPipeline.from_settings(settings)
    rag = RAGPipeline.from_settings(settings, llm=client)
    try:
        assert rag.self_query is not None
        assert rag.self_query.client is client
        assert rag.expander is not None
        assert rag.expander.n == 3
        assert rag.reranker is not None
        assert rag.rerank_candidates == 8
        assert "steps=['self_query', 'expansion', 'rerank']" in repr(rag)
    finally:
        rag.close()
    plain = RAGPipeline.from_settings(TwinSettings(qdrant_path=tmp_path / "p"))
    assert (plain.self_query, plain.expander, plain.reranker) == (None, None, None)
    plain.close()


def test_chunk_scores_are_typed(filled: QdrantStore, embedder: Embedder) -> None:
    hits = RAGPipeline(embedder, filled).retrieve(QUESTION, k=2)
    assert all(isinstance(h, Chunk) and isinstance(h.score, float) for h in hits)
