"""LocalBackend shared by many threads and tasks: one worker serves them in arrival order,
abandoned streams release the model without garbage collection, waits are bounded, close
fails what is queued. Real SmolLM2; short generations, except the stories that are stopped.

Timing bounds here are generous correctness limits (a stopped story frees the model within a
few tokens; left alone it would run 1000 tokens, 8-15 s), not speed targets."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from llm_twin_sdk import (
    AsyncInferenceClient,
    GenerationParams,
    InferenceClient,
    InferenceError,
    LocalBackend,
    Message,
    ModelBusyError,
    StreamAbandonedError,
    StreamBrokenError,
)
from llm_twin_sdk.inference.async_client import NativeAsyncBackend
from llm_twin_sdk.retry import RetryPolicy

pytestmark = pytest.mark.slow

SHORT = GenerationParams(max_new_tokens=6, temperature=0.0)
STORY = [Message(role="user", content="Write a long story about a dragon, at least 2000 words.")]
LONG = GenerationParams(max_new_tokens=1000, temperature=0.0)  # runs to its limit: 8-15 s
RELEASED_WITHIN_S = 3.0  # a stopped story frees the model in a token or two


@pytest.fixture
def options() -> dict[str, Any]:
    return {}


@pytest.fixture
def backend(options: dict[str, Any]) -> Iterator[LocalBackend]:
    with LocalBackend(n_ctx=2048, **options) as backend:
        yield backend


def wait_until(condition: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``condition`` held; fails after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"not within {timeout_s} s")
        time.sleep(0.005)
    return time.monotonic() - started


def prompt(n: int) -> str:
    return f"Question {n}: what is {n} + {n}? Answer:"


# -- threads ----------------------------------------------------------------------------------


def test_eight_threads_streaming_are_served_in_arrival_order(backend: LocalBackend) -> None:
    """The users' FastAPI report: 7 of 8 concurrent streams failed (the lock belonged to a
    thread, and the server's pool reuses threads). Now all 8 wait their turn, in order."""
    client = InferenceClient(backend)
    expected = [backend.generate(prompt(n), SHORT).text for n in range(8)]
    blocker = client.stream(STORY, LONG)  # holds the model while the 8 arrive
    first_piece_at: dict[int, float] = {}
    texts: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with client.stream(prompt(n), SHORT) as stream:
                first = next(stream)
                first_piece_at[n] = time.monotonic()
                texts[n] = first + "".join(stream)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = []
    for n in range(8):  # arrival order = n: each one is queued before the next starts
        threads.append(threading.Thread(target=work, args=(n,)))
        threads[-1].start()
        wait_until(lambda n=n: backend.pending_requests == n + 2, 30)  # type: ignore[misc]
    blocker.close()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert [texts[n] for n in range(8)] == expected
    assert sorted(range(8), key=first_piece_at.__getitem__) == list(range(8))
    assert backend.pending_requests == 0


def test_tokenizing_on_callers_threads_is_safe_while_the_worker_decodes(
    backend: LocalBackend,
) -> None:
    """count_tokens stays on the caller's thread (llama.cpp's tokenizer is thread-safe);
    while the worker generates, counts from four threads match the idle ones."""
    texts = [f"{'lorem ipsum ' * n} {n}" for n in range(1, 40)]
    idle = [backend.count_tokens(t) for t in texts]
    results: list[list[int]] = []
    with backend.stream(STORY, LONG):  # generating, unread
        wait_until(lambda: backend.pending_requests == 1, 30)

        def count() -> None:
            results.append([backend.count_tokens(t) for t in texts])

        threads = [threading.Thread(target=count) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert results == [idle] * 4


# -- abandoned streams ------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"stream_idle_timeout_s": 0.3}])
def test_a_stream_dropped_in_a_reference_cycle_is_stopped_by_the_idle_timeout(
    backend: LocalBackend,
) -> None:
    """The users' SSE report: an abandoned stream held the model until gc.collect(). With
    the collector off, the worker stops it after 0.3 s unread and serves the next call."""
    gc.disable()
    try:
        stream = backend.stream(STORY, LONG)
        first = next(stream)
        alive = weakref.ref(stream)
        cycle: list[Any] = [stream]
        cycle.append(cycle)
        del stream, cycle
        assert backend.generate(prompt(1), SHORT).text  # waited behind the abandoned stream
        dropped = alive()
        assert dropped is not None  # still alive: nothing collected it
        with pytest.raises(StreamAbandonedError, match="stream_idle_timeout_s") as info:
            for _piece in dropped:  # what was generated before the stop is delivered first
                pass
    finally:
        gc.enable()
    assert isinstance(info.value, StreamBrokenError)
    assert dropped.text == info.value.partial_text  # every piece made was delivered
    assert info.value.partial_text.startswith(first)
    # Stopped after about 0.3 s of tokens, far from the 1000 a full generation makes.
    assert backend.count_tokens(info.value.partial_text) < LONG.max_new_tokens / 2


@pytest.mark.parametrize("how", ["close", "with", "generator exit"])
def test_an_early_close_releases_the_model_at_once(backend: LocalBackend, how: str) -> None:
    """A server's handler that stops reading (client disconnect: GeneratorExit in the SSE
    generator, or the `with` block left) stops generation at the next token."""
    client = InferenceClient(backend)
    if how == "close":
        stream = client.stream(STORY, LONG)
        next(stream)
        stream.close()
    elif how == "with":
        with client.stream(STORY, LONG) as stream:
            next(stream)
    else:

        def sse() -> Generator[str, None, None]:  # what a streaming route yields
            with client.stream(STORY, LONG) as stream:
                for piece in stream:
                    yield f"data: {piece}\n\n"

        events = sse()
        next(events)
        events.close()  # the server closes the generator when the client disconnects
    assert wait_until(lambda: backend.pending_requests == 0, RELEASED_WITHIN_S) < RELEASED_WITHIN_S
    assert client.generate(prompt(2), SHORT).text


# -- bounded waits ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"queue_timeout_s": 0.3}])
def test_a_wait_for_the_busy_model_is_bounded(backend: LocalBackend) -> None:
    sleeps: list[float] = []
    client = InferenceClient(backend, retry=RetryPolicy(max_attempts=3, sleep=sleeps.append))
    with client.stream(STORY, LONG) as blocker:
        next(blocker)
        started = time.monotonic()
        with pytest.raises(ModelBusyError, match="queue_timeout_s") as info:
            client.generate(prompt(3), SHORT)
        assert time.monotonic() - started < RELEASED_WITHIN_S
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, InferenceError)
        assert info.value.waited_s >= 0.3
        assert sleeps == []  # not retried: it already waited
        with pytest.raises(ModelBusyError):
            client.stream(prompt(3), SHORT)  # opening reads the first piece: same wait
        assert backend.pending_requests == 1  # both withdrawn: only the blocker is left
    wait_until(lambda: backend.pending_requests == 0, RELEASED_WITHIN_S)


