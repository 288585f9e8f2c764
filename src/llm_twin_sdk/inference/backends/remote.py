"""What the HTTP and SageMaker backends share: everything but the connection."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Self, TypeAlias

from ...errors import ConfigurationError, InferenceError, LLMTwinError
from ...types import Generation, GenerationParams, Message
from ..backend import NormalizedPrompt
from ..prompt_format import format_prompt
from ..protocols.base import Answer, ErrorBody, WireProtocol, WireRequest, finish_reason
from ..protocols.streams import StreamState, cut_at_stop
from ..tokens import count_prompt, estimate_tokens
from ..trusted import generation

__all__ = ["MessageRenderer", "RemoteBackend", "TextFormat"]

MessageRenderer: TypeAlias = Callable[[list[Message]], str]
"""Renders chat messages as the single text prompt the model was trained on."""

TextFormat: TypeAlias = Literal["raw", "alpaca"]
"""A named text format of :mod:`llm_twin_sdk.inference.prompt_format`."""


@dataclass(slots=True)
class Call:
    """One call: the protocol chosen, its request, the prompt as given, the start time."""

    protocol: WireProtocol
    request: WireRequest
    prompt: NormalizedPrompt
    started: float = field(default_factory=time.perf_counter)


class RemoteBackend:
    """Base of the remote backends: picks a wire protocol per prompt (one for text, one for
    chat; a ``prompt_format`` renders chat as text first), counts tokens (a ``tokenizer``, else
    :func:`~llm_twin_sdk.inference.tokens.estimate_tokens`), and turns what the protocol reads
    into results and streams. Subclasses send, receive and convert their connection's failures.
    """

    def __init__(
        self,
        *,
        text: WireProtocol,
        chat: WireProtocol,
        context_window: int,
        tokenizer: Callable[[str], int] | None,
        prompt_format: MessageRenderer | TextFormat | None,
    ) -> None:
        if not isinstance(context_window, int) or context_window <= 0:
            raise ConfigurationError(f"context_window must be > 0, got {context_window!r}")
        if prompt_format is not None and not (
            callable(prompt_format) or prompt_format in ("raw", "alpaca")
        ):
            raise ConfigurationError(
                "prompt_format must be 'raw', 'alpaca' or a callable (messages -> str)"
            )
        self._text, self._chat = text, chat
        self._window = context_window
        self._tokenizer = tokenizer
        self._prompt_format = prompt_format

    @property
    def model_name(self) -> str:  # pragma: no cover - every subclass names its model
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - every subclass closes its connection
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def context_window(self) -> int:
        """Tokens the model accepts for prompt and generation together."""
        return self._window

    def count_tokens(self, prompt: NormalizedPrompt) -> int:
        """Tokens of ``prompt``: exact with a ``tokenizer``, else the estimate; chat messages
        count their contents plus allowances for the server's template, unless a
        ``prompt_format`` renders them (then the text is counted).

        Example: ``backend.count_tokens("Hello")`` or ``backend.count_tokens(messages)``.
        """
        return count_prompt(self._render(prompt), self._count_text)

    def _count_text(self, text: str) -> int:
        return self._local_count(text)

    def _local_count(self, text: str) -> int:
        """Tokens of ``text`` without any request: the tokenizer, or the estimate."""
        return int(self._tokenizer(text)) if self._tokenizer is not None else estimate_tokens(text)

    def _render(self, prompt: NormalizedPrompt) -> str | list[Message]:
        fmt = self._prompt_format
        if isinstance(prompt, str) or fmt is None:
            return prompt
        text: object = (
            format_prompt(list(prompt), fmt) if isinstance(fmt, str) else fmt(list(prompt))
        )
        if not isinstance(text, str):
            raise ConfigurationError("prompt_format must return a str")
        return text

    def _prepare(self, prompt: NormalizedPrompt, params: GenerationParams, *, stream: bool) -> Call:
        """The protocol and request for ``prompt`` (errors here: nothing was sent)."""
        rendered = self._render(prompt)
        protocol = self._text if isinstance(rendered, str) else self._chat
        return Call(protocol, protocol.request(rendered, params, stream=stream), prompt)

    def _where(self, call: Call) -> str:  # pragma: no cover - every subclass names itself
        raise NotImplementedError

    def _body_error(self, error: ErrorBody, call: Call) -> LLMTwinError:  # pragma: no cover
        """The SDK error for an error the server put in a body (or a stream event)."""
        raise NotImplementedError

    def _generation(self, call: Call, data: Any) -> Generation:
        try:
            answer = call.protocol.answer(data)
        except InferenceError as exc:
            raise InferenceError(f"{self._where(call)}: {exc}") from exc
        if isinstance(answer, ErrorBody):
            raise self._body_error(answer, call)
        answer.text, stopped = cut_at_stop(answer.text, call.request.stops)
        if stopped:
            answer.finish_reason = "stop"
        completion = answer.completion_tokens
        return self._result(
            call, answer, self._local_count(answer.text) if completion is None else completion
        )

    def _state(self, call: Call) -> StreamState:
        return StreamState(
            call.protocol, call.request, self._where(call), lambda e: self._body_error(e, call)
        )

    def _pieces(
        self,
        call: Call,
        chunks: Iterator[bytes],
        errors: tuple[type[BaseException], ...],
        convert: Callable[[Any], LLMTwinError],
    ) -> Generator[str, None, Generation]:
        """The pieces of a stream of byte ``chunks``; the ``errors`` iterating them raises are
        converted by ``convert`` and the stream rule. What follows the final event is read, so
        the connection can be reused."""
        state = self._state(call)
        decode, read = state.decoder.feed, state.read  # StreamState.feed, one frame less per part
        try:
            for chunk in chunks:
                try:
                    datas = decode(chunk)  # most parts complete no event: an empty list
                except InferenceError as exc:
                    raise state.broken(exc) from exc
                if datas:
                    pieces = read(datas)
                    if pieces:
                        yield from pieces
                    if state.done:
                        break
            yield from state.end()
        except errors as exc:
            raise state.fail(convert(exc)) from exc
        with contextlib.suppress(Exception):  # the answer is complete: a late failure is moot
            for _ in chunks:
                pass
        return self._stream_result(call, state)

    def _stream_result(self, call: Call, state: StreamState) -> Generation:
        answer = state.answer()
        completion = answer.completion_tokens
        if completion is None:  # the tokenizer if given, else one token per token event
            tokenizer = self._tokenizer
            completion = int(tokenizer(answer.text)) if tokenizer else state.token_events
        return self._result(call, answer, completion)

    def _result(self, call: Call, answer: Answer, completion_tokens: int) -> Generation:
        prompt_tokens = answer.prompt_tokens
        if prompt_tokens is None:  # never a request: the tokenizer or the estimate
            prompt = call.prompt
            if type(prompt) is str and self._tokenizer is None:
                prompt_tokens = estimate_tokens(prompt)  # what the general path comes to
            else:
                prompt_tokens = count_prompt(self._render(prompt), self._local_count)
        return generation(
            answer.text,
            finish_reason(answer.finish_reason),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=time.perf_counter() - call.started,
            model=self.model_name,
        )
