"""What the fake model servers say, written once: TGI, OpenAI-style and LMI bodies and events,
the requests as those servers read them (TGI's validation and grammar rules), and the model
behind them (a token script, a ``respond`` callable, or the real local llama.cpp model).

Used by the TGI-like HTTP server (:mod:`fakes.tgi`) and the SageMaker-runtime wire server
(:mod:`fakes.sagemaker`), and by tests that script streams by hand.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llm_twin_sdk import GenerationParams, LocalBackend
from llm_twin_sdk.types import Message, to_messages

__all__ = [
    "DEFAULT_TOKENS",
    "Ask",
    "Model",
    "Result",
    "chat_answer",
    "chat_events",
    "grammar_schema",
    "lmi_lines",
    "read_ask",
    "split_at",
    "sse",
    "sse_cuts",
    "stream_events",
    "tgi_events",
    "whole_answer",
]

DEFAULT_TOKENS: tuple[str, ...] = (
    "Quantize",
    " before",
    " you",
    " scale",
    " out",
    ":",
    " café",
    " costs",
    " drop",
    " 🚀",
    ".",
)
"""The scripted answer (multi-byte characters included): 11 tokens."""

EOS = "<|im_end|>"
Kind = Literal["generate", "chat", "completion"]


# -- byte-level helpers ---------------------------------------------------------------------


def sse(event: Any, prefix: str = "data:", terminator: str = "\n\n") -> bytes:
    """One SSE event (``event`` as compact JSON unless it is a string)."""
    text = (
        event
        if isinstance(event, str)
        else json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    )
    return f"{prefix}{text}{terminator}".encode()


def split_at(data: bytes, offsets: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given byte offsets (anywhere: inside lines, JSON, UTF-8 chars)."""
    bounds = [0, *sorted({o for o in offsets if 0 < o < len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def sse_cuts(payload: bytes) -> list[bytes]:
    """``payload`` cut inside ``data``, in the middle of its JSON, and inside every
    multi-byte UTF-8 character."""
    cuts = {3, len(payload) // 2}
    cuts.update(index + 1 for index, byte in enumerate(payload) if byte >= 0xC0)
    return split_at(payload, cuts)


def split_tokens(text: str) -> list[str]:
    """``text`` as tokens: each word with the whitespace before it (joined: ``text``)."""
    return re.findall(r"\s*\S+|\s+", text)


# -- what a server answers ------------------------------------------------------------------


@dataclass
class Result:
    """A generation as the fake produced it: tokens, TGI's finish reason, token counts."""

    tokens: list[str] = field(default_factory=list)
    finish: str = "eos_token"  # TGI's: length | eos_token | stop_sequence
    prompt_tokens: int = 0
    seed: int | None = None

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def openai_finish(self) -> str:
        return "length" if self.finish == "length" else "stop"

    def usage(self) -> dict[str, int]:
        completion = len(self.tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def details(self, *, final: bool = False) -> dict[str, Any]:
        details: dict[str, Any] = {
            "finish_reason": self.finish,
            "generated_tokens": len(self.tokens),
            "seed": self.seed,
        }
        if final:
            details["input_length"] = self.prompt_tokens
        else:
            details.update(
                prefill=[],
                tokens=[
                    {"id": i, "text": t, "logprob": -0.1, "special": False}
                    for i, t in enumerate(self.tokens)
                ],
            )
        return details


def tgi_event(
    index: int, text: str, *, special: bool = False, final: Result | None = None
) -> dict[str, Any]:
    """One TGI stream event; the final one carries ``generated_text`` and ``details``."""
    return {
        "index": index,
        "token": {"id": index, "text": text, "logprob": -0.5, "special": special},
        "generated_text": None if final is None else final.text,
        "details": None if final is None else final.details(final=True),
    }


def tgi_events(
    tokens: Sequence[str],
    *,
    finish_reason: str = "eos_token",
    generated_tokens: int | None = None,
    input_length: int = 7,
    eos: str | None = EOS,
    prefix: str = "data:",
    terminator: str = "\n\n",
) -> list[bytes]:
    """A scripted TGI generate stream: one event per token, the last with text and details.

    With ``eos`` set the last event is the (special) end-of-sequence token, as TGI sends it
    when the model stopped by itself; otherwise the last text token is the final event.
    """
    texts = [(t, False) for t in tokens] + ([(eos, True)] if eos is not None else [])
    result = Result(list(tokens), finish_reason, input_length)
    events = []
    for index, (text, special) in enumerate(texts):
        event = tgi_event(
            index, text, special=special, final=result if index == len(texts) - 1 else None
        )
        if event["details"] is not None:
            event["details"]["generated_tokens"] = (
                len(texts) if generated_tokens is None else generated_tokens
            )
        events.append(sse(event, prefix, terminator))
    return events


def chat_chunk(text: str, finish: str | None, *, chat: bool = True) -> dict[str, Any]:
    """One OpenAI-style stream chunk (``delta`` for chat, ``text`` for completions)."""
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish}
    if chat:
        choice["delta"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [choice],
        "usage": None,
    }


def chat_answer(result: Result, text: str, *, chat: bool = True) -> dict[str, Any]:
    """A whole OpenAI-style answer."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": result.openai_finish}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    kind = "chat.completion" if chat else "text_completion"
    return {"object": kind, "model": "fake", "choices": [choice], "usage": result.usage()}


def chat_events(
    tokens: Sequence[str],
    *,
    finish_reason: str = "stop",
    usage: tuple[int, int] | None = None,
    done: bool = True,
    prefix: str = "data: ",
    terminator: str = "\n\n",
) -> list[bytes]:
    """A scripted OpenAI-style chat stream: deltas, a finish, usage, ``[DONE]``."""
    events = [
        sse(chat_chunk(text, finish_reason if i == len(tokens) - 1 else None), prefix, terminator)
        for i, text in enumerate(tokens)
    ]
    if usage is not None:
        chunk = {
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": Result(["x"] * usage[1], prompt_tokens=usage[0]).usage(),
        }
        events.append(sse(chunk, prefix, terminator))
    if done:
        events.append(f"{prefix}[DONE]{terminator}".encode())
    return events


def lmi_line(text: str, *, special: bool = False, final: Result | None = None) -> bytes:
    """One line of an LMI JSON-lines stream; the final one has ``generated_text``/``details``."""
    line: dict[str, Any] = {"token": {"id": 1, "text": text, "log_prob": -0.5}}
    if special:
        line["token"]["special_token"] = True
    if final is not None:
        line["generated_text"] = final.text
        line["details"] = {
            "finish_reason": final.finish,
            "generated_tokens": len(final.tokens),
            "inputs": "",
        }
    return (json.dumps(line, ensure_ascii=False) + "\n").encode()


def lmi_lines(tokens: Sequence[str], *, finish_reason: str = "eos_token") -> list[bytes]:
    """A scripted LMI token stream."""
    result = Result(list(tokens), finish_reason)
    return [
        lmi_line(t, final=result if i == len(tokens) - 1 else None) for i, t in enumerate(tokens)
    ]


LMI_FAILED = (
    b'{"token": {"id": -1, "text": "", "log_prob": -1, "special_token": true}, '
    b'"generated_text": "", "details": {"finish_reason": "error"}}\n'
)
"""LMI's last line when generation failed midway."""


# -- requests, read as the servers read them -------------------------------------------------


@dataclass
class Ask:
    """A generation request as TGI (or LMI) reads it."""

    kind: Kind
    prompt: str | list[Message]
    params: GenerationParams
    details: bool = True
    include_usage: bool = False

    @property
    def text(self) -> str:
        """The prompt as text (chat contents joined with newlines, roles dropped)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(m.content for m in self.prompt)


def grammar_schema(grammar: Any, name: str = "grammar") -> dict[str, Any] | None:
    """The JSON schema of a TGI grammar ``{"type": "json" | "json_object", "value": schema}``
    (``parameters.grammar``, and the Messages API's ``response_format``); ``None`` for none;
    ``ValueError`` for shapes TGI rejects (regex grammars are not implemented here)."""
    if grammar is None:
        return None
    if not isinstance(grammar, dict) or grammar.get("type") not in ("json", "json_object"):
        raise ValueError(
            f'`{name}`: unknown variant, expected {{"type": "json", "value": <schema>}}'
        )
    if "value" not in grammar:
        raise ValueError(f"`{name}`: missing field `value`")
    value = grammar["value"]
    schema = json.loads(value) if isinstance(value, str) else value
    if not isinstance(schema, dict):
        raise ValueError(f"`{name}`: the JSON schema must be an object")
    return schema


def read_ask(body: Any, *, lmi: bool = False) -> Ask:
    """Read a TGI generate, Messages API / completions, or LMI body, with TGI's validation.

    Raises:
        ValueError / TypeError / KeyError: what TGI answers with a 422.
    """
    if not isinstance(body, dict):
        raise TypeError("the body must be a JSON object")
    if "messages" in body or "prompt" in body:
        temperature = body.get("temperature")
        presence = body.get("presence_penalty")
        params = _sampling(  # TGI: greedy only at temperature 0; presence_penalty + 2
            do_sample=temperature != 0,
            temperature=None if temperature == 0 else temperature,
            top_p=body.get("top_p"),
            repetition_penalty=None if presence is None else presence + 2.0,
            max_new_tokens=body.get("max_tokens") or 100,
            stop=body.get("stop") or [],
            seed=body.get("seed"),
            json_schema=grammar_schema(body.get("response_format"), "response_format"),
        )
        chat = "messages" in body
        prompt = to_messages(body["messages"]) if chat else str(body["prompt"])
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return Ask("chat" if chat else "completion", prompt, params, include_usage=usage)
    inputs = body["inputs"]
    if not isinstance(inputs, str) or not inputs:
        raise ValueError("`inputs` cannot be empty")
    p = body.get("parameters") or {}
    if p.get("return_full_text"):
        raise ValueError("this fake does not implement return_full_text")
    if lmi and "stop" in p:
        raise ValueError("LMI reads stop sequences from `stop_sequences`")
    params = _sampling(
        do_sample=True if "parameters" not in body else bool(p.get("do_sample", False)),
        temperature=p.get("temperature"),
        top_p=p.get("top_p"),
        repetition_penalty=p.get("repetition_penalty"),
        max_new_tokens=p.get("max_new_tokens", 100),
        stop=p.get("stop_sequences" if lmi else "stop") or [],
        seed=p.get("seed"),
        json_schema=grammar_schema(p.get("grammar")),
    )
    return Ask("generate", inputs, params, details=bool(p.get("details")))


def _sampling(
    *,
    do_sample: bool,
    temperature: float | None,
    top_p: float | None,
    repetition_penalty: float | None,
    max_new_tokens: int,
    stop: list[str],
    seed: int | None,
    json_schema: dict[str, Any] | None,
) -> GenerationParams:
    if temperature is not None and temperature <= 0:
        raise ValueError("`temperature` must be strictly positive")
    if top_p is not None and not 0 < top_p < 1:
        raise ValueError("`top_p` must be > 0.0 and < 1.0")
    if repetition_penalty is not None and repetition_penalty <= 0:
        raise ValueError("`repetition_penalty` must be strictly positive")
    if not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ValueError("`max_new_tokens` must be strictly positive")
    if len(stop) > 4:
        raise ValueError(f"`stop` supports up to 4 stop sequences. Given: {len(stop)}")
    if seed is not None and seed < 0:
        raise ValueError("`seed` must be a u64")
    # TGI samples when asked to, or when a warper (temperature != 1, top_p) is set.
    sampling = do_sample or temperature not in (None, 1.0) or top_p is not None
    return GenerationParams(
        max_new_tokens=max_new_tokens,
        temperature=(temperature or 1.0) if sampling else 0.0,
        top_p=top_p or 1.0,
        repetition_penalty=repetition_penalty or 1.0,
        stop=tuple(stop),
        seed=seed,
        json_schema=json_schema,
    )


# -- the model behind a fake ----------------------------------------------------------------


class Model:
    """Where a fake's answers come from: the real local model when given one, else
    ``respond(prompt text)`` (its reply split into word tokens), else the token script.

    :meth:`run` applies ``max_new_tokens`` and stop sequences as TGI does (the stop sequence
    is part of the text; the finish reason says why the generation ended).
    """

    def __init__(
        self,
        backend: LocalBackend | None = None,
        tokens: Sequence[str] = DEFAULT_TOKENS,
        respond: Callable[[str], str] | None = None,
    ) -> None:
        self.backend = backend
        self.tokens = list(tokens)
        self.respond = respond

    def prompt_tokens(self, ask: Ask) -> int:
        if self.backend is not None:
            return self.backend.count_tokens(ask.prompt)
        if isinstance(ask.prompt, str):
            return len(ask.prompt.split())
        return sum(len(m.content.split()) + 2 for m in ask.prompt)

    def run(self, ask: Ask, result: Result) -> Iterator[str]:
        """Yield the answer's tokens, filling ``result`` (its finish is final at the end)."""
        result.prompt_tokens, result.seed = self.prompt_tokens(ask), ask.params.seed
        params = ask.params
        for token in self._source(ask):
            result.tokens.append(token)
            yield token
            if any(stop in result.text for stop in params.stop):
                result.finish = "stop_sequence"
                return
            if len(result.tokens) >= params.max_new_tokens:
                result.finish = "length"
                return
        result.finish = "length" if len(result.tokens) >= params.max_new_tokens else "eos_token"

    def _source(self, ask: Ask) -> Iterator[str]:
        if self.backend is not None:
            with self.backend.stream(ask.prompt, ask.params) as stream:
                yield from stream
        elif self.respond is not None:
            yield from split_tokens(self.respond(ask.text))
        else:
            yield from self.tokens


# -- whole answers and streams of a model ---------------------------------------------------

Container = Literal["tgi", "lmi"]


def whole_answer(model: Model, ask: Ask, *, listed: bool = False) -> Any:
    """The whole answer of ``model`` to ``ask``: TGI's or LMI's ``generated_text`` object (a
    one-element list with ``listed``, as TGI on SageMaker), or an OpenAI-style completion
    (whose text, like vLLM's, never holds the stop sequence)."""
    result = Result()
    for _ in model.run(ask, result):
        pass
    if ask.kind != "generate":
        return chat_answer(result, _trim(result.text, ask.params.stop), chat=ask.kind == "chat")
    answer: dict[str, Any] = {"generated_text": result.text}
    if ask.details:
        answer["details"] = result.details()
    return [answer] if listed else answer


def stream_events(model: Model, ask: Ask, *, container: Container = "tgi") -> Iterator[bytes]:
    """The events of ``model``'s answer, framed as the container streams them: TGI's SSE
    token events, LMI's JSON lines, or OpenAI-style chunks (SSE with ``[DONE]`` from TGI,
    JSON lines without it from LMI)."""
    result = Result()
    if ask.kind != "generate":
        yield from _chunks(model, ask, result, lines=container == "lmi")
        return
    held: str | None = None  # one token behind: the last event is the final one
    index = 0
    for token in model.run(ask, result):
        if held is not None:
            yield lmi_line(held) if container == "lmi" else sse(tgi_event(index, held))
            index += 1
        held = token
    if container == "lmi":
        yield lmi_line(held or "", final=result)
    elif result.finish == "eos_token":
        if held is not None:
            yield sse(tgi_event(index, held))
            index += 1
        yield sse(tgi_event(index, EOS, special=True, final=result))
    else:
        yield sse(tgi_event(index, held or "", final=result))


def _chunks(model: Model, ask: Ask, result: Result, *, lines: bool) -> Iterator[bytes]:
    chat = ask.kind == "chat"

    def frame(event: Any) -> bytes:
        if lines:
            return (json.dumps(event, ensure_ascii=False) + "\n").encode()
        return sse(event, "data: ")

    sent = ""
    for _ in model.run(ask, result):
        text = _trim(result.text, ask.params.stop)[len(sent) :]
        if text:
            sent += text
            yield frame(chat_chunk(text, None, chat=chat))
    yield frame(chat_chunk("", result.openai_finish, chat=chat))
    if ask.include_usage:
        yield frame({"object": "chat.completion.chunk", "choices": [], "usage": result.usage()})
    if not lines:
        yield b"data: [DONE]\n\n"


def _trim(text: str, stops: Sequence[str]) -> str:
    cuts = [text.find(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else text
