"""The local write path of ingestion made cheaper (issue 13): points built column by column
(``PointRows``) and straight into Qdrant Edge's own points, chunk ids without UUID objects,
BM25 skipping the compound split where no compound can be, and the next batch read against
the store while this one embeds. Each must give exactly what the slower path gave."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest

from llm_twin_sdk import Chunk, Document, QdrantStore, RAGPipeline
from llm_twin_sdk.rag.chunking import CHUNK_NAMESPACE, chunk_id, split_offsets
from llm_twin_sdk.rag.edge import EdgeClient
from llm_twin_sdk.rag.embedder_base import TokenOffsets, Vectors
from llm_twin_sdk.rag.embedder_tei import estimate_offsets
from llm_twin_sdk.rag.ingestion import BatchSizer
from llm_twin_sdk.rag.points import DENSE_VECTOR, LEXICAL_VECTOR, PointRows, point_rows
from llm_twin_sdk.rag.sparse import LexicalEncoder, SparseVector, _split_compounds, compound_terms
from llm_twin_sdk.rag.versions import StoredVersions
from test_edge import _chunks, _vectors  # the same chunks and unit vectors

TRICKY_TEXTS = [
    "Compilation of max_new_tokens limits",
    "Set --max-num-seqs=64 on ml.g5.2xlarge, then X-Accel-Buffering: no.",
    "e.g. the U.S. office; 3.5 GB; a/b testing; c++ and C#",
    "plain words only, ending in a period.",
    "_private __dunder__ trailing_ -v --flag - -- --- ---x",
    "Ünïcödé wörds: straße İstanbul ΣΊΣΥΦΟΣ naïve-café",
    "key: value, path=/usr/lib, time 10:30, x+y",
    "",
    "   ",
]


def _uuid5_chunk_id(document_id: str, position: int) -> str:
    """The definition of chunk ids (the uuid module's uuid5), to compare against."""
    document = uuid.uuid5(CHUNK_NAMESPACE, document_id).bytes[:8]
    own = uuid.uuid5(CHUNK_NAMESPACE, f"{document_id}:{position}").bytes[8:]
    return str(uuid.UUID(bytes=document + own))


@pytest.mark.parametrize("document_id", ["a", "post-1", "ünï:cödé/😀", "x" * 500, " spaced id "])
def test_chunk_ids_are_the_uuid5_ids_they_always_were(document_id: str) -> None:
    for position in (0, 1, 7, 1000, 123456789):
        assert chunk_id(document_id, position) == _uuid5_chunk_id(document_id, position)
    parsed = uuid.UUID(chunk_id(document_id, 3))
    assert parsed.version == 5
    assert parsed.variant == uuid.RFC_4122


def test_a_text_that_fits_is_one_span_as_before() -> None:
    offsets = estimate_offsets(["one two three four"])[0]
    assert split_offsets(offsets, 4, 1) == [(0, 18)]  # exactly at the limit
    assert split_offsets(offsets, 3, 1) == [(0, 13), (8, 18)]  # one over: split


def test_bm25_without_the_split_gives_the_same_vectors() -> None:
    encoder = LexicalEncoder()
    words, whole = encoder._bm25()
    for text in TRICKY_TEXTS:
        _, terms, pieces = _split_compounds(text)
        reference = encoder.encode_document(text)
        vector = words.embed_document(text)
        if terms:
            extra = whole.embed_document(" ".join(terms + pieces))
            combined = {**dict(zip(extra.indices, extra.values, strict=True))}
            for index, value in zip(vector.indices, vector.values, strict=True):
                combined[index] = max(value, combined.get(index, value))
            assert reference.as_dict() == pytest.approx(combined), text
        else:
            assert reference.as_dict() == dict(zip(vector.indices, vector.values, strict=True))


def test_compound_texts_still_get_their_whole_terms() -> None:
    assert compound_terms("run ml.g5.2xlarge now") == ["ml.g5.2xlarge"]
    plain = LexicalEncoder().encode_document("run ml g5 now")
    joined = LexicalEncoder().encode_document("run ml.g5 now")
    assert len(joined) > len(plain)  # the whole name and its exact pieces were added


def test_point_rows_hold_the_payload_the_store_always_wrote() -> None:
    chunks = _chunks("a", 2) + _chunks("b", 1, kind="article")
    sparse = LexicalEncoder().encode_documents([c.text for c in chunks])
    store = QdrantStore.memory()
    try:
        rows = point_rows(chunks, _vectors(3), sparse, {"a": "fp-a"}, store.collection_for)
    finally:
        store.close()
    assert set(rows) == {"posts", "articles"}
    posts = rows["posts"]
    assert len(posts) == 2
    assert posts.ids == [chunk_id("a", 0), chunk_id("a", 1)]
    assert posts.payloads[1] == {
        "document_id": "a",
        "position": 1,
        "text": chunks[1].text,
        "author": "Maya Okafor",
        "kind": "post",
        "document_chunks": 2,
        "fingerprint": "fp-a",
    }
    assert "fingerprint" not in rows["articles"].payloads[0]  # none given for "b"
    assert posts.dense[0] == pytest.approx(_vectors(3)[0].tolist())
    first = posts[:1]
    assert isinstance(first, PointRows)
    assert first.ids == posts.ids[:1]


def test_rows_as_qdrant_client_points() -> None:
    rows = PointRows(
        ids=[chunk_id("a", 0), chunk_id("a", 1)],
        dense=[[1.0, 0.0], [0.0, 1.0]],
        sparse=[SparseVector((3, 9), (0.5, 1.5)), SparseVector((), ())],
        payloads=[{"document_id": "a"}, {"document_id": "a"}],
    )
    with_terms, without = rows.structs()
    assert isinstance(with_terms.vector, dict)
    assert isinstance(without.vector, dict)
    assert with_terms.vector[DENSE_VECTOR] == [1.0, 0.0]
    lexical = with_terms.vector[LEXICAL_VECTOR]
    assert getattr(lexical, "indices", None) == [3, 9]
    assert LEXICAL_VECTOR not in without.vector  # a text without terms has no bm25 vector


def test_edge_rows_and_qdrant_client_points_store_the_same(tmp_path: Path) -> None:
    """The same chunks written through ``upsert_rows`` and through qdrant-client's models
    (``EdgeClient.upsert``) are stored alike: payloads, dense and sparse vectors."""
    chunks = _chunks("a", 3) + _chunks("empty", 1)
    chunks[-1] = chunks[-1].model_copy(update={"text": "the of and"})  # stopwords: no terms
    sparse = LexicalEncoder().encode_documents([c.text for c in chunks])
    assert not sparse[-1].indices
    stored: list[list[tuple[object, object, object]]] = []
    for way in ("rows", "structs"):
        store = QdrantStore.local(tmp_path / way)
        try:
            store.ensure_collection(8, "posts")
            rows = point_rows(chunks, _vectors(4), sparse, {"a": "fp"}, store.collection_for)
            client = store._client
            assert isinstance(client, EdgeClient)
            if way == "rows":
                client.upsert_rows("posts", rows["posts"])
            else:
                client.upsert("posts", points=rows["posts"].structs())
            with client._shard("posts") as shard:
                ids: list[int | uuid.UUID | str] = list(rows["posts"].ids)
                records = shard.retrieve(ids, True, True)
            stored.append([(r.id, r.payload, _plain(r.vector)) for r in records])
        finally:
            store.close()
    assert stored[0] == stored[1]
    assert len(stored[0]) == 4


def _plain(vector: object) -> object:
    """A stored vector as plain lists (rounded), whatever its Qdrant Edge type."""
    if isinstance(vector, dict):
        return {key: _plain(value) for key, value in vector.items()}
    indices, values = getattr(vector, "indices", None), getattr(vector, "values", None)
    if indices is not None and values is not None:
        return (list(indices), [round(v, 6) for v in values])
    return [round(v, 6) for v in cast("list[float]", vector)]


class _Recording:
    """A precomputed-vector embedder that records when each encode starts and ends."""

    model_name = "recording"
    dimension = 8
    max_tokens = 512

    def __init__(self, fail_at: int | None = None) -> None:
        self.events: list[str] = []
        self.fail_at = fail_at
        self.release = threading.Event()

    def encode(self, texts: Sequence[str]) -> Vectors:
        number = sum(event.startswith("encode ") for event in self.events) + 1
        self.events.append(f"encode {number}")
        if number == self.fail_at:
            raise RuntimeError("the server went away")
        self.release.wait(5)  # until the next batch was read (or 5 s: it was not)
        self.events.append(f"encoded {number}")
        return _vectors(len(texts))

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        return self.encode(texts)

    def token_offsets(self, texts: Sequence[str]) -> TokenOffsets:
        return estimate_offsets(texts)


def _documents(count: int) -> list[Document]:
    return [Document(id=f"d{i}", text=f"document {i} about qdrant", metadata={"kind": "post"})
            for i in range(count)]  # fmt: skip


def test_the_next_batch_is_read_while_this_one_embeds() -> None:
    embedder = _Recording()
    with QdrantStore.memory() as store, RAGPipeline(embedder, store, ingest_batch=2) as rag:
        read = store.stored_versions

        def recorded(chunks: Sequence[Chunk]) -> StoredVersions:
            embedder.events.append(f"read {chunks[0].document_id}")
            if len([e for e in embedder.events if e.startswith("read")]) == 2:
                embedder.release.set()  # batch 2 was read during encode 1
            return read(chunks)

        store.stored_versions = recorded  # type: ignore[method-assign]  # a recording spy
        report = rag.ingest(_documents(5), progress=False)
        assert report.chunks == 5
        assert store.count() == 5
    events = embedder.events
    assert events[0] == "read d0"
    assert events.index("encode 1") < events.index("encoded 1")
    assert events.index("read d2") < events.index("encoded 1")  # read while batch 1 embedded
    assert [e for e in embedder.events if e.startswith("encoded")] == [
        "encoded 1",
        "encoded 2",
        "encoded 3",
    ]


def test_a_failed_embedding_keeps_every_earlier_batch_and_writes_nothing_read_ahead() -> None:
    embedder = _Recording(fail_at=2)
    embedder.release.set()
    with QdrantStore.memory() as store, RAGPipeline(embedder, store, ingest_batch=2) as rag:
        with pytest.raises(RuntimeError, match="went away"):
            rag.ingest(_documents(6), progress=False)
        assert store.count() == 2  # batch 1 written; batch 2 failed; batch 3 only read
        again = rag.ingest(_documents(6), progress=False)
        assert (again.unchanged, again.documents) == (2, 4)


def test_the_first_batches_fill_every_request_of_a_remote_embedder() -> None:
    sizer = BatchSizer(limit=2048, seconds=10.0)
    sizer.fill(16 * 8)  # 16 requests in flight, 8 texts each
    assert sizer.target == 128
    sizer.fill(8)  # never smaller than the first batch
    assert sizer.target == 128
    assert BatchSizer(limit=100, seconds=10.0).target == 64
    capped = BatchSizer(limit=100, seconds=10.0)
    capped.fill(128)
    assert capped.target == 100
    sizer.measured(100, 1.0)  # 100 chunks/s: 1,000 in 10 s, and the rate decides from now on
    sizer.fill(4096)
    assert sizer.target == 1000
