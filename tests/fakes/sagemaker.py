"""A SageMaker-runtime wire server, for tests and benchmarks: boto3's own serializer and
botocore's own parsers run against it.

- ``POST /endpoints/{name}/invocations``: JSON in, JSON out. Errors look like the service's:
  a status, an ``x-amzn-ErrorType: <Code>:<namespace>`` header and a JSON body; ``ModelError``
  is HTTP 424 with ``OriginalStatusCode``, ``OriginalMessage`` and ``LogStreamArn``.
- ``POST /endpoints/{name}/async-invocations`` (``InvokeEndpointAsync``, given ``aws=``
  clients of a moto server): reads the endpoint's ``AsyncInferenceConfig`` from moto's
  SageMaker and the request body from moto's S3 (``InputLocation``), answers it as
  ``/invocations`` would (the queued reply or the default), writes the answer to the output
  path (``<uuid>.out``) or, for an error, to the failure path (``<uuid>-error.out``), and
  answers 202 with both locations, as the service does. The work is done before the answer.
- With ``aws=``, an endpoint deployed on moto with your own code (a model whose container
  sets ``SAGEMAKER_PROGRAM``) is answered by its ``inference.py``, run from the
  ``model.tar.gz`` in moto's S3 as the inference toolkit runs it (:mod:`fakes.toolkit`): any
  content type in and out.
- ``POST /endpoints/{name}/invocations-response-stream``: HTTP 200 and an AWS event stream
  (``application/vnd.amazon.eventstream``, chunked), framed as the service frames it: prelude
  (total length, headers length, CRC32), string headers, payload, message CRC32.
  ``PayloadPart`` events carry the container's raw bytes. Failures mid-stream are
  ``:message-type: exception`` frames (``ModelStreamError``, ``InternalStreamFailure``) or
  ``:message-type: error`` frames.

The vocabulary of :mod:`fakes.server`: ``server.fail(throttling(), model_error(429))`` queues
AWS errors and stream faults; ``server.reply(Json(body), Stream(parts))`` queues canned
answers; otherwise the :attr:`WireServer.default` reply answers -- :class:`Llama` (the real
llama.cpp model, shaped as TGI or LMI on SageMaker) when the server has a backend.

Example::

    with WireServer(LocalBackend()) as server:
        server.fail(throttling(), model_error(429))
        runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, ...)
        ...
        assert len(server.requests) == 3
"""

from __future__ import annotations

import binascii
import json
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeAlias
from urllib.parse import unquote

from llm_twin_sdk import LocalBackend
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.errors import LLMTwinError

from .server import Exchange, FakeServer, Fault, Request
from .shapes import Container, Model, read_ask, stream_events, whole_answer
from .toolkit import Toolkit, deployed_toolkit

__all__ = [
    "Computed",
    "Handler",
    "Invocation",
    "PartsRuntime",
    "Json",
    "Llama",
    "Reply",
    "Stream",
    "WireServer",
    "access_denied",
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
    "stream_error_frame",
    "stream_exception",
    "throttling",
    "validation_error",
]

_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.sagemaker/"
LOG_STREAM_ARN = (
    "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/twin"
    ":log-stream:AllTraffic/i-0123456789abcdef0"
)


class Invocation(Request):
    """A recorded invocation."""

    @property
    def endpoint(self) -> str:
        return unquote(self.params.get("endpoint", ""))

    @property
    def streaming(self) -> bool:
        return self.route == "invoke_stream"

    @property
    def custom_attributes(self) -> str | None:
        return self.headers.get("x-amzn-sagemaker-custom-attributes")

    @property
    def inference_component(self) -> str | None:
        return self.headers.get("x-amzn-sagemaker-inference-component")


# -- canned answers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Json:
    """An ``/invocations`` answer: ``body`` as JSON (``bytes`` are sent as they are)."""

    body: Any
    status: int = 200


@dataclass(frozen=True)
class Stream:
    """An ``/invocations-response-stream`` answer: one ``PayloadPart`` per item of ``parts``
    (split SSE lines anywhere you like). Stream faults (``server.fail``) count these parts."""

    parts: Sequence[bytes]


@dataclass(frozen=True)
class Llama:
    """Answer with the server's backend (the real model; without one, the token script of
    :class:`~fakes.shapes.Model`), shaped as ``container`` answers on
    SageMaker: TGI (``[{"generated_text", "details"}]``, SSE token events, the Messages API for
    ``messages``) or LMI (``{"generated_text"}``, JSON lines, its chat schema). Parameters are
    validated as TGI does; a violation is relayed like SageMaker relays the container's error
    (a 424 ``ModelError`` with the container's status). ``part_size`` re-cuts the stream's
    bytes into payload parts of that many bytes (default: one event per part)."""

    part_size: int | None = None
    container: Container = "tgi"


