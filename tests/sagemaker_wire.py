"""A SageMaker-runtime wire server on 127.0.0.1, for tests and benchmarks.

It speaks the real protocol, so boto3's own serializer and botocore's own parsers run:

- ``POST /endpoints/{name}/invocations``: JSON in, JSON out. Errors look like the service's:
  an HTTP status, an ``x-amzn-ErrorType: <Code>:<namespace>`` header and a JSON body;
  ``ModelError`` is HTTP 424 with ``OriginalStatusCode``, ``OriginalMessage`` and
  ``LogStreamArn`` (botocore copies those members into ``ClientError.response``).
- ``POST /endpoints/{name}/invocations-response-stream``: HTTP 200 and an AWS event stream
  (``application/vnd.amazon.eventstream``, chunked). Each message is framed as the service
  frames it: prelude (total length, headers length, CRC32), string headers, payload, message
  CRC32. ``PayloadPart`` events carry the container's raw bytes as the payload (the ``Bytes``
  member is the event payload blob: no JSON, no base64). Mid-stream failures are
  ``:message-type: exception`` frames (``ModelStreamError``, ``InternalStreamFailure``) or
  ``:message-type: error`` frames.

Behaviour is scripted: :meth:`WireServer.push` queues replies, consumed one per request in
order; when the queue is empty the default reply answers — :class:`Llama` (the real llama.cpp
model, answering with TGI-shaped bodies and streams) when the server was given a backend.
Every request is recorded (:attr:`WireServer.requests`), so tests can count what reached the
wire.

Example::

    from sagemaker_wire import Llama, WireServer, model_error, throttling

    with WireServer(LocalBackend()) as server:
        server.push(throttling(), model_error(429), Llama())
        runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, ...)
        ...
        assert server.request_count == 3

Importable by tests (``from sagemaker_wire import ...``; pytest puts ``tests/`` on
``sys.path``) and benchmarks (add ``tests/`` to ``sys.path`` first). Needs no pytest.
"""

from __future__ import annotations

import binascii
import itertools
import json
import re
import select
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias, cast
from urllib.parse import unquote, urlsplit

from llm_twin_sdk.errors import LLMTwinError
from llm_twin_sdk.inference.backend import Backend
from llm_twin_sdk.types import GenerationParams, to_messages

__all__ = [
    "AwsError",
    "Json",
    "Llama",
    "Received",
    "Reply",
    "Slow",
    "Stream",
    "StreamFault",
    "WireServer",
    "access_denied",
    "chat_events",
    "component_not_found",
    "encode_message",
    "endpoint_not_found",
    "error_frame",
    "exception_frame",
    "internal_failure",
    "model_error",
    "model_not_ready",
    "payload_part",
    "service_unavailable",
    "split_at",
    "tgi_events",
    "throttling",
    "validation_error",
]

_ROUTE = re.compile(r"/endpoints/([^/]+)/(invocations|invocations-response-stream)")
_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.sagemaker/"
LOG_STREAM_ARN = (
    "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/twin"
    ":log-stream:AllTraffic/i-0123456789abcdef0"
)


# -- replies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Json:
    """A ``/invocations`` answer: ``body`` as JSON (``bytes`` are sent as they are)."""

    body: Any
    status: int = 200


@dataclass(frozen=True)
class AwsError:
    """A service error: HTTP ``status``, ``x-amzn-ErrorType: code:...`` and a JSON ``body``.

    ``code=""`` sends no error-type header (botocore then falls back to the status code);
    ``body=None`` sends an empty body (a "generic" error response for 5xx).
    """

    status: int
    code: str
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Slow:
    """Wait ``delay_s`` before answering with ``then`` (the wait ends early on stop)."""

    delay_s: float
    then: Reply


@dataclass(frozen=True)
class StreamFault:
    """A failure frame sent after a stream's parts.

    ``kind="exception"`` sends a modeled exception (``type`` = ``ModelStreamError`` or
    ``InternalStreamFailure``, JSON payload with ``Message`` and ``ErrorCode``);
    ``kind="error"`` sends an ``:error-code`` / ``:error-message`` frame.
    """

    kind: Literal["exception", "error"] = "exception"
    type: str = "ModelStreamError"
    message: str = "Your model stream was interrupted."
    error_code: str | None = "StreamBroken"


