from __future__ import annotations

import pytest

from llm_twin_sdk import (
    ConfigurationError,
    Document,
    Embedder,
    EmptyQueryError,
    InvalidDocumentError,
    InvalidParameterError,
    QdrantStore,
    RAGPipeline,
    TwinSettings,
)


@pytest.fixture
def rag(embedder: Embedder, memory_store: QdrantStore) -> RAGPipeline:
    return RAGPipeline(embedder, memory_store, chunk_tokens=64, chunk_overlap=8, top_k=3)


def test_chunks_fit_the_embedder(rag: RAGPipeline, corpus: list[Document]) -> None:
    chunks = rag.chunk(corpus)
    assert len(chunks) > len(corpus)
    sizes = [len(o) for o in rag.embedder.token_offsets([c.text for c in chunks])]
    assert max(sizes) <= 64
    by_doc = {d.id: d for d in corpus}
    assert all(c.text in by_doc[c.document_id].text for c in chunks)


def test_ingest_then_retrieve_finds_the_right_document(
    rag: RAGPipeline, corpus: list[Document]
) -> None:
    report = rag.ingest(corpus)
    assert report.documents == len(corpus)
    assert report.chunks == rag.store.count() > len(corpus)
    hits = rag.retrieve("Which response header stops nginx from buffering server-sent events?")
    assert len(hits) == 3
    assert hits[0].document_id == "lukas-post-sse-streaming"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert hits[0].metadata.author == "Lukas Brenner"
    assert len(rag.retrieve("quantization", k=5)) == 5


def test_reingest_replaces_without_duplicates(rag: RAGPipeline, corpus: list[Document]) -> None:
    first = rag.ingest(corpus)
    second = rag.ingest(corpus)  # unchanged: nothing to embed or write
    assert rag.store.count() == first.chunks
    assert (second.documents, second.chunks, second.unchanged) == (0, 0, len(corpus))
    edited = [corpus[0].model_copy(update={"text": corpus[0].text + " One more line."})]
    third = rag.ingest([*edited, *corpus[1:]])
    assert (third.documents, third.unchanged) == (1, len(corpus) - 1)
    assert rag.store.count() == first.chunks - len(rag.chunk(corpus[:1])) + third.chunks


def test_shorter_version_of_a_document_drops_its_old_tail(
    rag: RAGPipeline, corpus: list[Document]
) -> None:
    long_doc = max(corpus, key=lambda d: len(d.text))
    rag.ingest([long_doc])
    before = rag.store.count()
    assert before > 1
    rag.ingest([Document(id=long_doc.id, text="Now a single short sentence.")])
    assert rag.store.count() == 1
    (hit,) = rag.retrieve("short sentence", k=1)
    assert hit.text == "Now a single short sentence."


def test_a_bad_document_writes_nothing(rag: RAGPipeline, corpus: list[Document]) -> None:
    batch: list[object] = [*corpus[:3], {"id": "empty", "text": "  "}]
    with pytest.raises(InvalidDocumentError, match=r"#3 \(id='empty'\).*no text"):
        rag.ingest(batch)  # type: ignore[arg-type]
    assert rag.store.count() == 0


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], "appears twice"),
        ([42], "must be a Document or a mapping"),
        ([{"id": "a", "text": "x", "metadata": {"kind": "tweet"}}], "kind"),
        ([{"id": "z", "text": "\u200b\u200b"}], "no words"),
    ],
)
def test_invalid_batches(rag: RAGPipeline, batch: list[object], message: str) -> None:
    with pytest.raises(InvalidDocumentError, match=message):
        rag.ingest(batch)  # type: ignore[arg-type]
    assert rag.store.count() == 0


def test_single_document_instead_of_a_list(rag: RAGPipeline, corpus: list[Document]) -> None:
    with pytest.raises(InvalidDocumentError, match="list of documents"):
        rag.ingest(corpus[0])  # type: ignore[arg-type]


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query(rag: RAGPipeline, query: str) -> None:
    with pytest.raises(EmptyQueryError):
        rag.retrieve(query)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_invalid_k(rag: RAGPipeline, k: object) -> None:
    with pytest.raises(InvalidParameterError, match="k must be"):
        rag.retrieve("question", k=k)  # type: ignore[arg-type]


def test_retrieve_on_empty_store(rag: RAGPipeline) -> None:
    assert rag.retrieve("anything") == []


def test_chunk_size_must_fit_the_embedder(embedder: Embedder, memory_store: QdrantStore) -> None:
    with pytest.raises(ConfigurationError, match="embedder's limit"):
        RAGPipeline(embedder, memory_store, chunk_tokens=embedder.max_tokens + 1)
    with pytest.raises(ConfigurationError, match="chunk_overlap"):
        RAGPipeline(embedder, memory_store, chunk_tokens=32, chunk_overlap=40)


def test_from_settings_builds_local_store(tmp_path: object) -> None:
    rag = RAGPipeline.from_settings(
        TwinSettings(chunk_tokens=100, chunk_overlap=10, top_k=4, search="dense")
    )
    try:
        assert rag.store.where.startswith("local folder")
        assert (rag.chunk_tokens, rag.chunk_overlap, rag.top_k) == (100, 10, 4)
        assert rag.search == "dense"
        assert TwinSettings().search == "hybrid"
    finally:
        rag.close()


@pytest.mark.asyncio
async def test_aretrieve_matches_retrieve_without_blocking_the_loop(
    rag: RAGPipeline, corpus: list[Document]
) -> None:
    import asyncio

    rag.ingest(corpus)
    query = "Which response header stops nginx from buffering server-sent events?"
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(rag.aretrieve(query, k=3) for _ in range(4)))
    done.set()
    await task
    expected = [c.id for c in rag.retrieve(query, k=3)]
    assert all([c.id for c in chunks] == expected for chunks in results)
    assert ticks > 4  # the loop kept running while the searches ran in threads
    with pytest.raises(EmptyQueryError):
        await rag.aretrieve("  ")
    with pytest.raises(InvalidParameterError):
        await rag.aretrieve(query, k=0)
