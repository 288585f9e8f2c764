"""Byte streams to events: server-sent events split anywhere across chunks.

Model servers stream Server-Sent Events: ``data:{json}`` lines separated by blank lines. The
bytes arrive in parts (SageMaker ``PayloadPart``s, HTTP chunks) that may cut a line — or a
multi-byte UTF-8 character — anywhere. :class:`SSEDecoder` reassembles them;
:func:`parse_event` reads one event of either dialect:

- TGI generate stream: ``{"token": {"text", "special"}, "generated_text", "details"}``; the last
  event carries ``generated_text`` and ``details``; no ``[DONE]``.
- OpenAI-compatible chat stream (TGI Messages API, vLLM, llama.cpp server):
  ``{"choices": [{"delta": {"content"}, "finish_reason"}], "usage"?}`` then ``[DONE]``.
- Errors: ``{"error": "...", "error_type"?}`` (TGI) or ``{"error": {"message"}}`` (OpenAI).

Example::

    decoder = SSEDecoder()
    for part in parts:                       # bytes, split anywhere
        for data in decoder.feed(part):      # complete `data:` payloads
            event = parse_event(data)
    for data in decoder.close():             # a last event without its blank line
        ...
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

from ..errors import InferenceError

__all__ = ["DONE", "SSEDecoder", "StreamEvent", "parse_event"]

DONE = "[DONE]"


class SSEDecoder:
    """Incremental SSE decoder: bytes in, the ``data`` of each complete event out.

    Follows the SSE rules that matter here: lines end in ``\\n``, ``\\r\\n`` or ``\\r``; a blank
    line ends an event; several ``data:`` lines of one event are joined with ``\\n``; one space
    after the colon is dropped; comment lines (``:``) and other fields are ignored. A line that
    follows a ``data:`` line without a blank line between them (as some servers send) still
    ends the previous event when it is itself a ``data:`` line holding a complete JSON value.
    """

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buffer = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        """Add bytes; return the data of every event they complete."""
        try:
            self._buffer += self._text.decode(chunk)
        except UnicodeDecodeError as exc:
            raise InferenceError(f"the model server sent invalid UTF-8: {exc}") from exc
        events: list[str] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            line, self._buffer = self._buffer[: cut[0]], self._buffer[cut[1] :]
            self._line(line, events)

    def close(self) -> list[str]:
        """End of stream: flush a last line and event that had no terminator."""
        events: list[str] = []
        rest = self._buffer + self._text.decode(b"", final=True)
        self._buffer = ""
        if rest:
            self._line(rest, events)
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
        return events

    def _line(self, line: str, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        if field != "data":
            return
        value = value.removeprefix(" ")
        if self._data and _is_complete_json(self._data[-1]):
            # Previous event never got its blank line: treat the new data line as a new event.
            events.append("\n".join(self._data))
            self._data = []
        self._data.append(value)


def _line_end(buffer: str) -> tuple[int, int] | None:
    """Index of the first line terminator and the index after it (None: no full line yet)."""
    for index, char in enumerate(buffer):
        if char == "\n":
            return index, index + 1
        if char == "\r":
            if index + 1 == len(buffer):
                return None  # could be the first half of \r\n
            return index, index + (2 if buffer[index + 1] == "\n" else 1)
    return None


def _is_complete_json(text: str) -> bool:
    if text == DONE:
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class StreamEvent:
    """One parsed event.

    Attributes:
        text: new text to deliver (special tokens excluded).
        done: the stream is over (``[DONE]``, or TGI's final event).
        generated_text: the whole text, when the server sends it (TGI's last event).
        finish_reason: ``"stop"`` / ``"length"`` when known.
        prompt_tokens / completion_tokens: usage, when the server sends it.
        error: the server's error message, for an error event.
    """

    text: str = ""
    done: bool = False
    generated_text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def _finish(reason: Any) -> str | None:
    if reason in {"length", "max_tokens"}:
        return "length"
    if reason in {"stop", "eos_token", "stop_sequence", "end_turn"}:
        return "stop"
    return None


def parse_event(data: str) -> StreamEvent:
    """Parse the ``data`` of one TGI or OpenAI-compatible stream event.

    Raises:
        InferenceError: the data is not JSON or has neither dialect's shape.
    """
    if data.strip() == DONE:
        return StreamEvent(done=True)
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise InferenceError(
            f"the model server sent a malformed stream event: {data[:200]!r}"
        ) from exc
    if not isinstance(event, dict):
        raise InferenceError(f"unexpected stream event: {data[:200]!r}")
    if "error" in event:
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else error
        return StreamEvent(error=str(message), done=True)
    if "token" in event:  # TGI generate stream
        token = event.get("token") or {}
        details = event.get("details") or {}
        final = event.get("generated_text")
        return StreamEvent(
            text="" if token.get("special") else str(token.get("text") or ""),
            done=final is not None,
            generated_text=final,
            finish_reason=_finish(details.get("finish_reason")),
            prompt_tokens=None,
            completion_tokens=details.get("generated_tokens"),
        )
    if "choices" in event:  # OpenAI-compatible chat / completion stream
        usage = event.get("usage") or {}
        choices = event.get("choices") or [{}]
        choice = choices[0] if choices else {}
        delta = choice.get("delta") or {}
        text = delta.get("content") if "delta" in choice else choice.get("text")
        return StreamEvent(
            text=str(text or ""),
            finish_reason=_finish(choice.get("finish_reason")),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
    raise InferenceError(f"unexpected stream event: {data[:200]!r}")
