"""What every wire protocol shares: the request it builds, the answers and events it reads.

Any known shape is read whatever was asked (own shapes first, then every other protocol's).
An error in a body becomes an :class:`ErrorBody` (message, meant HTTP status) that the
connection converts as it converts its own statuses, so an error event and the same error in
a whole answer raise alike.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from ...errors import ConfigurationError, InferenceError
from ...types import FinishReason, GenerationParams, Message

__all__ = ["Answer", "ErrorBody", "StreamEvent", "WireProtocol", "WireRequest", "finish_reason"]

DONE = "[DONE]"  # ends OpenAI-style streams
Framing: TypeAlias = Literal["sse", "jsonlines"]  # server-sent events, or one JSON per line

_LENGTH = frozenset({"length", "max_tokens", "model_length"})


def finish_reason(raw: object) -> FinishReason:
    """The SDK's finish reason for any server's: ``"length"`` when the token limit ended the
    generation (``length``, ``max_tokens``, ``model_length``), else ``"stop"``.

    >>> finish_reason("eos_token"), finish_reason("max_tokens"), finish_reason(None)
    ('stop', 'length', 'stop')
    """
    return "length" if raw in _LENGTH else "stop"


def count_or_none(value: Any) -> int | None:
    """``value`` when it is a token count (a non-negative int), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Compact UTF-8 JSON: built once (``json.dumps`` with options builds an encoder per call)."""

_read_json = json.JSONDecoder().raw_decode


def parse_json(data: str | bytes) -> Any:
    """``json.loads(data)``, the same value or error, at half its cost per call: the one
    decoder's ``raw_decode`` (``json.loads`` is taken for what that does not cover: bytes
    that are not UTF-8, whitespace before the value, anything invalid)."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        value, end = _read_json(text)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError too
        return json.loads(data)
    if end != len(text) and text[end:].strip(" \t\n\r"):
        return json.loads(data)  # raises json.loads' own error (extra data)
    return value


@dataclass(slots=True)
class WireRequest:
    """One request: its route on a server of its own (SageMaker always uses
    ``/invocations``), JSON body, stream framing, and the stop sequences the SDK cuts.
    Plain slotted records (this one, :class:`Answer`, :class:`StreamEvent`): one is built per
    call or per token, and a frozen dataclass costs several times as much to build."""

    route: str
    body: dict[str, Any]
    stream: bool
    framing: Framing = "sse"
    stops: tuple[str, ...] = ()

    @property
    def accept(self) -> str:
        if not self.stream:
            return "application/json"
        return "text/event-stream" if self.framing == "sse" else "application/jsonlines"

    def encode(self) -> bytes:
        return _JSON.encode(self.body).encode("utf-8")


