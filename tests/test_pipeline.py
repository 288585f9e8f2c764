from __future__ import annotations

import asyncio
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_twin_sdk import (
    ConfigurationError,
    DeleteReport,
    Document,
    Embedder,
    EmptyQueryError,
    EmptyStoreWarning,
    IngestReport,
    InvalidDocumentError,
    InvalidParameterError,
    LLMTwinWarning,
    QdrantStore,
    RAGPipeline,
    TwinSettings,
    VectorStoreError,
)
from llm_twin_sdk.validation import MAX_K

QUESTION = "Which response header stops nginx from buffering server-sent events?"
Ingested = tuple[RAGPipeline, IngestReport]


def _pipeline(embedder: Embedder, store: QdrantStore) -> RAGPipeline:
    return RAGPipeline(embedder, store, chunk_tokens=64, chunk_overlap=8, top_k=3)


@pytest.fixture
def rag(embedder: Embedder, memory_store: QdrantStore) -> RAGPipeline:
    """An empty store of the test's own: for tests that write."""
    return _pipeline(embedder, memory_store)


@pytest.fixture(scope="module")
def ingested(embedder: Embedder, corpus: list[Document]) -> Iterator[Ingested]:
    """The sample corpus, ingested once for the tests that only read it, and the report."""
    store = QdrantStore.memory()
    rag = _pipeline(embedder, store)
    report = rag.ingest(corpus)
    yield rag, report
    rag.close()
    store.close()  # the pipeline borrows the store: its creator closes it


def test_chunks_fit_the_embedder(rag: RAGPipeline, corpus: list[Document]) -> None:
    chunks = rag.chunk(corpus)
    assert len(chunks) > len(corpus)
    sizes = [len(o) for o in rag.embedder.token_offsets([c.text for c in chunks])]
    assert max(sizes) <= 64
    by_doc = {d.id: d for d in corpus}
    assert all(c.text in by_doc[c.document_id].text for c in chunks)


def test_ingest_then_retrieve_finds_the_right_document(
    ingested: Ingested, corpus: list[Document]
) -> None:
    rag, report = ingested
    assert report.documents == len(corpus)
    assert report.chunks == rag.store.count() > len(corpus)
    hits = rag.retrieve(QUESTION)
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


@pytest.mark.parametrize("documents", [None, 42])
def test_what_is_not_a_list_of_documents_is_refused(rag: RAGPipeline, documents: object) -> None:
    accepted = r"expected a list of documents \(Document objects or mappings with 'id' and 'text'\)"
    with pytest.raises(InvalidDocumentError, match=rf"{accepted}, got {type(documents).__name__}"):
        rag.ingest(documents)  # type: ignore[arg-type]
    with pytest.raises(InvalidDocumentError, match=accepted):
        rag.chunk(documents)  # type: ignore[arg-type]
    assert rag.store.count() == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "bad-text", "text": "GPU cost \ud800 notes"},
        {"id": "bad-id-\udfff", "text": "fine"},
        {"id": "bad-title", "text": "fine", "metadata": {"title": "\udc00"}},
    ],
)
def test_text_that_is_not_valid_unicode_is_refused_naming_the_document(
    rag: RAGPipeline, bad: dict[str, object]
) -> None:
    good = {"id": "good", "text": "Quantize before you scale out."}
    with pytest.raises(InvalidDocumentError, match=r"#1 \(id=.*(lone surrogate|unicode)") as info:
        rag.ingest([good, bad])
    assert repr(bad["id"]) in str(info.value)
    assert rag.store.count() == 0


def test_a_document_object_with_a_lone_surrogate_names_its_id() -> None:
    with pytest.raises(
        InvalidDocumentError, match=r"text: holds a lone surrogate '\\ud800' at position 4.*'d-7'"
    ):
        Document(id="d-7", text="GPU \ud800 cost")


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query(rag: RAGPipeline, query: str) -> None:
    with pytest.raises(EmptyQueryError):
        rag.retrieve(query)


@pytest.mark.parametrize("query", ["GPU \ud800 cost?", "\udfff"])
def test_a_query_that_is_not_valid_unicode_is_refused_before_embedding(
    ingested: Ingested, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rag, _ = ingested

    def no_encode(texts: object) -> object:
        raise AssertionError("the query was embedded")

    monkeypatch.setattr(rag.embedder, "encode", no_encode)
    with pytest.raises(InvalidParameterError, match="query holds a lone surrogate"):
        rag.retrieve(query)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, MAX_K + 1, 2**64])
def test_invalid_k_is_refused_alike_on_an_empty_and_a_full_store(
    rag: RAGPipeline, ingested: Ingested, k: Any
) -> None:
    message = re.escape(f"k must be a positive integer up to {MAX_K}, got {k!r}")
    terms = rag.lexical_encoder.encode_query("question")
    for pipeline in (rag, ingested[0]):
        with pytest.raises(InvalidParameterError, match=message):
            pipeline.retrieve("question", k=k)
        with pytest.raises(InvalidParameterError, match=message):
            asyncio.run(pipeline.aretrieve("question", k=k))
        with pytest.raises(InvalidParameterError, match=message):
            pipeline.store.search(None, k, sparse=terms, mode="lexical")
    full, report = ingested  # the bound: every document, or every chunk
    assert len(full.retrieve("question", k=MAX_K)) == report.documents
    assert len(full.retrieve("question", k=MAX_K, unit="chunk")) == report.chunks


