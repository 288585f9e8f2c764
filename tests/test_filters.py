"""Explicit metadata filters on retrieval, in every search mode."""

from __future__ import annotations

from typing import Any

import pytest

from llm_twin_sdk import (
    Document,
    Embedder,
    InferenceClient,
    InvalidParameterError,
    LLMTwin,
    QdrantStore,
    RAGPipeline,
)
from llm_twin_sdk.rag.filters import check_filters, to_qdrant_filter

QUERY = "How should I tune retrieval for a RAG system?"


@pytest.fixture(scope="module")
def stores(embedder: Embedder, corpus: list[Document]) -> dict[str, RAGPipeline]:
    store = QdrantStore.memory("filters")
    RAGPipeline(embedder, store).ingest(corpus)
    return {
        mode: RAGPipeline(embedder, store, search=mode) for mode in ("dense", "lexical", "hybrid")
    }


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_author_filter(stores: dict[str, RAGPipeline], mode: str) -> None:
    rag = stores[mode]
    unfiltered = {c.metadata.author for c in rag.retrieve(QUERY, k=10)}
    assert unfiltered == {"Maya Okafor", "Lukas Brenner"}  # both write about it
    hits = rag.retrieve(QUERY, k=10, filters={"author": "Maya Okafor"})
    assert hits
    assert {c.metadata.author for c in hits} == {"Maya Okafor"}


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_several_fields_and_values(stores: dict[str, RAGPipeline], mode: str) -> None:
    hits = stores[mode].retrieve(
        QUERY, k=20, filters={"author": "Lukas Brenner", "kind": ["post", "repository"]}
    )
    assert hits
    assert all(c.metadata.author == "Lukas Brenner" for c in hits)
    assert {c.metadata.kind for c in hits} <= {"post", "repository"}
    only = stores[mode].retrieve(QUERY, k=5, filters={"document_id": "lukas-post-sse-streaming"})
    assert {c.document_id for c in only} == {"lukas-post-sse-streaming"}


def test_no_match_gives_no_chunks(stores: dict[str, RAGPipeline]) -> None:
    assert stores["hybrid"].retrieve(QUERY, filters={"author": "Nobody"}) == []


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": "red"}, "filterable fields: author, platform, kind, document_id"),
        ({"author": 3}, "non-empty string"),
        ({"author": []}, "non-empty string"),
        ({"author": [""]}, "non-empty string"),
        ({"kind": "tweet"}, "accepts article, post, repository"),
        ("author=Maya", "must be a mapping"),
    ],
)
def test_invalid_filters(stores: dict[str, RAGPipeline], filters: Any, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        stores["dense"].retrieve(QUERY, filters=filters)
    with pytest.raises(InvalidParameterError, match=message):
        check_filters(filters)


def test_qdrant_filter_shape() -> None:
    assert to_qdrant_filter({}) is None
    condition = to_qdrant_filter(check_filters({"author": "A", "kind": ["post", "article"]}))
    assert condition is not None
    keys = [c.key for c in condition.must]  # type: ignore[union-attr]
    assert keys == ["author", "kind"]


def test_twin_ask_uses_the_filters(stores: dict[str, RAGPipeline], client: InferenceClient) -> None:
    twin = LLMTwin(stores["hybrid"], client.with_options(max_new_tokens=4, temperature=0.0))
    answer = twin.ask(QUERY, filters={"author": "Lukas Brenner"})
    assert answer.sources
    assert {s.metadata.author for s in answer.sources} == {"Lukas Brenner"}
    with twin.stream(QUERY, filters={"kind": "repository"}) as stream:
        assert {s.metadata.kind for s in stream.sources} == {"repository"}
        list(stream)
