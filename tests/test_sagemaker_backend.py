"""SageMakerBackend against a SageMaker-runtime wire server: real boto3, real botocore parsing.

The wire server (tests/fakes/sagemaker.py) speaks the service's HTTP protocol and event-stream
framing on 127.0.0.1; its default reply runs the real SmolLM2 model and answers in TGI's
shapes. Faults are scripted per test, and every request that reaches it is counted.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from fakes import Fault, chat_events, split_at, tgi_events
from fakes.sagemaker import (
    Json,
    Llama,
    Stream,
    WireServer,
    access_denied,
    aws_error,
    component_not_found,
    encode_message,
    endpoint_not_found,
    error_frame,
    exception_frame,
    internal_failure,
    model_error,
    model_not_ready,
    payload_part,
    service_unavailable,
    stream_error_frame,
    stream_exception,
    throttling,
    validation_error,
)
from llm_twin_sdk import (
    AccessDeniedError,
    AWSError,
    AWSThrottledError,
    Backend,
    ConfigurationError,
    EndpointAccessDeniedError,
    EndpointNotFoundError,
    EndpointThrottledError,
    GenerationParams,
    InferenceClient,
    InferenceError,
    InferenceTimeoutError,
    LocalBackend,
    ModelError,
    ModelUnavailableError,
    PayloadTooLargeError,
    StreamBrokenError,
    TextStream,
    ThrottledError,
    Timeouts,
)
from llm_twin_sdk.aws import AWSClients, botocore_config
from llm_twin_sdk.inference.backends.sagemaker import MAX_PAYLOAD_BYTES, SageMakerBackend
from llm_twin_sdk.retry import NO_RETRY, RetryPolicy, is_transient_inference_error
from llm_twin_sdk.types import Message, to_messages

ENDPOINT = "twin-endpoint"
GREEDY = GenerationParams(max_new_tokens=10, temperature=0.0, seed=7)
CHAT = to_messages([{"role": "user", "content": "Say hello to the team."}])
TEXT = "The three primary colours are"
OK_BODY = [
    {"generated_text": "ok", "details": {"finish_reason": "eos_token", "generated_tokens": 1}}
]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wire_server(local_backend: LocalBackend) -> Iterator[WireServer]:
    with WireServer(local_backend) as server:
        yield server


@pytest.fixture
def server(wire_server: WireServer) -> Iterator[WireServer]:
    wire_server.reset()
    yield wire_server
    assert not wire_server.handler_errors, wire_server.handler_errors


@pytest.fixture
def aws(server: WireServer, aws_credentials: None) -> AWSClients:
    return AWSClients(region="us-east-1", endpoint_url=server.url)


@pytest.fixture
def backend(aws: AWSClients) -> Iterator[SageMakerBackend]:
    with SageMakerBackend(ENDPOINT, aws=aws) as b:
        yield b


def _read_into(stream: TextStream, received: list[str]) -> None:
    with stream:
        received.extend(stream)


@contextlib.contextmanager
def _user_warning(match: str) -> Iterator[None]:
    """Like pytest.warns for UserWarning only (pytest.warns makes llama.cpp's leaked
    /dev/null handles print ResourceWarnings at exit)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield
    assert any(match in str(w.message) for w in caught), [str(w.message) for w in caught]


def _call(backend: SageMakerBackend, streaming: bool) -> object:
    return _pieces(backend, TEXT) if streaming else backend.generate(TEXT, GREEDY)


def _pieces(backend: SageMakerBackend, prompt: Any, params: GenerationParams = GREEDY) -> list[str]:
    with backend.stream(prompt, params) as stream:
        return list(stream)


# -- the wire server's framing is what botocore reads -----------------------------------------


