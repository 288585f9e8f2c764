"""QdrantStore against a Qdrant server over REST: retries of transient failures, errors.

A fake Qdrant REST server (tests/qdrant_server.py, 127.0.0.1) answers with Qdrant's JSON
shapes and is scripted to fail; an unused local port stands for a server that is down.
Waits are recorded (``sleep=sleeps.append``), never slept.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fakes import DENSE_CONFIG, Fault, QdrantServer, StoredPoint
from llm_twin_sdk import QdrantStore
from llm_twin_sdk.errors import (
    CollectionMismatchError,
    VectorStoreError,
    VectorStoreUnavailableError,
)
from llm_twin_sdk.rag.chunking import chunk_id
from llm_twin_sdk.rag.filters import FILTER_FIELDS
from llm_twin_sdk.rag.store import QueryVectors
from llm_twin_sdk.retry import RetryPolicy
from llm_twin_sdk.types import Chunk, DocumentMetadata

ATTEMPTS = 3
API_KEY = "sk-qdrant-test-7f3a9c1e"
INSECURE_KEY_WARNING = "ignore:Api key is used with an insecure connection"

StoreFactory = Callable[..., QdrantStore]


@pytest.fixture
def policy(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=ATTEMPTS,
        initial_wait_s=0.01,
        max_wait_s=0.01,
        deadline_s=None,
        sleep=sleeps.append,
    )


@pytest.fixture
def open_store(policy: RetryPolicy) -> Iterator[StoreFactory]:
    """``open_store(url, **options)``: a server store (one collection ``c`` unless told),
    closed after the test."""
    stores: list[QdrantStore] = []

    def factory(url: str, **options: Any) -> QdrantStore:
        options.setdefault("collections", "c")
        options.setdefault("retry", policy)
        options.setdefault("timeout_s", 2)
        store = QdrantStore.server(url, **options)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()


@pytest.fixture
def dead_url() -> str:
    """The URL of a local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://127.0.0.1:{port}"


def unit(index: int, size: int = 8) -> npt.NDArray[np.float32]:
    vector = np.zeros(size, dtype=np.float32)
    vector[index] = 1.0
    return vector


def point(document_id: str, position: int, dense: list[float], **metadata: str) -> StoredPoint:
    payload: dict[str, Any] = {
        "document_id": document_id,
        "position": position,
        "text": f"{document_id} chunk {position}",
        **metadata,
    }
    return StoredPoint(chunk_id(document_id, position), payload, {"dense": dense})


def points(count: int, prefix: str = "doc") -> list[StoredPoint]:
    return [point(f"{prefix}-{i}", 0, unit(i % 8).tolist()) for i in range(count)]


# -- a server that is down ---------------------------------------------------------------


def _search(store: QdrantStore) -> object:
    return store.search(unit(0), k=2)


def _upsert(store: QdrantStore) -> object:
    chunk = Chunk(id=chunk_id("d", 0), document_id="d", position=0, text="some text")
    store.upsert([chunk], unit(0)[None, :])
    return None


def _stored_versions(store: QdrantStore) -> object:
    return store.stored_versions([Chunk(id="x", document_id="d", position=0, text="t")])


