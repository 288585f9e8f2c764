"""One stream's state: bytes in, text pieces out, and the one rule for stream failures
(:meth:`StreamState.fail`; docs/architecture.md, "Model calls").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ...errors import InferenceError, LLMTwinError, StreamBrokenError
from .base import Answer, ErrorBody, WireProtocol, WireRequest
from .framing import decoder_for

__all__ = ["StopFilter", "StreamState", "cut_at_stop"]

_NO_PIECES: list[str] = []  # returned, never changed: most parts complete no event


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence, and whether one was found."""
    if not stops:
        return text, False
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class StopFilter:
    """Holds back streamed text that may begin a stop sequence; drops all from one on (TGI
    returns stop sequences; servers that trim them see a delay of at most one piece)."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.pending = ""
        self.hit = False

    def push(self, text: str) -> str:
        if not self.stops:
            return text
        if self.hit:
            return ""
        self.pending += text
        out, self.hit = cut_at_stop(self.pending, self.stops)
        if self.hit:
            self.pending = ""
            return out
        held = (
            n for stop in self.stops for n in range(1, len(stop)) if self.pending.endswith(stop[:n])
        )
        cut = len(self.pending) - max(held, default=0)
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class StreamState:
    """Decodes one stream of ``request`` with ``protocol``; ``error`` turns an error event into
    the SDK error the same body raises in a whole answer; ``where`` names the server."""

    def __init__(
        self,
        protocol: WireProtocol,
        request: WireRequest,
        where: str,
        error: Callable[[ErrorBody], LLMTwinError],
    ) -> None:
        self.protocol, self.where, self._error = protocol, where, error
        self.decoder = decoder_for(request.framing)
        self.stops = StopFilter(request.stops)
        self.delivered: list[str] = []
        self.done = False
        self.open_ended = False
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.token_events = 0
        self._deferred: LLMTwinError | None = None  # a failure after pieces not yet delivered

    @property
    def text(self) -> str:
        return "".join(self.delivered)

    def feed(self, chunk: bytes) -> list[str]:
        """The pieces ``chunk`` completes (the caller stops feeding once :attr:`done`); raises
        the stream's error by :meth:`fail`."""
        try:
            datas = self.decoder.feed(chunk)
        except InferenceError as exc:
            raise self.broken(exc) from exc
        return self.read(datas) if datas else _NO_PIECES

    def end(self) -> Iterator[str]:
        """The body ended: the last pieces; a stream without its final event is broken."""
        if not self.done:
            try:
                datas = self.decoder.close()
            except InferenceError as exc:
                raise self.broken(exc) from exc
            yield from self.read(datas)
        if self._deferred is not None:
            raise self._deferred
        if not (self.done or self.open_ended or self.finish_reason is not None):
            raise self.fail(
                InferenceError(f"{self.where}: the stream ended before its final event")
            )
        if not self.done:
            self.done = True
            if text := self.stops.flush():
                self.delivered.append(text)
                yield text

    def broken(self, framing: InferenceError) -> LLMTwinError:
        """The stream's error for bytes that do not decode (by the stream rule)."""
        return self.fail(InferenceError(f"{self.where}: {framing}"))

    def fail(self, error: LLMTwinError) -> LLMTwinError:
        """The stream rule: ``error`` itself before the first piece, after it a
        :class:`StreamBrokenError` keeping the text delivered."""
        if not self.delivered:
            return error
        return StreamBrokenError(
            f"the stream broke after {len(self.delivered)} piece(s): {error}",
            partial_text=self.text,
        )

    def answer(self) -> Answer:
        return Answer(
            self.text,
            "stop" if self.stops.hit else self.finish_reason,
            self.prompt_tokens,
            self.completion_tokens,
        )

    def read(self, datas: list[str]) -> list[str]:
        """The pieces of these events' data (what :meth:`feed` does with a part's). A failure
        after some of them is kept for :meth:`end` (the stream is done), so the pieces before
        it are delivered first."""
        pieces: list[str] = []
        for data in datas:
            try:
                event = self.protocol.event(data)
            except InferenceError as exc:
                error = self.broken(exc)
                error.__cause__ = exc
                return self._failed(error, pieces)
            if event.error is not None:
                return self._failed(self.fail(self._error(event.error)), pieces)
            if event.text:
                self.token_events += 1
                self._deliver(self.stops.push(event.text), pieces)
            if event.finish_reason:
                self.finish_reason = event.finish_reason
            if event.prompt_tokens:
                self.prompt_tokens = event.prompt_tokens
            if event.completion_tokens:
                self.completion_tokens = event.completion_tokens
            if event.open_ended:
                self.open_ended = True
            if event.done:
                self.done = True
                self._deliver(self.stops.flush(), pieces)
                break
        return pieces

    def _failed(self, error: LLMTwinError, pieces: list[str]) -> list[str]:
        if not pieces:
            raise error
        self._deferred, self.done = error, True
        return pieces

    def _deliver(self, text: str, pieces: list[str]) -> None:
        if text:
            self.delivered.append(text)
            pieces.append(text)
