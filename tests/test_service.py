"""The example business service (examples/service/) in process, fast lane: a real
AsyncLLMTwin over the scripted TGI server (tests/fakes) for generation, a Qdrant Edge memory
store with the sample corpus, and a word-hashing embedder (no model load) for retrieval.

Every bad input of issue 10 gets its status and a clear message; every failure of the model
maps to its status; errors carry the request id and no internals; the API key is never logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from fakes import Fault, HashingEmbedder, QdrantServer, TGIServer
from llm_twin_sdk import (
    AsyncInferenceClient,
    AsyncLLMTwin,
    Document,
    GenerationParams,
    HttpBackend,
    QdrantStore,
    RAGPipeline,
    Timeouts,
    errors,
)
from llm_twin_sdk.retry import RetryPolicy
from service import ServiceSettings, create_app
from service.errors import problem_for
from service_support import QUESTION, served, sse_events

KEY = "sk-service-0123456789-SECRET"
LIMITS = ServiceSettings(max_body_bytes=4096, max_query_chars=300, max_k=5, max_new_tokens=64)
ANSWER = "".join(TGIServer().tokens)


@pytest.fixture(scope="module")
def model() -> Iterator[TGIServer]:
    with TGIServer() as server:
        yield server


@pytest.fixture
def tgi(model: TGIServer) -> Iterator[TGIServer]:
    model.reset()
    yield model
    assert model.handler_errors == []
    assert model.pending == 0  # every scripted fault was used


@pytest.fixture(scope="module")
def rag(corpus: list[Document]) -> Iterator[RAGPipeline]:
    store = QdrantStore.memory()
    pipeline = RAGPipeline(HashingEmbedder(), store, top_k=3)
    pipeline.ingest(corpus)
    yield pipeline
    pipeline.close()
    store.close()


@pytest_asyncio.fixture
async def twin(tgi: TGIServer, rag: RAGPipeline) -> AsyncIterator[AsyncLLMTwin]:
    backend = HttpBackend(tgi.url, api="openai", context_window=2048)
    client = AsyncInferenceClient(
        backend,
        params=GenerationParams(max_new_tokens=16),
        retry=RetryPolicy(max_attempts=1),
        timeout=Timeouts(connect_s=2, read_s=0.5),
    )
    async with client, AsyncLLMTwin(rag, client) as atwin:
        yield atwin
    backend.close()


@pytest_asyncio.fixture
async def api(twin: AsyncLLMTwin) -> AsyncIterator[httpx.AsyncClient]:
    async with served(create_app(LIMITS, twin=twin)) as client:
        yield client


def assert_error(response: httpx.Response, status: int, kind: str, message: str = "") -> str:
    """The response is the service's error body for ``status`` / ``kind``: its message
    (which holds ``message``) is returned."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"type", "message", "request_id"}
    assert error["type"] == kind
    assert error["request_id"] == response.headers["x-request-id"]
    assert message.lower() in error["message"].lower()
    for internal in ("Traceback", 'File "', "127.0.0.1", "llm_twin_sdk", "site-packages"):
        assert internal not in response.text
    return str(error["message"])


# -- answers ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rag_answers_with_sources_usage_and_timings(
    api: httpx.AsyncClient, tgi: TGIServer
) -> None:
    response = await api.post("/rag", json={"query": QUESTION, "k": 2, "max_new_tokens": 32})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == ANSWER
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["sources"][0]["document_id"] == "lukas-post-sse-streaming"
    assert len(body["sources"]) == 2
    source = body["sources"][0]
    assert set(source) == {"id", "document_id", "title", "author", "score", "text"}
    assert source["author"]
    assert source["title"]
    assert source["score"] > 0
    assert 0 < len(source["text"]) <= 280
    assert body["finish_reason"] in {"stop", "length"}
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert set(body["timings"]) == {"retrieve_s", "prompt_s", "generate_s", "total_s"}
    sent = tgi.generation_requests()[0].body
    assert sent["max_tokens"] == 32  # the request's bound reached the model
    assert "nginx" in str(sent["messages"])  # the prompt holds the sources


@pytest.mark.asyncio
async def test_filters_and_temperature_reach_retrieval_and_model(
    api: httpx.AsyncClient, tgi: TGIServer
) -> None:
    response = await api.post(
        "/rag",
        json={"query": QUESTION, "filters": {"author": "Maya Okafor"}, "temperature": 0.5},
    )
    assert response.status_code == 200, response.text
    assert {s["author"] for s in response.json()["sources"]} == {"Maya Okafor"}
    assert tgi.generation_requests()[0].body["temperature"] == 0.5