def test_event_stream_framing_parses_back_with_botocore() -> None:
    from botocore.eventstream import EventStream, EventStreamBuffer
    from botocore.exceptions import EventStreamError
    from botocore.parsers import EventStreamJSONParser
    from botocore.session import get_session

    frames = payload_part(b'data:{"x":1}\n\n') + payload_part("é".encode())
    frames += exception_frame("ModelStreamError", "boom", "StreamBroken")
    buffer = EventStreamBuffer()
    messages = []
    for piece in split_at(frames, range(0, len(frames), 7)):  # frames cut anywhere
        buffer.add_data(piece)
        messages.extend(buffer)
    assert [m.headers[":message-type"] for m in messages] == ["event", "event", "exception"]
    assert messages[0].headers[":event-type"] == "PayloadPart"
    assert messages[1].payload == "é".encode()
    assert json.loads(messages[2].payload) == {"Message": "boom", "ErrorCode": "StreamBroken"}

    # And through the service model's own event-stream parser, as boto3 uses it.
    operation = (
        get_session()
        .get_service_model("sagemaker-runtime")
        .operation_model("InvokeEndpointWithResponseStream")
    )
    shape = operation.output_shape.members["Body"]

    class Raw:
        def stream(self) -> Iterator[bytes]:
            yield frames

        def close(self) -> None:
            pass

    stream = EventStream(Raw(), shape, EventStreamJSONParser(), "InvokeEndpointWithResponseStream")
    events = iter(stream)
    assert next(events) == {"PayloadPart": {"Bytes": b'data:{"x":1}\n\n'}}
    assert next(events) == {"PayloadPart": {"Bytes": "é".encode()}}
    with pytest.raises(EventStreamError) as info:
        next(events)
    assert info.value.response["Error"] == {"Code": "ModelStreamError", "Message": "boom"}

    error = EventStreamBuffer()
    error.add_data(error_frame("InternalError", "bad") + encode_message({":x": "y"}, b"z"))
    assert [m.headers.get(":error-code") for m in error] == ["InternalError", None]


# -- real model behind the wire: both payload shapes --------------------------------------------


def test_generate_with_the_messages_api(backend: SageMakerBackend, server: WireServer) -> None:
    g = backend.generate(CHAT, GREEDY)
    assert g.text.strip()
    assert g.model == ENDPOINT
    assert g.usage.completion_tokens > 0
    assert g.usage.prompt_tokens > 10  # from the server's usage: the chat template is included
    (request,) = server.requests
    assert not request.streaming
    assert request.endpoint == ENDPOINT
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    body = request.body
    assert body["messages"] == [{"role": "user", "content": "Say hello to the team."}]
    assert body["max_tokens"] == 10
    assert body["temperature"] == 0.0  # TGI's Messages API decodes greedily at 0
    assert "top_p" not in body  # it would turn sampling on
    # The OpenAI-compatible protocol's one rule: the multiplicative penalty under its own
    # name (vLLM reads it), never as OpenAI's additive presence_penalty.
    assert body["repetition_penalty"] == 1.1
    assert "presence_penalty" not in body
    assert body["seed"] == 7
    assert body["stream"] is False


def test_generate_with_the_tgi_generate_payload(
    backend: SageMakerBackend, server: WireServer
) -> None:
    g = backend.generate(TEXT, GREEDY)
    assert g.text.strip()
    assert g.usage.completion_tokens > 0  # details.generated_tokens
    body = server.requests[0].body
    assert body["inputs"] == TEXT
    assert body["stream"] is False
    assert body["parameters"] == {
        "max_new_tokens": 10,
        "return_full_text": False,
        "details": True,
        "do_sample": False,  # TGI rejects temperature 0: greedy is do_sample false, no warper
        "repetition_penalty": 1.1,
        "seed": 7,
    }


def test_sampling_parameters_are_sent_as_tgi_accepts_them(
    backend: SageMakerBackend, server: WireServer
) -> None:
    params = GenerationParams(max_new_tokens=4, temperature=0.7, top_p=0.9, stop=("\n\n",), seed=3)
    backend.generate(TEXT, params)
    backend.generate(CHAT, params.model_copy(update={"top_p": 1.0, "repetition_penalty": 1.0}))
    generate, chat = (r.body for r in server.requests)
    assert generate["parameters"] == {
        "max_new_tokens": 4,
        "return_full_text": False,
        "details": True,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "repetition_penalty": 1.1,
        "stop": ["\n\n"],
        "seed": 3,
    }
    # top_p 1.0 is invalid for TGI (it wants < 1): left out; no penalty: nothing sent.
    assert "top_p" not in chat
    assert "presence_penalty" not in chat
    assert chat["temperature"] == 0.7
    assert chat["stop"] == ["\n\n"]


def test_api_generate_renders_chat_with_the_prompt_format(
    aws: AWSClients, server: WireServer
) -> None:
    def alpaca(messages: list[Message]) -> str:
        return f"### Instruction:\n{messages[-1].content}\n\n### Response:\n"

    with SageMakerBackend(ENDPOINT, aws=aws, api="generate", prompt_format=alpaca) as backend:
        g = backend.generate(CHAT, GREEDY)
        assert backend.count_tokens(CHAT) == backend.count_tokens(alpaca(CHAT))
    assert g.text.strip()
    assert server.requests[0].body["inputs"] == alpaca(CHAT)


