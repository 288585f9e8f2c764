"""AsyncInferenceClient: the InferenceClient surface for asyncio, over every backend.

A backend's own coroutines (``HttpBackend``'s, ``LocalBackend``'s) are awaited; any other
backend runs in threads owned by the client, so the event loop never blocks. Example::

    with LocalBackend() as backend:                      # closed by its creator
        async with AsyncInferenceClient(backend) as client:  # borrows it
            print((await client.generate("Name three GPU types.")).text)
            results = await client.generate_many(["Hi", "Bye"], concurrency=4)  # input order
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, Self, TypeAlias, TypeVar, cast, runtime_checkable

from ..errors import ConfigurationError, InferenceError, InvalidParameterError, LLMTwinError
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy, is_transient_inference_error
from ..types import Generation, GenerationParams, Prompt, Timeouts
from .async_stream import AsyncTextStream
from .backend import Backend, NormalizedPrompt
from .client import ClientOptions
from .invocation import Invocation
from .prompt_format import PromptFormat
from .stream import TextStream

__all__ = ["AsyncInferenceClient", "ManyResult", "NativeAsyncBackend"]

T = TypeVar("T")

ManyResult: TypeAlias = Generation | LLMTwinError
"""One slot of :meth:`AsyncInferenceClient.generate_many`: the generation, or why it failed."""

_ON_DEMAND = 1024
"""The thread cap of ``max_workers=None``: threads start only when no idle one is free, so the
calls actually in flight (``generate_many``'s ``concurrency``) set the number of threads."""


@runtime_checkable
class NativeAsyncBackend(Protocol):
    """A backend that also offers coroutines (one attempt each, like the sync methods)."""

    async def agenerate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """Generate a whole completion without blocking the event loop."""
        ...

    def astream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> AsyncTextStream:
        """Stream a completion as an async iterator of text pieces."""
        ...


class AsyncInferenceClient(ClientOptions):
    """Typed async text generation over one backend, with default :class:`GenerationParams`.

    The async twin of :class:`~llm_twin_sdk.InferenceClient`: same arguments and methods,
    awaited; the backend's ``agenerate`` / ``astream`` are used when it has them, its sync
    methods in threads otherwise. One more argument: ``max_workers``, a cap on those threads
    (shared by :meth:`with_options` copies); ``None`` (default): threads start as calls need
    them, so ``generate_many(concurrency=N)`` runs N calls at a time.

    Example: ``await AsyncInferenceClient(LocalBackend()).generate("Write a haiku")``.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        params: GenerationParams | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        timeout: Timeouts | None = None,
        prompt_format: PromptFormat | None = None,
        max_workers: int | None = None,
    ) -> None:
        if max_workers is not None and max_workers < 1:
            raise ConfigurationError(f"max_workers must be >= 1, got {max_workers}")
        super().__init__(
            backend, params=params, retry=retry, timeout=timeout, prompt_format=prompt_format
        )
        self._native = backend if isinstance(backend, NativeAsyncBackend) else None
        self._pool = _ThreadPool(max_workers)
        self._owns_pool = True
        self._closed = False

    async def generate(
        self,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        timeout: Timeouts | None = None,
    ) -> Generation:
        """Generate a completion for a text prompt or chat messages.

        Cancelling the awaiting task abandons the result; a native backend's call stops
        (``LocalBackend``: withdrawn from its queue, or stopped at the next token), a sync
        backend's call that has already started in a thread runs to its end.
        """
        self._check_open()
        normalized, chosen, limits = self._call(prompt, params, timeout)
        native, backend = self._native, self._backend

        async def attempt() -> Generation:
            if native is not None:
                return await native.agenerate(normalized, chosen, timeout=limits)
            call = functools.partial(backend.generate, normalized, chosen, timeout=limits)
            return await self._pool.run(call)

        return await self._retry.acall(attempt, is_transient_inference_error)

    def stream(
        self,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        timeout: Timeouts | None = None,
    ) -> AsyncTextStream:
        """Stream a completion piece by piece; use it in an ``async with`` block.

        Nothing is sent until the stream is entered (``async with``, ``await``) or its first
        piece is awaited; errors of opening are raised there. Opening the stream and receiving
        its first piece are retried like :meth:`generate`; a failure after the first piece
        is raised as it is (no piece is ever repeated). Closing the stream early (leaving the
        ``async with`` block) stops the generation and releases the model.

        Example: ``async with client.stream("Write a haiku") as s: print([p async for p in s])``.
        """
        self._check_open()
        normalized, chosen, limits = self._call(prompt, params, timeout)
        native, backend, pool = self._native, self._backend, self._pool

        def open_inner() -> AsyncTextStream:
            if native is not None:
                return native.astream(normalized, chosen, timeout=limits)
            return pool.stream(lambda: backend.stream(normalized, chosen, timeout=limits))

        return _retried_stream(open_inner, self._retry)

    async def invoke(
        self,
        body: object,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: Timeouts | None = None,
    ) -> Invocation:
        """Send ``body`` as it is and return the answer, any content type: the async twin of
        :meth:`InferenceClient.invoke <llm_twin_sdk.InferenceClient.invoke>` (same encoding,
        retries and errors); the call runs in the client's threads.

        Example: ``(await client.invoke("1,2\n", content_type="text/csv")).json()``.
        """
        self._check_open()
        attempt = self._plain_call(body, content_type, accept, timeout)

        async def run() -> Invocation:
            return await self._pool.run(attempt)

        return await self._retry.acall(run, is_transient_inference_error)

    async def generate_many(
        self,
        prompts: Iterable[Prompt],
        params: GenerationParams | None = None,
        *,
        timeout: Timeouts | None = None,
        concurrency: int = 8,
    ) -> list[ManyResult]:
        """Generate for every prompt, at most ``concurrency`` at a time, results in input order.

        Each slot holds the :class:`Generation`, or the SDK error (:class:`LLMTwinError`:
        an invalid or too long prompt, a model error after retries...) that ended that
        prompt; one failure never fails the batch. Any other exception is a bug: it cancels
        the remaining work and is raised. Each prompt is retried like :meth:`generate`.

        ``concurrency`` alone bounds the calls in flight, on every backend (a client built with
        an explicit ``max_workers`` also keeps to that cap). Example::

            results = await client.generate_many(questions, concurrency=16)
            failed = {i: r for i, r in enumerate(results) if isinstance(r, LLMTwinError)}
        """
        if concurrency < 1:
            raise InvalidParameterError(f"concurrency must be >= 1, got {concurrency}")
        items = list(prompts)
        results: list[ManyResult | None] = [None] * len(items)
        pending = iter(range(len(items)))

        async def worker() -> None:
            for index in pending:  # shared: each index is taken by one worker
                try:
                    results[index] = await self.generate(items[index], params, timeout=timeout)
                except LLMTwinError as exc:
                    results[index] = exc

        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(items)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return cast(list[ManyResult], results)  # every worker ended normally: all slots filled

    def _check_open(self) -> None:
        if self._closed:
            raise _closed_error()
        self._pool.check_open()

    def with_options(self, **params: Any) -> Self:
        """A copy with other default generation parameters (see the sync client's); it
        borrows the backend and the threads: closing it closes neither, the original does."""
        clone = super().with_options(**params)
        clone._owns_pool = False
        return clone

    async def aclose(self) -> None:
        """Stop open streams, wait for calls running in threads, then close what this client
        created: its threads, and the backend of :meth:`from_settings` (a backend handed to
        the constructor is borrowed and stays open).

        Waiting first matters: a model must not be freed while a thread still uses it.
        Safe to call more than once; calls after it raise :class:`InferenceError`.
        """
        if self._owns_pool:
            await self._pool.aclose()
        self._closed = True
        await self._aclose_owned()

    async def __aenter__(self) -> AsyncInferenceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# -- the thread pool and the stream pump ----------------------------------------------------------


class _ThreadPool:
    """One bounded ThreadPoolExecutor (it starts threads on demand); shared by ``with_options``
    copies."""

    def __init__(self, max_workers: int | None) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers or _ON_DEMAND, thread_name_prefix="llm-twin-async"
        )
        self._lock = threading.Lock()
        self._closed = False
        self._pumps: weakref.WeakSet[_Pump] = weakref.WeakSet()

    def check_open(self) -> None:
        if self._closed:
            raise _closed_error()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        with self._lock:
            self.check_open()
            return self._executor.submit(fn)

    async def run(self, fn: Callable[[], T]) -> T:
        future = self.submit(fn)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and self._closed and task is not None and not task.cancelling():
                # Still queued when the client closed: it never ran. Not a task cancellation.
                raise _closed_error() from None
            raise

    def stream(self, open_stream: Callable[[], TextStream]) -> AsyncTextStream:
        """The sync stream ``open_stream`` opens, driven by a :class:`_Pump` in a pool thread."""
        pump = _Pump(open_stream)
        pump.future = self.submit(pump.run)
        self._pumps.add(pump)
        return AsyncTextStream(pump.items(), on_close=pump.aclose)

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
        for pump in list(self._pumps):
            pump.stop()
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)


def _closed_error() -> InferenceError:
    return InferenceError("this AsyncInferenceClient is closed; create a new one")


class _Pump:
    """Drives one sync :class:`TextStream` in a pool thread; the event loop reads its pieces.

    The same thread opens, iterates and closes the stream (a sync backend's stream need not
    be thread-safe). Pieces go to an unbounded queue: the stream never waits for
    the reader. :meth:`stop` makes the thread close the stream before its next piece.
    """

    def __init__(self, open_stream: Callable[[], TextStream]) -> None:
        self._open = open_stream
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | Generation | BaseException] = asyncio.Queue()
        self._stopping = threading.Event()
        self.future: Future[None] | None = None

    def run(self) -> None:  # in a pool thread
        try:
            if not self._stopping.is_set():  # stopped before it ran: never opened
                with self._open() as stream:
                    while not self._stopping.is_set():
                        try:
                            piece = next(stream)
                        except StopIteration:
                            self._deliver(stream.generation or _no_result())
                            return
                        self._deliver(piece)
        except BaseException as exc:
            self._deliver(exc)
            return
        # Stopped: by the stream's own close (nobody reads), or by the client's (tell the reader).
        self._deliver(_closed_error())

    def _deliver(self, item: str | Generation | BaseException) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody will read
            self._stopping.set()

    async def items(self) -> AsyncGenerator[str | Generation, None]:
        """The pieces, then the Generation (the source of an :class:`AsyncTextStream`)."""
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, Generation):
                return

    def stop(self) -> None:
        """Ask the thread to close the stream (a pump not yet started never opens it)."""
        self._stopping.set()
        if self.future is not None and self.future.cancel():  # it never ran: tell the reader
            self._queue.put_nowait(_closed_error())

    async def aclose(self) -> None:
        """Stop, and wait until the sync stream is closed and the model released."""
        self.stop()
        if self.future is not None and not self.future.cancelled():
            await asyncio.shield(asyncio.wrap_future(self.future))


def _no_result() -> InferenceError:
    return InferenceError("the backend's stream ended without a result")


def _retried_stream(
    open_inner: Callable[[], AsyncTextStream], retry: RetryPolicy
) -> AsyncTextStream:
    """An :class:`AsyncTextStream` over the backend's, whose opening and first piece are
    retried with ``retry``; opened by ``async with`` / ``await`` (errors raised there) or by
    the first ``anext``."""
    opened: list[tuple[AsyncTextStream, str | None]] = []

    async def open_first() -> tuple[AsyncTextStream, str | None]:
        inner = open_inner()
        try:
            return inner, await anext(inner, None)
        except BaseException:
            await inner.aclose()
            raise

    async def opener() -> None:
        opened.append(await retry.acall(open_first, is_transient_inference_error))

    async def source() -> AsyncGenerator[str | Generation, None]:
        inner, first = opened[0]
        if first is not None:
            yield first
            async for piece in inner:
                yield piece
        if inner.generation is None:  # pragma: no cover - backends always return one
            raise _no_result()
        yield inner.generation

    async def on_close() -> None:
        if opened:
            await opened[0][0].aclose()

    return AsyncTextStream(source(), opener=opener, on_close=on_close)
