"""A small TGI-like model server for tests, on 127.0.0.1 (stdlib only, one thread per connection).

Routes, with the shapes of Hugging Face TGI:

- ``POST /generate`` -> ``{"generated_text", "details": {"finish_reason", "generated_tokens"}}``
- ``POST /generate_stream`` -> SSE token events ``data:{"token": {...}, "generated_text": null}``,
  the last one with ``generated_text`` and ``details``; no ``[DONE]``.
- ``POST /v1/chat/completions`` and ``POST /v1/completions`` (TGI's Messages API), plain or
  streamed (OpenAI chunks, usage when ``stream_options.include_usage``, then ``[DONE]``).
- ``POST /tokenize`` -> one entry per whitespace-separated word.

Parameters are validated like TGI does (422 ``{"error", "error_type": "validation"}`` for a
temperature <= 0, a ``top_p`` outside (0, 1), a grammar / ``response_format`` not shaped
``{"type": "json", "value": schema}`` ...). A JSON grammar reaches the real model as
``GenerationParams.json_schema`` (the script and ``respond`` ignore it). Streams are written
as HTTP chunks cut in the middle of ``data:`` lines, of JSON and of multi-byte UTF-8
characters.

Texts come from a script of tokens (default), from the real local llama.cpp model when the
server is given a :class:`~llm_twin_sdk.LocalBackend`, or from ``respond(prompt_text)`` when the
server is given a ``respond`` callable (its reply is split into tokens, each word with its
leading whitespace, so ``max_new_tokens`` and stop sequences apply as for the script). The
prompt text is ``inputs`` for ``/generate*``, ``prompt`` for ``/v1/completions``, and the
message contents joined with ``"\\n"`` (roles dropped) for ``/v1/chat/completions``.

Faults are queued with :meth:`TGIServer.fail` and consumed one per generation request:

    server.fail(Fault.http(429), Fault.http(503))     # the next two requests fail
    server.fail(Fault.slow(2.0))                           # answer after 2 s
    server.fail(Fault.error_event(after=2))                # error event after 2 tokens
    server.fail(Fault.drop(after=2))                       # connection dropped after 2 tokens
    server.fail(Fault.stall(2.0, after=0))                 # headers, then 2 s of silence

Every request is recorded (``server.requests``); ``server.connections`` counts TCP
connections and ``server.aborted_streams`` the streams whose client went away mid-way.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from llm_twin_sdk import GenerationParams, LocalBackend
from local_server import LocalHTTPServer

__all__ = ["DEFAULT_TOKENS", "Fault", "RecordedRequest", "TGIServer", "split_tokens", "sse_cuts"]

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

EOS = "</s>"
GENERATION_ROUTES = frozenset(
    {"/generate", "/generate_stream", "/v1/chat/completions", "/v1/completions"}
)


@dataclass(frozen=True)
class Fault:
    """One scripted failure, consumed by the next generation request."""

    kind: str
    status: int = 503
    body: dict[str, Any] | None = None
    delay_s: float = 0.0
    after: int = 2

    @classmethod
    def http(cls, status: int, body: dict[str, Any] | None = None) -> Fault:
        """Answer ``status`` with a TGI error body (or ``body``)."""
        return cls("status", status=status, body=body)

    @classmethod
    def validation(cls, message: str = "Input validation error: `inputs` is too long") -> Fault:
        """TGI's 422 for an invalid request."""
        return cls("status", status=422, body={"error": message, "error_type": "validation"})

    @classmethod
    def slow(cls, delay_s: float) -> Fault:
        """Wait ``delay_s`` before answering (past a client's read timeout)."""
        return cls("slow", delay_s=delay_s)

    @classmethod
    def error_event(cls, after: int = 2) -> Fault:
        """Streams only: an error event after ``after`` tokens."""
        return cls("error_event", after=after)

    @classmethod
    def stall(cls, delay_s: float, after: int = 2) -> Fault:
        """Streams only: headers sent, then a pause of ``delay_s`` after ``after`` tokens."""
        return cls("stall", delay_s=delay_s, after=after)

    @classmethod
    def drop(cls, after: int = 2) -> Fault:
        """Streams only: close the connection after ``after`` tokens, mid-body."""
        return cls("drop", after=after)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Answer:
    tokens: list[str]
    finish_reason: str  # TGI's: length | eos_token | stop_sequence
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def split_tokens(text: str) -> list[str]:
    """``text`` as tokens: each word with the whitespace before it, then trailing whitespace
    (``"Hi  there"`` -> ``["Hi", "  there"]``); joined, they give ``text`` back."""
    return re.findall(r"\s*\S+|\s+", text)


