"""AsyncInferenceClient: the sync backend in a bounded thread pool, native async backends,
the retry policy with asyncio waits, and generate_many (order, per-item errors, concurrency)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from fakes import Json, NativeScriptedBackend, ScriptedBackend, WireServer, scripted_generation
from llm_twin_sdk import (
    ConfigurationError,
    Generation,
    GenerationParams,
    InferenceClient,
    InferenceError,
    InvalidParameterError,
    LocalBackend,
    Message,
    ModelError,
    ModelUnavailableError,
    PromptTooLongError,
    ThrottledError,
    Timeouts,
    TwinSettings,
    Usage,
)
from llm_twin_sdk.inference.async_client import AsyncInferenceClient, NativeAsyncBackend
from llm_twin_sdk.inference.async_stream import AsyncTextStream
from llm_twin_sdk.inference.backends.http import HttpBackend
from llm_twin_sdk.inference.prompt_format import ALPACA_TEMPLATE, format_prompt
from llm_twin_sdk.inference.stream import TextStream
from llm_twin_sdk.retry import RetryPolicy

GREEDY = GenerationParams(max_new_tokens=8, temperature=0.0)
CHAT = [{"role": "user", "content": "Say hello."}]
LONG = GenerationParams(max_new_tokens=64, temperature=0.0)
COUNTING = [{"role": "user", "content": "Count from 1 to 100, separated by commas."}]


@pytest.fixture
def wrapped(local_backend: LocalBackend) -> ScriptedBackend:
    return ScriptedBackend(local_backend)


@pytest_asyncio.fixture
async def aclient(wrapped: ScriptedBackend) -> AsyncIterator[AsyncInferenceClient]:
    async with AsyncInferenceClient(wrapped, max_workers=2) as client:
        yield client


async def collect(stream: AsyncTextStream, into: list[str]) -> None:
    """Read ``stream`` to its end inside ``async with``, keeping the pieces received."""
    async with stream:
        async for piece in stream:
            into.append(piece)


@pytest.fixture
def policy(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(max_attempts=3, initial_wait_s=0.5, sleep=sleeps.append)


# -- the thread-pool path on the real local model -------------------------------------------------


def test_a_sync_backend_is_not_native(wrapped: ScriptedBackend) -> None:
    assert not isinstance(wrapped, NativeAsyncBackend)


@pytest.mark.asyncio
async def test_same_surface_as_the_sync_client(
    aclient: AsyncInferenceClient, client: InferenceClient
) -> None:
    assert aclient.model_name == client.model_name
    assert aclient.context_window == client.context_window == 2048
    assert aclient.count_tokens(CHAT) == client.count_tokens(CHAT)
    assert aclient.params == GenerationParams()
    assert "AsyncInferenceClient(model=" in repr(aclient)
    g = await aclient.generate(CHAT, GREEDY)
    assert g.text == client.generate(CHAT, GREEDY).text
    assert g.usage.prompt_tokens == client.count_tokens(CHAT)
    assert g.model == client.model_name


@pytest.mark.asyncio
async def test_stream_joins_to_the_greedy_generation(
    aclient: AsyncInferenceClient, client: InferenceClient
) -> None:
    expected = client.generate(CHAT, GREEDY).text
    async with aclient.stream(CHAT, GREEDY) as stream:
        pieces = [piece async for piece in stream]
    assert len(pieces) > 1
    assert "".join(pieces) == stream.text == expected
    assert stream.generation is not None
    assert stream.generation.text == expected
    assert stream.closed


@pytest.mark.asyncio
async def test_plain_async_for_opens_and_closes_the_stream(
    aclient: AsyncInferenceClient, wrapped: ScriptedBackend, client: InferenceClient
) -> None:
    stream = aclient.stream("The three primary colours are", GREEDY)
    assert wrapped.calls == 0  # nothing is sent before the stream is used
    text = "".join([piece async for piece in stream])
    assert text == client.generate("The three primary colours are", GREEDY).text
    assert stream.closed
    assert wrapped.streams[0].closed


@pytest.mark.asyncio
async def test_early_exit_stops_generation_and_releases_the_model(
    aclient: AsyncInferenceClient, wrapped: ScriptedBackend
) -> None:
    async with aclient.stream(COUNTING, LONG) as stream:
        async for _piece in stream:
            break
    sync_stream = wrapped.streams[0]
    assert sync_stream.closed  # closed when the async stream is, not later
    assert wrapped.pieces_made < 10  # of up to 64: generation stopped
    # The model was released: the next calls go through at once.
    g = await asyncio.wait_for(aclient.generate(CHAT, GREEDY), timeout=60)
    assert g.text
    stream = aclient.stream(CHAT, GREEDY)
    assert await anext(stream)
    await stream.aclose()
    assert wrapped.streams[1].closed


@pytest.mark.asyncio
async def test_cancelling_a_reader_closes_its_stream(
    aclient: AsyncInferenceClient, wrapped: ScriptedBackend
) -> None:
    first = asyncio.Event()

    async def read() -> None:
        async with aclient.stream(COUNTING, LONG) as stream:
            async for _piece in stream:
                first.set()

    task = asyncio.create_task(read())
    await asyncio.wait_for(first.wait(), timeout=60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wrapped.streams[0].closed
    assert wrapped.pieces_made < 20  # stopped, not run to its end
    assert (await asyncio.wait_for(aclient.generate(CHAT, GREEDY), timeout=60)).text


@pytest.mark.asyncio
async def test_errors_of_opening_are_raised_when_entering(aclient: AsyncInferenceClient) -> None:
    too_long = "word " * 3000
    with pytest.raises(PromptTooLongError):
        async with aclient.stream(too_long, GREEDY):
            pytest.fail("the stream must not open")  # pragma: no cover
    with pytest.raises(InvalidParameterError):
        aclient.stream("  ", GREEDY)  # invalid input: raised at once, nothing started


class Ticker:
    """Counts event-loop turns every 10 ms while a call runs."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    @property
    def longest_gap(self) -> float:
        return max(b - a for a, b in zip(self.ticks, self.ticks[1:], strict=False))


