"""Hybrid search: dense + BM25-style lexical vectors, fused by RRF inside Qdrant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from llm_twin_sdk import (
    Chunk,
    CollectionMismatchError,
    ConfigurationError,
    Document,
    Embedder,
    InvalidParameterError,
    QdrantStore,
    RAGPipeline,
)
from llm_twin_sdk.rag.chunking import chunk_id
from llm_twin_sdk.rag.fusion import Fusion, FusionMethod, QueryVectors
from llm_twin_sdk.rag.sparse import LexicalEncoder

ENCODER = LexicalEncoder()
TEXTS = [
    "Buffering of streamed responses in general, and why proxies buffer.",  # dense favourite
    "Set the X-Accel-Buffering: no header on the SSE route.",  # the exact identifier
    "HNSW tuning with ef_construct=200 and m=16 for the twin index.",
    "Quantize the model to 4 bits before scaling out.",
]
RRF_CONSTANT = 10  # reciprocal rank fusion: score = sum of weight / (RRF_CONSTANT + rank)


def _chunks(texts: list[str], doc: str = "d") -> list[Chunk]:
    return [
        Chunk(id=chunk_id(doc, i), document_id=doc, position=i, text=text)
        for i, text in enumerate(texts)
    ]


def _unit(n: int, dim: int = 8, seed: int = 0) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    unit: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


@pytest.fixture
def filled(memory_store: QdrantStore) -> tuple[QdrantStore, list[Chunk], npt.NDArray[np.float32]]:
    chunks, vectors = _chunks(TEXTS), _unit(len(TEXTS))
    memory_store.write_documents(chunks, vectors, ENCODER.encode_documents(TEXTS))
    return memory_store, chunks, vectors


def test_lexical_finds_the_identifier_dense_ranks_lower(
    filled: tuple[QdrantStore, list[Chunk], npt.NDArray[np.float32]],
) -> None:
    store, chunks, vectors = filled
    query_vector = vectors[0]  # the dense query lands on the generic "buffering" chunk
    sparse = ENCODER.encode_query("X-Accel-Buffering header")
    dense = store.search(query_vector, 4)
    assert dense[0].id == chunks[0].id
    assert [c.id for c in dense].index(chunks[1].id) > 0
    lexical = store.search(None, 4, sparse=sparse, mode="lexical")
    assert lexical[0].id == chunks[1].id
    assert lexical[0].text == TEXTS[1]
    # only the chunk naming it: the generic chunk's "Buffering" shares a stem with a piece of
    # the identifier, and a named identifier is searched by its exact pieces (rag/sparse.py)
    assert [c.id for c in lexical] == [chunks[1].id]
    assert lexical[0].score > 0  # type: ignore[operator]
    hybrid = store.search(query_vector, 2, sparse=sparse, mode="hybrid")
    assert {c.id for c in hybrid} == {chunks[0].id, chunks[1].id}


def _by_hand(method: str, scores: list[float]) -> list[float]:
    """Each fusion method's contribution of a list's scores (best first), computed here."""
    if method == "rrf":
        return [1 / (RRF_CONSTANT + rank) for rank in range(1, len(scores) + 1)]
    if method == "dbsf":  # Qdrant's: mean +/- 3 standard deviations onto [0, 1]
        mean = sum(scores) / len(scores)
        std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        low, high = mean - 3 * std, mean + 3 * std
    else:
        low, high = min(scores), max(scores)
    return [min(1.0, max(0.0, (s - low) / (high - low))) for s in scores]


@pytest.mark.parametrize("method", ["dbsf", "rrf", "minmax"])
def test_hybrid_fuses_the_dense_and_lexical_lists(
    filled: tuple[QdrantStore, list[Chunk], npt.NDArray[np.float32]], method: FusionMethod
) -> None:
    store, _, vectors = filled
    query_vector, sparse = vectors[3], ENCODER.encode_query("ef_construct=200 buffering header")
    fusion = Fusion(method, rrf_constant=RRF_CONSTANT, lexical_weight=0.5)
    dense = store.search(query_vector, 10)
    lexical = store.search(None, 10, sparse=sparse, mode="lexical")
    assert len(lexical) >= 2  # two lists of several points: fused, not passed through
    expected: dict[str, float] = {}
    for ranking, weight in ((dense, 1.0), (lexical, 0.5)):
        shares = _by_hand(method, [c.score or 0.0 for c in ranking])
        for chunk, share in zip(ranking, shares, strict=True):
            expected[chunk.id] = expected.get(chunk.id, 0.0) + weight * share
    queries = [QueryVectors(query_vector, sparse)]
    hybrid = store.search_many(queries, 10, mode="hybrid", fusion=fusion)
    assert {c.id for c in hybrid} == {c.id for c in dense} | {c.id for c in lexical}
    assert len(hybrid) == len({c.id for c in hybrid})
    for chunk in hybrid:
        assert chunk.score == pytest.approx(expected[chunk.id])
    scores = [c.score for c in hybrid]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    top2 = store.search_many(queries, 2, mode="hybrid", fusion=fusion)
    assert [c.id for c in top2] == [c.id for c in hybrid[:2]]


def test_the_default_fusion_is_dbsf(
    filled: tuple[QdrantStore, list[Chunk], npt.NDArray[np.float32]],
) -> None:
    store, _, vectors = filled
    query_vector, sparse = vectors[3], ENCODER.encode_query("ef_construct=200 buffering header")
    queries = [QueryVectors(query_vector, sparse)]
    default = store.search(query_vector, 10, sparse=sparse, mode="hybrid")
    assert default == store.search_many(queries, 10, mode="hybrid", fusion=Fusion("dbsf"))
    assert default != store.search_many(queries, 10, mode="hybrid", fusion=Fusion("rrf"))


def test_query_without_terms(
    filled: tuple[QdrantStore, list[Chunk], npt.NDArray[np.float32]],
) -> None:
    store, _, vectors = filled
    empty = ENCODER.encode_query("the and of")
    assert store.search(None, 3, sparse=empty, mode="lexical") == []
    hybrid = store.search(vectors[2], 3, sparse=empty, mode="hybrid")  # the dense list alone
    assert [c.id for c in hybrid] == [c.id for c in store.search(vectors[2], 3)]


def test_upsert_computes_lexical_vectors_when_not_given(memory_store: QdrantStore) -> None:
    memory_store.upsert(_chunks([*TEXTS, "..."]), _unit(len(TEXTS) + 1))  # "..." has no terms
    assert memory_store.count() == len(TEXTS) + 1
    hits = memory_store.search(None, 1, sparse=ENCODER.encode_query("ef_construct"), mode="lexical")
    assert hits[0].text == TEXTS[2]


@pytest.mark.parametrize(
    ("vector", "sparse", "mode", "message"),
    [
        (True, True, "bm25", "search mode must be one of dense, lexical, hybrid"),
        (True, False, "lexical", "lexical search needs the query's sparse vector"),
        (True, False, "hybrid", "hybrid search needs the query's sparse vector"),
        (False, True, "hybrid", "hybrid search needs the query's dense vector"),
        (False, True, "dense", "dense search needs the query's dense vector"),
    ],
)
def test_search_arguments_are_validated(
    memory_store: QdrantStore, vector: bool, sparse: bool, mode: str, message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        memory_store.search(
            _unit(1)[0] if vector else None,
            3,
            sparse=ENCODER.encode_query("x") if sparse else None,
            mode=mode,  # type: ignore[arg-type]
        )


def test_old_unnamed_vector_collection_is_refused(memory_store: QdrantStore) -> None:
    from qdrant_client import models

    memory_store._client.create_collection(
        memory_store.collection_for(None),
        vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE),
    )
    with pytest.raises(CollectionMismatchError, match=r"older llm-twin-sdk.*new collection"):
        memory_store.write_documents(_chunks(TEXTS), _unit(len(TEXTS)))
    fresh = QdrantStore(memory_store._client, payload_indexes=False)
    with pytest.raises(CollectionMismatchError, match="single unnamed vector"):
        fresh.search(_unit(1)[0], 3)


def test_collection_without_the_lexical_vector_is_refused(memory_store: QdrantStore) -> None:
    from qdrant_client import models

    memory_store._client.create_collection(
        memory_store.collection_for(None),
        vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
        sparse_vectors_config={"bm25": models.SparseVectorParams()},  # no IDF modifier
    )
    with pytest.raises(CollectionMismatchError, match="does not have the layout"):
        memory_store.upsert(_chunks(TEXTS), _unit(len(TEXTS)))


def test_lexical_search_after_reopening_a_local_folder(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.write_documents(_chunks(TEXTS), _unit(len(TEXTS)))
    store.close()
    again = QdrantStore.local(tmp_path / "q")
    try:
        sparse = ENCODER.encode_query("X-Accel-Buffering")
        assert again.search(None, 1, sparse=sparse, mode="lexical")[0].text == TEXTS[1]
        assert again.search(_unit(1)[0], 1, sparse=sparse, mode="hybrid")
    finally:
        again.close()


# -- pipeline end to end on the sample corpus ------------------------------------------------

LEXICAL_QUERIES = [
    ("What does X-Accel-Buffering do?", "lukas-post-sse-streaming"),
    ("Which index used ef_construct=200?", "lukas-repo-twin-vector-index"),
    ("ef_construct=200", "lukas-repo-twin-vector-index"),
    ("alarm on NoCapacityInvocationFailures", "maya-article-autoscale-to-zero"),
    ("training with beta=0.1", "lukas-repo-twin-dpo"),
    ("beta=0.1", "lukas-repo-twin-dpo"),
    ("why set --max-num-seqs 64", "lukas-repo-twin-vllm-serve"),
    ("size=384", "maya-post-minilm-embeddings"),
]


@pytest.fixture(scope="module")
def corpus_store(embedder: Embedder, corpus: list[Document]) -> Iterator[QdrantStore]:
    """The sample corpus in 64-token chunks, ingested once; the tests only read it."""
    store = QdrantStore.memory()
    RAGPipeline(embedder, store, chunk_tokens=64, chunk_overlap=8).ingest(corpus)
    yield store
    store.close()


@pytest.fixture
def rag(embedder: Embedder, corpus_store: QdrantStore) -> RAGPipeline:
    """A pipeline of the test's own (tests change its search mode) over the shared store."""
    return RAGPipeline(embedder, corpus_store, chunk_tokens=64, chunk_overlap=8)


