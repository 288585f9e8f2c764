"""ModelWorker: the one thread that runs a local model's generations, in arrival order.

Every thread or task that shares a :class:`~llm_twin_sdk.LocalBackend` submits a
:class:`Request` to one FIFO queue; the worker takes them one at a time and pushes what it
generates (text pieces, then the final ``Generation``, or an error) into the request's own
queue, ahead of its reader. Which thread asks never matters, and nobody holds the model while
waiting for a reader (docs/architecture.md, "Concurrency")::

    worker = ModelWorker(llm, name="SmolLM2")
    request = SyncRequest(job, queue_timeout_s=120, idle_timeout_s=None)
    worker.submit(request)
    generation = request.take()          # blocks; ModelBusyError after 120 s in the queue

A request ends early when it is cancelled (its reader closed the stream, its task was
cancelled, the backend closed) or when its reader has not read for ``idle_timeout_s``: the job
checks :meth:`Request.should_stop` at every token. Tokenizing stays on the callers' threads
(llama.cpp's tokenizer is safe next to a running decode); :meth:`ModelWorker.borrow` only keeps
the model from being freed under them.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

from ...errors import InferenceError, LLMTwinError, ModelBusyError, StreamAbandonedError
from ...types import Generation

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["AsyncRequest", "Item", "ModelWorker", "Request", "SyncRequest"]

Item: TypeAlias = "str | Generation | BaseException"
"""What a request's reader receives: a text piece, the final Generation, or its error."""

Job: TypeAlias = "Callable[[Llama, Request], Generation]"
"""What the worker runs for a request: generates (putting pieces for a stream) and returns
the final Generation."""

_QUEUED, _RUNNING, _DONE = "queued", "running", "done"


def closed_error() -> InferenceError:
    return InferenceError("this LocalBackend is closed; create a new one")


class Request:
    """One generation waiting for, or running on, the model; read by one consumer."""

    def __init__(
        self, job: Job, *, queue_timeout_s: float | None, idle_timeout_s: float | None
    ) -> None:
        self.job = job
        self.state = _QUEUED  # changed by the worker, under its lock
        self.submitted = time.monotonic()
        self._queue_timeout_s = queue_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._stop_reason: BaseException | None = None
        self._cancelled = False
        self._reading = False
        self._last_read = self.submitted
        self._delivered: list[str] = []  # pieces put, for a StreamAbandonedError's partial_text
        self._withdraw: Callable[[Request], bool] = lambda request: False

    # -- the worker's side ----------------------------------------------------------------

    def started(self) -> None:
        """The worker took the request: the reader's idle clock starts now at the latest."""
        self._last_read = max(self._last_read, time.monotonic())

    def should_stop(self) -> bool:
        """Checked at every token: cancelled, or the reader idle for too long."""
        if self._cancelled:
            return True
        idle = self._idle_timeout_s
        if idle is not None and not self._reading and time.monotonic() - self._last_read > idle:
            self._stop_reason = StreamAbandonedError(
                f"nobody read this stream for {idle:g} s (stream_idle_timeout_s): generation "
                "was stopped and the model given to the next request; read streams promptly, "
                "or raise stream_idle_timeout_s",
                partial_text="".join(self._delivered),
            )
            return True
        return False

    def stop_criteria(self, _input_ids: Any, _logits: Any) -> bool:
        """``should_stop`` in llama-cpp-python's stopping-criteria signature."""
        return self.should_stop()

    @property
    def stop_reason(self) -> BaseException | None:
        """Why generation was stopped early, to tell the reader (``None``: not stopped, or
        by the reader itself)."""
        return self._stop_reason

    def put_piece(self, piece: str) -> None:
        self._delivered.append(piece)
        self.put(piece)

    def put(self, item: Item) -> None:  # pragma: no cover - every subclass delivers
        raise NotImplementedError

    # -- the reader's side ----------------------------------------------------------------

    def cancel(self, reason: BaseException | None = None) -> None:
        """Stop this request: withdrawn if still queued, stopped at the next token if
        running. ``reason`` is delivered to the reader (``None``: the reader is gone)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._cancelled = True
        if self._withdraw(self) and reason is not None:
            self.put(reason)

    def _begin_read(self) -> float | None:
        """Mark a read in progress; the time left to wait for the model, if still queued."""
        self._reading = True
        if self.state != _QUEUED or self._queue_timeout_s is None:
            return None
        return max(0.0, self.submitted + self._queue_timeout_s - time.monotonic())

    def _end_read(self) -> None:
        self._last_read = time.monotonic()
        self._reading = False

    def _timed_out(self) -> None:
        """After a wait timed out: :class:`ModelBusyError` if the request was still queued
        (it is withdrawn: it never runs); nothing if the worker took it meanwhile."""
        if self._withdraw(self):
            raise ModelBusyError(
                f"the local model stayed busy with other requests for {self._queue_timeout_s:g}"
                " s (queue_timeout_s); this request was withdrawn and never ran. Retry later, "
                "lower the load, or use a server backend with parallel slots",
                waited_s=time.monotonic() - self.submitted,
            )

    @staticmethod
    def _unwrap(item: Item) -> str | Generation:
        if isinstance(item, BaseException):
            raise item
        return item


class SyncRequest(Request):
    """A request read by a thread: :meth:`take` blocks."""

    def __init__(
        self, job: Job, *, queue_timeout_s: float | None, idle_timeout_s: float | None
    ) -> None:
        super().__init__(job, queue_timeout_s=queue_timeout_s, idle_timeout_s=idle_timeout_s)
        self._items: queue.SimpleQueue[Item] = queue.SimpleQueue()

    def put(self, item: Item) -> None:
        self._items.put(item)

    def take(self) -> str | Generation:
        """The next piece or the final Generation; raises the request's error."""
        try:
            while True:
                try:
                    return self._unwrap(self._items.get(timeout=self._begin_read()))
                except queue.Empty:
                    self._timed_out()
        finally:
            self._end_read()