def test_api_generate_without_a_prompt_format_rejects_chat_before_sending(
    aws: AWSClients, server: WireServer
) -> None:
    with SageMakerBackend(ENDPOINT, aws=aws, api="generate") as backend:
        with pytest.raises(ConfigurationError, match="prompt_format"):
            backend.generate(CHAT, GREEDY)
        with pytest.raises(ConfigurationError, match="prompt_format"):
            backend.stream(CHAT, GREEDY)
    assert len(server.requests) == 0


@pytest.mark.parametrize("prompt", [CHAT, TEXT], ids=["messages", "generate"])
def test_stream_token_by_token_equals_generate(
    backend: SageMakerBackend, server: WireServer, prompt: Any
) -> None:
    whole = backend.generate(prompt, GREEDY)
    with backend.stream(prompt, GREEDY) as stream:
        pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == whole.text
    final = stream.generation
    assert final is not None
    assert final.text == whole.text
    assert final.finish_reason == whole.finish_reason
    assert final.usage.completion_tokens == whole.usage.completion_tokens
    if prompt is CHAT:  # Messages API: usage from the server (stream_options.include_usage)
        assert final.usage == whole.usage
    else:  # TGI's final stream event carries details.input_length: exact prompt tokens
        assert final.usage.prompt_tokens < backend.count_tokens(TEXT) + 5
    streamed = server.requests[1]
    assert streamed.streaming
    assert streamed.body["stream"] is True
    assert streamed.headers["x-amzn-sagemaker-accept"] == "text/event-stream"


def test_stream_of_the_model_split_into_tiny_parts(
    backend: SageMakerBackend, server: WireServer
) -> None:
    server.reply(Llama(part_size=3), Llama())
    tiny = _pieces(backend, CHAT)
    whole = _pieces(backend, CHAT)
    assert tiny == whole
    assert len(tiny) > 1


# -- scripted streams ---------------------------------------------------------------------------


def test_stream_reassembles_sse_lines_split_anywhere(
    backend: SageMakerBackend, server: WireServer
) -> None:
    tokens = ["Grüße", " aus", " 🚀", " Köln", "\r\n", "日本"]
    data = b"".join(tgi_events(tokens, input_length=9))
    server.reply(Stream(split_at(data, range(0, len(data), 3))))  # cuts inside UTF-8 chars too
    with backend.stream(TEXT, GREEDY) as stream:
        assert list(stream) == tokens
    assert stream.generation is not None
    assert stream.generation.text == "".join(tokens)
    assert stream.generation.finish_reason == "stop"
    assert stream.generation.usage.prompt_tokens == 9
    assert stream.generation.usage.completion_tokens == len(tokens) + 1  # + the EOS token


def test_done_is_honoured(backend: SageMakerBackend, server: WireServer) -> None:
    events = chat_events(["Hi", " there"], usage=(12, 3))
    late = b'data: {"choices":[{"delta":{"content":" IGNORED"},"finish_reason":null}]}\n\n'
    server.reply(Stream([b"".join(events) + late]))
    with backend.stream(CHAT, GREEDY) as stream:
        assert list(stream) == ["Hi", " there"]
    assert stream.generation is not None
    assert stream.generation.text == "Hi there"
    assert (stream.generation.usage.prompt_tokens, stream.generation.usage.completion_tokens) == (
        12,
        3,
    )


def test_final_event_details_are_kept(backend: SageMakerBackend, server: WireServer) -> None:
    events = tgi_events(["a", "b", "c"], finish_reason="length", generated_tokens=3, eos=None)
    server.reply(Stream(events))
    with backend.stream(TEXT, GREEDY) as stream:
        assert list(stream) == ["a", "b", "c"]  # the final event's own token included
    final = stream.generation
    assert final is not None
    assert final.finish_reason == "length"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (7, 3)


def test_chat_stream_without_usage_counts_its_token_events(
    backend: SageMakerBackend, server: WireServer
) -> None:
    server.reply(Stream(chat_events(["x", "y"], finish_reason="length")))
    with backend.stream(CHAT, GREEDY) as stream:
        list(stream)
    assert stream.generation is not None
    assert stream.generation.finish_reason == "length"
    assert stream.generation.usage.completion_tokens == 2
    assert stream.generation.usage.prompt_tokens == backend.count_tokens(CHAT)


