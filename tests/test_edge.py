"""The embedded engine (Qdrant Edge behind qdrant-client's method names): folder layout,
locking, persistence, the temporary folder of memory(), and what it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from llm_twin_sdk import (
    Chunk,
    CollectionMismatchError,
    QdrantStore,
    VectorStoreError,
    VectorStoreLockedError,
)
from llm_twin_sdk.rag.chunking import chunk_id
from llm_twin_sdk.rag.edge import LAYOUT_FILE, LOCK_FILE, EdgeClient


def _chunks(doc: str, n: int, kind: str = "post") -> list[Chunk]:
    return [
        Chunk(
            id=chunk_id(doc, i),
            document_id=doc,
            position=i,
            text=f"{doc} part {i} about qdrant",
            metadata={"kind": kind, "author": "Maya Okafor"},
        )
        for i in range(n)
    ]


def _vectors(n: int, dim: int = 8) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    unit: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def test_folder_layout_persistence_and_reopening(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.write_documents(_chunks("a", 3), _vectors(3))
    store.close()
    assert (tmp_path / "q" / "posts" / LAYOUT_FILE).is_file()
    assert (tmp_path / "q" / LOCK_FILE).is_file()
    again = QdrantStore.local(tmp_path / "q")
    try:
        assert again.count() == 3
        hits = again.search(_vectors(3)[1], 1)
        assert hits[0].id == chunk_id("a", 1)
        assert hits[0].metadata.author == "Maya Okafor"
        assert again.distinct("author") == ["Maya Okafor"]  # keyword index on a reopened shard
    finally:
        again.close()


def test_one_client_per_folder_in_one_process(tmp_path: Path) -> None:
    first = QdrantStore.local(tmp_path / "q")
    with pytest.raises(VectorStoreLockedError, match="already opened"):
        QdrantStore.local(tmp_path / "q")
    first.close()
    QdrantStore.local(tmp_path / "q").close()  # released by close


def test_memory_store_leaves_nothing_behind() -> None:
    store = QdrantStore.memory()
    store.write_documents(_chunks("a", 2), _vectors(2))
    assert isinstance(store._client, EdgeClient)
    folder = store._client.folder
    assert folder.is_dir()
    store.close()
    store.close()  # twice is fine
    assert not folder.exists()


def test_delete_collections_twice_and_write_again(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.write_documents(_chunks("a", 2), _vectors(2))
    store.delete_collections()
    store.delete_collections()
    assert store.count() == 0
    assert not (tmp_path / "q" / "posts").exists()
    store.write_documents(_chunks("b", 1), _vectors(1))
    assert store.count() == 1
    store.close()


def test_a_collection_of_another_size_is_refused_after_reopening(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.write_documents(_chunks("a", 1), _vectors(1, dim=8))
    store.close()
    again = QdrantStore.local(tmp_path / "q")
    with pytest.raises(CollectionMismatchError, match="size 8"):
        again.write_documents(_chunks("b", 1), _vectors(1, dim=16))
    again.close()


def test_unsupported_filters_are_refused_not_ignored(tmp_path: Path) -> None:
    from qdrant_client import models

    client = EdgeClient(tmp_path / "q")
    try:
        client.create_collection(
            "c",
            vectors_config={"dense": models.VectorParams(size=2, distance=models.Distance.COSINE)},
        )
        request = models.QueryRequest(
            query=[1.0, 0.0],
            using="dense",
            filter=models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gt=1))]),
        )
        with pytest.raises(VectorStoreError, match="not supported in embedded mode"):
            client.query_batch_points("c", requests=[request])
    finally:
        client.close()


def test_operations_on_a_closed_folder_raise_a_store_error(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.write_documents(_chunks("a", 1), _vectors(1))
    store.close()
    with pytest.raises(VectorStoreError, match="closed"):
        store.search(_vectors(1)[0], 1)


def test_an_unclosed_memory_store_is_removed_when_collected() -> None:
    import gc

    store = QdrantStore.memory()
    store.write_documents(_chunks("a", 1), _vectors(1))
    assert isinstance(store._client, EdgeClient)
    folder = store._client.folder
    del store
    gc.collect()
    assert not folder.exists()
