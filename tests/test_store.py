from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from llm_twin_sdk import (
    Chunk,
    CollectionMismatchError,
    InvalidParameterError,
    QdrantStore,
    VectorStoreError,
    VectorStoreLockedError,
)
from llm_twin_sdk.rag.chunking import chunk_id


def _chunks(doc: str, n: int, **meta: str) -> list[Chunk]:
    return [
        Chunk(
            id=chunk_id(doc, i), document_id=doc, position=i, text=f"{doc} part {i}", metadata=meta
        )
        for i in range(n)
    ]


def _vectors(n: int, dim: int = 8, seed: int = 0) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    unit: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def test_upsert_search_count(memory_store: QdrantStore) -> None:
    assert memory_store.count() == 0
    assert memory_store.search(_vectors(1)[0], 3) == []
    chunks, vectors = _chunks("a", 5, author="Maya Okafor", kind="post"), _vectors(5)
    memory_store.upsert(chunks, vectors)
    assert memory_store.count() == 5
    hits = memory_store.search(vectors[2], 2)
    assert hits[0].id == chunks[2].id
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].score >= hits[1].score  # type: ignore[operator]
    assert hits[0].metadata.author == "Maya Okafor"
    assert hits[0].text == "a part 2"


def test_k_beyond_the_bound_is_refused_on_an_empty_and_a_full_store(
    memory_store: QdrantStore,
) -> None:
    for _ in range(2):
        with pytest.raises(InvalidParameterError, match="k must be a positive integer up to 10000"):
            memory_store.search(_vectors(1)[0], 2**64)
        memory_store.upsert(_chunks("a", 2), _vectors(2))


def test_same_ids_replace_instead_of_duplicating(memory_store: QdrantStore) -> None:
    memory_store.upsert(_chunks("a", 3), _vectors(3))
    memory_store.upsert(_chunks("a", 3), _vectors(3, seed=1))
    assert memory_store.count() == 3


def test_write_documents_replaces_each_documents_old_chunks(memory_store: QdrantStore) -> None:
    memory_store.write_documents(_chunks("a", 4) + _chunks("b", 4), _vectors(8))
    memory_store.write_documents(_chunks("a", 2) + _chunks("c", 1), _vectors(3, seed=2))
    assert memory_store.count() == 2 + 4 + 1
    left = {(c.document_id, c.position) for c in memory_store.search(_vectors(1)[0], 10)}
    assert left == {("a", 0), ("a", 1), ("b", 0), ("b", 1), ("b", 2), ("b", 3), ("c", 0)}


def test_write_documents_scrolls_past_one_page(memory_store: QdrantStore) -> None:
    memory_store.write_documents(_chunks("big", 1500), _vectors(1500))
    memory_store.write_documents(_chunks("big", 10), _vectors(10))
    assert memory_store.count() == 10


def test_empty_store_operations(memory_store: QdrantStore) -> None:
    memory_store.write_documents([], _vectors(0))
    assert memory_store.count() == 0
    memory_store.delete_collections()
    memory_store.delete_collections()


def test_vector_size_mismatch(memory_store: QdrantStore) -> None:
    memory_store.upsert(_chunks("a", 1), _vectors(1, dim=8))
    other = QdrantStore(memory_store._client, payload_indexes=False)
    with pytest.raises(CollectionMismatchError, match="size 8"):
        other.upsert(_chunks("b", 1), _vectors(1, dim=16))


def test_chunks_and_vectors_must_match(memory_store: QdrantStore) -> None:
    with pytest.raises(VectorStoreError, match="2 chunks but 1 vectors"):
        memory_store.upsert(_chunks("a", 2), _vectors(1))


def test_foreign_points_raise_a_clear_error(memory_store: QdrantStore) -> None:
    from qdrant_client import models

    memory_store.ensure_collection(8)
    memory_store._client.upsert(
        memory_store.collection_for(None),
        points=[
            models.PointStruct(id=1, vector={"dense": _vectors(1)[0].tolist()}, payload={"x": 1})
        ],
    )
    with pytest.raises(VectorStoreError, match="not written by llm-twin-sdk"):
        memory_store.search(_vectors(1)[0], 1)


def test_local_folder_persists_and_close_releases_lock(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.upsert(_chunks("a", 2), _vectors(2))
    store.close()
    again = QdrantStore.local(tmp_path / "q")
    assert again.count() == 2
    again.close()


def test_folder_locked_by_another_process(locked_folder: Path) -> None:
    with pytest.raises(VectorStoreLockedError, match=r"is held by process \d+") as info:
        QdrantStore.local(locked_folder)
    assert "LLM_TWIN_QDRANT_URL" in str(info.value)
    assert "uvicorn --workers 2" in str(info.value)
    assert info.value.path == locked_folder.resolve()


def test_unreachable_server_raises_store_error() -> None:
    store = QdrantStore.server("http://127.0.0.1:9", collections="x", timeout_s=1)
    with pytest.raises(VectorStoreError, match=r"127\.0\.0\.1:9"):
        store.count()
    store.close()


def test_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(VectorStoreError, match="cannot create"):
        QdrantStore.local(blocker / "sub")


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_api_key_never_shows() -> None:
    store = QdrantStore.server("http://127.0.0.1:9", api_key="sekrit-key-1", timeout_s=1)
    assert "sekrit-key-1" not in repr(store)
    with pytest.raises(VectorStoreError) as info:
        store.count()
    assert "sekrit-key-1" not in str(info.value)
    store.close()
