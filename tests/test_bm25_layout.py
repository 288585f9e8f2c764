"""The ``bm25`` sparse vector: collections of the former ``lexical`` layout are detected with a
re-ingest explanation, and every footing stores the same vectors from the same encoder.

The server footing is played by the fake Qdrant REST server (tests/fakes/qdrant.py) and by
qdrant-client's local mode; the embedded footing is Qdrant Edge (memory and a folder).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fakes import DENSE_CONFIG, QdrantServer
from llm_twin_sdk import CollectionMismatchError, QdrantStore
from llm_twin_sdk.rag.chunking import chunk_id
from llm_twin_sdk.rag.edge import EdgeClient, _point_id
from llm_twin_sdk.rag.points import LEXICAL_VECTOR
from llm_twin_sdk.rag.sparse import LexicalEncoder
from llm_twin_sdk.types import Chunk

TEXTS = [
    "Compilation of the twin on ml.g5.2xlarge with max_new_tokens=1200.",
    "Start vLLM with --max-num-seqs 64; the inferences batch.",
    "X-Accel-Buffering: no keeps server-sent events flowing.",
]
REINGEST = (
    r"written by an earlier llm-twin-sdk's lexical encoder.*cannot be searched with "
    r"Qdrant's BM25.*store\.delete_collections\(\).*ingest your documents again"
)


def _chunks() -> list[Chunk]:
    return [
        Chunk(id=chunk_id("d", i), document_id="d", position=i, text=text)
        for i, text in enumerate(TEXTS)
    ]


def _vectors() -> npt.NDArray[np.float32]:
    return np.eye(len(TEXTS), 8, dtype=np.float32)


def _old_layout(client: Any, name: str) -> None:
    """A collection as llm-twin-sdk wrote it before Qdrant's BM25: sparse vector ``lexical``."""
    from qdrant_client import models

    client.create_collection(
        name,
        vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
        sparse_vectors_config={"lexical": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )


def _search(store: QdrantStore) -> None:
    sparse = LexicalEncoder().encode_query("ml.g5.2xlarge")
    store.search(_vectors()[0], 2, sparse=sparse, mode="hybrid")


# -- the former layout is detected ----------------------------------------------------------


def test_an_old_collection_in_memory_is_detected_on_write_and_search(
    memory_store: QdrantStore,
) -> None:
    name = memory_store.collection_for(None)
    _old_layout(memory_store._client, name)

    with pytest.raises(CollectionMismatchError, match=REINGEST):
        memory_store.write_documents(_chunks(), _vectors())
    reader = QdrantStore(memory_store._client, payload_indexes=False)  # not written by it
    with pytest.raises(CollectionMismatchError, match=REINGEST) as info:
        _search(reader)
    assert f"collection {name!r}" in str(info.value)

    memory_store.delete_collections()  # the remedy the message names
    memory_store.write_documents(_chunks(), _vectors())
    assert memory_store.count() == len(TEXTS)


def test_an_old_collection_in_a_local_folder_is_detected_after_reopening(tmp_path: Path) -> None:
    with QdrantStore.local(tmp_path / "q", "c") as store:
        _old_layout(store._client, "c")
    with QdrantStore.local(tmp_path / "q", "c") as again:
        with pytest.raises(CollectionMismatchError, match=REINGEST) as info:
            _search(again)
        assert "local folder" in str(info.value)
        again.delete_collections()
        again.write_documents(_chunks(), _vectors())
        hits = again.search(
            None, 1, sparse=LexicalEncoder().encode_query("compile"), mode="lexical"
        )
        assert hits[0].text == TEXTS[0]  # stemming: "compile" meets "Compilation"


def test_an_old_collection_in_qdrant_client_local_mode_is_detected() -> None:
    from qdrant_client import QdrantClient

    with QdrantStore(QdrantClient(location=":memory:"), "c", payload_indexes=False) as store:
        _old_layout(store._client, "c")
        with pytest.raises(CollectionMismatchError, match=REINGEST):
            store.upsert(_chunks(), _vectors())


def test_an_old_collection_on_a_server_is_detected() -> None:
    with QdrantServer() as server:
        server.add_collection("c", sparse_vectors={"lexical": {"modifier": "idf"}})
        with QdrantStore.server(server.url, collections="c") as store:
            with pytest.raises(CollectionMismatchError, match=REINGEST) as info:
                _search(store)
            assert server.url in str(info.value)
        assert server.handler_errors == []


def test_a_new_collection_has_the_bm25_vector_with_idf() -> None:
    from qdrant_client import QdrantClient, models

    with QdrantStore(QdrantClient(location=":memory:"), "c", payload_indexes=False) as store:
        store.ensure_collection(8)
        params = store._client.get_collection("c").config.params
        assert set(params.sparse_vectors or {}) == {LEXICAL_VECTOR} == {"bm25"}
        assert params.sparse_vectors[LEXICAL_VECTOR].modifier == models.Modifier.IDF  # type: ignore[index]


# -- both footings tokenize alike -----------------------------------------------------------


@pytest.fixture
def server() -> Iterator[QdrantServer]:
    with QdrantServer() as fake:
        yield fake
        assert fake.handler_errors == []


def _as_pairs(vector: Any) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Indices and values (as float32: what Qdrant stores) of a sparse vector."""
    if isinstance(vector, dict):  # a JSON sparse vector, as a server receives it
        indices, values = vector["indices"], vector["values"]
    else:
        indices, values = vector.indices, vector.values
    return tuple(indices), tuple(float(np.float32(v)) for v in values)


def test_embedded_and_server_collections_hold_identical_vectors(server: QdrantServer) -> None:
    from qdrant_client import QdrantClient

    chunks = _chunks()
    expected = [_as_pairs(v) for v in LexicalEncoder().encode_documents(TEXTS)]
    held: dict[str, list[tuple[tuple[int, ...], tuple[float, ...]]]] = {}

    with QdrantStore.server(server.url, collections="c") as remote:  # the server footing
        remote.write_documents(chunks, _vectors())  # lexical vectors computed in-process
        points = server.collections["c"].points
        held["server (REST)"] = [_as_pairs(points[c.id].vector[LEXICAL_VECTOR]) for c in chunks]
    client = QdrantClient(location=":memory:")
    with QdrantStore(client, "c", payload_indexes=False) as local:
        local.write_documents(chunks, _vectors())
        records = client.retrieve("c", [c.id for c in chunks], with_vectors=True)
        by_id: dict[str, Any] = {str(r.id): r.vector for r in records}
        held["qdrant-client local"] = [_as_pairs(by_id[c.id][LEXICAL_VECTOR]) for c in chunks]
    with QdrantStore.memory("c") as embedded:  # the embedded footing (Qdrant Edge)
        embedded.write_documents(chunks, _vectors())
        edge = embedded._client
        assert isinstance(edge, EdgeClient)
        with edge._shard("c") as shard:  # the engine's own record of the points
            stored = shard.retrieve([_point_id(c.id) for c in chunks], False, True)
        named: list[Any] = [r.vector for r in stored]  # named vectors: {name: vector}
        held["embedded (edge)"] = [_as_pairs(vector[LEXICAL_VECTOR]) for vector in named]

    assert held == dict.fromkeys(held, expected)
    assert all(len(indices) >= 5 for indices, _ in expected)


def test_server_and_embedded_rank_alike(server: QdrantServer) -> None:
    """The same query vector ranks the same documents first on both footings."""
    query = LexicalEncoder().encode_query("X-Accel-Buffering events")
    with QdrantStore.server(server.url, collections="c") as remote:
        remote.write_documents(_chunks(), _vectors())
        remote_first = remote.search(None, 1, sparse=query, mode="lexical")[0].text
    with QdrantStore.memory("c") as embedded:
        embedded.write_documents(_chunks(), _vectors())
        assert embedded.search(None, 1, sparse=query, mode="lexical")[0].text == remote_first
    assert remote_first == TEXTS[2]


def test_dense_vectors_are_untouched(server: QdrantServer) -> None:
    with QdrantStore.server(server.url, collections="c") as remote:
        remote.write_documents(_chunks(), _vectors())
        assert server.collections["c"].vectors == DENSE_CONFIG