@pytest.mark.asyncio
async def test_the_event_loop_keeps_running_during_a_generation(
    aclient: AsyncInferenceClient,
) -> None:
    params = GenerationParams(max_new_tokens=24, temperature=0.0)
    async with Ticker() as ticker:
        started = time.perf_counter()
        g = await aclient.generate(COUNTING, params)
        elapsed = time.perf_counter() - started
    assert g.usage.completion_tokens > 5
    # A blocked loop would tick once; a free one ticks about every 10 ms.
    assert len(ticker.ticks) >= max(5, elapsed / 0.01 / 4)
    assert ticker.longest_gap < elapsed / 2
    async with Ticker() as ticker:
        started = time.perf_counter()
        async with aclient.stream(COUNTING, params) as stream:
            async for _piece in stream:
                pass
        elapsed = time.perf_counter() - started
    assert len(ticker.ticks) >= max(5, elapsed / 0.01 / 4)
    assert ticker.longest_gap < elapsed / 2


@pytest.mark.asyncio
async def test_with_options_shares_backend_and_threads(
    aclient: AsyncInferenceClient, wrapped: ScriptedBackend
) -> None:
    short = aclient.with_options(max_new_tokens=2, temperature=0.0)
    assert short.params.max_new_tokens == 2
    assert aclient.params.max_new_tokens == 150  # the original is unchanged
    assert short.backend is aclient.backend
    g = await short.generate(COUNTING)
    assert g.usage.completion_tokens <= 2
    with pytest.raises(InvalidParameterError):
        aclient.with_options(top_p=0)


@pytest.mark.asyncio
async def test_timeouts_reach_the_backend(wrapped: ScriptedBackend) -> None:
    async with AsyncInferenceClient(wrapped, timeout=Timeouts(read_s=5)) as client:
        await client.generate(CHAT, GREEDY)
        await client.generate(CHAT, GREEDY, timeout=Timeouts(connect_s=1, read_s=2))
        async with client.with_options(max_new_tokens=2).stream(CHAT) as stream:
            [piece async for piece in stream]
    assert wrapped.timeouts == [
        Timeouts(read_s=5),
        Timeouts(connect_s=1, read_s=2),
        Timeouts(read_s=5),
    ]