@pytest.mark.asyncio
async def test_stream_sends_sources_text_then_done(api: httpx.AsyncClient) -> None:
    response = await api.post("/rag/stream", json={"query": QUESTION})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "sources"
    assert names[-1] == "done"
    assert set(names[1:-1]) == {"text"}
    assert events[0][1]["sources"][0]["document_id"] == "lukas-post-sse-streaming"
    assert "".join(data["text"] for name, data in events if name == "text") == ANSWER
    done = events[-1][1]
    assert set(done) == {"finish_reason", "usage", "timings"}
    assert done["usage"]["completion_tokens"] > 0
    assert done["timings"]["generate_s"] > 0


@pytest.mark.asyncio
async def test_stream_failing_after_its_start_ends_with_an_error_event(
    api: httpx.AsyncClient, tgi: TGIServer
) -> None:
    tgi.fail(Fault.error_event(after=2))
    response = await api.post("/rag/stream", json={"query": QUESTION})
    assert response.status_code == 200  # the stream had started: its status is sent
    events = sse_events(response.text)
    assert [name for name, _ in events] == ["sources", "text", "text", "error"]
    error = events[-1][1]["error"]
    assert error == {
        "type": "model_error",
        "message": "the model failed to answer",
        "request_id": response.headers["x-request-id"],
    }
    assert "CUDA" not in response.text  # the model server's own message stays inside


