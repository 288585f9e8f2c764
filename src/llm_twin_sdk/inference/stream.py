"""TextStream: a context-managed iterator over generated text pieces.

Leaving the ``with`` block (or :meth:`TextStream.close`) early stops generation and releases
the backend's resources; so does garbage collection, as a last resort::

    with client.stream("Write a haiku about GPUs") as stream:
        for piece in stream:
            print(piece, end="", flush=True)
    print(stream.generation.usage)     # available once the stream is exhausted
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Self

from ..types import Generation

__all__ = ["StreamRecord", "TextStream"]


class StreamRecord:
    """What a stream keeps, sync or async: its text so far, its final Generation, whether
    it is closed."""

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._generation: Generation | None = None
        self._closed = False

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

    def __repr__(self) -> str:
        """``TextStream(open, text=12 chars)``; ``finished`` once the generation is known."""
        finished = ", finished" if self._generation is not None else ""
        state = "closed" if self._closed else "open"
        return f"{type(self).__name__}({state}, text={len(self.text)} chars{finished})"


class TextStream(StreamRecord, Iterator[str]):
    """Iterator of text pieces whose return value is the final :class:`Generation`.

    Args:
        source: a generator that yields text pieces and *returns* the ``Generation``.
        on_close: called exactly once when the stream ends, fails or is closed.
    """

    def __init__(
        self,
        source: Generator[str, None, Generation],
        *,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._on_close = on_close
        self._first: str | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> str:
        if self._first is not None:
            piece, self._first = self._first, None
            self._pieces.append(piece)
            return piece
        if self._closed:
            raise StopIteration
        try:
            piece = next(self._source)
        except StopIteration as stop:
            self._generation = stop.value
            self.close()
            raise StopIteration from None
        except BaseException:
            self.close()
            raise
        self._pieces.append(piece)
        return piece

    def unread(self, piece: str | None) -> Self:
        """This stream with ``piece`` (the last one read) delivered again as the next one, so
        a caller can read the first piece and still hand the whole stream on."""
        if piece is not None:
            self._pieces.pop()
            self._first = piece
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

    def close(self) -> None:
        """Stop generating and release resources. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        try:
            self._source.close()
        finally:
            if self._on_close is not None:
                self._on_close()