@pytest.mark.asyncio
async def test_prompt_format_is_applied(wrapped: ScriptedBackend) -> None:
    async with AsyncInferenceClient(wrapped, prompt_format="alpaca") as client:
        assert client.prompt_format == "alpaca"
        g = await client.generate(CHAT, GREEDY)
        expected = ALPACA_TEMPLATE.format(instruction="Say hello.")
        assert g.usage.prompt_tokens == wrapped.count_tokens(expected)
        assert client.count_tokens(CHAT) == wrapped.count_tokens(expected)
        async with client.stream("Say hello.", GREEDY) as stream:
            [piece async for piece in stream]
        assert stream.generation is not None
        assert stream.generation.usage.prompt_tokens == g.usage.prompt_tokens
    assert format_prompt(CHAT, "alpaca") == expected


def test_invalid_settings(wrapped: ScriptedBackend) -> None:
    with pytest.raises(ConfigurationError, match="max_workers"):
        AsyncInferenceClient(wrapped, max_workers=0)
    with pytest.raises(ConfigurationError, match="unknown prompt format"):
        AsyncInferenceClient(wrapped, prompt_format="vicuna")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_aclose_waits_for_running_calls_then_closes_the_backend(
    wrapped: ScriptedBackend,
) -> None:
    client = AsyncInferenceClient(wrapped)
    client._own(wrapped)  # as from_settings does with the backend it builds
    running = asyncio.create_task(client.generate(COUNTING, LONG))
    while wrapped.in_flight == 0:  # the generation has started in its thread
        await asyncio.sleep(0.005)
    await client.aclose()
    assert wrapped.events == ["generated", "closed"]  # the model was not freed under a call
    assert (await running).text
    with pytest.raises(InferenceError, match="closed"):
        await client.generate(CHAT, GREEDY)
    with pytest.raises(InferenceError, match="closed"):
        client.stream(CHAT, GREEDY)
    await client.aclose()  # idempotent


@pytest.mark.asyncio
async def test_aclose_fails_calls_still_queued(wrapped: ScriptedBackend) -> None:
    client = AsyncInferenceClient(wrapped, max_workers=1)
    client._own(wrapped)  # as from_settings does with the backend it builds
    running = asyncio.create_task(client.generate(COUNTING, LONG))
    queued = asyncio.create_task(client.generate(CHAT, GREEDY))
    queued_stream = client.stream(CHAT, GREEDY)
    opening = asyncio.create_task(anext(queued_stream))
    while wrapped.in_flight == 0:
        await asyncio.sleep(0.005)
    await client.aclose()
    assert (await running).text
    with pytest.raises(InferenceError, match="closed"):
        await queued
    with pytest.raises(InferenceError, match="closed"):
        await opening
    assert queued_stream.closed
    assert wrapped.calls == 1  # the queued calls never reached the backend
    assert wrapped.events == ["generated", "closed"]


@pytest.mark.asyncio
async def test_aclose_stops_open_streams(wrapped: ScriptedBackend) -> None:
    client = AsyncInferenceClient(wrapped)
    stream = client.stream(COUNTING, LONG)
    assert await anext(stream)
    await client.aclose()
    assert wrapped.streams[0].closed
    assert wrapped.pieces_made < 20
    with pytest.raises(InferenceError, match="closed"):
        async for _piece in stream:  # what was received before is still delivered
            pass
    assert stream.closed


@pytest.mark.asyncio
async def test_a_stream_stopped_as_its_thread_starts_tells_its_reader() -> None:
    """The client closes while a pumped stream's thread is starting (too late to cancel it,
    before it opens the stream): the stream is never opened, and its reader is told."""
    from llm_twin_sdk.inference.async_client import _Pump

    opened: list[bool] = []

    def open_stream() -> TextStream:  # pragma: no cover - must not run
        opened.append(True)
        raise AssertionError("a stopped pump opened its stream")

    pump = _Pump(open_stream)
    pump.stop()  # no future yet: nothing to cancel, the thread runs anyway
    pump.run()
    with pytest.raises(InferenceError, match="closed"):
        await asyncio.wait_for(anext(pump.items()), timeout=5)
    assert opened == []