def test_error_event_mid_stream_keeps_the_text(
    backend: SageMakerBackend, server: WireServer
) -> None:
    error = b'data:{"error":"CUDA out of memory","error_type":"generation"}\n\n'
    server.reply(Stream([*tgi_events(["Hello", " world"])[:2], error]))
    received: list[str] = []
    with pytest.raises(StreamBrokenError, match="CUDA out of memory") as info:
        _read_into(backend.stream(TEXT, GREEDY), received)
    assert received == ["Hello", " world"]
    assert info.value.partial_text == "Hello world"
    assert not is_transient_inference_error(info.value)


def test_error_event_before_any_text_is_a_model_error(
    backend: SageMakerBackend, server: WireServer
) -> None:
    server.reply(Stream([b'data:{"error":"Model is overloaded","error_type":"overloaded"}\n\n']))
    with pytest.raises(ModelError, match="overloaded") as info:
        _pieces(backend, TEXT)
    assert info.value.status == 429
    assert is_transient_inference_error(info.value)  # nothing delivered: safe to retry


@pytest.mark.parametrize(
    "fault",
    [
        stream_exception(after=2),
        stream_exception(after=2, error_code="ModelInvocationTimeExceeded"),
        stream_exception(after=2, type="InternalStreamFailure", error_code=None),
        stream_error_frame(2, "InternalServerError", "frame error"),
    ],
    ids=["model-stream-error", "invocation-time", "internal-failure", "error-frame"],
)
def test_event_stream_error_mid_stream(
    backend: SageMakerBackend, server: WireServer, fault: Fault
) -> None:
    from botocore.exceptions import EventStreamError

    server.reply(Stream(tgi_events(["Hel", "lo"])[:2]))
    server.fail(fault)
    with pytest.raises(StreamBrokenError) as info:
        _pieces(backend, TEXT)
    assert info.value.partial_text == "Hello"
    assert isinstance(info.value.__cause__, EventStreamError)


def test_internal_stream_failure_before_any_text_is_retryable(
    backend: SageMakerBackend, server: WireServer
) -> None:
    server.reply(Stream([]))
    server.fail(stream_exception(type="InternalStreamFailure", error_code=None))
    with pytest.raises(ModelUnavailableError):
        _pieces(backend, TEXT)


def test_connection_dropped_mid_stream(backend: SageMakerBackend, server: WireServer) -> None:
    server.reply(Stream(tgi_events(["one", " two"])[:2]))
    server.fail(Fault.drop(after=2))
    with pytest.raises(StreamBrokenError) as info:
        _pieces(backend, TEXT)
    assert info.value.partial_text == "one two"


def test_connection_dropped_before_any_text(backend: SageMakerBackend, server: WireServer) -> None:
    server.reply(Stream([]))
    server.fail(Fault.drop(after=0))
    with pytest.raises(ModelUnavailableError):
        _pieces(backend, TEXT)


def test_stream_that_ends_before_the_model_finished(
    backend: SageMakerBackend, server: WireServer
) -> None:
    server.reply(Stream(tgi_events(["cut", " short"])[:2]), Stream([]))
    with pytest.raises(StreamBrokenError, match="ended before") as info:
        _pieces(backend, TEXT)
    assert info.value.partial_text == "cut short"
    with pytest.raises(InferenceError, match="ended before"):
        _pieces(backend, TEXT)


def test_malformed_stream_event(backend: SageMakerBackend, server: WireServer) -> None:
    server.reply(Stream([*tgi_events(["ok"])[:1], b"data:{not json\n\n"]))
    with pytest.raises(StreamBrokenError, match="malformed") as info:
        _pieces(backend, TEXT)
    assert info.value.partial_text == "ok"


def test_stop_sequences_are_never_delivered(backend: SageMakerBackend, server: WireServer) -> None:
    # TGI returns the stop sequence with the text; the SDK contract says it is not returned.
    params = GREEDY.model_copy(update={"stop": ("\n\n",)})
    tokens = ["Hello", " wor", "ld", "\n", "\nNext"]
    server.reply(
        Stream(tgi_events(tokens, finish_reason="stop_sequence", eos=None)),
        Json([{"generated_text": "".join(tokens), "details": {"finish_reason": "stop_sequence"}}]),
    )
    with backend.stream(TEXT, params) as stream:
        pieces = list(stream)
    assert "".join(pieces) == "Hello world"
    assert stream.generation is not None
    assert stream.generation.text == "Hello world"
    assert stream.generation.finish_reason == "stop"
    whole = backend.generate(TEXT, params)
    assert whole.text == "Hello world"
    assert whole.finish_reason == "stop"


