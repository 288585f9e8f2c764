"""AsyncTextStream: the asyncio twin of :class:`~llm_twin_sdk.inference.stream.TextStream`.

An async iterator of text pieces that keeps the text received so far and, once exhausted, the
final :class:`~llm_twin_sdk.types.Generation`. Leaving ``async with`` (or awaiting
:meth:`AsyncTextStream.aclose`) early stops generation and releases the connection.

Example::

    async with await backend.astream("Write a haiku about GPUs", params) as stream:
        async for piece in stream:
            print(piece, end="", flush=True)
    print(stream.generation.usage)           # set once the stream is exhausted

A stream may be *opened* before its first piece: ``await backend.astream(...)`` (or entering
``async with``) sends the request and raises an HTTP or connection error right there; plain
``async for`` opens it on the first piece. Both spellings work on the same object.

Unlike a sync stream, an async stream cannot release its connection from the garbage
collector: always use ``async with`` or ``await stream.aclose()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import Any

from ..types import Generation

__all__ = ["AsyncTextStream"]


class AsyncTextStream(AsyncIterator[str]):
    """Async iterator of text pieces; the final :class:`Generation` is kept when it ends.

    Args:
        source: yields text pieces, then (as its last item) the final ``Generation``.
            An async generator is closed with ``aclose()`` when the stream is closed early.
        opener: awaited once, before the first piece is read: sends the request and raises
            its errors. ``await stream`` and ``async with stream`` run it eagerly.
        on_close: awaited exactly once when the stream ends, fails or is closed (after the
            source is closed), e.g. to release an HTTP response.

    Example (wrapping any async generator)::

        async def pieces():
            yield "Hello"
            yield ", world"
            yield Generation(text="Hello, world", finish_reason="stop", usage=usage,
                             latency_s=0.1, model="m")

        async with AsyncTextStream(pieces()) as stream:
            assert [p async for p in stream] == ["Hello", ", world"]
        assert stream.generation is not None and stream.text == "Hello, world"
    """

    def __init__(
        self,
        source: AsyncIterator[str | Generation],
        *,
        opener: Callable[[], Awaitable[None]] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._source = source
        self._opener = opener
        self._on_close = on_close
        self._pieces: list[str] = []
        self._generation: Generation | None = None
        self._opened = opener is None
        self._closed = False

    # -- opening --------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._opened:
            return
        self._opened = True
        assert self._opener is not None
        try:
            await self._opener()
        except BaseException:
            await self.aclose()
            raise

    async def _opened_self(self) -> AsyncTextStream:
        await self._open()
        return self

    def __await__(self) -> Generator[Any, None, AsyncTextStream]:
        """``await stream`` opens it (errors are raised here) and returns the stream itself."""
        return self._opened_self().__await__()

    # -- iteration ------------------------------------------------------------------------

    def __aiter__(self) -> AsyncTextStream:
        return self

    async def __anext__(self) -> str:
        if self._closed:
            raise StopAsyncIteration
        try:
            await self._open()
            item = await self._source.__anext__()
        except StopAsyncIteration:
            await self.aclose()
            raise
        except BaseException:
            await self.aclose()
            raise
        if isinstance(item, Generation):
            self._generation = item
            await self.aclose()
            raise StopAsyncIteration
        self._pieces.append(item)
        return item

    async def __aenter__(self) -> AsyncTextStream:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- state ----------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._pieces)

    @property
    def generation(self) -> Generation | None:
        """The final generation (text, usage, finish reason); ``None`` until exhausted."""
        return self._generation

    @property
    def closed(self) -> bool:
        """True once the stream is exhausted, failed or closed."""
        return self._closed

    async def aclose(self) -> None:
        """Stop generating and release resources. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._source, "aclose", None)
            if close is not None:
                await close()
        finally:
            if self._on_close is not None:
                await self._on_close()