def sse_cuts(payload: bytes) -> list[bytes]:
    """``payload`` cut inside ``data``, in the middle of its JSON, and inside every
    multi-byte UTF-8 character."""
    cuts = {3, len(payload) // 2}
    cuts.update(index + 1 for index, byte in enumerate(payload) if byte >= 0xC0)
    points = sorted(cut for cut in cuts if 0 < cut < len(payload))
    return [payload[a:b] for a, b in zip([0, *points], [*points, len(payload)], strict=True)]


class TGIServer(LocalHTTPServer):
    """A TGI-like server on 127.0.0.1 in a background thread. Use as a context manager.

    Args:
        backend: answer with this real local model instead of the token script.
        tokens: the scripted answer.
        token_delay_s: pause between streamed tokens.
        require_token: answer 401 unless ``Authorization: Bearer <require_token>``.
        ssl_context: serve HTTPS with this server-side context.
        respond: answer each generation request with ``respond(prompt_text)`` (see the
            module docstring) instead of the token script; ``backend`` wins over it.
    """

    def __init__(
        self,
        *,
        backend: LocalBackend | None = None,
        tokens: Sequence[str] = DEFAULT_TOKENS,
        token_delay_s: float = 0.0,
        require_token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        respond: Callable[[str], str] | None = None,
    ) -> None:
        self.backend = backend
        self.respond = respond
        self.tokens = list(tokens)
        self.token_delay_s = token_delay_s
        self.require_token = require_token
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.connections = 0
        self.aborted_streams = 0
        self.completed_streams = 0
        self._lock = threading.Lock()
        super().__init__(_make_handler(self), ssl_context)

    def fail(self, *faults: Fault) -> None:
        """Queue faults: each is consumed by one generation request, in order."""
        with self._lock:
            self.faults.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.connections = self.aborted_streams = self.completed_streams = 0

    def generation_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path in GENERATION_ROUTES]

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return condition()

    # -- internals used by the handler ---------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def answer(self, inputs: str, params: GenerationParams) -> Iterator[str]:
        """Tokens of the answer, lazily (the real model streams them)."""
        if self.backend is not None:
            with self.backend.stream(inputs, params) as stream:
                yield from stream
            return
        if self.respond is not None:
            yield from split_tokens(self.respond(inputs))
        else:
            yield from self.tokens
        yield EOS


def _count_words(text: str) -> int:
    return len(text.split())


def _validation_error(parameters: dict[str, Any]) -> str | None:
    """TGI's checks of ``parameters`` (the subset the SDK can get wrong)."""
    temperature = parameters.get("temperature")
    if temperature is not None and temperature <= 0:
        return "Input validation error: `temperature` must be strictly positive"
    top_p = parameters.get("top_p")
    if top_p is not None and not 0 < top_p < 1:
        return "Input validation error: `top_p` must be > 0.0 and < 1.0"
    penalty = parameters.get("repetition_penalty")
    if penalty is not None and penalty <= 0:
        return "Input validation error: `repetition_penalty` must be strictly positive"
    max_new = parameters.get("max_new_tokens")
    if max_new is not None and (not isinstance(max_new, int) or max_new <= 0):
        return "Input validation error: `max_new_tokens` must be strictly positive"
    stop = parameters.get("stop") or []
    if len(stop) > 4:
        return "Input validation error: `stop` supports up to 4 stop sequences"
    return _grammar_error(parameters.get("grammar"))