@dataclass(frozen=True)
class Stream:
    """An ``/invocations-response-stream`` answer: one ``PayloadPart`` per item of ``parts``.

    Attributes:
        parts: the raw bytes of each payload part (split SSE lines anywhere you like).
        fault: a failure frame sent after the parts.
        part_delay_s: pause before each part.
        delays: pause before part ``i`` (replaces ``part_delay_s`` for the parts it covers).
        hold_open: after the parts, keep the stream open until the client disconnects
            (recorded in :attr:`WireServer.disconnected`) or ``hold_limit_s`` passes.
        abort: after the parts, drop the TCP connection without ending the HTTP body.
    """

    parts: Sequence[bytes]
    fault: StreamFault | None = None
    part_delay_s: float = 0.0
    delays: Sequence[float] = ()
    hold_open: bool = False
    hold_limit_s: float = 10.0
    abort: bool = False


@dataclass(frozen=True)
class Llama:
    """Answer with the server's backend (the real model), shaped like TGI on SageMaker.

    ``{"inputs", "parameters"}`` bodies get TGI generate answers (``[{"generated_text",
    "details"}]`` or a ``data:{"token":...}`` stream whose last event carries
    ``generated_text`` and ``details``); ``{"messages"}`` bodies get Messages API answers
    (``chat.completion`` or ``chat.completion.chunk`` events, a usage chunk when asked with
    ``stream_options.include_usage``, then ``data: [DONE]``). Parameters are validated as
    TGI validates them; a violation is answered like SageMaker relays TGI's 422 (a 424
    ``ModelError`` with ``OriginalStatusCode`` 422).

    ``part_size`` re-cuts the SSE bytes into payload parts of that many bytes (default:
    one event per part).
    """

    part_size: int | None = None


Reply: TypeAlias = Json | AwsError | Slow | Stream | Llama


def _aws_body(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}


def throttling(message: str = "Rate exceeded") -> AwsError:
    """``ThrottlingException`` as SageMaker runtime sends it (HTTP 400)."""
    return AwsError(400, "ThrottlingException", _aws_body("ThrottlingException", message))


def model_error(
    original_status: int,
    original_message: str | None = None,
    *,
    log_stream_arn: str | None = LOG_STREAM_ARN,
) -> AwsError:
    """``ModelError`` (HTTP 424): the container answered ``original_status``.

    ``original_message`` defaults to a TGI error body matching the status.
    """
    if original_message is None:
        kind = {429: "overloaded", 422: "validation"}.get(original_status, "generation")
        original_message = json.dumps(
            {"error": f"container said {original_status}", "error_type": kind}
        )
    body: dict[str, Any] = {
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL"
        if original_status < 500
        else "SERVER_ERROR_FROM_MODEL",
        "Message": f"Received {'client' if original_status < 500 else 'server'} error "
        f'({original_status}) from primary with message "{original_message}". See '
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home in account 123456789012 "
        "for more information.",
        "OriginalMessage": original_message,
        "OriginalStatusCode": original_status,
    }
    if log_stream_arn is not None:
        body["LogStreamArn"] = log_stream_arn
    return AwsError(424, "ModelError", body)


def service_unavailable() -> AwsError:
    return AwsError(503, "ServiceUnavailable", _aws_body("ServiceUnavailable", "Unavailable"))


def internal_failure() -> AwsError:
    return AwsError(500, "InternalFailure", _aws_body("InternalFailure", "Internal failure"))


def model_not_ready(message: str = "Model is not ready yet") -> AwsError:
    return AwsError(429, "ModelNotReadyException", _aws_body("ModelNotReadyException", message))


def validation_error(message: str) -> AwsError:
    return AwsError(400, "ValidationError", _aws_body("ValidationError", message))


def endpoint_not_found(name: str) -> AwsError:
    return validation_error(f"Endpoint {name} of account 123456789012 not found.")


def component_not_found(name: str) -> AwsError:
    return validation_error(f"Inference Component {name} not found.")


def access_denied() -> AwsError:
    message = "User is not authorized to perform: sagemaker:InvokeEndpoint"
    return AwsError(400, "AccessDeniedException", _aws_body("AccessDeniedException", message))