@dataclass(frozen=True)
class Computed:
    """An ``/invocations`` answer computed from the request's JSON body by ``answer`` (a
    container that is not text generation: ``Computed(lambda body: embed_answer(body, 16))``
    answers as a TEI endpoint does)."""

    answer: Callable[[Any], Any]


@dataclass(frozen=True)
class Handler:
    """An ``/invocations`` answer of any content type, computed from the raw request:
    ``answer(body, content_type, accept) -> (body, content_type)`` (a framework container
    running the user's code: :class:`~fakes.toolkit.Toolkit`). An exception is the
    container's 500, relayed as SageMaker does: a 424 ``ModelError``."""

    answer: Callable[[bytes, str | None, str | None], tuple[bytes, str]]


Reply: TypeAlias = Json | Stream | Llama | Computed | Handler


# -- AWS errors (faults) ----------------------------------------------------------------------


def aws_error(status: int, code: str, message: str | None = None, **members: Any) -> Fault:
    """A service error as SageMaker runtime sends it (``code=""``: no error-type header)."""
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if code:
        headers["x-amzn-ErrorType"] = f"{code}:{_NAMESPACE}"
    body = {"__type": code, "message": message, **members} if message is not None else None
    return Fault.raw(status, body, headers=headers)


def throttling(message: str = "Rate exceeded") -> Fault:
    return aws_error(400, "ThrottlingException", message)


def model_error(
    original_status: int,
    original_message: str | None = None,
    *,
    log_stream_arn: str | None = LOG_STREAM_ARN,
) -> Fault:
    """``ModelError`` (HTTP 424): the container answered ``original_status`` (default: a TGI
    error body matching the status)."""
    if original_message is None:
        kind = {429: "overloaded", 422: "validation"}.get(original_status, "generation")
        original_message = json.dumps(
            {"error": f"container said {original_status}", "error_type": kind}
        )
    side = "client" if original_status < 500 else "server"
    members: dict[str, Any] = {
        "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
        "OriginalMessage": original_message,
        "OriginalStatusCode": original_status,
    }
    if log_stream_arn is not None:
        members["LogStreamArn"] = log_stream_arn
    message = (
        f'Received {side} error ({original_status}) from primary with message "{original_message}".'
    )
    return aws_error(424, "ModelError", message, Message=message, **members)


def service_unavailable() -> Fault:
    return aws_error(503, "ServiceUnavailable", "Unavailable")


def internal_failure() -> Fault:
    return aws_error(500, "InternalFailure", "Internal failure")


def model_not_ready(message: str = "Model is not ready yet") -> Fault:
    return aws_error(429, "ModelNotReadyException", message)


def validation_error(message: str) -> Fault:
    return aws_error(400, "ValidationError", message)


def endpoint_not_found(name: str) -> Fault:
    return validation_error(f"Endpoint {name} of account 123456789012 not found.")


def component_not_found(name: str) -> Fault:
    return validation_error(f"Inference Component {name} not found.")


def access_denied() -> Fault:
    message = "User is not authorized to perform: sagemaker:InvokeEndpoint"
    return aws_error(400, "AccessDeniedException", message)


def stream_exception(
    after: int = 0,
    type: str = "ModelStreamError",
    message: str = "Your model stream was interrupted.",
    error_code: str | None = "StreamBroken",
) -> Fault:
    """A modeled stream exception frame after ``after`` payload parts."""
    return Fault.error_event(after, {"frame": exception_frame(type, message, error_code)})


_STREAM_BROKEN: dict[str, bytes] = {}  # filled below, once exception_frame exists


def stream_error_frame(after: int, code: str, message: str) -> Fault:
    """An unmodeled ``:message-type: error`` frame after ``after`` payload parts."""
    return Fault.error_event(after, {"frame": error_frame(code, message)})


# -- event-stream encoding --------------------------------------------------------------------


def _crc(data: bytes) -> bytes:
    return struct.pack(">I", binascii.crc32(data) & 0xFFFFFFFF)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only, header value type 7)."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += (
            bytes([len(raw_name)])
            + raw_name
            + b"\x07"
            + struct.pack(">H", len(raw_value))
            + raw_value
        )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
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


_STREAM_BROKEN["frame"] = exception_frame("ModelStreamError", "Your model stream was interrupted.")


