"""One scripted fake backend for the clients' tests (retries, timeouts, threads, streams).

:class:`ScriptedBackend` answers with a real backend given as ``inner`` (the session's
``LocalBackend``), or with its script: ``generate`` returns ``respond(prompt)`` when given
(a scripted model), else ``"scripted:<prompt>"``, and a stream yields :data:`PIECES`.
Before each call it pops the next outcome of ``failures`` (``None``: the call goes on; an
exception: raised), and ``fail_at_piece = (index, error)``
breaks the next stream before that piece. It records what it saw: ``calls``, ``timeouts``,
calls ``in_flight`` and their maximum, ``pieces_made``, the ``streams`` it opened, and
``events`` ("generated", "closed", "aclosed"). ``close()`` never closes ``inner``.

:class:`NativeScriptedBackend` adds coroutines (``agenerate`` / ``astream``) that run on the
event loop, and fails the test if its sync methods are used.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from typing import Any

from llm_twin_sdk import Generation, GenerationParams, TextStream, Timeouts, Usage
from llm_twin_sdk.inference.async_stream import AsyncTextStream
from llm_twin_sdk.inference.backend import Backend, NormalizedPrompt

__all__ = ["PIECES", "NativeScriptedBackend", "ScriptedBackend", "scripted_generation"]

PIECES = ("Hel", "lo")
"""The script's stream."""


def scripted_generation(text: str) -> Generation:
    """The script's Generation of ``text``."""
    return Generation(
        text=text,
        finish_reason="stop",
        usage=Usage(prompt_tokens=3, completion_tokens=2),
        latency_s=0.01,
        model="scripted",
    )


def _text(prompt: NormalizedPrompt) -> str:
    return prompt if isinstance(prompt, str) else "chat"


class ScriptedBackend:
    """A backend behind probes and a failure script (see the module docstring)."""

    def __init__(
        self,
        inner: Backend | None = None,
        failures: list[BaseException | None] | None = None,
        *,
        respond: Callable[[NormalizedPrompt], str] | None = None,
    ) -> None:
        self.inner = inner
        self.respond = respond
        self.failures = list(failures or [])
        self.fail_at_piece: tuple[int, BaseException] | None = None  # the next stream only
        self.calls = self.in_flight = self.max_in_flight = self.pieces_made = 0
        self.timeouts: list[Timeouts | None] = []
        self.streams: list[Any] = []
        self.events: list[str] = []
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.inner.model_name if self.inner is not None else "scripted"

    @property
    def context_window(self) -> int:
        return self.inner.context_window if self.inner is not None else 4096

    def count_tokens(self, prompt: NormalizedPrompt) -> int:
        return self.inner.count_tokens(prompt) if self.inner is not None else 3

    def generate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._start(timeout)
            if self.respond is not None:
                return scripted_generation(self.respond(prompt))
            if self.inner is None:
                return scripted_generation(f"scripted:{_text(prompt)}")
            return self.inner.generate(prompt, params)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.events.append("generated")

    def stream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> TextStream:
        self._start(timeout)
        inner = self.inner.stream(prompt, params) if self.inner is not None else None
        pieces = self._pieces(inner if inner is not None else iter(PIECES), self._take_break())

        def source() -> Generator[str, None, Generation]:
            yield from pieces
            if inner is None:
                return scripted_generation("".join(PIECES))
            assert inner.generation is not None
            return inner.generation

        stream = TextStream(source(), on_close=inner.close if inner is not None else None)
        self.streams.append(stream)
        return stream

    def close(self) -> None:
        self.events.append("closed")

    # -- the script -----------------------------------------------------------------------

    def _start(self, timeout: Timeouts | None) -> None:
        with self._lock:
            self.calls += 1
            self.timeouts.append(timeout)
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure

    def _take_break(self) -> tuple[int, BaseException] | None:
        broken, self.fail_at_piece = self.fail_at_piece, None
        return broken

    def _pieces(
        self, pieces: Iterator[str], broken: tuple[int, BaseException] | None
    ) -> Iterator[str]:
        for index, piece in enumerate(pieces):
            if broken is not None and index == broken[0]:
                raise broken[1]
            self.pieces_made += 1
            yield piece


class NativeScriptedBackend(ScriptedBackend):
    """The script with coroutines, run on the event loop; its sync methods must not be used."""

    def __init__(self, failures: list[BaseException | None] | None = None) -> None:
        super().__init__(None, failures)
        self.loop_thread = threading.get_ident()

    async def agenerate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        assert threading.get_ident() == self.loop_thread  # on the event loop, no thread
        self._start(timeout)
        await asyncio.sleep(0)
        return scripted_generation(f"scripted:{_text(prompt)}")

    def astream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> AsyncTextStream:
        broken = self._take_break()

        async def opener() -> None:
            assert threading.get_ident() == self.loop_thread
            self._start(timeout)

        async def source() -> AsyncGenerator[str | Generation, None]:
            for piece in self._pieces(iter(PIECES), broken):
                yield piece
            yield scripted_generation("".join(PIECES))

        stream = AsyncTextStream(source(), opener=opener)
        self.streams.append(stream)
        return stream

    def generate(self, *args: object, **kwargs: object) -> Generation:  # pragma: no cover
        raise AssertionError("the sync method was used")

    def stream(self, *args: object, **kwargs: object) -> TextStream:  # pragma: no cover
        raise AssertionError("the sync method was used")

    async def aclose(self) -> None:
        self.events.append("aclosed")
