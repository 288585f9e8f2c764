"""Property: however a valid stream is cut into parts, the same pieces come out.

Payload parts (SageMaker ``PayloadPart``s, HTTP chunks) may cut a line, a JSON value, a
``\\r\\n`` or a multi-byte UTF-8 character anywhere. Checked for every stream shape (TGI
generate and OpenAI-style chat over SSE, LMI's JSON lines) through the protocols' decoders and
event readers, and end to end through ``SageMakerBackend.stream`` (a duck-typed runtime client
hands it the parts), including the hold-back of stop sequences.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import PartsRuntime, split_at
from llm_twin_sdk import GenerationParams
from llm_twin_sdk.inference.backends.sagemaker import SageMakerBackend
from llm_twin_sdk.inference.protocols import LMI, OpenAICompatible, StreamEvent, TGIGenerate
from llm_twin_sdk.inference.protocols.base import WireProtocol
from llm_twin_sdk.inference.protocols.framing import JsonLinesDecoder, SSEDecoder

# Multi-byte characters (2, 3 and 4 bytes), line breaks, JSON escapes, U+2028.
ALPHABET = st.sampled_from(list('ab \n\r\t"\\/é€日本🚀\u2028\x00{}:'))
TOKEN_TEXT = st.text(ALPHABET, max_size=6)
TERMINATOR = st.sampled_from(["\n\n", "\r\n\r\n", "\r\r", "\n\r\n"])
PREFIX = st.sampled_from(["data:", "data: "])
FAST = settings(max_examples=150, deadline=None)


@dataclass
class Tokens:
    """A generated stream: token texts with their special flags, and how it is framed."""

    texts: list[str]
    special: list[bool]
    prefix: str
    terminator: str
    noise: list[bool] = field(default_factory=list)  # a comment / other field before an event

    @property
    def visible(self) -> list[str]:
        return [t for t, s in zip(self.texts, self.special, strict=True) if t and not s]

    def frame(self, event: Any, index: int) -> bytes:
        data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
        noise = ""
        if index < len(self.noise) and self.noise[index]:
            noise = f": keep-alive{self.terminator}event: message\r\nid: {index}\n"
        return f"{noise}{self.prefix}{data}{self.terminator}".encode()


@st.composite
def token_streams(draw: st.DrawFn) -> Tokens:
    texts = draw(st.lists(TOKEN_TEXT, min_size=1, max_size=10))
    special = draw(st.lists(st.booleans(), min_size=len(texts), max_size=len(texts)))
    noise = draw(st.lists(st.booleans(), max_size=len(texts) + 3))
    return Tokens(texts, special, draw(PREFIX), draw(TERMINATOR), noise)


def tgi_stream(tokens: Tokens) -> bytes:
    events = []
    for index, (text, special) in enumerate(zip(tokens.texts, tokens.special, strict=True)):
        last = index == len(tokens.texts) - 1
        event = {
            "index": index,
            "token": {"id": index, "text": text, "logprob": -1.0, "special": special},
            "generated_text": "".join(tokens.visible) if last else None,
            "details": {
                "finish_reason": "length",
                "generated_tokens": len(tokens.texts),
                "input_length": 5,
            }
            if last
            else None,
        }
        events.append(tokens.frame(event, index))
    return b"".join(events)


def chat_stream(tokens: Tokens) -> bytes:
    events = []
    for index, text in enumerate(tokens.texts):
        last = index == len(tokens.texts) - 1
        choice = {
            "index": 0,
            "delta": {"role": "assistant", "content": text},
            "finish_reason": "stop" if last else None,
        }
        events.append(tokens.frame({"object": "chat.completion.chunk", "choices": [choice]}, index))
    usage = {"prompt_tokens": 3, "completion_tokens": len(tokens.texts), "total_tokens": 0}
    events.append(tokens.frame({"choices": [], "usage": usage}, len(tokens.texts)))
    events.append(tokens.frame("[DONE]", len(tokens.texts) + 1))
    return b"".join(events)


def lmi_stream(tokens: Tokens) -> bytes:
    """LMI's JSON lines: one token per line, the last with ``generated_text`` and details."""
    lines = []
    for index, (text, special) in enumerate(zip(tokens.texts, tokens.special, strict=True)):
        line: dict[str, Any] = {"token": {"id": index, "text": text, "log_prob": -0.5}}
        if special:
            line["token"]["special_token"] = True
        if index == len(tokens.texts) - 1:
            line["generated_text"] = "".join(tokens.visible)
            line["details"] = {"finish_reason": "length", "generated_tokens": len(tokens.texts)}
        lines.append(json.dumps(line, ensure_ascii=False) + tokens.terminator[-1])
    return "".join(lines).encode()