# -- response bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text", "usage"),
    [
        ([{"generated_text": "hi", "details": {"generated_tokens": 4}}], "hi", (None, 4)),
        ({"generated_text": "hi"}, "hi", (None, None)),
        (
            {
                "choices": [{"message": {"content": "yo"}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2},
            },
            "yo",
            (5, 2),
        ),
        ({"choices": [{"text": "plain", "finish_reason": "stop"}]}, "plain", (None, None)),
    ],
)
def test_response_bodies_of_either_shape(
    backend: SageMakerBackend,
    server: WireServer,
    body: Any,
    text: str,
    usage: tuple[int | None, int | None],
) -> None:
    server.reply(Json(body))
    g = backend.generate(TEXT, GREEDY)
    assert g.text == text
    assert g.usage.prompt_tokens == (usage[0] or backend.count_tokens(TEXT))
    assert g.usage.completion_tokens == (usage[1] or backend.count_tokens(text))


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"error": "Input validation error: inputs too long", "error_type": "validation"}, 422),
        ({"error": "Model is overloaded", "error_type": "overloaded"}, 429),
        ({"error": {"message": "bad request", "code": 400}}, 400),
    ],
)
def test_error_bodies_become_model_errors(
    backend: SageMakerBackend, server: WireServer, body: Any, status: int
) -> None:
    server.reply(Json(body))
    with pytest.raises(ModelError) as info:
        backend.generate(TEXT, GREEDY)
    assert info.value.status == status


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", {"unexpected": 1}, {"choices": []}, [], {"choices": [{"message": 3}]}],
)
def test_malformed_bodies_are_inference_errors(
    backend: SageMakerBackend, server: WireServer, body: Any
) -> None:
    server.reply(Json(body))
    with pytest.raises(InferenceError, match="body") as info:
        backend.generate(TEXT, GREEDY)
    assert type(info.value) is InferenceError


# -- error mapping (one attempt each) -------------------------------------------------------------

ARN = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/twin"