def test_hybrid_is_the_default(embedder: Embedder, memory_store: QdrantStore) -> None:
    assert RAGPipeline(embedder, memory_store).search == "hybrid"
    assert "search='hybrid'" in repr(RAGPipeline(embedder, memory_store))


def test_hybrid_ranks_the_documents_naming_the_identifier_first(rag: RAGPipeline) -> None:
    assert rag.search == "hybrid"
    for query, document_id in LEXICAL_QUERIES:
        hits = rag.retrieve(query, k=5)
        assert hits[0].document_id == document_id, query
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True), query  # type: ignore[type-var]


def test_hybrid_beats_dense_on_exact_identifiers(rag: RAGPipeline) -> None:
    def firsts() -> int:
        return sum(rag.retrieve(q, k=5)[0].document_id == d for q, d in LEXICAL_QUERIES)

    hybrid = firsts()
    rag.search = "dense"
    dense = firsts()
    assert hybrid == len(LEXICAL_QUERIES) > dense


def test_paraphrase_still_found_in_hybrid_mode(rag: RAGPipeline) -> None:
    hits = rag.retrieve("Which response header stops nginx from buffering server-sent events?")
    assert hits[0].document_id == "lukas-post-sse-streaming"


def test_lexical_mode_does_not_embed_the_query(
    rag: RAGPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    rag.search = "lexical"

    def no_encode(texts: object) -> object:
        raise AssertionError("lexical retrieval embedded the query")

    monkeypatch.setattr(rag.embedder, "encode", no_encode)
    assert rag.retrieve("NoCapacityInvocationFailures", k=1)[0].document_id == (
        "maya-article-autoscale-to-zero"
    )
    assert rag.retrieve("the of and") == []


def test_dense_only_remains_a_setting(embedder: Embedder, memory_store: QdrantStore) -> None:
    rag = RAGPipeline(embedder, memory_store, search="dense")
    rag.ingest([Document(id="a", text="Cosine similarity of sentence embeddings.")])
    (hit,) = rag.retrieve("embedding similarity", k=1)
    assert hit.document_id == "a"
    assert 0 < hit.score <= 1  # type: ignore[operator]


def test_unknown_search_setting(embedder: Embedder, memory_store: QdrantStore) -> None:
    with pytest.raises(ConfigurationError, match="search mode must be one of"):
        RAGPipeline(embedder, memory_store, search="sparse")  # type: ignore[arg-type]