OPERATIONS: dict[str, Callable[[QdrantStore], object]] = {
    "count": QdrantStore.count,
    "search": _search,
    "ensure_collection": lambda store: store.ensure_collection(8),
    "upsert": _upsert,
    "stored_versions": _stored_versions,
    "distinct": lambda store: store.distinct("author"),
    "delete_collections": QdrantStore.delete_collections,
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_unreachable_server_raises_unavailable_after_retries(
    operation: str, dead_url: str, open_store: StoreFactory, sleeps: list[float]
) -> None:
    store = open_store(dead_url)
    with pytest.raises(VectorStoreUnavailableError) as caught:
        OPERATIONS[operation](store)
    error = caught.value
    assert isinstance(error, VectorStoreError)
    assert error.url == dead_url
    assert dead_url in str(error)
    assert f"{ATTEMPTS} attempts" in str(error)
    assert len(sleeps) == ATTEMPTS - 1  # retried first
    assert error.__cause__ is not None  # the qdrant-client error, chained


@pytest.mark.filterwarnings(INSECURE_KEY_WARNING)
def test_unreachable_server_error_does_not_show_the_api_key(
    dead_url: str, open_store: StoreFactory, sleeps: list[float]
) -> None:
    store = open_store(dead_url, api_key=API_KEY)
    with pytest.raises(VectorStoreUnavailableError) as caught:
        store.count()
    assert caught.value.url == dead_url
    assert len(sleeps) == ATTEMPTS - 1
    for text in (str(caught.value), repr(caught.value), repr(store), store.where):
        assert API_KEY not in text


def test_default_server_policy_retries(dead_url: str, sleeps: list[float]) -> None:
    """Without ``retry=`` a server store still retries (the default server policy)."""
    store = QdrantStore.server(dead_url, collections="c", timeout_s=2)
    try:
        assert store.retry.max_attempts > 1
        store.retry = RetryPolicy(
            max_attempts=store.retry.max_attempts,
            initial_wait_s=0.0,
            max_wait_s=0.0,
            deadline_s=None,
            sleep=sleeps.append,
        )
        with pytest.raises(VectorStoreUnavailableError):
            store.count()
        assert len(sleeps) == store.retry.max_attempts - 1
    finally:
        store.close()


# -- transient failures are retried, then succeed -----------------------------------------


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([Fault.http(503), Fault.http(503)], id="two-503"),
        pytest.param([Fault.http(429, "Too many requests")], id="429"),
        pytest.param([Fault.http(500), Fault.http(502)], id="500-then-502"),
        pytest.param([Fault.http(504)], id="504"),
        pytest.param([Fault.http(408)], id="408"),
        pytest.param([Fault.drop()], id="dropped-connection"),
        pytest.param([Fault.drop(), Fault.http(503)], id="drop-then-503"),
    ],
)
def test_count_retries_transient_failures_then_succeeds(
    faults: list[Fault], qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", points(5))
    qdrant.fail(*faults, route="count")
    store = open_store(qdrant.url)

    assert store.count() == 5
    assert len(qdrant.to("count")) == len(faults) + 1
    assert len(qdrant.to("exists")) == 1
    assert len(sleeps) == len(faults)
    assert all(0 <= wait <= 0.01 for wait in sleeps)


def test_a_read_timeout_is_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", points(2))
    qdrant.fail(Fault.slow(1.6), route="count")
    store = open_store(qdrant.url, timeout_s=1)

    assert store.count() == 2
    assert len(qdrant.to("count")) == 2
    assert len(sleeps) == 1


def test_failures_of_the_collection_lookup_are_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", points(3))
    qdrant.fail(Fault.http(503), Fault.drop(), route="exists")
    store = open_store(qdrant.url)

    assert store.count() == 3
    assert qdrant.routes() == ["exists", "exists", "exists", "count"]
    assert len(sleeps) == 2


def test_count_sums_the_default_collections(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("posts", points(2, "post"))
    qdrant.add_collection("articles", points(3, "article"))
    qdrant.add_collection("repositories", points(4, "repo"))
    qdrant.fail(Fault.http(503), route="count")
    store = open_store(qdrant.url, collections=None)
    assert store.collections == ("posts", "articles", "repositories")

    assert store.count() == 9
    assert [r.collection for r in qdrant.to("exists")] == ["posts", "articles", "repositories"]
    assert [r.collection for r in qdrant.to("count")] == [
        "posts",  # the 503
        "posts",
        "articles",
        "repositories",
    ]
    assert all(r.body == {"exact": True} for r in qdrant.to("count"))
    assert len(sleeps) == 1


def test_count_skips_missing_collections(qdrant: QdrantServer, open_store: StoreFactory) -> None:
    qdrant.add_collection("articles", points(3, "article"))
    store = open_store(qdrant.url, collections=None)

    assert store.count() == 3
    assert [r.collection for r in qdrant.to("count")] == ["articles"]


# -- failures that persist, and failures that are not transient ---------------------------


@pytest.mark.parametrize("status", [503, 429, 500])
def test_a_server_failing_every_attempt_raises_unavailable(
    status: int, qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", points(1))
    qdrant.fail(*[Fault.http(status)] * 10, route="count")
    store = open_store(qdrant.url)

    with pytest.raises(VectorStoreUnavailableError) as caught:
        store.count()
    assert len(qdrant.to("count")) == ATTEMPTS
    assert len(sleeps) == ATTEMPTS - 1
    assert caught.value.url == qdrant.url
    message = str(caught.value)
    assert qdrant.url in message
    assert f"{ATTEMPTS} attempts" in message
    assert "'c'" in message  # the collection
    assert str(status) in message
    assert isinstance(caught.value.__cause__, Exception)


def test_a_connection_dropped_every_attempt_raises_unavailable(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", points(1))
    qdrant.fail(*[Fault.drop()] * 10, route="count")
    store = open_store(qdrant.url)

    with pytest.raises(VectorStoreUnavailableError):
        store.count()
    assert len(qdrant.to("count")) == ATTEMPTS
    assert len(sleeps) == ATTEMPTS - 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "Bad request: Wrong input: bad filter"),
        (403, "Forbidden: invalid api key"),
        (404, "Not found: No point with id 42 found"),
        (422, "Format error in JSON body: missing field `exact`"),
    ],
)
def test_client_errors_are_not_retried(
    status: int,
    error: str,
    qdrant: QdrantServer,
    open_store: StoreFactory,
    sleeps: list[float],
) -> None:
    qdrant.add_collection("c", points(1))
    qdrant.fail(Fault.http(status, error), route="count")
    store = open_store(qdrant.url)

    with pytest.raises(VectorStoreError) as caught:
        store.count()
    assert not isinstance(caught.value, VectorStoreUnavailableError)
    assert len(qdrant.to("count")) == 1
    assert sleeps == []
    message = str(caught.value)
    assert error in message  # Qdrant's own explanation reaches the user
    assert "'c'" in message
    assert qdrant.url in message
    assert caught.value.__cause__ is not None


def test_a_collection_of_another_layout_is_not_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    """The single unnamed vector of older llm-twin-sdk collections: a clear error, once."""
    qdrant.add_collection("c", points(1), vectors={"size": 8, "distance": "Cosine"})
    store = open_store(qdrant.url)

    with pytest.raises(CollectionMismatchError, match="older llm-twin-sdk"):
        store.search(unit(0), k=2)
    assert len(qdrant.to("get_collection")) == 1
    assert qdrant.to("query_batch") == []
    assert sleeps == []


def test_a_collection_of_another_size_is_not_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", vectors={"dense": {"size": 384, "distance": "Cosine"}})
    store = open_store(qdrant.url)

    with pytest.raises(CollectionMismatchError, match="size 384"):
        store.ensure_collection(8)
    assert len(qdrant.to("get_collection")) == 1
    assert qdrant.to("create_collection") == []
    assert sleeps == []


# -- search through query_batch_points ------------------------------------------------------


@pytest.fixture
def seeded(qdrant: QdrantServer) -> QdrantServer:
    """Collection ``c``: three chunks whose dense vectors are e0, (e0+e1)/sqrt2 and e1."""
    half = float(np.sqrt(0.5))
    e0, e1 = unit(0).tolist(), unit(1).tolist()
    both = [half, half, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    meta = {"author": "Ada", "platform": "medium", "kind": "article", "title": "Quantization"}
    qdrant.add_collection(
        "c",
        [
            point("doc-a", 0, e0, **meta),
            point("doc-a", 1, both, **meta),
            point("doc-b", 0, e1, author="Bob", kind="post"),
        ],
    )
    return qdrant


def test_search_is_retried_and_parses_chunks(
    seeded: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    seeded.fail(Fault.http(503), route="query_batch")
    store = open_store(seeded.url)

    results = store.search(unit(0), k=2, mode="dense")

    assert [(c.document_id, c.position) for c in results] == [("doc-a", 0), ("doc-a", 1)]
    first, second = results
    assert first.id == chunk_id("doc-a", 0)
    assert first.text == "doc-a chunk 0"
    assert first.metadata == DocumentMetadata(
        author="Ada", platform="medium", kind="article", title="Quantization"
    )
    assert first.score == pytest.approx(1.0)
    assert second.score == pytest.approx(np.sqrt(0.5))
    assert len(sleeps) == 1
    batches = seeded.to("query_batch")
    assert len(batches) == 2  # the 503, then the answer
    assert batches[0].body == batches[1].body  # the same request again
    (search,) = batches[1].body["searches"]
    assert search["using"] == "dense"
    assert search["limit"] == 2
    assert search["with_payload"] is True
    query = search["query"]
    query = query["nearest"] if isinstance(query, dict) else query
    assert query == unit(0).tolist()
    # the collection is looked up once, its schema checked once, before searching
    assert seeded.routes() == ["exists", "get_collection", "query_batch", "query_batch"]


def test_search_many_sends_one_request_per_query_and_vector(
    seeded: QdrantServer, open_store: StoreFactory
) -> None:
    store = open_store(seeded.url)
    encoder = store.lexical_encoder
    queries = [
        QueryVectors(unit(0), encoder.encode_query("doc-a chunk")),
        QueryVectors(unit(1), encoder.encode_query("doc-b chunk")),
    ]

    results = store.search_many(queries, k=2, mode="hybrid")

    (batch,) = seeded.to("query_batch")
    searches = batch.body["searches"]
    assert [s["using"] for s in searches] == ["dense", "bm25", "dense", "bm25"]
    assert {s["limit"] for s in searches} == {20}  # fusion depth: max(20, 4 * k)
    assert len(results) == 2
    assert len({c.id for c in results}) == 2


def test_search_filters_reach_the_server(seeded: QdrantServer, open_store: StoreFactory) -> None:
    store = open_store(seeded.url)

    results = store.search(unit(0), k=3, filters={"author": ["Bob"]})

    assert [c.document_id for c in results] == ["doc-b"]
    (search,) = seeded.to("query_batch")[0].body["searches"]
    assert search["filter"] == {"must": [{"key": "author", "match": {"value": "Bob"}}]}


def test_search_of_a_missing_collection_sends_no_query(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    store = open_store(qdrant.url)
    assert store.search(unit(0), k=2) == []
    assert qdrant.routes() == ["exists"]


def test_search_failing_every_attempt_raises_unavailable(
    seeded: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    seeded.fail(*[Fault.http(502)] * 5, route="query_batch")
    store = open_store(seeded.url)

    with pytest.raises(VectorStoreUnavailableError, match="search"):
        store.search(unit(0), k=2)
    assert len(seeded.to("query_batch")) == ATTEMPTS
    assert len(sleeps) == ATTEMPTS - 1


# -- writes ---------------------------------------------------------------------------------


def test_ensure_collection_creates_the_layout_and_indexes(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.fail(Fault.http(503), route="create_collection")
    store = open_store(qdrant.url)

    store.ensure_collection(8)
    store.ensure_collection(8)  # known ready: no request

    (created,) = [r for r in qdrant.to("create_collection") if r.collection == "c"][1:]
    assert created.body == {
        "vectors": DENSE_CONFIG,
        "sparse_vectors": {"bm25": {"modifier": "idf"}},
    }
    assert qdrant.routes() == [
        "exists",
        "create_collection",  # the 503
        "exists",
        "create_collection",
        *["create_index"] * len(FILTER_FIELDS),
    ]
    assert [r.body for r in qdrant.to("create_index")] == [
        {"field_name": key, "field_schema": "keyword"} for key in FILTER_FIELDS
    ]
    assert len(sleeps) == 1


def test_a_failed_payload_index_is_created_on_retry(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.fail(Fault.http(503), route="create_index")
    store = open_store(qdrant.url)

    store.ensure_collection(8)

    assert len(sleeps) == 1
    assert set(qdrant.collections["c"].indexes) == set(FILTER_FIELDS)


def test_write_documents_then_search_with_retried_upsert(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.fail(Fault.http(503), route="upsert")
    store = open_store(qdrant.url)
    meta = DocumentMetadata(author="Ada", kind="post")
    chunks = [
        Chunk(id=chunk_id("d", i), document_id="d", position=i, text=f"text {i}", metadata=meta)
        for i in range(3)
    ]
    vectors = np.stack([unit(i) for i in range(3)])

    store.write_documents(chunks, vectors, fingerprints={"d": "f1"})

    assert len(qdrant.to("upsert")) == 2
    assert len(sleeps) == 1
    assert store.count() == 3
    stored = qdrant.collections["c"].points[chunk_id("d", 1)]
    assert stored.payload["fingerprint"] == "f1"
    assert stored.payload["document_chunks"] == 3
    assert set(stored.vector) == {"dense", "bm25"}

    reader = open_store(qdrant.url)  # a fresh store checks the schema first
    assert [c.id for c in reader.search(unit(2), k=1)] == [chunk_id("d", 2)]
    assert reader.distinct("author") == ["Ada"]

    # a shorter version deletes the stale tail, retried like the rest
    qdrant.fail(Fault.http(503), route="delete")
    store.write_documents(chunks[:1], vectors[:1], fingerprints={"d": "f2"})
    assert len(qdrant.to("delete")) == 2
    assert sorted(qdrant.collections["c"].points) == [chunk_id("d", 0)]


# -- the API key -----------------------------------------------------------------------------


@pytest.mark.filterwarnings(INSECURE_KEY_WARNING)
def test_api_key_is_sent_as_header_and_never_shown(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", points(4))
    store = open_store(qdrant.url, api_key=API_KEY)
    assert store.count() == 4
    assert len(qdrant.requests) == 2
    assert all(r.headers.get("api-key") == API_KEY for r in qdrant.requests)

    qdrant.fail(*[Fault.http(503)] * 5, route="count")
    fresh = open_store(qdrant.url, api_key=API_KEY)
    with pytest.raises(VectorStoreUnavailableError) as unavailable:
        fresh.count()
    qdrant.fail(Fault.http(403, "Forbidden: bad key"), route="count")
    with pytest.raises(VectorStoreError) as forbidden:
        fresh.count()
    for error in (unavailable.value, forbidden.value):
        for text in (str(error), repr(error), repr(fresh)):
            assert API_KEY not in text
    assert all(r.headers.get("api-key") == API_KEY for r in qdrant.requests)


# -- known gaps of the retry predicate ----------------------------------------------------


def test_a_429_with_retry_after_is_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", points(2))
    qdrant.fail(Fault.http(429, "Rate limiting exceeded", headers={"Retry-After": "1"}))
    store = open_store(qdrant.url)

    assert store.count() == 2
    assert len(sleeps) == 1


def test_a_200_answer_of_the_wrong_shape_is_not_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", points(1))
    qdrant.fail(*[Fault.raw(200, {"result": {"count": "many"}, "status": "ok"})] * 5, route="count")
    store = open_store(qdrant.url)

    with pytest.raises(VectorStoreError) as caught:
        store.count()
    assert not isinstance(caught.value, VectorStoreUnavailableError)
    assert len(qdrant.to("count")) == 1
    assert sleeps == []


def test_a_200_page_that_is_not_json_is_not_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    """Another web service at the URL: a plain error, at once."""
    qdrant.fail(Fault.text(200, "<html>Welcome to nginx!</html>"), route="exists")
    store = open_store(qdrant.url)

    with pytest.raises(VectorStoreError) as caught:
        store.count()
    assert not isinstance(caught.value, VectorStoreUnavailableError)
    assert qdrant.url in str(caught.value)
    assert qdrant.routes() == ["exists"]
    assert sleeps == []


def test_a_proxys_502_page_is_retried(
    qdrant: QdrantServer, open_store: StoreFactory, sleeps: list[float]
) -> None:
    qdrant.add_collection("c", points(2))
    qdrant.fail(Fault.text(502, "<html>502 Bad Gateway</html>"), route="count")
    store = open_store(qdrant.url)

    assert store.count() == 2
    assert len(qdrant.to("count")) == 2
    assert len(sleeps) == 1


# -- the documents stored ------------------------------------------------------------------


def test_documents_are_counted_listed_and_deleted_on_a_server(
    qdrant: QdrantServer, open_store: StoreFactory
) -> None:
    seeded = [
        *(
            point(f"doc-{i}", p, unit(p).tolist(), author="Maya Okafor")
            for i in range(5)
            for p in range(3)
        ),
        point("other", 0, unit(0).tolist(), author="Someone Else"),
    ]
    for stored in seeded:
        stored.payload["document_chunks"] = 1 if stored.payload["document_id"] == "other" else 3
    qdrant.add_collection("c", seeded)
    store = open_store(qdrant.url)
    assert (store.count(), store.count(documents=True)) == (16, 6)
    listed = list(store.documents(page_size=2))  # three pages of first chunks
    assert sorted(doc.id for doc in listed) == [
        "doc-0",
        "doc-1",
        "doc-2",
        "doc-3",
        "doc-4",
        "other",
    ]
    assert {doc.chunks for doc in listed} == {1, 3}
    assert len(qdrant.to("scroll")) == 3
    scrolled = qdrant.to("scroll")[0].body
    assert "text" not in scrolled["with_payload"]  # payload fields only, never the text
    assert scrolled["with_vector"] is False
    mayas = [doc.id for doc in store.documents({"author": "Maya Okafor"})]
    assert len(mayas) == 5

    report = store.delete_documents(["doc-1", "doc-3", "missing"])
    assert (report.documents, report.chunks, report.missing) == (2, 6, ("missing",))
    assert store.count(documents=True) == 4
    assert store.count() == 10
