"""The example service on the embedded footing: real SmolLM2 (llama.cpp), real MiniLM, Qdrant
Edge with the sample corpus. In process (httpx over ASGI), and as a real uvicorn process on
127.0.0.1 with concurrent clients and clients that hang up mid-stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from llm_twin_sdk import (
    AsyncLLMTwin,
    Document,
    Embedder,
    InferenceClient,
    LLMTwin,
    QdrantStore,
    RAGPipeline,
)
from service import ServiceSettings, create_app
from service_support import NODELAY, QUESTION, ServiceProcess, served, sse_events

GREEDY = {"temperature": 0.0, "max_new_tokens": 24}
LONG_ASK = {
    "query": "Write a long, detailed essay about everything these posts say about GPUs.",
    "temperature": 0.0,
    "max_new_tokens": 400,
}


@pytest.fixture(scope="module")
def rag(embedder: Embedder, corpus: list[Document]) -> Iterator[RAGPipeline]:
    store = QdrantStore.memory()
    pipeline = RAGPipeline(embedder, store, top_k=3)
    pipeline.ingest(corpus)
    yield pipeline
    pipeline.close()
    store.close()


@pytest_asyncio.fixture
async def api(rag: RAGPipeline, client: InferenceClient) -> AsyncIterator[httpx.AsyncClient]:
    twin = AsyncLLMTwin.from_twin(LLMTwin(rag, client))
    async with twin, served(create_app(ServiceSettings(), twin=twin)) as http:
        yield http


@pytest.mark.asyncio
async def test_answers_and_streams_the_same_text_with_sources(api: httpx.AsyncClient) -> None:
    asked = await api.post("/rag", json={"query": QUESTION, **GREEDY})
    assert asked.status_code == 200, asked.text
    answer = asked.json()
    assert answer["answer"].strip()
    assert answer["sources"][0]["document_id"] == "lukas-post-sse-streaming"
    assert 0 < answer["usage"]["completion_tokens"] <= 24
    assert answer["timings"]["retrieve_s"] > 0
    assert answer["timings"]["generate_s"] > 0

    streamed = await api.post("/rag/stream", json={"query": QUESTION, **GREEDY})
    assert streamed.status_code == 200, streamed.text
    events = sse_events(streamed.text)
    assert events[0] == ("sources", {"sources": answer["sources"]})
    assert "".join(d["text"] for name, d in events if name == "text") == answer["answer"]
    name, done = events[-1]
    assert name == "done"
    assert done["usage"] == answer["usage"]
    assert done["finish_reason"] == answer["finish_reason"]

    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["documents"] > 0
    assert ready.json()["context_window"] == 2048


# -- a real uvicorn process -----------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(
    embedder: Embedder, corpus: list[Document], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An embedded store folder holding the corpus, closed for the service to open."""
    path = tmp_path_factory.mktemp("service") / "qdrant"
    store = QdrantStore.local(path)
    pipeline = RAGPipeline(embedder, store)
    pipeline.ingest(corpus)
    pipeline.close()
    store.close()
    return path


@pytest.fixture(scope="module")
def service(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = {"LLM_TWIN_QDRANT_PATH": str(folder), "LLM_TWIN_N_CTX": "2048"}
    log = tmp_path_factory.mktemp("service-log") / "uvicorn.log"
    with ServiceProcess(env, log) as process:
        yield process
    assert "Traceback" not in process.output(), process.output()


def _client(service: ServiceProcess) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(socket_options=NODELAY)
    return httpx.AsyncClient(base_url=service.url, transport=transport, timeout=120)


async def _read_stream(http: httpx.AsyncClient, body: dict[str, Any]) -> list[tuple[str, Any]]:
    async with http.stream("POST", "/rag/stream", json=body) as response:
        assert response.status_code == 200
        return sse_events((await response.aread()).decode())


async def _hang_up_after_first_text(service: ServiceProcess, body: dict[str, Any]) -> None:
    """Open a stream, read up to its first text event, then close the connection."""
    async with _client(service) as http, http.stream("POST", "/rag/stream", json=body) as r:
        assert r.status_code == 200
        seen = ""
        async for chunk in r.aiter_text():
            seen += chunk
            if "event: text" in seen:
                return
    raise AssertionError(f"no text event before the end: {seen!r}")


def test_concurrent_clients_are_all_answered(service: ServiceProcess) -> None:
    async def main() -> tuple[list[httpx.Response], list[float]]:
        async with _client(service) as http:
            probes: list[float] = []
            done = asyncio.Event()

            async def probe() -> None:
                while not done.is_set():
                    started = time.perf_counter()
                    assert (await http.get("/healthz")).status_code == 200
                    probes.append(time.perf_counter() - started)
                    await asyncio.sleep(0.05)

            prober = asyncio.create_task(probe())
            asks = [
                http.post("/rag", json={"query": f"{QUESTION} ({i})", **GREEDY}) for i in range(8)
            ]
            responses = await asyncio.gather(*asks)
            done.set()
            await prober
            return responses, probes

    responses, probes = asyncio.run(main())
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.json()["answer"].strip()
    assert len({r.headers["x-request-id"] for r in responses}) == 8
    assert probes  # the loop answered liveness probes all along (their speed: the benchmark)


def test_clients_that_hang_up_free_the_model(service: ServiceProcess) -> None:
    async def main() -> tuple[float, int, float]:
        async with _client(service) as http:
            started = time.perf_counter()
            full = await _read_stream(http, LONG_ASK)  # how long one whole answer takes
            whole_s = time.perf_counter() - started
            tokens = full[-1][1]["usage"]["completion_tokens"]
            await asyncio.gather(*(_hang_up_after_first_text(service, LONG_ASK) for _ in range(3)))
            started = time.perf_counter()
            after = await http.post("/rag", json={"query": QUESTION, **GREEDY})
            assert after.status_code == 200, after.text
            return whole_s, tokens, time.perf_counter() - started

    whole_s, tokens, next_s = asyncio.run(main())
    assert tokens >= 200  # the answers the clients left were long: a held model would show
    # Three abandoned answers still generating would cost ~3 whole answers; stopped, the
    # next request waits for none of them.
    assert next_s < whole_s, (next_s, whole_s)
    assert asyncio.run(_status(service)) == 200  # and the service is still ready


async def _status(service: ServiceProcess) -> int:
    async with _client(service) as http:
        return (await http.get("/readyz")).status_code
