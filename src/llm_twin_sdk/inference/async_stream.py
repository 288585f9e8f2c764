"""AsyncTextStream: the asyncio twin of :class:`~llm_twin_sdk.inference.stream.TextStream`.

``await`` or ``async with`` opens it (sends the request, raises its errors), plain ``async for``
on the first piece. The garbage collector cannot release its connection: always use
``async with`` or ``await stream.aclose()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Self

from ..types import Generation
from .stream import StreamRecord

__all__ = ["AsyncTextStream"]


class AsyncTextStream(StreamRecord, AsyncIterator[str]):
    """Async iterator of text pieces; the final :class:`Generation` is kept when it ends.

    Args:
        source: yields text pieces, then (as its last item) the final ``Generation``.
            An async generator is closed with ``aclose()`` when the stream is closed early.
        opener: awaited once, before the first piece is read: sends the request and raises
            its errors. ``await stream`` and ``async with stream`` run it eagerly.
        on_close: awaited exactly once when the stream ends, fails or is closed (after the
            source is closed), e.g. to release an HTTP response.

    Example: ``async with AsyncTextStream(pieces()) as stream: text = [p async for p in stream]``
    (``pieces()``: an async generator yielding ``"Hello"``, ``", world"``, then a Generation).
    """

    def __init__(
        self,
        source: AsyncIterator[str | Generation],
        *,
        opener: Callable[[], Awaitable[None]] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._opener = opener
        self._on_close = on_close

    async def _open(self) -> None:
        opener, self._opener = self._opener, None  # run once
        if opener is not None:
            try:
                await opener()
            except BaseException:
                await self.aclose()
                raise

    def __await__(self) -> Generator[Any, None, Self]:
        """``await stream`` opens it (errors are raised here) and returns the stream itself."""
        return self.__aenter__().__await__()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        if self._closed:
            raise StopAsyncIteration
        try:
            await self._open()
            item = await self._source.__anext__()
        except BaseException:  # StopAsyncIteration too
            await self.aclose()
            raise
        if isinstance(item, Generation):
            self._generation = item
            await self.aclose()
            raise StopAsyncIteration
        self._pieces.append(item)
        return item

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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