def decode(parts: Sequence[bytes], protocol: WireProtocol | None = None) -> list[StreamEvent]:
    protocol = protocol or TGIGenerate()
    decoder = SSEDecoder() if protocol.framing == "sse" else JsonLinesDecoder()
    datas = [data for part in parts for data in decoder.feed(part)]
    return [protocol.event(data) for data in [*datas, *decoder.close()]]


def cuts(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(data)), max_size=max(len(data) // 2, 1))


@FAST
@given(tokens=token_streams(), choice=st.data())
def test_tgi_stream_any_split_same_pieces_and_final_text(tokens: Tokens, choice: Any) -> None:
    data = tgi_stream(tokens)
    events = decode(split_at(data, choice.draw(cuts(data))))
    assert events == decode([data])
    assert [e.text for e in events if e.text] == tokens.visible
    assert [e.done for e in events] == [False] * (len(tokens.texts) - 1) + [True]
    assert events[-1].finish_reason == "length"
    assert events[-1].completion_tokens == len(tokens.texts)


@FAST
@given(tokens=token_streams(), choice=st.data())
def test_chat_stream_any_split_same_pieces_and_final_text(tokens: Tokens, choice: Any) -> None:
    data = chat_stream(tokens)
    events = decode(split_at(data, choice.draw(cuts(data))), OpenAICompatible())
    assert events == decode([data], OpenAICompatible())
    assert [e.text for e in events if e.text] == [t for t in tokens.texts if t]
    assert events[-1].done
    assert [e.finish_reason for e in events if e.finish_reason] == ["stop"]
    assert [(e.prompt_tokens, e.completion_tokens) for e in events if e.prompt_tokens] == [
        (3, len(tokens.texts))
    ]


@FAST
@given(tokens=token_streams(), choice=st.data())
def test_lmi_json_lines_any_split_same_pieces(tokens: Tokens, choice: Any) -> None:
    data = lmi_stream(tokens)
    events = decode(split_at(data, choice.draw(cuts(data))), LMI())
    assert events == decode([data], LMI())
    assert [e.text for e in events if e.text] == tokens.visible
    assert [e.done for e in events] == [False] * (len(tokens.texts) - 1) + [True]
    assert events[-1].completion_tokens == len(tokens.texts)


# -- end to end through the backend ------------------------------------------------------------


@FAST
@given(
    tokens=token_streams(),
    shape=st.sampled_from(["tgi", "chat", "lmi"]),
    stop=st.none() | st.text(ALPHABET, min_size=1, max_size=3),
    choice=st.data(),
)
def test_backend_stream_any_split(
    tokens: Tokens, shape: str, stop: str | None, choice: Any
) -> None:
    chat = shape == "chat"
    data = {"tgi": tgi_stream, "chat": chat_stream, "lmi": lmi_stream}[shape](tokens)
    runtime = PartsRuntime(split_at(data, choice.draw(cuts(data))))
    backend = SageMakerBackend(
        "twin", runtime_client=runtime, api="lmi" if shape == "lmi" else "messages"
    )
    params = GenerationParams(stop=(stop,) if stop else ())
    with backend.stream("prompt", params) as stream:
        pieces = list(stream)
    full = "".join(t for t in tokens.texts if t) if chat else "".join(tokens.visible)
    expected = full[: full.find(stop)] if stop and stop in full else full
    assert "".join(pieces) == expected
    assert all(pieces)
    assert stream.generation is not None
    assert stream.generation.text == expected
    assert stream.generation.finish_reason == (
        "stop" if chat or (stop and stop in full) else "length"
    )
    if shape != "lmi":  # LMI's details carry no input length: the prompt is counted
        assert stream.generation.usage.prompt_tokens == (3 if chat else 5)
    assert runtime.events.closed
    if not stop:  # without stop sequences every token is delivered as it arrives
        visible = [t for t in tokens.texts if t] if chat else tokens.visible
        assert pieces == visible
