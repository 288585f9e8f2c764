"""Qdrant as a cluster (issue 13): the ``qdrant_cluster`` settings, the requests they put on
the wire (the Qdrant-like test server records them), the checks before anything is written,
reads retried past a failing replica, and the same storage settings on the embedded engine
(Qdrant Edge) for behaviour. Waits are recorded (``sleep=sleeps.append``), never slept."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fakes import DENSE_CONFIG, Fault, QdrantServer, StoredPoint
from llm_twin_sdk import QdrantStore
from llm_twin_sdk.config import TwinSettings
from llm_twin_sdk.errors import (
    ClusterSettingsError,
    CollectionSettingsMismatchError,
    CollectionSettingsWarning,
    ConfigurationError,
    VectorStoreUnavailableError,
)
from llm_twin_sdk.qdrant_cluster import QdrantClusterSettings
from llm_twin_sdk.rag.chunking import chunk_id
from llm_twin_sdk.rag.edge import LAYOUT_FILE
from llm_twin_sdk.retry import RetryPolicy
from llm_twin_sdk.types import Chunk, DocumentMetadata

ATTEMPTS = 3
REPLICA_DOWN = (
    "Service internal error: 1 of 1 read operations failed: Service internal error: Tonic "
    'status error: status: Unavailable, message: "Failed to connect to http://node-2:6335/"'
)
StoreFactory = Callable[..., QdrantStore]


@pytest.fixture
def open_store(sleeps: list[float]) -> Iterator[StoreFactory]:
    """``open_store(url, **cluster settings)``: a server store of one collection ``c``."""
    stores: list[QdrantStore] = []
    policy = RetryPolicy(
        max_attempts=ATTEMPTS, initial_wait_s=0.01, max_wait_s=0.01, sleep=sleeps.append
    )

    def factory(url: str, **cluster: Any) -> QdrantStore:
        settings = QdrantClusterSettings(**cluster)
        store = QdrantStore.server(url, collections="c", retry=policy, cluster=settings)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()


def unit(index: int, size: int = 8) -> npt.NDArray[np.float32]:
    vector = np.zeros(size, dtype=np.float32)
    vector[index] = 1.0
    return vector


def chunks(count: int, document: str = "d") -> list[Chunk]:
    meta = DocumentMetadata(author="Ada", kind="post")
    return [
        Chunk(
            id=chunk_id(document, i),
            document_id=document,
            position=i,
            text=f"cluster text {i}",
            metadata=meta,
        )
        for i in range(count)
    ]


def vectors(count: int) -> npt.NDArray[np.float32]:
    return np.stack([unit(i % 8) for i in range(count)])


def seeded_point(index: int) -> StoredPoint:
    payload = {"document_id": f"doc-{index}", "position": 0, "text": "t", "author": "Ada"}
    return StoredPoint(chunk_id(f"doc-{index}", 0), payload, {"dense": unit(index).tolist()})


# -- settings ---------------------------------------------------------------------------------


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_QDRANT_CLUSTER__REPLICATION_FACTOR", "3")
    monkeypatch.setenv("LLM_TWIN_QDRANT_CLUSTER__WRITE_CONSISTENCY_FACTOR", "2")
    monkeypatch.setenv("LLM_TWIN_QDRANT_CLUSTER__READ_CONSISTENCY", "majority")
    monkeypatch.setenv("LLM_TWIN_QDRANT_CLUSTER__QUANTIZATION", "scalar")
    cluster = TwinSettings().qdrant_cluster
    assert (cluster.replication_factor, cluster.write_consistency_factor) == (3, 2)
    assert cluster.read_consistency == "majority"
    assert cluster.needs_nodes == 3
    monkeypatch.setenv("LLM_TWIN_QDRANT_CLUSTER__READ_CONSISTENCY", "2")
    assert TwinSettings().qdrant_cluster.read_consistency == 2  # a number of replicas
    assert "replication_factor=3" in repr(TwinSettings())  # only what is set is shown
    assert repr(QdrantClusterSettings()) == "QdrantClusterSettings()"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"write_consistency_factor": 2}, "qdrant_cluster.write_consistency_factor"),
        ({"replication_factor": 2, "read_consistency": 3}, "qdrant_cluster.read_consistency"),
        ({"replication_factor": 0}, "qdrant_cluster.replication_factor"),
        ({"quantization": "int4"}, "qdrant_cluster.quantization"),
        ({"quantization": "binary", "quantile": 0.9}, "qdrant_cluster.quantile"),
        ({"quantization": "scalar", "compression": "x8"}, "qdrant_cluster.compression"),
        ({"shards": 2}, "qdrant_cluster.shards"),
    ],
)
def test_invalid_settings_raise_a_configuration_error_naming_the_setting(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named.replace(".", r"\.")):
        TwinSettings(qdrant_cluster=values)
    with pytest.raises(ConfigurationError, match=named.split(".")[1]):
        QdrantClusterSettings(**values)  # built directly: the same typed error


# -- on the wire: creation -------------------------------------------------------------------


def test_settings_are_applied_when_a_collection_is_created(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    qdrant.peers = 3
    store = open_store(
        qdrant.url,
        shard_number=6,
        replication_factor=3,
        write_consistency_factor=2,
        on_disk_vectors=True,
        on_disk_payload=True,
        quantization="scalar",
        quantile=0.99,
    )

    store.upsert(chunks(2), vectors(2))

    assert qdrant.routes()[:3] == ["cluster", "exists", "create_collection"]
    (created,) = qdrant.to("create_collection")
    assert created.body == {
        "vectors": {
            "dense": {
                "size": 8,
                "distance": "Cosine",
                "on_disk": True,
                "quantization_config": {
                    "scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}
                },
            }
        },
        "sparse_vectors": {"bm25": {"modifier": "idf"}},
        "shard_number": 6,
        "replication_factor": 3,
        "write_consistency_factor": 2,
        "on_disk_payload": True,
    }
    reader = open_store(qdrant.url, replication_factor=3, quantization="scalar", quantile=0.99)
    assert len(reader.search(unit(0), k=1)) == 1  # the collection it reads has its settings


@pytest.mark.parametrize(
    ("quantization", "sent"),
    [
        ({"quantization": "binary"}, {"binary": {"always_ram": True}}),
        (
            {"quantization": "product", "compression": "x32", "quantization_always_ram": False},
            {"product": {"compression": "x32", "always_ram": False}},
        ),
        ({"quantization": "product"}, {"product": {"compression": "x16", "always_ram": True}}),
        ({"quantization": "none"}, None),
    ],
)
def test_each_quantization_is_sent_as_qdrant_spells_it(
    qdrant: QdrantServer,
    open_store: StoreFactory,
    quantization: dict[str, Any],
    sent: dict[str, Any] | None,
) -> None:
    open_store(qdrant.url, **quantization).ensure_collection(8)

    (created,) = qdrant.to("create_collection")
    assert created.body["vectors"]["dense"].get("quantization_config") == sent
    assert "cluster" not in qdrant.routes()  # one replica: nothing to ask the server


def test_default_settings_send_what_they_always_sent(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    open_store(qdrant.url).upsert(chunks(1), vectors(1))

    assert "cluster" not in qdrant.routes()
    assert qdrant.to("create_collection")[0].body == {
        "vectors": DENSE_CONFIG,
        "sparse_vectors": {"bm25": {"modifier": "idf"}},
    }
    (upsert,) = qdrant.to("upsert")
    assert upsert.query == {"wait": "true"}


@pytest.mark.parametrize(
    ("peers", "settings", "setting", "nodes"),
    [
        (None, {"replication_factor": 3}, "replication_factor", 1),  # a standalone server
        (1, {"replication_factor": 2}, "replication_factor", 1),  # a cluster of one peer
        (2, {"replication_factor": 3, "write_consistency_factor": 3}, "replication_factor", 2),
        (None, {"replication_factor": 2, "read_consistency": 2}, "replication_factor", 1),
    ],
)
def test_settings_the_nodes_cannot_honour_fail_before_anything_is_written(
    qdrant: QdrantServer,
    open_store: StoreFactory,
    peers: int | None,
    settings: dict[str, Any],
    *,
    setting: str,
    nodes: int,
) -> None:
    qdrant.peers = peers
    store = open_store(qdrant.url, **settings)

    with pytest.raises(ClusterSettingsError) as caught:
        store.write_documents(chunks(2), vectors(2))

    assert (caught.value.setting, caught.value.nodes) == (setting, nodes)
    message = str(caught.value)
    assert f"qdrant_cluster.{setting}" in message
    assert f"LLM_TWIN_QDRANT_CLUSTER__{setting.upper()}" in message
    assert "Nothing was written" in message
    assert "retrieve" not in qdrant.routes()  # not even read: the check comes first
    assert not any(r in qdrant.routes() for r in ("create_collection", "upsert"))
    assert qdrant.collections == {}


def test_a_cluster_with_enough_nodes_takes_the_settings(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    qdrant.peers = 3
    store = open_store(qdrant.url, replication_factor=3, write_consistency_factor=3)

    store.write_documents(chunks(2), vectors(2))
    store.write_documents(chunks(2, "e"), vectors(2))

    assert qdrant.routes().count("cluster") == 1  # asked once per store
    assert qdrant.collections["c"].params["replication_factor"] == 3


def test_cluster_info_the_server_refuses_is_warned_about_not_guessed(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    qdrant.fail(Fault.http(403, "Forbidden: manage access required"), route="cluster")
    store = open_store(qdrant.url, replication_factor=2)

    with pytest.warns(CollectionSettingsWarning, match="cannot read the cluster info"):
        store.ensure_collection(8)

    assert qdrant.collections["c"].params["replication_factor"] == 2


def test_cluster_info_failures_are_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.peers = 2
    qdrant.fail(Fault.http(503), route="cluster")

    open_store(qdrant.url, replication_factor=2).ensure_collection(8)

    assert qdrant.routes().count("cluster") == 2
    assert len(sleeps) == 1


# -- on the wire: reads and writes -----------------------------------------------------------


def test_reads_ask_the_configured_replicas_and_writes_wait_for_the_ordering(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    qdrant.peers = 3
    params = {"replication_factor": 3}
    qdrant.add_collection("c", [seeded_point(i) for i in range(3)], params=params)
    store = open_store(
        qdrant.url, replication_factor=3, read_consistency="majority", write_ordering="strong"
    )

    store.search(unit(0), k=2)
    store.distinct("author")
    assert sorted(d.id for d in store.documents()) == ["doc-0", "doc-1", "doc-2"]
    store.write_documents(chunks(3), vectors(3))
    store.write_documents(chunks(1), vectors(1))  # deletes the old tail
    store.delete_documents("d")

    reads = ("query_batch", "retrieve", "scroll", "facet")
    read = [r for r in qdrant.requests if r.route in reads]
    assert {r.route for r in read} == set(reads)
    assert all(r.query.get("consistency") == "majority" for r in read)
    writes = [r for r in qdrant.requests if r.route in {"upsert", "delete"}]
    assert {r.route for r in writes} == {"upsert", "delete"}
    assert all(r.query == {"wait": "true", "ordering": "strong"} for r in writes)


def test_a_numeric_read_consistency_is_sent_as_a_number(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    qdrant.add_collection("c", [seeded_point(0)], params={"replication_factor": 2})
    store = open_store(qdrant.url, replication_factor=2, read_consistency=2)

    store.search(unit(0), k=1)

    assert qdrant.to("query_batch")[0].query["consistency"] == "2"


def test_a_read_a_failing_replica_broke_is_retried_on_another_attempt(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection(
        "c", [seeded_point(i) for i in range(3)], params={"replication_factor": 2}
    )
    qdrant.fail(Fault.http(500, REPLICA_DOWN), route="query_batch")
    qdrant.fail(Fault.http(500, REPLICA_DOWN), route="retrieve")
    store = open_store(qdrant.url, replication_factor=2, read_consistency="quorum")

    found = store.search(unit(1), k=1)
    versions = store.stored_versions(chunks(1, "doc-1"))

    assert [c.document_id for c in found] == ["doc-1"]
    assert versions is not None
    assert len(qdrant.to("query_batch")) == 2
    assert len(qdrant.to("retrieve")) == 2
    assert all(r.query["consistency"] == "quorum" for r in qdrant.to("query_batch"))
    assert len(sleeps) == 2


def test_a_replica_failing_every_attempt_raises_unavailable(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    qdrant.add_collection("c", [seeded_point(0)])
    qdrant.fail(*[Fault.http(500, REPLICA_DOWN)] * ATTEMPTS, route="query_batch")
    store = open_store(qdrant.url, read_consistency="majority")

    with pytest.raises(VectorStoreUnavailableError, match="read operations failed"):
        store.search(unit(0), k=1)

    assert len(qdrant.to("query_batch")) == ATTEMPTS


def test_a_write_the_replicas_did_not_confirm_is_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.peers = 2
    refused = "Service internal error: 1 out of 2 shards failed to apply operation"
    qdrant.fail(Fault.http(500, refused), route="upsert")
    store = open_store(qdrant.url, replication_factor=2, write_consistency_factor=2)

    store.upsert(chunks(2), vectors(2))

    assert len(qdrant.to("upsert")) == 2
    assert len(qdrant.collections["c"].points) == 2


# -- an existing collection ------------------------------------------------------------------


def test_an_existing_collection_with_other_settings_raises_before_reading(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    qdrant.peers = 2
    qdrant.add_collection("c", [seeded_point(0)])  # Qdrant's defaults: 1 replica, no quantization
    store = open_store(qdrant.url, replication_factor=2, quantization="scalar")

    with pytest.raises(CollectionSettingsMismatchError) as caught:
        store.search(unit(0), k=1)

    assert caught.value.differences == {
        "replication_factor": (1, 2),
        "quantization": ("none", "scalar"),
    }
    assert "qdrant_cluster.on_mismatch" in str(caught.value)
    assert "query_batch" not in qdrant.routes()
    with pytest.raises(CollectionSettingsMismatchError):  # and before writing
        store.upsert(chunks(1), vectors(1))
    assert "upsert" not in qdrant.routes()


def test_on_mismatch_warn_warns_once_and_uses_the_collection(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    vectors_config = {"dense": {**DENSE_CONFIG["dense"], "on_disk": True}}
    qdrant.add_collection("c", [seeded_point(0)], vectors=vectors_config)
    store = open_store(qdrant.url, on_disk_vectors=False, on_mismatch="warn")

    with pytest.warns(CollectionSettingsWarning, match="on_disk_vectors"):
        assert len(store.search(unit(0), k=1)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.search(unit(0), k=1)  # checked once per store


def test_settings_left_unset_are_not_compared(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    product = {"product": {"compression": "x8", "always_ram": True}}
    params = {"replication_factor": 3, "shard_number": 4, "on_disk_payload": False}
    qdrant.add_collection("c", [seeded_point(0)], params=params, quantization=product)
    store = open_store(
        qdrant.url, write_ordering="medium", quantization="product", compression="x8"
    )

    assert len(store.search(unit(0), k=1)) == 1  # the collection-level quantization matches


def test_a_read_consistency_above_the_collections_replicas_is_refused(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    qdrant.add_collection("c", [seeded_point(0)], params={"replication_factor": 2})
    store = open_store(qdrant.url, replication_factor=3, read_consistency=3, on_mismatch="warn")

    with pytest.raises(ClusterSettingsError, match="has 2 replica"):  # an error, not a warning
        store.search(unit(0), k=1)


# -- the embedded engine (Qdrant Edge) -------------------------------------------------------


def _layout(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "c" / LAYOUT_FILE).read_text("utf-8"))
    return data


@pytest.mark.parametrize("quantization", ["scalar", "binary", "product"])
def test_embedded_storage_settings_apply_and_search_alike(
    tmp_path: Path, quantization: str
) -> None:
    settings = QdrantClusterSettings(
        on_disk_vectors=True, on_disk_payload=True, quantization=quantization
    )
    written = chunks(8)
    with (
        QdrantStore.local(tmp_path / "q", "c", cluster=settings) as tuned,
        QdrantStore.memory("c") as plain,
    ):
        for store in (tuned, plain):
            store.write_documents(written, vectors(8))
        for index in range(8):
            best = tuned.search(unit(index), k=1)  # the others all score 0: no order among them
            assert [c.id for c in best] == [c.id for c in plain.search(unit(index), k=1)]
            assert best[0].position == index
        assert tuned.count() == 8
    layout = _layout(tmp_path / "q")
    assert layout["on_disk_payload"] is True
    dense = layout["vectors"]["dense"]
    assert dense["on_disk"] is True
    assert set(dense["quantization_config"]) == {quantization}


def test_embedded_collection_reopened_with_other_settings_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    with QdrantStore.local(folder, "c", cluster=QdrantClusterSettings(quantization="scalar")) as s:
        s.write_documents(chunks(2), vectors(2))

    other = QdrantClusterSettings(quantization="binary", on_disk_vectors=True)
    with QdrantStore.local(folder, "c", cluster=other) as store:
        with pytest.raises(CollectionSettingsMismatchError) as caught:
            store.search(unit(0), k=1)
        assert caught.value.differences == {
            "on_disk_vectors": (False, True),
            "quantization": ("scalar", "binary"),
        }
    with QdrantStore.local(folder, "c") as unset:  # no settings: nothing compared
        assert len(unset.search(unit(0), k=1)) == 1


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"replication_factor": 2}, "replication_factor"),
        ({"shard_number": 2}, "shard_number"),
        ({"replication_factor": 2, "read_consistency": 2}, "replication_factor"),
    ],
)
def test_embedded_qdrant_refuses_replicas_and_shards_before_opening_its_folder(
    tmp_path: Path, settings: dict[str, Any], setting: str
) -> None:
    with pytest.raises(ClusterSettingsError, match=f"qdrant_cluster.{setting}") as caught:
        QdrantStore.local(tmp_path / "q", cluster=QdrantClusterSettings(**settings))

    assert caught.value.setting == setting
    assert "embedded Qdrant" in str(caught.value)
    assert not (tmp_path / "q").exists()


def test_embedded_qdrant_takes_consistency_and_ordering_of_one_node(tmp_path: Path) -> None:
    settings = QdrantClusterSettings(
        replication_factor=1, read_consistency="all", write_ordering="strong"
    )
    with QdrantStore.local(tmp_path / "q", "c", cluster=settings) as store:
        store.write_documents(chunks(3), vectors(3))
        assert [c.position for c in store.search(unit(2), k=1)] == [2]
        assert store.delete_documents("d").chunks == 3


# -- from the settings (loads the embedding model: slow lane) --------------------------------


def test_from_settings_gives_the_store_the_cluster_settings(qdrant: QdrantServer) -> None:
    from llm_twin_sdk import RAGPipeline

    qdrant.peers = 2
    cluster = {"replication_factor": 2, "read_consistency": "majority"}
    with RAGPipeline.from_settings(
        TwinSettings(qdrant_url=qdrant.url, collections="c", qdrant_cluster=cluster)
    ) as rag:
        assert rag.store.cluster == QdrantClusterSettings(**cluster)
        rag.ingest([{"id": "a", "text": "Replicas keep the answers when a node goes down."}])
        assert rag.retrieve("replicas", k=1)
    assert qdrant.collections["c"].params["replication_factor"] == 2
    assert qdrant.to("query_batch")[0].query["consistency"] == "majority"
