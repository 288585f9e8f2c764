"""Byte streams to event data: server-sent events and JSON lines, split anywhere.

Parts of a stream (SageMaker payload parts, HTTP chunks) may cut a line -- or a multi-byte
UTF-8 character -- anywhere. A decoder reassembles them: ``decoder.feed(part)`` returns the data
of every event the part completes, ``decoder.close()`` a last one without its terminator; the
protocol reads each (:meth:`~.base.WireProtocol.event`).
"""

from __future__ import annotations

import codecs
import json

from ...errors import InferenceError
from .base import DONE, Framing

__all__ = ["JsonLinesDecoder", "SSEDecoder", "decoder_for"]


class _Lines:
    """Incremental UTF-8 decoding and line splitting (``\\n``, ``\\r\\n`` or ``\\r``)."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buffer = ""

    def feed(self, chunk: bytes) -> list[str]:
        try:
            self._buffer += self._text.decode(chunk)
        except UnicodeDecodeError as exc:
            raise InferenceError(f"the server sent invalid UTF-8: {exc}") from exc
        lines: list[str] = []
        while (cut := _line_end(self._buffer)) is not None:
            lines.append(self._buffer[: cut[0]])
            self._buffer = self._buffer[cut[1] :]
        return lines

    def close(self) -> list[str]:
        try:
            rest = self._buffer + self._text.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise InferenceError(f"the stream ended inside a character: {exc}") from exc
        self._buffer = ""
        return [rest] if rest else []


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


class SSEDecoder:
    """Server-sent events: bytes in, the ``data`` of each complete event out.

    Follows the SSE rules that matter here: a blank line ends an event; several ``data:``
    lines of one event are joined with ``\\n``; one space after the colon is dropped; comment
    lines (``:``) and other fields are ignored. A ``data:`` line that follows another one
    without a blank line between them (as some servers send) starts a new event when the
    previous data is already a complete JSON value.
    """

    def __init__(self) -> None:
        self._lines = _Lines()
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        events: list[str] = []
        for line in self._lines.feed(chunk):
            self._line(line, events)
        return events

    def close(self) -> list[str]:
        events: list[str] = []
        for line in self._lines.close():
            self._line(line, events)
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
        field, _, value = line.partition(":")
        if field != "data":
            return  # a comment (":..."), or a field other than data
        if self._data and _is_complete_json(self._data[-1]):
            events.append("\n".join(self._data))
            self._data = []
        self._data.append(value.removeprefix(" "))


def _is_complete_json(text: str) -> bool:
    if text == DONE:
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class JsonLinesDecoder:
    """JSON lines: one event per non-blank line (an SSE-style ``data:`` prefix is dropped)."""

    def __init__(self) -> None:
        self._lines = _Lines()

    def feed(self, chunk: bytes) -> list[str]:
        return [_strip(line) for line in self._lines.feed(chunk) if _strip(line)]

    def close(self) -> list[str]:
        return [_strip(line) for line in self._lines.close() if _strip(line)]


def _strip(line: str) -> str:
    line = line.strip()
    return line[5:].lstrip() if line.startswith("data:") else line


def decoder_for(framing: Framing) -> SSEDecoder | JsonLinesDecoder:
    return SSEDecoder() if framing == "sse" else JsonLinesDecoder()