def _grammar_error(grammar: Any) -> str | None:
    try:
        grammar_schema(grammar)
    except ValueError as exc:
        return f"Input validation error: `grammar`: {exc}"
    return None


def grammar_schema(grammar: Any) -> dict[str, Any] | None:
    """The JSON schema of a TGI grammar (``parameters.grammar`` of ``/generate``, and
    ``response_format`` of the Messages API): ``{"type": "json" | "json_object", "value":
    schema}``. ``None`` for no grammar; ``ValueError`` for shapes TGI rejects (and for
    ``regex`` grammars, which this server does not implement)."""
    if grammar is None:
        return None
    if not isinstance(grammar, dict) or "type" not in grammar:
        raise ValueError('expected {"type": ..., "value": ...}')
    if grammar["type"] not in ("json", "json_object"):
        raise ValueError(f"unknown variant `{grammar['type']}`, expected `json` or `regex`")
    if "value" not in grammar:
        raise ValueError("missing field `value`")
    value = grammar["value"]
    schema = json.loads(value) if isinstance(value, str) else value
    if not isinstance(schema, dict):
        raise ValueError("the JSON schema must be an object")
    return schema


def _make_handler(server: TGIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with server._lock:
                server.connections += 1

        # -- plumbing -------------------------------------------------------------------

        def _json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str) -> None:
            self._json(status, {"error": message, "error_type": kind})

        def _start_sse(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.flush()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
            self.wfile.flush()

        def _event(self, payload: Any) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
            for part in sse_cuts(f"data:{data}\n\n".encode()):
                self._chunk(part)

        def _end_sse(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _drop(self) -> None:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        # -- routes ---------------------------------------------------------------------

        def do_GET(self) -> None:
            self._record(None)
            if self.path in {"/health", "/info"}:
                self._json(200, {"model_id": "scripted-tgi"})
            else:
                self._error(404, f"no route {self.path}", "not_found")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                self._record(raw.decode("utf-8", "replace"))
                self._error(422, "Failed to deserialize the JSON body", "validation")
                return
            self._record(body)
            if (
                server.require_token is not None
                and self.headers.get("Authorization") != f"Bearer {server.require_token}"
            ):
                self._error(401, "Unauthorized", "authentication")
                return
            routes = {
                "/generate": self._generate,
                "/generate_stream": self._generate_stream,
                "/v1/chat/completions": self._openai,
                "/v1/completions": self._openai,
                "/tokenize": self._tokenize,
            }
            handler = routes.get(self.path)
            if handler is None:
                self._error(404, f"no route {self.path}", "not_found")
                return
            fault = server._next_fault() if self.path in GENERATION_ROUTES else None
            if fault is not None and fault.kind == "status":
                error = fault.body or {"error": f"scripted {fault.status}", "error_type": "fault"}
                self._json(fault.status, error)
                return
            if fault is not None and fault.kind == "slow":
                server._sleep(fault.delay_s)
            try:
                handler(body, fault)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _record(self, body: Any) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = RecordedRequest(self.command, self.path, headers, body)
            with server._lock:
                server.requests.append(request)

        def _tokenize(self, body: dict[str, Any], fault: Fault | None) -> None:
            words = str(body.get("inputs", "")).split()
            self._json(200, [{"id": i, "text": w} for i, w in enumerate(words)])

        # -- generation -----------------------------------------------------------------

        def _params(self, parameters: dict[str, Any]) -> GenerationParams:
            greedy = not parameters.get("do_sample") and "temperature" not in parameters
            return GenerationParams(
                max_new_tokens=parameters.get("max_new_tokens") or 100,
                temperature=0.0 if greedy else parameters.get("temperature", 1.0),
                top_p=parameters.get("top_p") or 1.0,
                repetition_penalty=parameters.get("repetition_penalty") or 1.0,
                stop=tuple(parameters.get("stop") or ()),
                seed=parameters.get("seed"),
                json_schema=grammar_schema(parameters.get("grammar")),
            )

        def _produce(
            self, inputs: str, params: GenerationParams, answer: _Answer
        ) -> Iterator[tuple[str, bool]]:
            """Yield (token, special) and fill ``answer``; its finish_reason is final once
            the iterator ends."""
            for token in server.answer(inputs, params):
                if token == EOS:
                    yield token, True
                    return
                answer.tokens.append(token)
                if any(stop in answer.text for stop in params.stop):
                    answer.finish_reason = "stop_sequence"
                    yield token, False
                    return
                if len(answer.tokens) >= params.max_new_tokens:
                    answer.finish_reason = "length"
                    yield token, False
                    return
                yield token, False
            # the real model ended on its own: EOS, or its own length limit
            answer.finish_reason = (
                "length" if len(answer.tokens) >= params.max_new_tokens else "eos_token"
            )

        def _tgi_request(self, body: dict[str, Any]) -> GenerationParams | None:
            parameters = body.get("parameters") or {}
            problem = _validation_error(parameters)
            if problem is not None or not isinstance(body.get("inputs"), str):
                self._error(422, problem or "Input validation error: `inputs`", "validation")
                return None
            return self._params(parameters)

        def _generate(self, body: dict[str, Any], fault: Fault | None) -> None:
            params = self._tgi_request(body)
            if params is None:
                return
            answer = _Answer([], "eos_token", 0)
            for _ in self._produce(body["inputs"], params, answer):
                pass
            payload: dict[str, Any] = {"generated_text": answer.text}
            if (body.get("parameters") or {}).get("details"):
                payload["details"] = {
                    "finish_reason": answer.finish_reason,
                    "generated_tokens": len(answer.tokens),
                    "seed": params.seed,
                    "prefill": [],
                    "tokens": [
                        {"id": i, "text": t, "logprob": -0.1, "special": False}
                        for i, t in enumerate(answer.tokens)
                    ],
                }
            self._json(200, payload)

        def _generate_stream(self, body: dict[str, Any], fault: Fault | None) -> None:
            params = self._tgi_request(body)
            if params is None:
                return
            self._start_sse()
            answer = _Answer([], "eos_token", 0)
            sent = 0
            pending: tuple[str, bool] | None = None
            try:
                if self._fault_mid_stream(fault, sent):
                    return
                # One token behind: the last token event is the final one (generated_text).
                for token, special in self._produce(body["inputs"], params, answer):
                    if pending is not None:
                        self._token_event(sent, *pending, final=None)
                        sent += 1
                        if self._fault_mid_stream(fault, sent):
                            return
                        server._sleep(server.token_delay_s)
                    pending = (token, special)
                text, special = pending if pending is not None else ("", True)
                self._token_event(sent, text, special, final=answer)
                self._end_sse()
                with server._lock:
                    server.completed_streams += 1
            except (BrokenPipeError, ConnectionResetError):
                with server._lock:
                    server.aborted_streams += 1
                self.close_connection = True

        def _token_event(self, index: int, text: str, special: bool, final: _Answer | None) -> None:
            event: dict[str, Any] = {
                "index": index,
                "token": {"id": index, "text": text, "logprob": -0.1, "special": special},
                "generated_text": None,
                "details": None,
            }
            if final is not None:
                event["generated_text"] = final.text
                event["details"] = {
                    "finish_reason": final.finish_reason,
                    "generated_tokens": len(final.tokens),
                    "seed": None,
                }
            self._event(event)

        def _fault_mid_stream(
            self, fault: Fault | None, sent: int, *, openai: bool = False
        ) -> bool:
            """Inject a mid-stream fault once ``sent`` events went out; True: stream over."""
            if fault is None or sent < fault.after:
                return False
            if fault.kind == "stall" and sent == fault.after:
                server._sleep(fault.delay_s)
                return False
            if fault.kind == "error_event":
                message = "Request failed during generation: Server error: CUDA out of memory"
                if openai:
                    self._event({"error": {"message": message, "type": "generation"}})
                else:
                    self._event({"error": message, "error_type": "generation"})
                self._end_sse()
                return True
            if fault.kind == "drop":
                self._drop()
                return True
            return False

        # -- OpenAI-compatible (TGI Messages API) ---------------------------------------

        def _openai(self, body: dict[str, Any], fault: Fault | None) -> None:
            chat = self.path == "/v1/chat/completions"
            if chat:
                messages = body.get("messages") or []
                inputs = "\n".join(str(m.get("content", "")) for m in messages)
                prompt_tokens = sum(_count_words(str(m.get("content", ""))) + 2 for m in messages)
            else:
                inputs = str(body.get("prompt", ""))
                prompt_tokens = _count_words(inputs)
            temperature = body.get("temperature")
            try:
                schema = grammar_schema(body.get("response_format"))
            except ValueError as exc:
                self._error(422, f"Failed to deserialize `response_format`: {exc}", "validation")
                return
            params = GenerationParams(
                max_new_tokens=body.get("max_tokens") or 100,
                temperature=temperature if temperature is not None else 1.0,
                top_p=body.get("top_p") or 1.0,
                stop=tuple(body.get("stop") or ()),
                seed=body.get("seed"),
                json_schema=schema,
            )
            answer = _Answer([], "eos_token", prompt_tokens)
            if body.get("stream"):
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._openai_stream(inputs, params, answer, chat=chat, usage=usage, fault=fault)
                return
            for _ in self._produce(inputs, params, answer):
                pass
            text = _trim(answer.text, params.stop)
            choice: dict[str, Any] = {"index": 0, "finish_reason": _openai_finish(answer)}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            self._json(
                200,
                {
                    "object": "chat.completion" if chat else "text_completion",
                    "model": "scripted-tgi",
                    "choices": [choice],
                    "usage": _usage(answer),
                },
            )

        def _openai_stream(
            self,
            inputs: str,
            params: GenerationParams,
            answer: _Answer,
            *,
            chat: bool,
            usage: bool,
            fault: Fault | None,
        ) -> None:
            self._start_sse()
            sent = 0
            delivered = ""
            try:
                if self._fault_mid_stream(fault, sent, openai=True):
                    return
                for _token, special in self._produce(inputs, params, answer):
                    # Like vLLM: the stop sequence itself is never sent.
                    text = _trim(answer.text, params.stop)[len(delivered) :]
                    if special or not text:
                        continue
                    delivered += text
                    self._event(_openai_chunk(text, None, chat))
                    sent += 1
                    if self._fault_mid_stream(fault, sent, openai=True):
                        return
                    server._sleep(server.token_delay_s)
                self._event(_openai_chunk("", _openai_finish(answer), chat))
                if usage:
                    self._event(
                        {"object": "chat.completion.chunk", "choices": [], "usage": _usage(answer)}
                    )
                self._event("[DONE]")
                self._end_sse()
                with server._lock:
                    server.completed_streams += 1
            except (BrokenPipeError, ConnectionResetError):
                with server._lock:
                    server.aborted_streams += 1
                self.close_connection = True

    return Handler


def _usage(answer: _Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": len(answer.tokens),
        "total_tokens": answer.prompt_tokens + len(answer.tokens),
    }


def _openai_finish(answer: _Answer) -> str:
    return "length" if answer.finish_reason == "length" else "stop"


def _openai_chunk(text: str, finish: str | None, chat: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if chat:
        choice["delta"] = {"content": text} if text else {}
    else:
        choice["text"] = text
    return {
        "object": "chat.completion.chunk" if chat else "text_completion",
        "model": "scripted-tgi",
        "choices": [choice],
    }


def _trim(text: str, stops: Sequence[str]) -> str:
    cuts = [text.find(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else text
