"""ProcessEmbedder: a remote embedder run in a child process (spawned for real), against the
TEI-like server on 127.0.0.1: the same vectors and facts, ingestion end to end, the child's
typed errors in the caller, and a child that fails to build or ends."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fakes import Computed, TEIServer, WireServer
from fakes.tei import MODEL_ID, embed_answer
from llm_twin_sdk import (
    ConfigurationError,
    Document,
    ModelUnavailableError,
    ProcessEmbedder,
    QdrantStore,
    RAGPipeline,
    RemoteEmbedder,
    RetryPolicy,
    TwinSettings,
)
from llm_twin_sdk.errors import EmbeddingError, EmbeddingResponseError
from llm_twin_sdk.rag.embedder_settings import embedder_from_settings

ONCE = RetryPolicy(max_attempts=1)


@pytest.fixture
def tei() -> Iterator[TEIServer]:
    with TEIServer(dimension=16, batch_limit=4) as server:
        yield server
    assert server.handler_errors == []


def _docs(n: int) -> list[Document]:
    return [
        Document(id=f"doc-{i}", text=f"post {i} about topic{i} " * 6, metadata={"kind": "post"})
        for i in range(n)
    ]


def test_vectors_and_facts_come_from_the_child(tei: TEIServer) -> None:
    texts = [f"text number {i}" for i in range(10)]
    secret = "sk-never-shown-7f3a"
    factory = functools.partial(
        RemoteEmbedder.http, tei.url, concurrency=3, retry=ONCE, api_key=secret
    )
    with factory() as here, ProcessEmbedder(factory) as there:
        assert (there.model_name, there.dimension, there.max_tokens) == (
            here.model_name,
            16,
            here.max_tokens,
        )
        assert there.model_name == MODEL_ID
        assert (there.concurrency, there.batch_size) == (3, 4)
        np.testing.assert_allclose(there.encode(texts), here.encode(texts))
        assert asyncio.run(there.aencode(texts[:2])).shape == (2, 16)
        assert "running" in repr(there)
        assert secret not in repr(there)
        assert len(repr(there)) <= 250
        assert there.token_offsets(["two words"]) == [[(0, 3), (4, 9)]]
    assert "ended" in repr(there)
    assert there._process.exitcode == 0  # closed, not killed


def test_ingestion_through_a_child_process_embedder(tei: TEIServer) -> None:
    docs = _docs(40)  # more than a slice: chunked ahead while the first batches embed
    factory = functools.partial(RemoteEmbedder.http, tei.url, concurrency=2, retry=ONCE)
    with ProcessEmbedder(factory) as embedder, QdrantStore.memory() as store:
        rag = RAGPipeline(embedder, store, chunk_tokens=32)
        report = rag.ingest(docs, progress=False)
        assert report.documents == 40
        assert store.count(documents=True) == 40
        assert rag.retrieve(docs[7].text, k=1)[0].document_id == "doc-7"
        again = rag.ingest(docs, progress=False)
    assert (again.documents, again.unchanged) == (0, 40)


def test_an_error_in_the_child_is_the_same_typed_error_and_the_child_serves_on(
    tei: TEIServer,
) -> None:
    factory = functools.partial(RemoteEmbedder.http, tei.url, retry=ONCE)
    with ProcessEmbedder(factory) as embedder:
        tei.drop_vectors = 1
        with pytest.raises(EmbeddingResponseError, match="3 vector") as info:
            embedder.encode(["a", "b", "c", "d"])
        assert (info.value.expected, info.value.received) == (4, 3)
        tei.drop_vectors = 0
        assert embedder.encode(["a", "b"]).shape == (2, 16)


def test_building_fails_in_the_child_with_its_typed_error() -> None:
    with TEIServer() as gone:
        url = gone.url
    with pytest.raises(ModelUnavailableError, match="cannot reach"):
        ProcessEmbedder(functools.partial(RemoteEmbedder.http, url, retry=ONCE))


def test_a_factory_that_cannot_be_pickled_is_refused_before_any_process(tei: TEIServer) -> None:
    children = multiprocessing.active_children()
    with pytest.raises(ConfigurationError, match="picklable factory"):
        ProcessEmbedder(lambda: RemoteEmbedder.http(tei.url))
    assert multiprocessing.active_children() == children


def test_a_child_that_ends_is_an_embedding_error(tei: TEIServer) -> None:
    embedder = ProcessEmbedder(functools.partial(RemoteEmbedder.http, tei.url, retry=ONCE))
    pid = embedder._process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    embedder._process.join(5)
    with pytest.raises(EmbeddingError, match=r"embedding process .* ended"):
        embedder.encode(["a"])
    embedder.close()  # still fine to close


def test_settings_run_the_remote_embedder_in_a_child(
    tei: TEIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_URL", tei.url)
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_CONCURRENCY", "3")
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_PROCESS", "true")
    settings = TwinSettings(qdrant_path=tmp_path / "qdrant")
    with RAGPipeline.from_settings(settings) as rag:
        embedder = rag.embedder
        assert isinstance(embedder, ProcessEmbedder)
        assert embedder.concurrency == 3
        assert rag.ingest(_docs(12), progress=False).documents == 12
    assert not embedder._process.is_alive()  # the pipeline owned it and closed it
    monkeypatch.delenv("LLM_TWIN_EMBEDDING_URL")
    with pytest.raises(ConfigurationError, match="runs a remote embedder"):
        TwinSettings()


def test_an_interrupted_call_leaves_no_stale_answer_for_the_next(tei: TEIServer) -> None:
    factory = functools.partial(RemoteEmbedder.http, tei.url, retry=ONCE)
    with factory() as here, ProcessEmbedder(factory) as embedder:
        tei.answer_delay_s = 0.3

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGUSR1, interrupt)
        try:
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            with pytest.raises(KeyboardInterrupt):
                embedder.encode(["the interrupted text"])  # its answer comes later
        finally:
            signal.signal(signal.SIGUSR1, previous)
        tei.answer_delay_s = 0.0
        fresh = embedder.encode(["a fresh text", "another one"])
        np.testing.assert_allclose(fresh, here.encode(["a fresh text", "another one"]))


def test_a_sagemaker_tei_endpoint_embeds_from_the_child(
    wire: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire.default = Computed(lambda body: embed_answer(body, 16))
    # the child is spawned with this environment: botocore sends its calls to the wire server
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", wire.url)
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_SAGEMAKER_ENDPOINT", "twin-embeddings")
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_PROCESS", "true")
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_BATCH_SIZE", "3")
    settings = TwinSettings(aws_region="us-east-1")
    embedder = embedder_from_settings(settings)
    assert isinstance(embedder, ProcessEmbedder)
    with embedder:
        assert embedder.model_name == "sagemaker:twin-embeddings"
        assert embedder.encode([f"text {i}" for i in range(7)]).shape == (7, 16)
    calls = wire.to("invoke")
    assert calls[0].body["inputs"] == ["dimension"]  # the child learns the size first
    assert sorted(len(c.body["inputs"]) for c in calls[1:]) == [1, 3, 3]
    assert {c.endpoint for c in calls} == {"twin-embeddings"}