@dataclass(slots=True)
class Answer:
    """A whole answer: text, the server's finish reason and usage when it sent them."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class ErrorBody:
    """An error a server put in a body: its message and the HTTP status it stands for."""

    message: str
    status: int | None = None


@dataclass(slots=True)
class StreamEvent:
    """One stream event: new text (special tokens excluded), whether the stream is done, what
    it says of the finish and usage, an error event; ``open_ended`` shapes have no final event
    (LMI's ``outputs`` lines: the body's end ends the stream)."""

    text: str = ""
    done: bool = False
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: ErrorBody | None = None
    open_ended: bool = False


def need_text(prompt: str | Sequence[Message], protocol: str) -> str:
    """``prompt`` when it is text; chat messages need a renderer (``prompt_format``)."""
    if isinstance(prompt, str):
        return prompt
    raise ConfigurationError(
        f"the {protocol} protocol takes a text prompt: pass a string, or build the backend "
        "with prompt_format= (e.g. 'alpaca', the template the model was fine-tuned with, or a "
        "callable messages -> str), or use a chat protocol (api='openai' / 'messages')"
    )


class WireProtocol(ABC):
    """One wire protocol. Subclasses implement :meth:`request` and class-level readers that
    return ``None`` for shapes not theirs; subclasses register themselves, so every
    protocol's readers are tried (own first) whatever was asked."""

    name: ClassVar[str]
    framing: ClassVar[Framing] = "sse"
    _registry: ClassVar[list[type[WireProtocol]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        WireProtocol._registry.append(cls)

    @abstractmethod
    def request(
        self, prompt: str | Sequence[Message], params: GenerationParams, *, stream: bool
    ) -> WireRequest:
        """The request for ``prompt`` (raises before anything is sent when it cannot)."""

    @classmethod
    def read_answer(cls, data: dict[str, Any]) -> Answer | ErrorBody | None:
        return None

    @classmethod
    def read_event(cls, event: dict[str, Any]) -> StreamEvent | None:
        return None

    @classmethod
    def read_error(cls, data: dict[str, Any]) -> ErrorBody | None:
        return None

    def answer(self, data: Any) -> Answer | ErrorBody:
        """A whole answer (parsed JSON) of any known shape; InferenceError for others."""
        if isinstance(data, list) and len(data) == 1:
            data = data[0]  # TGI (and LMI with tgi_compat) answer a one-element list
        if isinstance(data, dict):
            try:
                answer = self.read_answer(data)  # its own shape first, then every other's
                if answer is not None:
                    return answer
                for kind in WireProtocol._registry:
                    answer = kind.read_answer(data)
                    if answer is not None:
                        return answer
            except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
                raise _unexpected(data) from exc
            error = self.error(data)
            if error is not None:
                return error
        raise _unexpected(data)

    def event(self, data: str) -> StreamEvent:
        """One stream event's data, of any known shape; InferenceError for others."""
        try:
            event, end = _read_json(data)  # parse_json's fast path, inline: once per token
            if end != len(data):
                event = parse_json(data)
        except ValueError:
            if data.strip() == DONE:
                return StreamEvent(done=True)
            try:
                event = parse_json(data)
            except ValueError as exc:
                raise InferenceError(
                    f"the server sent a malformed stream event: {data[:200]!r}"
                ) from exc
        if isinstance(event, dict):
            if "error" in event or "detail" in event:
                error = self.error(event)
                if error is not None and not ({"token", "choices", "outputs"} & event.keys()):
                    return StreamEvent(error=error, done=True)
            parsed = self.read_event(event)  # its own shape first, then every other's
            if parsed is not None:
                return parsed
            for kind in WireProtocol._registry:
                parsed = kind.read_event(event)
                if parsed is not None:
                    return parsed
        raise InferenceError(f"the server sent an unexpected stream event: {data[:200]!r}")

    def error(self, data: dict[str, Any]) -> ErrorBody | None:
        """The error in ``data`` (any protocol's shape, or FastAPI's ``detail``), if any."""
        if "error" not in data:
            detail = data.get("detail") if "generated_text" not in data else None
            return ErrorBody(str(detail)[:500]) if isinstance(detail, str) else None
        for kind in (type(self), *WireProtocol._registry):
            error = kind.read_error(data)
            if error is not None:
                return error
        return ErrorBody(json.dumps(data["error"], ensure_ascii=False)[:500])


def error_of(content: bytes, protocol: WireProtocol) -> ErrorBody:
    """The error an HTTP error body describes, or its text (``(empty body)`` if none)."""
    try:
        data = parse_json(content)
    except ValueError:
        text = content.decode("utf-8", errors="replace").strip()
        return ErrorBody(text[:300] or "(empty body)")
    error = protocol.error(data) if isinstance(data, dict) else None
    if error is None and isinstance(data, dict) and isinstance(data.get("message"), str):
        error = ErrorBody(data["message"][:500])
    return error or ErrorBody(json.dumps(data, ensure_ascii=False)[:300])


def _unexpected(data: Any) -> InferenceError:
    return InferenceError(
        f"unexpected answer body {str(data)[:200]!r}: expected a TGI / LMI answer "
        "({'generated_text': ...}) or a chat completion ({'choices': ...})"
    )