def recut(parts: Iterable[bytes], size: int | None) -> Iterator[bytes]:
    """``parts`` as they are, or their bytes re-cut into pieces of ``size``."""
    if size is None:
        yield from parts
        return
    buffer = b""
    for part in parts:
        buffer += part
        while len(buffer) >= size:
            yield buffer[:size]
            buffer = buffer[size:]
    if buffer:
        yield buffer


# -- without the wire ---------------------------------------------------------------------------


class PayloadEvents:
    """What botocore's EventStream is to the backend: ``PayloadPart`` dicts, ``close()``."""

    def __init__(self, parts: Sequence[bytes]) -> None:
        self.parts = parts
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for part in self.parts:
            yield {"PayloadPart": {"Bytes": part}}

    def close(self) -> None:
        self.closed = True


class PartsRuntime:
    """A duck-typed ``sagemaker-runtime`` client (``SageMakerBackend(runtime_client=...)``):
    each stream call hands over the next of ``streams`` as payload parts, no wire involved;
    ``events`` is the last one handed over, ``calls`` counts the calls."""

    meta = SimpleNamespace(
        config=SimpleNamespace(
            retries={"total_max_attempts": 1}, connect_timeout=10.0, read_timeout=60.0
        )
    )

    def __init__(self, *streams: Sequence[bytes]) -> None:
        self.streams = list(streams)
        self.calls = 0
        self.events = PayloadEvents([])

    def invoke_endpoint_with_response_stream(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        self.events = PayloadEvents(self.streams.pop(0))
        return {"Body": self.events}


# -- the server -------------------------------------------------------------------------------


class WireServer(FakeServer[Invocation]):
    """A threaded SageMaker-runtime server on 127.0.0.1.

    Args:
        backend: the model behind :class:`Llama` replies (e.g. ``LocalBackend``).
        default: the reply when none is queued (default: ``Llama()`` with a backend, else an
            ``InternalFailure``); ``Llama()`` without a backend answers from the token script.
    """

    route_table = (
        ("POST", r"/endpoints/(?P<endpoint>[^/]+)/invocations", "invoke"),
        ("POST", r"/endpoints/(?P<endpoint>[^/]+)/invocations-response-stream", "invoke_stream"),
        ("POST", r"/endpoints/(?P<endpoint>[^/]+)/async-invocations", "invoke_async"),
    )
    request_type = Invocation

    def __init__(
        self,
        backend: LocalBackend | None = None,
        *,
        default: Reply | None = None,
        aws: AWSClients | None = None,
    ) -> None:
        super().__init__()
        self.model = Model(backend)
        self.default: Reply | None = default or (Llama() if backend is not None else None)
        self.aws = aws  # moto's clients: where InvokeEndpointAsync reads and writes
        self.containers: dict[str, Toolkit] = {}  # framework containers by archive URL

    def error_body(self, status: int, message: str) -> Any:
        return {"__type": "", "message": message}

    def stop(self) -> None:
        super().stop()
        for container in self.containers.values():
            container.close()

    def answer(self, exchange: Exchange) -> None:
        request = exchange.request
        assert isinstance(request, Invocation)
        if request.route is None:
            exchange.json(
                404,
                {"message": f"no route {request.path}"},
                [("x-amzn-ErrorType", "UnknownOperationException")],
            )
            return
        reply = self.next_reply()
        if reply is None and self.aws is not None and request.route == "invoke":
            toolkit = deployed_toolkit(self.aws, request.endpoint, self.containers)
            reply = Handler(toolkit) if toolkit is not None else None
        reply = reply or self.default
        if request.route == "invoke_async":
            self._async(exchange, request, reply)
        elif reply is None:
            fault = internal_failure()
            exchange.json(fault.status, fault.body, fault.headers)
        elif isinstance(reply, Json) and not request.streaming:
            raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            exchange.send(reply.status, raw, headers=[("x-amzn-RequestId", str(uuid.uuid4()))])
        elif isinstance(reply, Computed) and not request.streaming:
            raw = json.dumps(reply.answer(request.body)).encode()
            exchange.send(200, raw, headers=[("x-amzn-RequestId", str(uuid.uuid4()))])
        elif isinstance(reply, Handler) and not request.streaming:
            self._handler(exchange, request, reply)
        elif isinstance(reply, Stream) and request.streaming:
            self._stream(exchange, reply.parts)
        elif isinstance(reply, Llama):
            self._llama(exchange, request, reply)
        else:
            raise TypeError(f"{type(reply).__name__} cannot answer {request.path}")

    def _stream(
        self, exchange: Exchange, parts: Iterable[bytes], kind: str = "text/event-stream"
    ) -> None:
        exchange.stream(
            parts,
            content_type="application/vnd.amazon.eventstream",
            headers=[
                ("x-amzn-RequestId", str(uuid.uuid4())),
                ("X-Amzn-SageMaker-Content-Type", kind),
                ("x-Amzn-Invoked-Production-Variant", "AllTraffic"),
            ],
            write=lambda part: exchange.chunk(payload_part(part)),
            error_event=lambda fault: exchange.chunk((fault.body or _STREAM_BROKEN)["frame"]),
        )

    def _handler(self, exchange: Exchange, request: Invocation, reply: Handler) -> None:
        headers = request.headers
        try:
            raw, kind = reply.answer(
                request.raw, headers.get("content-type"), headers.get("accept")
            )
        except Exception as exc:  # the container's 500, as SageMaker relays it
            fault = model_error(500, json.dumps({"message": str(exc)}))
            exchange.json(fault.status, fault.body, fault.headers)
            return
        exchange.send(200, raw, kind, headers=[("x-amzn-RequestId", str(uuid.uuid4()))])

    def _llama(self, exchange: Exchange, request: Invocation, reply: Llama) -> None:
        lmi = reply.container == "lmi"
        try:
            ask = read_ask(request.body, lmi=lmi)
        except (ValueError, TypeError, KeyError, LLMTwinError) as exc:
            body: dict[str, Any] = {"error": f"Input validation error: {exc}"}
            body.update({"code": 424} if lmi else {"error_type": "validation"})
            fault = model_error(424 if lmi else 422, json.dumps(body))
            exchange.json(fault.status, fault.body, fault.headers)
            return
        if not request.streaming:
            answer = whole_answer(self.model, ask, listed=not lmi)
            exchange.send(
                200, json.dumps(answer).encode(), headers=[("x-amzn-RequestId", str(uuid.uuid4()))]
            )
            return
        events = stream_events(self.model, ask, container=reply.container)
        kind = "application/jsonlines" if lmi else "text/event-stream"
        self._stream(exchange, recut(events, reply.part_size), kind)

    def _async(self, exchange: Exchange, request: Invocation, reply: Reply | None) -> None:
        """InvokeEndpointAsync: read the input from S3, answer it, write the output or the
        failure to the endpoint's S3 paths; 202 with their locations."""
        assert self.aws is not None, "WireServer(aws=...) serves InvokeEndpointAsync"
        sm, s3 = self.aws.client("sagemaker"), self.aws.client("s3")
        try:
            live = sm.describe_endpoint(EndpointName=request.endpoint)
            config = sm.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
        except sm.exceptions.ClientError:
            fault = validation_error(f"Endpoint {request.endpoint} not found.")
            exchange.json(fault.status, fault.body, fault.headers)
            return
        output = (config.get("AsyncInferenceConfig") or {}).get("OutputConfig")
        if output is None:
            fault = validation_error(f"Endpoint {request.endpoint} is not asynchronous.")
            exchange.json(fault.status, fault.body, fault.headers)
            return
        source = request.headers.get("x-amzn-sagemaker-inputlocation", "")
        bucket, key = source.removeprefix("s3://").split("/", 1)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        answer, failed = self._async_answer(body, reply)
        request_id = str(uuid.uuid4())
        where = {
            "output": f"{output['S3OutputPath'].rstrip('/')}/{request_id}.out",
            "failure": f"{output.get('S3FailurePath', output['S3OutputPath']).rstrip('/')}"
            f"/{request_id}-error.out",
        }
        bucket, key = where["failure" if failed else "output"].removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=bucket, Key=key, Body=answer)
        inference_id = request.headers.get("x-amzn-sagemaker-inference-id") or request_id
        exchange.send(
            202,
            json.dumps({"InferenceId": inference_id}).encode(),
            headers=[
                ("x-amzn-RequestId", request_id),
                ("X-Amzn-SageMaker-OutputLocation", where["output"]),
                ("X-Amzn-SageMaker-FailureLocation", where["failure"]),
            ],
        )

    def _async_answer(self, body: bytes, reply: Reply | None) -> tuple[bytes, bool]:
        """The container's answer to an async request body, and whether it failed."""
        if isinstance(reply, Json):
            raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            return raw, reply.status >= 400
        if not isinstance(reply, Llama):
            return b"InternalFailure: no reply for this request", True
        try:
            ask = read_ask(json.loads(body), lmi=reply.container == "lmi")
        except (ValueError, TypeError, KeyError, LLMTwinError) as exc:
            return f"Input validation error: {exc}".encode(), True
        answer = whole_answer(self.model, ask, listed=reply.container != "lmi")
        return json.dumps(answer).encode(), False