# -- request ids, probes, routes --------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_sane_request_id_is_echoed_any_other_replaced(api: httpx.AsyncClient) -> None:
    kept = await api.get("/healthz", headers={"X-Request-ID": "req-42.a:b_c"})
    assert kept.headers["x-request-id"] == "req-42.a:b_c"
    bad_ids: list[Any] = ["has space", "x" * 129, "<script>", "é".encode(), ""]
    for bad in bad_ids:
        response = await api.get("/healthz", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    one, two = await api.get("/healthz"), await api.get("/healthz")
    assert one.headers["x-request-id"] != two.headers["x-request-id"]


@pytest.mark.asyncio
async def test_healthz_answers_without_the_model(api: httpx.AsyncClient, tgi: TGIServer) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert tgi.requests == []


@pytest.mark.asyncio
async def test_readyz_counts_the_store_and_the_models_tokens(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["documents"] > 0
    assert body["context_window"] == 2048


@pytest_asyncio.fixture
async def remote(twin: AsyncLLMTwin) -> AsyncIterator[tuple[QdrantServer, AsyncLLMTwin]]:
    """A twin whose store is a (scripted) Qdrant server, without retries."""
    with QdrantServer() as server:
        server.add_collection("c", [])
        store = QdrantStore.server(
            server.url, collections="c", retry=RetryPolicy(max_attempts=1), timeout_s=2
        )
        yield server, AsyncLLMTwin(RAGPipeline(HashingEmbedder(), store), twin.client)
        store.close()
        assert server.handler_errors == []


@pytest.mark.asyncio
async def test_an_unreachable_store_is_503(remote: tuple[QdrantServer, AsyncLLMTwin]) -> None:
    qdrant, twin = remote
    settings = LIMITS.model_copy(update={"ready_timeout_s": 0.3})
    async with served(create_app(settings, twin=twin)) as api:
        assert (await api.get("/readyz")).status_code == 200
        qdrant.fail(Fault.http(503), route="count")
        failed = await api.get("/readyz")
        assert_error(failed, 503, "not_ready", "readiness check failed")
        assert failed.headers["retry-after"] == "2"
        qdrant.fail(Fault.slow(1.0), route="count")
        assert_error(await api.get("/readyz"), 503, "not_ready", "readiness check timed out")
        qdrant.fail(Fault.http(502), route="query_batch")
        response = await api.post("/rag", json={"query": QUESTION})
        assert_error(response, 503, "store_unavailable", "the document store is unavailable")
        assert qdrant.url not in response.text


@pytest.mark.asyncio
async def test_unknown_routes_and_methods_use_the_error_body(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/nope"), 404, "not_found")
    assert_error(await api.get("/rag"), 405, "method_not_allowed")


# -- bad input --------------------------------------------------------------------------------

JSON = {"content-type": "application/json"}
TOO_BIG = "over the limit of 4096 bytes"
INTEGER = "input should be a valid integer"


def raw(body: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    """httpx arguments of a body sent as it is."""
    return {"content": body, "headers": {"content-type": content_type} if content_type else {}}


def ask(**fields: Any) -> dict[str, Any]:
    """httpx arguments of a JSON body: the question with ``fields``."""
    return {"json": {"query": QUESTION, **fields}}


BAD_INPUT: list[tuple[str, dict[str, Any], int, str, str]] = [
    # (case, httpx request arguments, status, type, in the message)
    ("malformed JSON", raw(b'{"query": '), 400, "invalid_json", "not valid JSON"),
    ("trailing comma", raw(b'{"query": "hi",}'), 400, "invalid_json", "not valid JSON"),
    ("not an object", {"json": ["query"]}, 400, "invalid_request", "object"),
    (
        "wrong content type",
        raw(b'{"query": "hi"}', "text/plain"),
        415,
        "unsupported_media_type",
        "application/json",
    ),
    ("form body", {"data": {"query": "hi"}}, 415, "unsupported_media_type", "x-www-form"),
    ("no content type", raw(b'{"query": "hi"}', None), 415, "unsupported_media_type", "nothing"),
    ("no query", {"json": {"k": 2}}, 400, "invalid_request", "query: field required"),
    ("empty query", {"json": {"query": ""}}, 400, "invalid_request", "query is empty"),
    ("blank query", {"json": {"query": " \n\t "}}, 400, "invalid_request", "query is empty"),
    ("query not a string", {"json": {"query": 42}}, 400, "invalid_request", "valid string"),
    ("oversized query", {"json": {"query": "why " * 76}}, 413, "too_large", "the limit is 300"),
    ("k zero", ask(k=0), 400, "invalid_request", "k: input should be greater than or equal to 1"),
    ("k over the bound", ask(k=6), 400, "invalid_request", "k: must be at most 5"),
    ("k huge", ask(k=10**30), 400, "invalid_request", "k:"),
    ("k a string", ask(k="3"), 400, "invalid_request", f"k: {INTEGER}"),
    ("k a boolean", ask(k=True), 400, "invalid_request", f"k: {INTEGER}"),
    ("k a float", ask(k=2.5), 400, "invalid_request", f"k: {INTEGER}"),
    ("unknown field", ask(top_p=0.5), 400, "invalid_request", "top_p: extra inputs"),
    ("max_new_tokens over", ask(max_new_tokens=65), 400, "invalid_request", "must be at most 64"),
    ("negative temperature", ask(temperature=-1), 400, "invalid_request", "temperature"),
    ("temperature over", ask(temperature=2.5), 400, "invalid_request", "must be at most 2.0"),
    ("unknown filter", ask(filters={"color": "red"}), 400, "invalid_request", "filter on 'color'"),
    ("filter of a number", ask(filters={"author": 3}), 400, "invalid_request", "filters.author"),
    ("unknown kind", ask(filters={"kind": "tweet"}), 400, "invalid_request", "'kind' accepts"),
    ("lone surrogate", raw(b'{"query": "why \\ud800?"}'), 400, "invalid_json", "hex escape"),
    ("oversized body", ask(filters={"author": ["a" * 100] * 50}), 413, "too_large", TOO_BIG),
    (
        "oversized body, no length",
        {"chunks": [b'{"query": "', b"a" * 5000, b'"}'], "headers": JSON},
        413,
        "too_large",
        TOO_BIG,
    ),
]


@pytest.mark.parametrize("route", ["/rag", "/rag/stream"])
@pytest.mark.parametrize(
    ("request_args", "status", "kind", "message"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
@pytest.mark.asyncio
async def test_bad_input_gets_its_status_and_a_clear_message(
    *,
    api: httpx.AsyncClient,
    tgi: TGIServer,
    route: str,
    request_args: dict[str, Any],
    status: int,
    kind: str,
    message: str,
) -> None:
    if "chunks" in request_args:  # a body sent in parts, without a Content-Length
        request_args = dict(request_args)
        chunks = request_args.pop("chunks")

        async def parts() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        request_args = {**request_args, "content": parts()}
        assert "content-length" not in api.build_request("POST", route, **request_args).headers
    response = await api.post(route, **request_args)
    assert_error(response, status, kind, message)
    assert tgi.generation_requests() == []  # refused before any generation


@pytest.mark.asyncio
async def test_a_question_over_the_models_budget_is_413(twin: AsyncLLMTwin) -> None:
    settings = ServiceSettings(max_new_tokens=4096)  # bounds wider than this model's window
    async with served(create_app(settings, twin=twin)) as api:
        # 2,000 of the 2,048 tokens go to the answer: the question alone does not fit
        response = await api.post("/rag", json={"query": "why " * 200, "max_new_tokens": 2000})
        assert_error(response, 413, "too_large", "tokens")
        # an answer as long as the whole window: a bad parameter
        response = await api.post("/rag", json={"query": QUESTION, "max_new_tokens": 2048})
        assert_error(response, 400, "invalid_request", "max_new_tokens")


# -- the API key --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_api_key_is_required_and_never_logged(
    twin: AsyncLLMTwin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = ServiceSettings(api_key=KEY)
    assert KEY not in repr(settings)
    async with served(create_app(settings, twin=twin)) as api:
        body = {"query": QUESTION}
        missing = await api.post("/rag", json=body)
        assert_error(missing, 401, "unauthorized", "an API key is required")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await api.post("/rag", headers={"Authorization": f"Bearer {KEY}x"}, json=body)
        assert_error(wrong, 401, "unauthorized", "not valid")
        assert_error(
            await api.post("/rag", headers={"X-API-Key": KEY[:-1]}, json=body), 401, "unauthorized"
        )
        assert_error(
            await api.post("/rag", headers={"Authorization": f"Basic {KEY}"}, json=body),
            401,
            "unauthorized",
        )
        assert_error(await api.post("/rag/stream", json=body), 401, "unauthorized")
        assert_error(await api.get("/openapi.json"), 401, "unauthorized")
        # open: the probes; accepted: either header
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/readyz")).status_code == 200
        bearer = await api.post("/rag", headers={"Authorization": f"Bearer {KEY}"}, json=body)
        assert bearer.status_code == 200, bearer.text
        header = await api.post("/rag/stream", headers={"X-API-Key": KEY}, json=body)
        assert header.status_code == 200
        # a failure after authentication is logged, without the key
        bad = await api.post("/rag", headers={"X-API-Key": KEY}, json={"query": QUESTION, "k": 0})
        assert bad.status_code == 400
    assert caplog.records  # something was logged (the service's and httpx's own lines)
    assert KEY not in caplog.text
    assert KEY[:-1] not in caplog.text


# -- failures of the model, mapped to statuses ----------------------------------------------------

MODEL_FAULTS = [
    ("throttled", Fault.http(429, "Model is overloaded"), 429, "throttled"),
    ("unavailable", Fault.http(503, "Loading"), 503, "model_unavailable"),
    ("bad gateway", Fault.http(502, "upstream"), 503, "model_unavailable"),
    ("read timeout", Fault.slow(2.0), 504, "timeout"),
    ("container error", Fault.http(500, "CUDA out of memory"), 502, "model_error"),
    ("connection dropped", Fault.drop(), 503, "model_unavailable"),
]


@pytest.mark.parametrize("route", ["/rag", "/rag/stream"])
@pytest.mark.parametrize(
    ("fault", "status", "kind"), [f[1:] for f in MODEL_FAULTS], ids=[f[0] for f in MODEL_FAULTS]
)
@pytest.mark.asyncio
async def test_model_failures_map_to_statuses(
    *, api: httpx.AsyncClient, tgi: TGIServer, route: str, fault: Fault, status: int, kind: str
) -> None:
    tgi.fail(fault)
    response = await api.post(route, json={"query": QUESTION})
    message = assert_error(response, status, kind)
    assert "CUDA" not in message
    assert "Loading" not in message
    if status in (429, 503):
        assert response.headers["retry-after"] == "2"
    else:
        assert "retry-after" not in response.headers
    # the next request is served
    assert (await api.post("/rag", json={"query": QUESTION})).status_code == 200


@pytest.mark.asyncio
async def test_an_unexpected_error_is_a_bare_500(
    api: httpx.AsyncClient, rag: RAGPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("password=hunter2 at /srv/secret/path")

    monkeypatch.setattr(rag, "retrieve", broken)
    for route in ("/rag", "/rag/stream"):
        response = await api.post(route, json={"query": QUESTION})
        assert_error(response, 500, "internal", "request id")
        assert "hunter2" not in response.text
        assert "/srv" not in response.text


class _UnknownTimeoutError(errors.InferenceError, TimeoutError):
    """A timeout error the service does not know by name."""


class _UnknownThrottledError(errors.ModelThrottledError):
    """A throttling error the service does not know by name."""


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.EmptyQueryError("query is empty"), 400),
        (errors.PromptTooLongError("too long", prompt_tokens=9, budget=3), 413),
        (errors.PayloadTooLargeError("6 MB"), 413),
        (errors.EndpointThrottledError("x", service="s", operation="o"), 429),
        (errors.AWSThrottledError("x", service="s", operation="o"), 429),
        (_UnknownThrottledError("x"), 429),
        (errors.ModelUnavailableError("x"), 503),
        (errors.ConnectTimeoutError("x"), 503),  # a TimeoutError, but nothing was sent
        (errors.EndpointNotFoundError("x"), 503),
        (errors.VectorStoreUnavailableError("x", url="http://q"), 503),
        (errors.VectorStoreLockedError("x"), 503),
        (errors.InferenceTimeoutError("x"), 504),
        (_UnknownTimeoutError("x"), 504),
        (errors.StreamBrokenError("x"), 502),
        (errors.ModelError("x", status=500), 502),
        (errors.EmbeddingError("x"), 500),
        (ValueError("x"), 500),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_error_classes_map_by_their_family(error: BaseException, status: int) -> None:
    assert problem_for(error, LIMITS).status == status


def test_a_busy_local_model_is_503_not_504() -> None:
    problem = problem_for(errors.ModelBusyError("queue wait over", waited_s=1.0), LIMITS)
    assert (problem.status, problem.type) == (503, "model_busy")
    assert problem.headers == {"Retry-After": "2"}