def test_top_k_and_rerank_candidates_are_bounded(
    embedder: Embedder, memory_store: QdrantStore
) -> None:
    with pytest.raises(ConfigurationError, match=f"top_k must be a positive integer up to {MAX_K}"):
        RAGPipeline(embedder, memory_store, top_k=MAX_K + 1)
    with pytest.raises(ConfigurationError, match="rerank_candidates must be a positive integer"):
        RAGPipeline(embedder, memory_store, rerank_candidates=MAX_K + 1)


def test_retrieve_on_empty_store_warns(rag: RAGPipeline) -> None:
    with pytest.warns(EmptyStoreWarning, match=r"\(memory\) holds no documents") as seen:
        assert rag.retrieve("anything") == []
    assert issubclass(seen[0].category, LLMTwinWarning)
    assert seen[0].filename == __file__  # points at the caller, not into the SDK


@pytest.mark.asyncio
async def test_aretrieve_on_empty_store_warns_too(rag: RAGPipeline) -> None:
    with pytest.warns(EmptyStoreWarning):
        assert await rag.aretrieve("anything") == []


def test_no_warning_when_documents_are_stored_but_none_match(
    rag: RAGPipeline, corpus: list[Document]
) -> None:
    rag.ingest(corpus[:3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        assert rag.retrieve("anything", filters={"author": "Nobody At All"}) == []
        assert rag.retrieve("anything")
    rag.delete([d.id for d in corpus[:3]])
    with pytest.warns(EmptyStoreWarning):  # empty again
        rag.retrieve("anything")


def test_count_list_and_delete_documents(rag: RAGPipeline, corpus: list[Document]) -> None:
    assert (rag.count(), rag.count(chunks=True), list(rag.documents())) == (0, 0, [])
    rag.ingest(corpus)
    chunks = rag.chunk(corpus)
    assert rag.count() == len(corpus)
    assert rag.count(chunks=True) == len(chunks)
    listed = {doc.id: doc for doc in rag.documents()}
    assert set(listed) == {d.id for d in corpus}
    first = corpus[0]
    assert listed[first.id].metadata == first.metadata
    assert listed[first.id].chunks == sum(1 for c in chunks if c.document_id == first.id)
    assert listed[first.id].collection == rag.store.collection_for(first.metadata.kind)
    posts = [d.id for d in corpus if d.metadata.kind == "post"]
    assert sorted(doc.id for doc in rag.documents({"kind": "post"})) == sorted(posts)
    author = first.metadata.author
    assert author is not None
    by_author = {doc.id for doc in rag.documents(filters={"author": author})}
    assert by_author == {d.id for d in corpus if d.metadata.author == author}

    report = rag.delete([first.id, "never-ingested", first.id])
    assert report == DeleteReport(
        documents=1, chunks=listed[first.id].chunks, missing=("never-ingested",)
    )
    assert rag.count() == len(corpus) - 1
    assert first.id not in {doc.id for doc in rag.documents()}
    assert all(c.document_id != first.id for c in rag.retrieve(first.text[:200], k=20))
    assert rag.delete(first.id) == DeleteReport(0, 0, (first.id,))  # twice: reported, no error
    assert rag.ingest(corpus).documents == 1  # and ingesting again brings it back alone


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (None, "must be a string or a list of strings"),
        (42, "must be a string or a list of strings"),
        ([" "], "non-blank string"),
        (["ok", 7], "non-blank string"),
        (["x" * 513], "at most 512"),
    ],
)
def test_bad_ids_delete_nothing(
    rag: RAGPipeline, corpus: list[Document], ids: Any, message: str
) -> None:
    rag.ingest(corpus[:2])
    with pytest.raises(InvalidParameterError, match=message):
        rag.delete(ids)
    assert rag.count() == 2


def test_bad_listing_filters_fail_at_once(rag: RAGPipeline) -> None:
    with pytest.raises(InvalidParameterError, match="cannot filter on 'color'"):
        rag.documents({"color": "red"})  # not on first iteration: now


def test_chunk_size_must_fit_the_embedder(embedder: Embedder, memory_store: QdrantStore) -> None:
    with pytest.raises(ConfigurationError, match="embedder's limit"):
        RAGPipeline(embedder, memory_store, chunk_tokens=embedder.max_tokens + 1)
    with pytest.raises(ConfigurationError, match="chunk_overlap"):
        RAGPipeline(embedder, memory_store, chunk_tokens=32, chunk_overlap=40)


def test_from_settings_builds_local_store(tmp_path: Path) -> None:
    rag = RAGPipeline.from_settings(
        TwinSettings(chunk_tokens=100, chunk_overlap=10, top_k=4, search="dense")
    )
    try:
        assert rag.store.where.startswith("local folder")
        assert str(tmp_path / ".llm-twin" / "qdrant") in rag.store.where  # the project's
        assert (tmp_path / ".llm-twin" / ".gitignore").read_text(encoding="utf-8").endswith("*\n")
        assert (rag.chunk_tokens, rag.chunk_overlap, rag.top_k) == (100, 10, 4)
        assert rag.search == "dense"
        assert TwinSettings().search == "hybrid"
    finally:
        rag.close()
    with pytest.raises(VectorStoreError, match="closed"):  # it owned the store it built
        rag.store.count()


def test_a_pipeline_borrows_the_store_it_is_given(
    embedder: Embedder, memory_store: QdrantStore
) -> None:
    with RAGPipeline(embedder, memory_store) as rag:
        rag.ingest([{"id": "a", "text": "Borrowed stores stay open."}])
    rag.close()  # twice is fine
    assert memory_store.count() == 1  # still open: its creator closes it


@pytest.mark.asyncio
async def test_aretrieve_matches_retrieve_without_blocking_the_loop(ingested: Ingested) -> None:
    rag, _ = ingested
    query = QUESTION
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