def test_close_fails_queued_requests_and_stops_the_running_one(backend: LocalBackend) -> None:
    results: list[BaseException | str] = []

    def call() -> None:
        try:
            results.append(backend.generate(prompt(4), SHORT).text)
        except InferenceError as exc:
            results.append(exc)

    running = backend.stream(STORY, LONG)
    first = next(running)
    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_until(lambda: backend.pending_requests == 3, 30)
    started = time.monotonic()
    backend.close()  # returns once the model is freed
    assert time.monotonic() - started < RELEASED_WITHIN_S
    for thread in threads:
        thread.join(timeout=30)
    assert [str(r) for r in results] == ["the LocalBackend was closed before this request ran"] * 2
    with pytest.raises(InferenceError, match="closed during this generation"):
        for _piece in running:
            pass
    assert running.text.startswith(first)
    with pytest.raises(InferenceError, match="closed"):
        backend.generate(prompt(4), SHORT)
    with pytest.raises(InferenceError, match="closed"):
        backend.count_tokens("hi")
    assert backend.pending_requests == 0


def test_a_dropped_backend_frees_its_model() -> None:
    backend = LocalBackend(n_ctx=256)
    worker = weakref.ref(backend._worker)
    thread = backend._worker._thread
    del backend
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()  # the worker ended and freed the model
    assert worker() is None


# -- asyncio ----------------------------------------------------------------------------------


class Heartbeat:
    """Ticks every 10 ms on the event loop; ``max_lag_s`` is its worst delay."""

    def __init__(self) -> None:
        self.max_lag_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.max_lag_s = max(self.max_lag_s, time.monotonic() - before - 0.01)

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.mark.asyncio
async def test_eight_tasks_stream_through_the_async_client(backend: LocalBackend) -> None:
    assert isinstance(backend, NativeAsyncBackend)  # no pump thread per stream
    expected = [backend.generate(prompt(n), SHORT).text for n in range(8)]

    async def read(client: AsyncInferenceClient, n: int) -> str:
        async with client.stream(prompt(n), SHORT) as stream:
            return "".join([piece async for piece in stream])

    async with Heartbeat() as heartbeat, AsyncInferenceClient(backend) as client:
        texts = await asyncio.gather(*(read(client, n) for n in range(8)))
    assert texts == expected
    assert heartbeat.max_lag_s < 0.5  # the loop never waited on the model
    pool_threads = [t for t in threading.enumerate() if t.name.startswith("llm-twin-async")]
    assert pool_threads == []  # native: no pump thread per stream


@pytest.mark.asyncio
async def test_cancelling_a_task_mid_stream_releases_the_model(backend: LocalBackend) -> None:
    client = AsyncInferenceClient(backend)
    reading = asyncio.Event()

    async def read() -> None:
        async with client.stream(STORY, LONG) as stream:
            async for _piece in stream:
                reading.set()

    task = asyncio.create_task(read())
    await asyncio.wait_for(reading.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    while backend.pending_requests:
        assert time.monotonic() - started < RELEASED_WITHIN_S
        await asyncio.sleep(0.005)
    assert (await client.generate(prompt(5), SHORT)).text


@pytest.mark.asyncio
@pytest.mark.parametrize("options", [{"queue_timeout_s": 0.3}])
async def test_async_waits_are_bounded_and_cancellable(backend: LocalBackend) -> None:
    client = AsyncInferenceClient(backend)
    async with client.stream(STORY, LONG) as blocker:
        await anext(blocker)
        with pytest.raises(ModelBusyError):
            await client.generate(prompt(6), SHORT)
        with pytest.raises(ModelBusyError):
            async with client.stream(prompt(6), SHORT):
                pass  # pragma: no cover - opening fails
        waiting = asyncio.create_task(client.generate(prompt(6), SHORT))
        while backend.pending_requests < 2:
            await asyncio.sleep(0.005)
        waiting.cancel()  # a cancelled task leaves the queue at once
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert backend.pending_requests == 1


@pytest.mark.asyncio
async def test_close_fails_queued_async_calls(backend: LocalBackend) -> None:
    async with AsyncInferenceClient(backend).stream(STORY, LONG) as running:
        await anext(running)
        queued = asyncio.create_task(backend.agenerate(prompt(7), SHORT))
        while backend.pending_requests < 2:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(backend.close)
        with pytest.raises(InferenceError, match="closed before this request ran"):
            await queued
        with pytest.raises(InferenceError, match="closed during this generation"):
            async for _piece in running:
                pass