# -- generate_many -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_generate_many_keeps_order_and_reports_errors_per_item(
    aclient: AsyncInferenceClient, client: InferenceClient
) -> None:
    params = GenerationParams(max_new_tokens=4, temperature=0.0)
    prompts: list[str | list[Message]] = [
        "The capital of France is",
        "word " * 3000,  # too long for the 2048-token window
        "1, 2, 3, 4,",
        "",  # empty
        [Message(role="user", content="Say hello.")],
    ]
    results = await aclient.generate_many(prompts, params, concurrency=3)
    assert len(results) == len(prompts)
    assert isinstance(results[1], PromptTooLongError)
    assert isinstance(results[3], InvalidParameterError)
    for index in (0, 2, 4):
        result = results[index]
        assert isinstance(result, Generation), result
        assert result.text == client.generate(prompts[index], params).text
    assert await aclient.generate_many([], params) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("concurrency", "max_workers"), [(2, 4), (4, 2), (1, 2)])
async def test_generate_many_limits_calls_in_flight(
    wrapped: ScriptedBackend, concurrency: int, max_workers: int
) -> None:
    params = GenerationParams(max_new_tokens=2, temperature=0.0)
    async with AsyncInferenceClient(wrapped, max_workers=max_workers) as client:
        results = await client.generate_many(
            [f"{n} + {n} =" for n in range(6)], params, concurrency=concurrency
        )
    assert all(isinstance(r, Generation) for r in results)
    assert wrapped.calls == 6
    assert wrapped.max_in_flight == min(concurrency, max_workers)


@pytest.mark.asyncio
async def test_generate_many_runs_concurrency_calls_at_a_time_on_a_sync_backend(
    aws_credentials: None,
) -> None:
    """concurrency=16 means 16 requests in flight on the wire, without a second knob (the
    client's thread pool used to cap a sync backend such as SageMaker's at 4)."""
    from llm_twin_sdk.aws import AWSClients
    from llm_twin_sdk.inference.backends.sagemaker import SageMakerBackend

    answer = [{"generated_text": "ok", "details": {"finish_reason": "eos_token"}}]
    with WireServer(default=Json(answer)) as server:
        server.answer_delay_s = 0.3  # a slow model: calls overlap
        aws = AWSClients(region="us-east-1", endpoint_url=server.url)
        async with AsyncInferenceClient(SageMakerBackend("twin", aws=aws)) as client:
            results = await client.generate_many([f"q{n}" for n in range(32)], concurrency=16)
    assert [r.text for r in results if isinstance(r, Generation)] == ["ok"] * 32
    assert server.max_in_flight == 16


@pytest.mark.asyncio
async def test_generate_many_retries_each_item(
    wrapped: ScriptedBackend, policy: RetryPolicy, sleeps: list[float]
) -> None:
    wrapped.failures = [ThrottledError("slow down"), None, ModelError("bad", status=422)]
    async with AsyncInferenceClient(wrapped, retry=policy) as client:
        results = await client.generate_many(["a", "b", "c"], GREEDY, concurrency=1)
    assert isinstance(results[0], Generation)  # retried once
    assert isinstance(results[1], ModelError)  # not retryable: reported in its slot
    assert isinstance(results[2], Generation)
    assert wrapped.calls == 4
    assert len(sleeps) == 1


@pytest.mark.asyncio
async def test_generate_many_raises_bugs_and_rejects_bad_concurrency(
    aclient: AsyncInferenceClient, wrapped: ScriptedBackend
) -> None:
    with pytest.raises(InvalidParameterError, match="concurrency"):
        await aclient.generate_many(["a"], concurrency=0)
    wrapped.failures = [KeyError("a bug, not an SDK error")]
    with pytest.raises(KeyError):
        await aclient.generate_many(["a", "b", "c"], GREEDY, concurrency=2)


# -- retries ------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "failure",
    [ThrottledError("slow down"), ModelUnavailableError("503"), ModelError("busy", status=429)],
)
async def test_transient_errors_are_retried(
    wrapped: ScriptedBackend, policy: RetryPolicy, sleeps: list[float], failure: Exception
) -> None:
    wrapped.failures = [failure]
    async with AsyncInferenceClient(wrapped, retry=policy) as client:
        assert (await client.generate(CHAT, GREEDY)).text
    assert wrapped.calls == 2
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.5