class AsyncRequest(Request):
    """A request read by a coroutine on ``loop``: :meth:`atake` never blocks the loop; the
    worker hands each item over with ``loop.call_soon_threadsafe``."""

    def __init__(
        self,
        job: Job,
        *,
        loop: asyncio.AbstractEventLoop,
        queue_timeout_s: float | None,
        idle_timeout_s: float | None,
    ) -> None:
        super().__init__(job, queue_timeout_s=queue_timeout_s, idle_timeout_s=idle_timeout_s)
        self._loop = loop
        self._items: asyncio.Queue[Item] = asyncio.Queue()

    def put(self, item: Item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody will read
            self._cancelled = True

    async def atake(self) -> str | Generation:
        """The next piece or the final Generation; raises the request's error."""
        try:
            while True:
                timeout = self._begin_read()
                try:
                    if timeout is None:  # no task per piece
                        return self._unwrap(await self._items.get())
                    return self._unwrap(await asyncio.wait_for(self._items.get(), timeout))
                except TimeoutError:
                    self._timed_out()
        finally:
            self._end_read()


class ModelWorker:
    """Owns a llama.cpp model and the one thread that generates with it (FIFO).

    :meth:`close` fails the queued requests, stops the running one at its next token, and
    has the worker free the model once no caller thread is tokenizing with it.
    """

    def __init__(self, llm: Llama, *, name: str) -> None:
        self._llm: Llama | None = llm
        self._queue: deque[Request] = deque()
        self._lock = threading.Condition()
        self._running: Request | None = None
        self._borrowers = 0
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"llm-twin-model-{name}")
        self._thread.daemon = True  # an unclosed backend must not keep the process alive
        self._thread.start()

    @property
    def pending(self) -> int:
        """Requests queued or running."""
        with self._lock:
            return len(self._queue) + (self._running is not None)

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, request: Request) -> None:
        """Queue ``request`` behind every request submitted before it."""
        with self._lock:
            if self._closed:
                raise closed_error()
            request._withdraw = self._withdraw
            self._queue.append(request)
            self._lock.notify()

    @contextmanager
    def borrow(self) -> Iterator[Llama]:
        """The model, for a caller thread's tokenizing; it is not freed until returned."""
        with self._lock:
            if self._closed or self._llm is None:
                raise closed_error()
            self._borrowers += 1
            llm = self._llm
        try:
            yield llm
        finally:
            with self._lock:
                self._borrowers -= 1
                self._lock.notify_all()

    def close(self) -> None:
        """Fail queued requests, stop the running one, free the model. Idempotent."""
        with self._lock:
            self._closed = True
            queued, running = list(self._queue), self._running
            self._queue.clear()
            self._lock.notify_all()
        for request in queued:
            request.state = _DONE
            request.put(InferenceError("the LocalBackend was closed before this request ran"))
        if running is not None:
            running.cancel(InferenceError("the LocalBackend was closed during this generation"))
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _withdraw(self, request: Request) -> bool:
        """Take a still-queued ``request`` out of the queue: it will never run."""
        with self._lock:
            if request.state != _QUEUED:
                return False
            request.state = _DONE
            self._queue.remove(request)  # a queued request is in the queue
            return True

    def _serve(self) -> None:  # the worker thread
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue:  # closed, and nothing left
                    break
                request = self._queue.popleft()
                request.state = _RUNNING
                self._running = request
                llm = self._llm
            assert llm is not None  # freed only below, after the loop
            request.started()
            try:
                result: Item = request.job(llm, request)
            except LLMTwinError as exc:
                result = exc
            except BaseException as exc:  # the worker must survive any failure of one job
                result = InferenceError(f"llama.cpp generation failed: {exc}")
                result.__cause__ = exc
            with self._lock:
                request.state = _DONE
                self._running = None
            request.put(request.stop_reason or result)
        with self._lock:
            while self._borrowers:
                self._lock.wait()
            llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()