# -- SSE and event-stream encoding ------------------------------------------------------------


def tgi_events(
    tokens: Sequence[str],
    *,
    finish_reason: str = "eos_token",
    generated_tokens: int | None = None,
    input_length: int = 7,
    eos: str | None = "<|im_end|>",
    prefix: str = "data:",
    terminator: str = "\n\n",
) -> list[bytes]:
    """A TGI generate stream: one event per token; the last carries text and ``details``.

    With ``eos`` set, the last event is the (special) end-of-sequence token, as TGI sends it
    when the model stopped by itself; otherwise the last text token is the final event.
    """
    texts = [(t, False) for t in tokens] + ([(eos, True)] if eos is not None else [])
    events = []
    for index, (text, special) in enumerate(texts):
        last = index == len(texts) - 1
        event: dict[str, Any] = {
            "index": index,
            "token": {"id": index, "text": text, "logprob": -0.5, "special": special},
            "generated_text": "".join(tokens) if last else None,
            "details": {
                "finish_reason": finish_reason,
                "generated_tokens": len(texts) if generated_tokens is None else generated_tokens,
                "seed": None,
                "input_length": input_length,
            }
            if last
            else None,
        }
        events.append(_sse(event, prefix, terminator))
    return events


def chat_events(
    tokens: Sequence[str],
    *,
    finish_reason: str = "stop",
    usage: tuple[int, int] | None = None,
    done: bool = True,
    prefix: str = "data: ",
    terminator: str = "\n\n",
) -> list[bytes]:
    """An OpenAI-style chat stream (TGI Messages API): deltas, a finish, usage, ``[DONE]``."""
    events = []
    for index, text in enumerate(tokens):
        last = index == len(tokens) - 1
        events.append(_sse(_chunk(text, finish_reason if last else None), prefix, terminator))
    if usage is not None:
        chunk = _chunk("", None)
        chunk["choices"] = []
        chunk["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
        events.append(_sse(chunk, prefix, terminator))
    if done:
        events.append(f"{prefix}[DONE]{terminator}".encode())
    return events


def _chunk(text: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "id": "",
        "created": int(time.time()),
        "model": "tgi",
        "system_fingerprint": "wire-3.0.0-native",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": None,
    }


def _sse(event: Any, prefix: str = "data:", terminator: str = "\n\n") -> bytes:
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"{prefix}{text}{terminator}".encode()


def split_at(data: bytes, offsets: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given byte offsets (anywhere: inside lines, JSON, UTF-8 chars)."""
    cuts = sorted({o for o in offsets if 0 < o < len(data)})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _crc(data: bytes) -> bytes:
    return struct.pack(">I", binascii.crc32(data) & 0xFFFFFFFF)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only, header value type 7)."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += bytes([len(raw_name)]) + raw_name + b"\x07"
        encoded += struct.pack(">H", len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + _crc(prelude) + encoded + payload
    return message + _crc(message)


def payload_part(data: bytes) -> bytes:
    """A ``PayloadPart`` event whose ``Bytes`` are ``data``."""
    headers = {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    return encode_message(headers, data)


def exception_frame(exception_type: str, message: str, error_code: str | None = None) -> bytes:
    """A modeled stream exception (``ModelStreamError``, ``InternalStreamFailure``)."""
    body: dict[str, str] = {"Message": message}
    if error_code is not None:
        body["ErrorCode"] = error_code
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, json.dumps(body).encode())


def error_frame(code: str, message: str) -> bytes:
    """An unmodeled stream error frame (``:message-type: error``)."""
    return encode_message(
        {":error-code": code, ":error-message": message, ":message-type": "error"}, b""
    )


# -- recorded requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request as it reached the server."""

    endpoint: str
    streaming: bool
    headers: Mapping[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)  # the client's address: the same for a reused connection
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def custom_attributes(self) -> str | None:
        return self.headers.get("x-amzn-sagemaker-custom-attributes")

    @property
    def inference_component(self) -> str | None:
        return self.headers.get("x-amzn-sagemaker-inference-component")


# -- the server -------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many concurrent clients (benchmarks) connect at once
    wire: WireServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (timeouts, early exits) is normal here: stay quiet."""
        import sys

        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            self.wire.errors.append(f"{type(error).__name__}: {error}")


class WireServer:
    """A threaded SageMaker-runtime server on 127.0.0.1 (an ephemeral port).

    Args:
        backend: the model behind :class:`Llama` replies (e.g. ``LocalBackend``).
        default: the reply when the script is empty (default: ``Llama()`` with a backend,
            else an ``InternalFailure``).
    """

    def __init__(self, backend: Backend | None = None, *, default: Reply | None = None) -> None:
        self.backend = backend
        self.default: Reply = default or (
            Llama() if backend is not None else AwsError(500, "InternalFailure", None)
        )
        self.disconnected = threading.Event()  # a client hung up on a stream being sent
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self._script: deque[Reply] = deque()
        self._requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> WireServer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.wire = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the wire server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # script and records

    def push(self, *replies: Reply) -> None:
        """Queue replies; each request consumes the next one."""
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        """Forget the script, the recorded requests, errors and disconnects."""
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self.errors.clear()
        self.disconnected.clear()

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._script)

    def _take(self, received: Received) -> Reply:
        with self._lock:
            self._requests.append(received)
            return self._script.popleft() if self._script else self.default


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, as a real server's do

    @property
    def wire(self) -> WireServer:
        return cast(_Server, self.server).wire

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        match = _ROUTE.fullmatch(urlsplit(self.path).path)
        if match is None:
            self._send_error(AwsError(404, "UnknownOperationException", _aws_body("", "")))
            return
        received = Received(
            endpoint=unquote(match[1]),
            streaming=match[2] == "invocations-response-stream",
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            peer=(str(self.client_address[0]), int(self.client_address[1])),
        )
        reply = self.wire._take(received)
        try:
            self._reply(reply, received)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as exc:  # a bug in a script: report it to the test
            self.wire.errors.append(f"{type(exc).__name__}: {exc}")
            self.close_connection = True

    # dispatch

    def _reply(self, reply: Reply, received: Received) -> None:
        if isinstance(reply, Slow):
            self.wire.stopping.wait(reply.delay_s)
            self._reply(reply.then, received)
        elif isinstance(reply, AwsError):
            self._send_error(reply)
        elif isinstance(reply, Json) and not received.streaming:
            raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self._send(reply.status, raw, {"Content-Type": "application/json"})
        elif isinstance(reply, Stream) and received.streaming:
            self._stream(reply)
        elif isinstance(reply, Llama):
            self._llama(reply, received)
        else:
            raise TypeError(f"{type(reply).__name__} cannot answer this route ({self.path})")

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, error: AwsError) -> None:
        headers = {"Content-Type": "application/json"}
        if error.code:
            headers["x-amzn-ErrorType"] = f"{error.code}:{_NAMESPACE}"
        body = b"" if error.body is None else json.dumps(error.body).encode()
        self._send(error.status, body, headers)

    # event streams

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("X-Amzn-SageMaker-Content-Type", "text/event-stream")
        self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _stream(self, reply: Stream) -> None:
        try:
            self._stream_parts(reply)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.wire.disconnected.set()  # the client hung up while parts were being sent
            self.close_connection = True

    def _stream_parts(self, reply: Stream) -> None:
        self._start_stream()
        for index, part in enumerate(reply.parts):
            delay = reply.delays[index] if index < len(reply.delays) else reply.part_delay_s
            if delay:
                self.wire.stopping.wait(delay)
            self._chunk(payload_part(part))
        if reply.fault is not None:
            fault = reply.fault
            frame = (
                exception_frame(fault.type, fault.message, fault.error_code)
                if fault.kind == "exception"
                else error_frame(fault.type, fault.message)
            )
            self._chunk(frame)
        if reply.abort:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.hold_open and self._await_disconnect(reply.hold_limit_s):
            self.wire.disconnected.set()
            self.close_connection = True
            return
        self._end_stream()

    def _await_disconnect(self, limit_s: float) -> bool:
        """Wait until the client closes the connection (True) or ``limit_s`` passes."""
        sock = self.connection
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not self.wire.stopping.is_set():
            readable, _, _ = select.select([sock], [], [], 0.05)
            if not readable:
                continue
            try:
                data = sock.recv(1, socket.MSG_PEEK)
            except OSError:
                return True
            return not data
        return False

    # the model

    def _llama(self, reply: Llama, received: Received) -> None:
        backend = self.wire.backend
        if backend is None:
            raise TypeError("Llama replies need a WireServer(backend=...)")
        try:
            call = _tgi_call(received.json)
        except (ValueError, TypeError, KeyError, LLMTwinError) as exc:
            error = json.dumps(
                {"error": f"Input validation error: {exc}", "error_type": "validation"}
            )
            self._send_error(model_error(422, error))
            return
        if not received.streaming:
            generation = backend.generate(call.prompt, call.params)
            body = call.answer(generation.text, generation.finish_reason, generation.usage)
            self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
            return
        self._start_stream()
        parts = _Parts(self._chunk, reply.part_size)
        with backend.stream(call.prompt, call.params) as stream:
            held: str | None = None
            for piece in stream:
                if held is not None:
                    parts.send(call.event(held))
                held = piece
            final = stream.generation
        assert final is not None
        for event in call.final_events(held, final.text, final.finish_reason, final.usage):
            parts.send(event)
        parts.flush()
        self._end_stream()


class _Parts:
    """Sends SSE bytes as payload parts: one per event, or re-cut to ``size`` bytes."""

    def __init__(self, chunk: Any, size: int | None) -> None:
        self._chunk = chunk
        self._size = size
        self._buffer = b""

    def send(self, data: bytes) -> None:
        if self._size is None:
            self._chunk(payload_part(data))
            return
        self._buffer += data
        while len(self._buffer) >= self._size:
            part, self._buffer = self._buffer[: self._size], self._buffer[self._size :]
            self._chunk(payload_part(part))

    def flush(self) -> None:
        if self._buffer:
            self._chunk(payload_part(self._buffer))
            self._buffer = b""


@dataclass
class _TgiCall:
    """A request as TGI reads it, and the answers TGI would give."""

    chat: bool
    prompt: Any
    params: GenerationParams
    details: bool = True
    include_usage: bool = False
    index: int = 0

    def answer(self, text: str, finish: str, usage: Any) -> Any:
        if self.chat:
            return {
                "object": "chat.completion",
                "id": "",
                "created": int(time.time()),
                "model": "tgi",
                "system_fingerprint": "wire-3.0.0-native",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                },
            }
        answer: dict[str, Any] = {"generated_text": text}
        if self.details:
            answer["details"] = {
                "finish_reason": "length" if finish == "length" else "eos_token",
                "generated_tokens": usage.completion_tokens,
                "seed": self.params.seed,
                "prefill": [],
                "tokens": [],
            }
        return [answer]

    def event(self, text: str, *, special: bool = False, final: Any = None) -> bytes:
        self.index += 1
        if self.chat:
            chunk = _chunk("" if special else text, final)
            return _sse(chunk, "data: ")
        event: dict[str, Any] = {
            "index": self.index,
            "token": {"id": self.index, "text": text, "logprob": -0.5, "special": special},
            "generated_text": None,
            "details": None,
        }
        if final is not None:
            event["generated_text"], event["details"] = final
        return _sse(event, "data:")

    def final_events(self, held: str | None, text: str, finish: str, usage: Any) -> Iterator[bytes]:
        if self.chat:
            if held is not None and finish == "length":
                yield self.event(held, final="length")
            else:
                if held is not None:
                    yield self.event(held)
                yield self.event("", special=True, final="stop")
            if self.include_usage:
                chunk = _chunk("", None)
                chunk["choices"] = []
                chunk["usage"] = {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                }
                yield _sse(chunk, "data: ")
            yield b"data: [DONE]\n\n"
            return
        details = {
            "finish_reason": "length" if finish == "length" else "eos_token",
            "generated_tokens": usage.completion_tokens,
            "seed": self.params.seed,
            "input_length": usage.prompt_tokens,
        }
        if held is not None and finish == "length":
            yield self.event(held, final=(text, details))
        else:
            if held is not None:
                yield self.event(held)
            yield self.event("<|im_end|>", special=True, final=(text, details))


def _tgi_call(body: Any) -> _TgiCall:
    """Read a request as TGI does, with TGI's validation rules."""
    if not isinstance(body, dict):
        raise TypeError("the body must be a JSON object")
    if "messages" in body:
        return _chat_call(body)
    inputs = body["inputs"]
    if not isinstance(inputs, str) or not inputs:
        raise ValueError("`inputs` cannot be empty")
    parameters = body.get("parameters")
    do_sample = True if parameters is None else bool(parameters.get("do_sample", False))
    p = parameters or {}
    if p.get("return_full_text"):
        raise ValueError("this wire server does not implement return_full_text")
    params = _sampling(
        do_sample=do_sample,
        temperature=p.get("temperature"),
        top_p=p.get("top_p"),
        repetition_penalty=p.get("repetition_penalty"),
        max_new_tokens=p.get("max_new_tokens", 100),
        stop=p.get("stop") or [],
        seed=p.get("seed"),
        json_schema=_grammar_schema(p.get("grammar"), "grammar"),
    )
    return _TgiCall(chat=False, prompt=inputs, params=params, details=bool(p.get("details")))


def _chat_call(body: dict[str, Any]) -> _TgiCall:
    temperature = body.get("temperature")
    presence = body.get("presence_penalty")
    # TGI: greedy only when temperature == 0; repetition_penalty = presence_penalty + 2.
    params = _sampling(
        do_sample=temperature != 0,
        temperature=None if temperature == 0 else temperature,
        top_p=body.get("top_p"),
        repetition_penalty=None if presence is None else presence + 2.0,
        max_new_tokens=body.get("max_tokens") or 100,
        stop=body.get("stop") or [],
        seed=body.get("seed"),
        json_schema=_grammar_schema(body.get("response_format"), "response_format"),
    )
    options = body.get("stream_options") or {}
    return _TgiCall(
        chat=True,
        prompt=to_messages(body["messages"]),
        params=params,
        include_usage=bool(options.get("include_usage")),
    )


def _grammar_schema(grammar: Any, field: str) -> dict[str, Any] | None:
    """The JSON schema of a TGI grammar ``{"type": "json" | "json_object", "value": schema}``
    (``parameters.grammar``, or the Messages API's ``response_format``); TGI rejects other
    shapes (regex grammars are not implemented here)."""
    if grammar is None:
        return None
    if not isinstance(grammar, dict) or grammar.get("type") not in ("json", "json_object"):
        raise ValueError(f'`{field}` must be {{"type": "json", "value": <schema>}}')
    if "value" not in grammar:
        raise ValueError(f"`{field}`: missing field `value`")
    value = grammar["value"]
    schema = json.loads(value) if isinstance(value, str) else value
    if not isinstance(schema, dict):
        raise ValueError(f"`{field}`: the JSON schema must be an object")
    return schema


def _sampling(
    *,
    do_sample: bool,
    temperature: float | None,
    top_p: float | None,
    repetition_penalty: float | None,
    max_new_tokens: int,
    stop: list[str],
    seed: int | None,
    json_schema: dict[str, Any] | None = None,
) -> GenerationParams:
    if temperature is not None and temperature <= 0:
        raise ValueError("`temperature` must be strictly positive")
    if top_p is not None and not 0 < top_p < 1:
        raise ValueError("`top_p` must be > 0.0 and < 1.0")
    if repetition_penalty is not None and repetition_penalty <= 0:
        raise ValueError("`repetition_penalty` must be strictly positive")
    if max_new_tokens <= 0:
        raise ValueError("`max_new_tokens` must be strictly positive")
    if len(stop) > 4:
        raise ValueError(f"`stop` supports up to 4 stop sequences. Given: {len(stop)}")
    if seed is not None and seed < 0:
        raise ValueError("`seed` must be a u64")
    # TGI samples when asked to, or when a warper (temperature != 1, top_p < 1) is set.
    sampling = do_sample or (temperature not in (None, 1.0)) or top_p is not None
    return GenerationParams(
        max_new_tokens=max_new_tokens,
        temperature=(temperature or 1.0) if sampling else 0.0,
        top_p=top_p or 1.0,
        repetition_penalty=repetition_penalty or 1.0,
        stop=tuple(stop),
        seed=seed,
        json_schema=json_schema,
    )
