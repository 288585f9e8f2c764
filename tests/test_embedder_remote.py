"""RemoteEmbedder against a TEI-compatible server (real HTTP on 127.0.0.1) and the
SageMaker-runtime wire server: batching to the server's limit, requests in flight, retries
through the one policy, typed errors for wrong answers, and ingestion end to end into the
embedded store (pipelined: batch n+1 embeds while batch n is written)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from fakes import Computed, Fault, TEIServer, WireServer
from fakes.sagemaker import throttling
from fakes.tei import MODEL_ID, embed_answer, hashed_vector
from llm_twin_sdk import (
    CollectionMismatchError,
    ConfigurationError,
    Document,
    Embedder,
    EndpointNotFoundError,
    IngestProgress,
    InvalidDocumentError,
    ModelUnavailableError,
    PayloadTooLargeError,
    QdrantStore,
    RAGPipeline,
    RemoteEmbedder,
    RetryPolicy,
    TextEmbedder,
    TwinSettings,
)
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.errors import EmbeddingResponseError, ModelError
from llm_twin_sdk.rag.embedder_settings import embedder_from_settings
from llm_twin_sdk.rag.embedder_tei import estimate_offsets


@pytest.fixture
def tei() -> Iterator[TEIServer]:
    with TEIServer(dimension=16, batch_limit=4) as server:
        yield server
    assert server.handler_errors == []


@pytest.fixture
def fast(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(max_attempts=3, initial_wait_s=0.01, max_wait_s=0.02, sleep=sleeps.append)


def _docs(n: int, words: int = 30) -> list[Document]:
    return [
        Document(
            id=f"doc-{i}",
            text=" ".join(f"word{(i * 7 + j) % 97} topic{i}" for j in range(words)),
            metadata={"kind": "post" if i % 2 else "article"},
        )
        for i in range(n)
    ]


# -- over HTTP --------------------------------------------------------------------------------


def test_http_reads_info_and_batches_to_the_server_limit(tei: TEIServer, fast: RetryPolicy) -> None:
    with RemoteEmbedder.http(tei.url, concurrency=1, retry=fast) as embedder:
        assert (embedder.model_name, embedder.batch_size, embedder.max_tokens) == (MODEL_ID, 4, 512)
        texts = [f"text number {i}" for i in range(10)]
        vectors = embedder.encode(texts)
    assert vectors.shape == (10, 16)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[7], hashed_vector(texts[7], 16), rtol=1e-6)  # in order
    sizes = [len(r.body["inputs"]) for r in tei.to("embed")]
    assert sizes == [4, 4, 2]
    assert all(r.body["truncate"] is True for r in tei.to("embed"))
    assert tei.routes()[0] == "info"


def test_a_batch_size_over_the_servers_limit_is_refused(tei: TEIServer) -> None:
    with pytest.raises(ConfigurationError, match="max_client_batch_size"):
        RemoteEmbedder.http(tei.url, batch_size=8)
    assert tei.to("embed") == []


def test_requests_in_flight_are_bounded_and_results_keep_their_order(
    tei: TEIServer, fast: RetryPolicy
) -> None:
    tei.answer_delay_s = 0.05
    texts = [f"text {i} of many" for i in range(4 * 12)]  # 12 batches
    with RemoteEmbedder.http(tei.url, concurrency=4, retry=fast) as embedder:
        started = time.perf_counter()
        vectors = embedder.encode(texts)
        took = time.perf_counter() - started
    assert tei.max_in_flight == 4
    assert took < 12 * 0.05  # not one after the other
    expected = np.asarray([hashed_vector(t, 16) for t in texts], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)


def test_transient_failures_are_retried_by_the_one_policy(
    tei: TEIServer, fast: RetryPolicy, sleeps: list[float]
) -> None:
    with RemoteEmbedder.http(tei.url, concurrency=1, retry=fast) as embedder:
        tei.fail(Fault.http(503), Fault.http(429))
        assert embedder.encode(["one", "two"]).shape == (2, 16)
        assert len(tei.to("embed")) == 3
        assert len(sleeps) == 2

        tei.fail(Fault.http(503), Fault.http(503), Fault.http(503))
        with pytest.raises(ModelUnavailableError, match="/embed"):
            embedder.encode(["three"])
        assert len(tei.to("embed")) == 6  # 3 attempts, not 3 x botocore's or httpx's


def test_a_validation_error_is_not_retried(tei: TEIServer, fast: RetryPolicy) -> None:
    with RemoteEmbedder.http(tei.url, retry=fast) as embedder:
        tei.fail(Fault.http(422, "input is empty"))
        with pytest.raises(ModelError, match="input is empty") as info:
            embedder.encode(["x"])
    assert info.value.status == 422
    assert len(tei.to("embed")) == 1


def test_fewer_vectors_than_texts_is_a_typed_error(tei: TEIServer, fast: RetryPolicy) -> None:
    tei.drop_vectors = 1
    with (
        RemoteEmbedder.http(tei.url, retry=fast) as embedder,
        pytest.raises(EmbeddingResponseError, match="3 vector") as info,
    ):
        embedder.encode(["a", "b", "c", "d"])
    assert (info.value.expected, info.value.received) == (4, 3)


def test_vectors_changing_size_is_a_typed_error(tei: TEIServer, fast: RetryPolicy) -> None:
    with RemoteEmbedder.http(tei.url, retry=fast) as embedder:
        assert embedder.dimension == 16
        tei.answer_dimension = 8
        with pytest.raises(EmbeddingResponseError, match="size 8") as info:
            embedder.encode(["a"])
    assert info.value.what == "dimension"


def test_a_body_that_is_not_vectors_is_a_typed_error(tei: TEIServer, fast: RetryPolicy) -> None:
    with RemoteEmbedder.http(tei.url, retry=fast) as embedder:
        tei.fail(Fault.raw(200, [[0.1, 0.2], [0.3]]))  # ragged
        with pytest.raises(EmbeddingResponseError, match="not a list of vectors"):
            embedder.encode(["a", "b"])


class _WithoutInfo(TEIServer):
    route_table = (("POST", r"/embed", "embed"),)


def test_a_server_without_info_uses_defaults(fast: RetryPolicy) -> None:
    with _WithoutInfo() as server, RemoteEmbedder.http(server.url, retry=fast) as embedder:
        assert embedder.batch_size == 32
        assert embedder.model_name == f"tei:{server.url}"
        assert embedder.encode(["a"]).shape == (1, 16)


def test_a_server_that_is_not_there(fast: RetryPolicy) -> None:
    with TEIServer() as gone:
        url = gone.url
    with pytest.raises(ModelUnavailableError, match="cannot reach"):
        RemoteEmbedder.http(url, retry=fast)


def test_invalid_arguments_are_refused() -> None:
    send = lambda body: b"[]"  # noqa: E731
    for bad in ({"batch_size": 0}, {"concurrency": 0}, {"max_tokens": -1}):
        with pytest.raises(ConfigurationError):
            RemoteEmbedder(send, model_name="m", **bad)  # type: ignore[arg-type]  # bad on purpose


def test_the_api_key_never_shows(tei: TEIServer) -> None:
    with RemoteEmbedder.http(tei.url, api_key="s3cr3t-key") as embedder:
        embedder.encode(["a"])
        assert "s3cr3t" not in repr(embedder)
    assert tei.to("embed")[0].headers["authorization"] == "Bearer s3cr3t-key"


def test_estimated_offsets_cut_long_words() -> None:
    [offsets] = estimate_offsets(["Quantization, before scaling."])
    text = "Quantization, before scaling."
    pieces = ["Quanti", "zation", ",", "before", "scalin", "g", "."]
    assert [text[s:e] for s, e in offsets] == pieces


@pytest.mark.asyncio
async def test_aencode_does_not_block_the_loop(tei: TEIServer, fast: RetryPolicy) -> None:
    with RemoteEmbedder.http(tei.url, retry=fast) as embedder:
        vectors = await embedder.aencode(["an async question"])
    assert vectors.shape == (1, 16)


# -- ingestion end to end ------------------------------------------------------------------------


def test_ingestion_through_a_tei_server_into_the_embedded_store(
    tei: TEIServer, fast: RetryPolicy
) -> None:
    docs = _docs(30)
    with RemoteEmbedder.http(tei.url, concurrency=4, retry=fast) as embedder:
        store = QdrantStore.memory()
        with store, RAGPipeline(embedder, store, chunk_tokens=32, chunk_overlap=4) as rag:
            report = rag.ingest(docs, progress=False)
            assert report.documents == 30
            assert store.count() == report.chunks == tei.texts_embedded - 1  # 1: the size probe
            best = rag.retrieve(docs[5].text, k=1, unit="chunk")
            assert best[0].document_id == "doc-5"
            again = rag.ingest(docs, progress=False)
    assert (again.documents, again.unchanged) == (0, 30)


def test_the_store_is_written_in_order_while_the_next_batch_embeds(
    tei: TEIServer, fast: RetryPolicy
) -> None:
    tei.answer_delay_s = 0.02
    docs = _docs(24)
    writes: list[tuple[float, list[str]]] = []
    with RemoteEmbedder.http(tei.url, concurrency=2, retry=fast) as embedder:
        store = QdrantStore.memory()
        real = store.write_documents

        def spy(chunks, *args, **kwargs):  # type: ignore[no-untyped-def]  # a spy
            writes.append((time.perf_counter(), sorted({c.document_id for c in chunks})))
            time.sleep(0.05)  # a slow write: the next batch embeds meanwhile
            real(chunks, *args, **kwargs)

        store.write_documents = spy  # type: ignore[method-assign]  # the real method still runs
        with store, RAGPipeline(embedder, store, chunk_tokens=32, ingest_batch=8) as rag:
            rag.ingest(docs, progress=False)
            assert store.count(documents=True) == 24
    order = [doc for _, ids in writes for doc in ids]
    assert sorted(order, key=lambda d: int(d.split("-")[1])) == [d.id for d in docs]
    assert len(writes) > 2
    # An embed request arrived while a write was under way (pipelining, not one after another).
    embeds = [r.at for r in tei.to("embed")]
    overlapping = [at for at in embeds for written, _ in writes if written < at < written + 0.05]
    assert overlapping


def test_fewer_vectors_mid_ingest_loses_nothing_written_and_half_writes_nothing(
    tei: TEIServer, fast: RetryPolicy
) -> None:
    docs = _docs(24)
    embedded = threading.Event()
    with RemoteEmbedder.http(tei.url, concurrency=1, retry=fast) as embedder:
        store = QdrantStore.memory()
        real = store.write_documents

        def spy(chunks, *args, **kwargs):  # type: ignore[no-untyped-def]  # a spy
            real(chunks, *args, **kwargs)
            if not embedded.is_set():  # the answers after the first write: one vector short
                tei.drop_vectors = 1
                embedded.set()

        store.write_documents = spy  # type: ignore[method-assign]  # the real method still runs
        with store, RAGPipeline(embedder, store, chunk_tokens=32, ingest_batch=8) as rag:
            with pytest.raises(EmbeddingResponseError) as info:
                rag.ingest(docs, progress=False)
            notes = " ".join(info.value.__notes__)
            stored = int(notes.split(" of ")[0])
            assert 0 < stored < 24
            assert store.count(documents=True) == stored
            assert store.count() == len(rag.chunk(docs[:stored]))  # whole documents only
            tei.drop_vectors = 0
            report = rag.ingest(docs, progress=False)
    assert (report.unchanged, report.documents) == (stored, 24 - stored)


def test_a_remote_embedder_of_another_size_fails_before_anything_is_written(
    tei: TEIServer, fast: RetryPolicy
) -> None:
    store = QdrantStore.memory()
    store.ensure_collection(384, "posts")  # written before by the local all-MiniLM
    with RemoteEmbedder.http(tei.url, retry=fast) as embedder, store:
        rag = RAGPipeline(embedder, store, chunk_tokens=32)
        with pytest.raises(CollectionMismatchError, match=r"size 384.*makes 16"):
            rag.ingest(_docs(6), progress=False)
        assert store.count() == 0
        assert len(tei.to("embed")) == 1  # the size probe only: no batch was embedded


def test_the_first_requests_leave_while_the_rest_is_still_chunked(
    tei: TEIServer, fast: RetryPolicy
) -> None:
    docs = _docs(64)
    chunked_at: list[float] = []

    def slow_offsets(texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        time.sleep(0.02)  # 8 slices of 8 documents: 0.16 s of chunking
        chunked_at.append(time.monotonic())  # the clock of the server's Request.at
        return estimate_offsets(texts)

    progress: list[IngestProgress] = []
    with RemoteEmbedder.http(
        tei.url, concurrency=2, retry=fast, token_offsets=slow_offsets
    ) as embedder:
        store = QdrantStore.memory()
        written: list[float] = []
        real = store.write_documents

        def spy(chunks, *args, **kwargs):  # type: ignore[no-untyped-def]  # a spy
            written.append(time.monotonic())
            real(chunks, *args, **kwargs)

        store.write_documents = spy  # type: ignore[method-assign]  # the real method still runs
        with store, RAGPipeline(embedder, store, chunk_tokens=32, ingest_batch=8) as rag:
            report = rag.ingest(docs, progress=progress.append)
            assert store.count(documents=True) == report.documents == 64
    embeds = sorted(r.at for r in tei.to("embed"))
    assert len(chunked_at) == 8
    # batches embedded before the last slice was chunked (1 request: the size probe)
    assert sum(at < chunked_at[-1] for at in embeds) >= 5
    assert min(written) > chunked_at[-1]  # ...but nothing written before all were
    first = progress[0]  # reported before the first write, with the whole totals
    assert (first.documents_done, first.documents_total) == (0, 64)
    assert first.chunks_total == report.chunks


def test_a_document_that_cannot_be_chunked_late_writes_nothing_even_when_batches_embedded(
    tei: TEIServer, fast: RetryPolicy
) -> None:
    docs = _docs(40)

    def offsets(texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        time.sleep(0.01)
        spans = estimate_offsets(texts)
        return [[] if text == docs[-1].text else s for text, s in zip(texts, spans, strict=True)]

    with RemoteEmbedder.http(tei.url, concurrency=2, retry=fast, token_offsets=offsets) as emb:
        store = QdrantStore.memory()
        with store, RAGPipeline(emb, store, chunk_tokens=32, ingest_batch=8) as rag:
            with pytest.raises(InvalidDocumentError, match="doc-39") as info:
                rag.ingest(docs, progress=False)
            assert not getattr(info.value, "__notes__", [])  # no "ingest again to resume"
            assert store.count() == 0
            assert list(rag.documents()) == []


def test_a_remote_embedder_of_another_size_embeds_nothing_even_with_many_documents(
    tei: TEIServer, fast: RetryPolicy
) -> None:
    store = QdrantStore.memory()
    store.ensure_collection(384, "posts")
    with RemoteEmbedder.http(tei.url, retry=fast) as embedder, store:
        rag = RAGPipeline(embedder, store, chunk_tokens=32)
        with pytest.raises(CollectionMismatchError, match=r"size 384.*makes 16"):
            rag.ingest(_docs(200), progress=False)  # chunked ahead, in a thread
        assert store.count() == 0
        assert len(tei.to("embed")) == 1  # the size probe only


# -- settings ---------------------------------------------------------------------------------


def test_settings_pick_the_embedder(tei: TEIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_URL", tei.url)
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_CONCURRENCY", "3")
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_BATCH_SIZE", "2")
    settings = TwinSettings()
    embedder = embedder_from_settings(settings)
    assert isinstance(embedder, RemoteEmbedder)
    with embedder:
        assert (embedder.concurrency, embedder.batch_size) == (3, 2)
    with pytest.raises(ConfigurationError, match="not both"):
        TwinSettings(embedding_sagemaker_endpoint="tei-endpoint")
    monkeypatch.delenv("LLM_TWIN_EMBEDDING_URL")
    with pytest.raises(ConfigurationError):
        TwinSettings(embedding_concurrency=0)


def test_from_settings_owns_and_closes_the_remote_embedder(
    tei: TEIServer, tmp_path: object
) -> None:
    settings = TwinSettings(embedding_url=tei.url, qdrant_path=f"{tmp_path}/q", chunk_tokens=32)
    with RAGPipeline.from_settings(settings) as rag:
        assert isinstance(rag.embedder, RemoteEmbedder)
        rag.ingest(_docs(3), progress=False)
        pool_threads = [t for t in threading.enumerate() if t.name.startswith("llm-twin-tei")]
    assert not [t for t in pool_threads if t.is_alive()]


# -- on SageMaker (the wire server) ------------------------------------------------------------


@pytest.fixture
def tei_endpoint(wire: WireServer) -> WireServer:
    wire.default = Computed(lambda body: embed_answer(body, 16))
    return wire


def test_sagemaker_endpoint_embeds_through_invoke_endpoint(
    tei_endpoint: WireServer, fast: RetryPolicy
) -> None:
    aws = AWSClients(region="us-east-1", endpoint_url=tei_endpoint.url)
    with RemoteEmbedder.sagemaker(
        "twin-embeddings", aws=aws, batch_size=3, concurrency=2, retry=fast
    ) as embedder:
        vectors = embedder.encode([f"text {i}" for i in range(7)])
        assert embedder.model_name == "sagemaker:twin-embeddings"
    assert vectors.shape == (7, 16)
    calls = tei_endpoint.to("invoke")
    assert sorted(len(c.body["inputs"]) for c in calls) == [1, 3, 3]
    assert {c.endpoint for c in calls} == {"twin-embeddings"}
    assert calls[0].headers["content-type"] == "application/json"


def test_sagemaker_throttling_is_retried_once_per_attempt(
    tei_endpoint: WireServer, fast: RetryPolicy, sleeps: list[float]
) -> None:
    aws = AWSClients(region="us-east-1", endpoint_url=tei_endpoint.url)
    tei_endpoint.fail(throttling())
    with RemoteEmbedder.sagemaker("twin-embeddings", aws=aws, retry=fast) as embedder:
        assert embedder.encode(["a"]).shape == (1, 16)
    assert len(tei_endpoint.to("invoke")) == 2  # botocore did not retry on its own
    assert len(sleeps) == 1


def test_sagemaker_wrong_count_and_missing_endpoint(
    tei_endpoint: WireServer, fast: RetryPolicy
) -> None:
    from fakes.sagemaker import endpoint_not_found

    aws = AWSClients(region="us-east-1", endpoint_url=tei_endpoint.url)
    with RemoteEmbedder.sagemaker("twin-embeddings", aws=aws, retry=fast) as embedder:
        tei_endpoint.default = Computed(lambda body: embed_answer(body, 16)[:-1])
        with pytest.raises(EmbeddingResponseError):
            embedder.encode(["a", "b"])
        tei_endpoint.fail(endpoint_not_found("twin-embeddings"))
        with pytest.raises(EndpointNotFoundError):
            embedder.encode(["a"])


def test_sagemaker_bodies_stay_under_six_megabytes(
    tei_endpoint: WireServer, fast: RetryPolicy
) -> None:
    aws = AWSClients(region="us-east-1", endpoint_url=tei_endpoint.url)
    big = "word " * 500_000  # 2.5 MB each: two fit in a body, three do not
    with RemoteEmbedder.sagemaker("twin-embeddings", aws=aws, retry=fast) as embedder:
        assert embedder.encode([big, big, big]).shape == (3, 16)
        assert sorted(len(c.body["inputs"]) for c in tei_endpoint.to("invoke")) == [1, 2]
        with pytest.raises(PayloadTooLargeError):
            embedder.encode(["word " * 1_300_000])  # one text over 6 MB: refused, not sent
    assert len(tei_endpoint.to("invoke")) == 2


def test_local_and_remote_embedders_are_one_interface(tei: TEIServer) -> None:
    from fakes import HashingEmbedder

    # mypy checks both against the protocol; at run time, both serve one pipeline.
    with RemoteEmbedder.http(tei.url) as remote:
        embedders: list[TextEmbedder] = [HashingEmbedder(16), remote]
        for embedder in embedders:
            with QdrantStore.memory() as store, RAGPipeline(embedder, store) as rag:
                assert rag.ingest(_docs(2), progress=False).documents == 2
                assert embedder.encode(["x"]).shape == (1, 16)
    assert Embedder.aencode is not None