ERRORS: list[tuple[str, Fault, type[Exception], bool]] = [
    ("throttling", throttling(), EndpointThrottledError, True),
    ("model-429", model_error(429), ModelError, True),
    ("model-503", model_error(503), ModelError, True),
    ("model-500", model_error(500), ModelError, False),
    ("model-422", model_error(422), ModelError, False),
    ("service-unavailable", service_unavailable(), ModelUnavailableError, True),
    ("generic-503", aws_error(503, ""), ModelUnavailableError, True),
    ("internal-failure", internal_failure(), ModelUnavailableError, True),
    ("model-not-ready", model_not_ready(), ModelUnavailableError, True),
    ("endpoint-not-found", endpoint_not_found(ENDPOINT), EndpointNotFoundError, False),
    ("component-not-found", component_not_found("ic"), EndpointNotFoundError, False),
    ("validation", validation_error("CustomAttributes is malformed"), InferenceError, False),
    ("access-denied", access_denied(), EndpointAccessDeniedError, False),
]


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize("case", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_mapping(
    backend: SageMakerBackend,
    server: WireServer,
    case: tuple[str, Fault, type[Exception], bool],
    streaming: bool,
) -> None:
    from botocore.exceptions import ClientError

    _, reply, error, transient = case
    server.fail(reply)
    call = (
        (lambda: _pieces(backend, TEXT)) if streaming else (lambda: backend.generate(TEXT, GREEDY))
    )
    with pytest.raises(error) as info:
        call()
    exc = info.value
    assert type(exc) is error
    assert is_transient_inference_error(exc) is transient
    assert isinstance(exc.__cause__, ClientError)
    assert len(server.requests) == 1  # botocore did not retry
    if isinstance(exc, ModelError):
        assert isinstance(reply.body, dict)
        assert exc.status == reply.body["OriginalStatusCode"]
        assert exc.log_stream_arn is not None
        assert exc.log_stream_arn.startswith(ARN)
        assert f"container said {exc.status}" in str(exc)  # the container's own message
    if isinstance(exc, AWSError):  # throttling, access denied: still AWS errors, fields kept
        operation = "invoke_endpoint_with_response_stream" if streaming else "invoke_endpoint"
        assert isinstance(exc, InferenceError)
        assert exc.code == dict(reply.headers)["x-amzn-ErrorType"].split(":")[0]
        assert (exc.service, exc.operation) == ("sagemaker-runtime", operation)
        assert exc.request_id == dict(reply.headers)["x-amzn-RequestId"]
    if isinstance(exc, EndpointThrottledError):
        assert isinstance(exc, ThrottledError)
        assert isinstance(exc, AWSThrottledError)
    if isinstance(exc, EndpointAccessDeniedError):
        assert isinstance(exc, AccessDeniedError)


def test_unreachable_endpoint_is_unavailable(aws_credentials: None) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    aws = AWSClients(region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}")
    with SageMakerBackend(ENDPOINT, aws=aws) as backend:
        with pytest.raises(ModelUnavailableError, match="unreachable"):
            backend.generate(TEXT, GREEDY)
        with pytest.raises(ModelUnavailableError, match="unreachable"):
            backend.stream(TEXT, GREEDY)


# -- through InferenceClient: one retry loop, attempts counted on the wire ----------------------


def test_throttled_then_success_is_retried_by_the_client_only(
    backend: SageMakerBackend, server: WireServer, fast_retry: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(throttling(), throttling())
    server.reply(Json(OK_BODY))
    g = InferenceClient(backend, retry=fast_retry).generate(TEXT, GREEDY)
    assert g.text == "ok"
    assert len(server.requests) == 3
    assert len(sleeps) == 2


def test_always_throttled_makes_exactly_the_policys_attempts(
    backend: SageMakerBackend, server: WireServer, fast_retry: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(*[throttling()] * 8)
    with pytest.raises(AWSThrottledError):
        InferenceClient(backend, retry=fast_retry).generate(TEXT, GREEDY)
    assert len(server.requests) == fast_retry.max_attempts == 4  # not 4 x botocore's 3
    assert len(sleeps) == 3


@pytest.mark.parametrize("status", [429, 503])
def test_model_error_429_and_503_are_retried(
    backend: SageMakerBackend, server: WireServer, fast_retry: RetryPolicy, status: int
) -> None:
    server.fail(model_error(status))
    server.reply(Json(OK_BODY))
    assert InferenceClient(backend, retry=fast_retry).generate(TEXT, GREEDY).text == "ok"
    assert len(server.requests) == 2


def test_model_error_500_is_not_retried(
    backend: SageMakerBackend, server: WireServer, fast_retry: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(model_error(500))
    with pytest.raises(ModelError) as info:
        InferenceClient(backend, retry=fast_retry).generate(TEXT, GREEDY)
    assert info.value.status == 500
    assert len(server.requests) == 1
    assert sleeps == []


def test_stream_opening_is_retried(
    backend: SageMakerBackend, server: WireServer, fast_retry: RetryPolicy
) -> None:
    server.fail(throttling(), model_error(429))
    with InferenceClient(backend, retry=fast_retry).stream(CHAT, GREEDY) as stream:
        assert "".join(stream).strip()
    assert len(server.requests) == 3


def test_stream_is_not_retried_after_its_first_piece(
    backend: SageMakerBackend, server: WireServer, fast_retry: RetryPolicy
) -> None:
    server.reply(Stream(tgi_events(["first"])[:1]))
    server.fail(stream_exception(after=1))
    client = InferenceClient(backend, retry=fast_retry)
    received: list[str] = []
    with pytest.raises(StreamBrokenError) as info:
        _read_into(client.stream(TEXT, GREEDY), received)
    assert received == ["first"]
    assert info.value.partial_text == "first"
    assert len(server.requests) == 1


def test_slow_response_past_the_read_timeout(
    backend: SageMakerBackend, server: WireServer, fast_retry: RetryPolicy
) -> None:
    server.fail(Fault.slow(1.5))
    server.reply(Json(OK_BODY))
    client = InferenceClient(backend, retry=fast_retry, timeout=Timeouts(read_s=0.3))
    started = time.monotonic()
    with pytest.raises(InferenceTimeoutError, match="read timeout") as info:
        client.generate(TEXT, GREEDY)
    assert time.monotonic() - started < 1.4
    assert isinstance(info.value, TimeoutError)
    assert len(server.requests) == 1  # a call that may still run is not retried


def test_slow_stream_start_and_slow_stream_parts(
    backend: SageMakerBackend, server: WireServer
) -> None:
    short = Timeouts(read_s=0.3)
    events = tgi_events(["early", " late"])
    # No response headers within the read timeout: the call itself times out.
    server.fail(Fault.slow(1.0))
    server.reply(Stream(events))
    with pytest.raises(InferenceTimeoutError):
        backend.stream(TEXT, GREEDY, timeout=short)
    # Headers at once, then silence before any text: still a timeout (nothing delivered).
    server.fail(Fault.stall(1.0, after=0))
    server.reply(Stream(events))
    with pytest.raises(InferenceTimeoutError, match="read timeout") as timed_out:
        _ = list(backend.stream(TEXT, GREEDY, timeout=short))
    assert isinstance(timed_out.value, TimeoutError)
    # Silence after the first piece: a broken stream that keeps the text.
    server.fail(Fault.stall(1.0, after=1))
    server.reply(Stream(events))
    received: list[str] = []
    with pytest.raises(StreamBrokenError, match="read timeout") as info:
        _read_into(backend.stream(TEXT, GREEDY, timeout=short), received)
    assert received == ["early"]
    assert info.value.partial_text == "early"
    assert len(server.requests) == 3


def test_per_call_timeout_replaces_the_backends(aws: AWSClients, server: WireServer) -> None:
    with SageMakerBackend(ENDPOINT, aws=aws, timeout=Timeouts(read_s=0.3)) as backend:
        server.fail(Fault.slow(0.6), Fault.slow(0.6))
        server.reply(Json(OK_BODY), Json(OK_BODY))
        assert backend.generate(TEXT, GREEDY, timeout=Timeouts(read_s=5)).text == "ok"
        with pytest.raises(InferenceTimeoutError):
            backend.generate(TEXT, GREEDY)
    assert len(server.requests) == 2


def test_one_client_per_timeouts_built_once_across_threads(aws: AWSClients) -> None:
    backend = SageMakerBackend(ENDPOINT, aws=aws)
    chosen: list[Any] = []
    barrier = threading.Barrier(8)

    def pick(read_s: float) -> None:
        barrier.wait()
        chosen.append(backend._client(Timeouts(read_s=read_s))[0])

    threads = [threading.Thread(target=pick, args=(5.0 + i % 2,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in chosen}) == 2
    assert backend._client(None)[0] is aws.client("sagemaker-runtime")  # defaults: shared
    for client in {id(c): c for c in chosen}.values():
        assert client.meta.config.retries["total_max_attempts"] == 1
        assert client.meta.config.read_timeout in {5.0, 6.0}
    backend.close()
    with pytest.raises(InferenceError, match="closed"):
        backend.generate(TEXT, GREEDY)


# -- request limits and headers -------------------------------------------------------------------


def test_payload_too_large_is_raised_before_any_request(
    backend: SageMakerBackend, server: WireServer, fast_retry: RetryPolicy
) -> None:
    huge = "x" * MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadTooLargeError, match="6,291,456"):
        backend.generate(huge, GREEDY)
    with pytest.raises(PayloadTooLargeError):
        backend.stream([Message(role="user", content=huge)], GREEDY)
    with pytest.raises(PayloadTooLargeError):
        InferenceClient(backend, retry=fast_retry).generate(huge, GREEDY)
    assert len(server.requests) == 0
    fits = "x" * (MAX_PAYLOAD_BYTES - 200)
    server.reply(Json(OK_BODY))
    assert backend.generate(fits, GREEDY).text == "ok"


def test_custom_attributes_and_inference_component_reach_the_server(
    aws: AWSClients, server: WireServer
) -> None:
    with SageMakerBackend(
        ENDPOINT, aws=aws, inference_component_name="twin-ic-1", custom_attributes="trace_id=42"
    ) as backend:
        server.reply(Json(OK_BODY), Stream(tgi_events(["ok"])))
        g = backend.generate(TEXT, GREEDY)
        _pieces(backend, TEXT)
    assert g.model == f"{ENDPOINT}/twin-ic-1"
    for request in server.requests:
        assert request.custom_attributes == "trace_id=42"
        assert request.inference_component == "twin-ic-1"


# -- the connection is closed when a stream is left early -----------------------------------------


@pytest.mark.parametrize("read_first", [True, False], ids=["after-a-piece", "before-any"])
def test_connection_closed_after_an_early_exit(
    backend: SageMakerBackend, server: WireServer, read_first: bool
) -> None:
    server.reply(Stream(tgi_events(["a", "b", "c"])[:3]))
    server.fail(Fault.stall(10, after=3))  # then held open until the client hangs up
    stream = backend.stream(TEXT, GREEDY)
    if read_first:
        assert next(stream) == "a"
    stream.close()
    # The stream object is still referenced: the close, not garbage collection, did it.
    assert server.disconnected.wait(5)
    assert stream.closed


def test_connection_reused_after_complete_streams_not_after_an_early_exit(
    backend: SageMakerBackend, server: WireServer
) -> None:
    late = b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'  # after [DONE]: drained
    server.reply(
        Stream(tgi_events(["a"])),
        Stream([b"".join(chat_events(["b"])) + late]),
        Json(OK_BODY),
        Stream(tgi_events(["c", "d"])),
        Json(OK_BODY),
    )
    assert _pieces(backend, TEXT) == ["a"]
    assert _pieces(backend, CHAT) == ["b"]
    backend.generate(TEXT, GREEDY)
    with backend.stream(TEXT, GREEDY) as stream:
        next(stream)
    backend.generate(TEXT, GREEDY)
    peers = [r.peer for r in server.requests]
    assert peers[0] == peers[1] == peers[2] == peers[3]  # one connection, kept alive
    assert peers[4] != peers[3]  # the early exit closed it


def test_connection_closed_after_an_early_exit_through_the_client(
    backend: SageMakerBackend, server: WireServer
) -> None:
    server.reply(Stream(tgi_events(["a", "b", "c"])[:3]))
    server.fail(Fault.stall(10, after=3))  # then held open until the client hangs up
    client = InferenceClient(backend, retry=NO_RETRY)
    with client.stream(TEXT, GREEDY) as stream:
        for _ in stream:
            break
    assert server.disconnected.wait(5)


# -- construction, injection, counting ------------------------------------------------------------


def test_satisfies_the_backend_protocol(backend: SageMakerBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.model_name == ENDPOINT
    assert backend.context_window == 4096
    assert "twin-endpoint" in repr(backend)


def test_injected_runtime_client(server: WireServer, aws_credentials: None) -> None:
    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=server.url,
        config=botocore_config(read_timeout_s=5),
    )
    backend = SageMakerBackend(ENDPOINT, runtime_client=client)
    server.reply(Json(OK_BODY))
    assert backend.generate(TEXT, GREEDY).text == "ok"
    server.reply(Json(OK_BODY))
    with _user_warning("per-call timeouts"):
        backend.generate(TEXT, GREEDY, timeout=Timeouts(read_s=1))
    backend.close()  # not ours: left open
    server.reply(Json(OK_BODY))
    assert client.invoke_endpoint(EndpointName=ENDPOINT, Body=b"{}")["Body"].read()
    retrying = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with _user_warning("retries by itself"):
        SageMakerBackend(ENDPOINT, runtime_client=retrying)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint_name": ""},
        {"endpoint_name": "bad_name"},
        {"endpoint_name": "x" * 64},
        {"inference_component_name": "-ic"},
        {"api": "completions"},
        {"context_window": 0},
        {"custom_attributes": "é"},
        {"custom_attributes": "x" * 1025},
        {"aws": AWSClients(), "region": "us-east-1"},
        {"runtime_client": object(), "region": "us-east-1"},
        {"runtime_client": object(), "timeout": Timeouts()},
    ],
)
def test_invalid_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SageMakerBackend(**{"endpoint_name": ENDPOINT, **kwargs})


def test_count_tokens_with_a_tokenizer() -> None:
    backend = SageMakerBackend(ENDPOINT, region="us-east-1", tokenizer=lambda s: len(s.split()))
    assert backend.count_tokens("one two three") == 3
    assert backend.count_tokens(to_messages([{"role": "user", "content": "a b"}])) == 2 + 8 + 4


def test_count_tokens_estimate_errs_high_on_prose(
    local_backend: LocalBackend, corpus: list[Any]
) -> None:
    backend = SageMakerBackend(ENDPOINT, region="us-east-1", context_window=2048)
    assert backend.count_tokens("abcdef") == 2
    assert backend.count_tokens("") == 0
    for document in corpus[:20]:
        chat = to_messages([{"role": "user", "content": document.text}])
        assert backend.count_tokens(document.text) >= local_backend.count_tokens(document.text)
        assert backend.count_tokens(chat) >= local_backend.count_tokens(chat) - 30