@pytest.mark.asyncio
async def test_attempts_are_bounded(
    wrapped: ScriptedBackend, policy: RetryPolicy, sleeps: list[float]
) -> None:
    wrapped.failures = [ThrottledError("x")] * 5
    async with AsyncInferenceClient(wrapped, retry=policy) as client:
        with pytest.raises(ThrottledError):
            await client.generate(CHAT, GREEDY)
    assert wrapped.calls == 3
    assert len(sleeps) == 2


@pytest.mark.asyncio
async def test_other_errors_are_not_retried(wrapped: ScriptedBackend, policy: RetryPolicy) -> None:
    wrapped.failures = [ModelError("bad input", status=422)]
    async with AsyncInferenceClient(wrapped, retry=policy) as client:
        with pytest.raises(ModelError):
            await client.generate(CHAT, GREEDY)
    assert wrapped.calls == 1


@pytest.mark.asyncio
async def test_default_waits_are_asyncio_sleeps(
    wrapped: ScriptedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def spy(delay: float, result: object = None) -> object:
        waits.append(delay)
        return await real_sleep(delay, result)

    def no_blocking_sleep(seconds: float) -> None:  # pragma: no cover - the failure path
        raise AssertionError("time.sleep would block the event loop")

    monkeypatch.setattr(asyncio, "sleep", spy)
    monkeypatch.setattr(time, "sleep", no_blocking_sleep)
    wrapped.failures = [ThrottledError("slow down")]
    retry = RetryPolicy(max_attempts=2, initial_wait_s=0.05, max_wait_s=0.05)
    async with AsyncInferenceClient(wrapped, retry=retry) as client:
        assert (await client.generate(CHAT, GREEDY)).text
    assert [w for w in waits if w > 0]
    assert all(0 <= w <= 0.05 for w in waits)


@pytest.mark.asyncio
@pytest.mark.parametrize("at_first_piece", [False, True])
async def test_stream_is_retried_before_its_first_piece(
    wrapped: ScriptedBackend,
    policy: RetryPolicy,
    sleeps: list[float],
    client: InferenceClient,
    at_first_piece: bool,
) -> None:
    if at_first_piece:  # the stream opens, then fails before delivering anything
        wrapped.fail_at_piece = (0, ModelUnavailableError("starting"))
    else:  # opening the stream fails
        wrapped.failures = [ModelUnavailableError("starting")]
    async with (
        AsyncInferenceClient(wrapped, retry=policy) as aclient,
        aclient.stream(CHAT, GREEDY) as stream,
    ):
        text = "".join([piece async for piece in stream])
    assert wrapped.calls == 2
    assert len(sleeps) == 1
    assert text == client.generate(CHAT, GREEDY).text
    assert all(s.closed for s in wrapped.streams)


@pytest.mark.asyncio
async def test_stream_is_never_retried_after_its_first_piece(
    wrapped: ScriptedBackend, policy: RetryPolicy
) -> None:
    wrapped.fail_at_piece = (1, ModelUnavailableError("connection lost"))
    async with AsyncInferenceClient(wrapped, retry=policy) as client:
        pieces: list[str] = []
        stream = client.stream(CHAT, GREEDY)
        with pytest.raises(ModelUnavailableError):
            await collect(stream, pieces)
        assert wrapped.calls == 1
        assert len(pieces) == 1  # the piece delivered is not delivered again
        assert stream.text == pieces[0]
        assert (await client.generate(CHAT, GREEDY)).text  # the model was released


# -- native async backends ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_native_coroutines_are_used(policy: RetryPolicy, sleeps: list[float]) -> None:
    backend = NativeScriptedBackend([ThrottledError("slow down")])
    assert isinstance(backend, NativeAsyncBackend)
    async with AsyncInferenceClient(backend, retry=policy) as client:
        assert (await client.generate("hi")).text == "scripted:hi"
        assert backend.calls == 2
        assert len(sleeps) == 1
        results = await client.generate_many(["a", "b", "c"], concurrency=2)
        assert [r.text for r in results if isinstance(r, Generation)] == [
            "scripted:a",
            "scripted:b",
            "scripted:c",
        ]
        backend.failures = [ModelUnavailableError("starting")]
        async with client.stream("hi") as stream:
            text = "".join([piece async for piece in stream])
        assert text == "Hello"
        assert stream.generation == scripted_generation("Hello")
        assert all(s.closed for s in backend.streams)
        assert len(sleeps) == 2
    assert backend.events == []  # borrowed: its creator closes it


@pytest.mark.asyncio
async def test_a_client_closes_only_the_backend_it_built() -> None:
    settings = TwinSettings(backend="http", http_url="http://127.0.0.1:9")
    async with AsyncInferenceClient.from_settings(settings) as client:
        backend = client.backend
    with pytest.raises(InferenceError, match="closed"):
        backend.generate("hi", GREEDY)  # built by from_settings: closed with the client
    with InferenceClient.from_settings(settings) as sync_client:
        sync_backend = sync_client.backend
    with pytest.raises(InferenceError, match="closed"):
        sync_backend.generate("hi", GREEDY)
    async with HttpBackend("http://127.0.0.1:9") as handed:
        async with AsyncInferenceClient(handed):
            pass
        with InferenceClient(handed):
            pass
        with pytest.raises(InferenceError) as refused:  # borrowed: still open, it connects
            await handed.agenerate("hi", GREEDY)
        assert "closed" not in str(refused.value)


@pytest.mark.asyncio
async def test_native_stream_is_never_retried_after_its_first_piece(policy: RetryPolicy) -> None:
    backend = NativeScriptedBackend()
    backend.fail_at_piece = (1, ModelUnavailableError("connection lost"))
    async with AsyncInferenceClient(backend, retry=policy) as client:
        pieces: list[str] = []
        with pytest.raises(ModelUnavailableError):
            await collect(client.stream("hi"), pieces)
    assert pieces == ["Hel"]
    assert backend.calls == 1
    assert backend.streams[0].closed


# -- HttpBackend's own coroutines (httpx.MockTransport: no network) ------------------------------


def _sse(*events: object) -> bytes:
    lines = [f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n" for e in events]
    return "".join(lines).encode()


@pytest.mark.asyncio
async def test_http_backend_runs_natively(policy: RetryPolicy, sleeps: list[float]) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    throttle = [True]  # the first request is throttled

    async def server(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, body))
        if throttle and throttle.pop():
            return httpx.Response(429, json={"error": "slow down"})
        usage = {"prompt_tokens": 3, "completion_tokens": 2}
        if body["stream"]:
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=_sse(
                    {"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}]},
                    {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
                    {"choices": [], "usage": usage},
                    "[DONE]",
                ),
            )
        if "messages" in body:
            choice = {"message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}
        else:
            choice = {"text": f"<{body['prompt'][-10:]}>", "finish_reason": "stop"}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    def no_sync_calls(request: httpx.Request) -> httpx.Response:  # pragma: no cover
        raise AssertionError("the sync httpx client was used")

    backend = HttpBackend(
        "http://127.0.0.1:8000",
        model="twin",
        transport=httpx.MockTransport(no_sync_calls),
        async_transport=httpx.MockTransport(server),
    )
    assert isinstance(backend, NativeAsyncBackend)
    async with AsyncInferenceClient(backend, retry=policy) as client:
        assert (await client.generate(CHAT, GREEDY)).text == "Hello"
        assert [path for path, _ in seen] == ["/v1/chat/completions"] * 2  # 429, then retried
        assert len(sleeps) == 1
        async with client.stream(CHAT, GREEDY) as stream:
            assert [piece async for piece in stream] == ["Hel", "lo"]
        assert stream.generation is not None
        assert stream.generation.usage == Usage(prompt_tokens=3, completion_tokens=2)
        results = await client.generate_many(["one", "two", ""], GREEDY, concurrency=2)
        assert [r.text if isinstance(r, Generation) else type(r) for r in results] == [
            "<one>",
            "<two>",
            InvalidParameterError,
        ]
    # The Alpaca format reaches an OpenAI-compatible server as text, on /v1/completions.
    seen.clear()
    backend = HttpBackend("http://127.0.0.1:8000", async_transport=httpx.MockTransport(server))
    async with AsyncInferenceClient(backend, prompt_format="alpaca") as client:
        g = await client.generate(CHAT, GREEDY)
    [(path, body)] = seen
    assert path == "/v1/completions"
    assert body["prompt"] == ALPACA_TEMPLATE.format(instruction="Say hello.")
    assert g.text == "<Response:\n>"
