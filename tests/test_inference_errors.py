"""One error tree and one stream rule for every backend, counted on the wire.

- Every failure of a generate or stream call is an ``InferenceError``: throttling and refused
  credentials included, with the AWS fields from SageMaker.
- A stream that fails before its first piece raises what the same failure of a blocking call
  raises, and the client retries it like one; after the first piece it is a
  ``StreamBrokenError`` keeping the text, never retried.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fakes import DEFAULT_TOKENS, Fault, Json, Stream, TGIServer, WireServer, tgi_events
from fakes.sagemaker import access_denied, stream_exception, throttling
from llm_twin_sdk import (
    AccessDeniedError,
    AsyncInferenceClient,
    AWSThrottledError,
    EndpointAccessDeniedError,
    EndpointThrottledError,
    GenerationParams,
    HttpBackend,
    InferenceClient,
    InferenceError,
    ModelError,
    ModelThrottledError,
    ModelUnavailableError,
    SageMakerBackend,
    StreamBrokenError,
    ThrottledError,
)
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.retry import RetryPolicy, is_transient_inference_error

GREEDY = GenerationParams(max_new_tokens=64, temperature=0.0)
SCRIPT = "".join(DEFAULT_TOKENS)
OVERLOADED = {"error": "Model is overloaded", "error_type": "overloaded"}
RETRY = RetryPolicy(max_attempts=3, initial_wait_s=0.0, sleep=lambda seconds: None)


def _sagemaker(wire: WireServer) -> SageMakerBackend:
    return SageMakerBackend("twin", aws=AWSClients(region="us-east-1", endpoint_url=wire.url))


def _read(stream: Any, into: list[str] | None = None) -> str:
    """The stream's text (its pieces also go ``into`` a list, kept if the stream fails)."""
    into = [] if into is None else into
    with stream:
        into.extend(stream)
    return "".join(into)


async def _aread(stream: Any, into: list[str]) -> None:
    async with stream:
        async for piece in stream:
            into.append(piece)


# -- the stream rule ----------------------------------------------------------------------------

HTTP_EARLY = [
    ("tgi", Fault.error_event(0, OVERLOADED), ModelThrottledError),  # as HTTP 429 would be
    (
        "openai",
        Fault.error_event(0, {"error": {"message": "busy", "code": 503}}),
        ModelUnavailableError,
    ),
    ("tgi", Fault.drop(after=0), ModelUnavailableError),  # as a dropped connection would be
    ("lmi", Fault.drop(after=0), ModelUnavailableError),
]


@pytest.mark.parametrize(
    ("api", "fault", "error"), HTTP_EARLY, ids=["event-429", "event-503", "drop", "lmi-drop"]
)
def test_http_stream_failing_before_its_first_piece_is_retried(
    tgi: TGIServer, api: Any, fault: Fault, error: type[Exception]
) -> None:
    backend = HttpBackend(tgi.url, api=api)
    tgi.fail(fault)
    with pytest.raises(error) as info:  # one attempt: the blocking call's error
        _read(backend.stream("Hi", GREEDY))
    assert not isinstance(info.value, StreamBrokenError)
    assert is_transient_inference_error(info.value)
    tgi.fail(fault)
    text = _read(InferenceClient(backend, retry=RETRY).stream("Hi", GREEDY))
    assert text == SCRIPT
    assert len(tgi.generation_requests()) == 3  # 1, then 2 through the client's retry
    backend.close()


@pytest.mark.asyncio
async def test_http_async_stream_follows_the_same_rule(tgi: TGIServer) -> None:
    tgi.fail(Fault.error_event(0, OVERLOADED))
    async with AsyncInferenceClient(HttpBackend(tgi.url, api="tgi"), retry=RETRY) as client:
        async with client.stream("Hi", GREEDY) as stream:
            assert "".join([piece async for piece in stream]) == SCRIPT
        tgi.fail(Fault.drop(after=2))
        pieces: list[str] = []
        with pytest.raises(StreamBrokenError) as info:
            await _aread(client.stream("Hi", GREEDY), pieces)
    assert info.value.partial_text == "".join(pieces) == "".join(DEFAULT_TOKENS[:2])
    assert len(tgi.generation_requests()) == 3  # retried once before the first piece only


SAGEMAKER_EARLY = [
    (stream_exception(0), ModelUnavailableError),  # ModelStreamError as the first event
    (stream_exception(0, error_code="ModelInvocationTimeExceeded"), ModelUnavailableError),
    (stream_exception(0, type="InternalStreamFailure", error_code=None), ModelUnavailableError),
    (Fault.drop(after=0), ModelUnavailableError),
]


@pytest.mark.parametrize(
    ("fault", "error"),
    SAGEMAKER_EARLY,
    ids=["model-stream-error", "time-exceeded", "internal", "drop"],
)
def test_sagemaker_stream_failing_before_its_first_piece_is_retried(
    wire: WireServer, fault: Fault, error: type[Exception]
) -> None:
    backend = _sagemaker(wire)
    wire.fail(fault)
    wire.reply(Stream(tgi_events(["ok"])))
    with pytest.raises(error) as info:
        _read(backend.stream("Hi", GREEDY))
    assert is_transient_inference_error(info.value)
    wire.reset()
    wire.fail(fault)
    wire.reply(Stream(tgi_events(["ok"])), Stream(tgi_events(["fine"])))
    assert _read(InferenceClient(backend, retry=RETRY).stream("Hi", GREEDY)) == "fine"
    assert len(wire.requests) == 2


def test_sagemaker_error_event_before_any_text_is_retried(wire: WireServer) -> None:
    overloaded = b'data:{"error":"Model is overloaded","error_type":"overloaded"}\n\n'
    wire.reply(Stream([overloaded]), Stream(tgi_events(["fine"])))
    client = InferenceClient(_sagemaker(wire), retry=RETRY)
    assert _read(client.stream("Hi", GREEDY)) == "fine"
    assert len(wire.requests) == 2


def test_sagemaker_stream_failing_after_its_first_piece_is_broken(wire: WireServer) -> None:
    wire.fail(stream_exception(after=1))
    wire.reply(Stream(tgi_events(["first", " second"])))
    pieces: list[str] = []
    client = InferenceClient(_sagemaker(wire), retry=RETRY)
    with pytest.raises(StreamBrokenError, match="ModelStreamError") as info:
        _read(client.stream("Hi", GREEDY), pieces)
    assert info.value.partial_text == "".join(pieces) == "first"
    assert len(wire.requests) == 1


# -- except InferenceError ----------------------------------------------------------------------


def test_http_throttling_is_an_inference_error(tgi: TGIServer) -> None:
    tgi.fail(*[Fault.http(429)] * 3)
    client = InferenceClient(HttpBackend(tgi.url, api="tgi"), retry=RETRY)
    with pytest.raises(InferenceError) as info:
        client.generate("Hi", GREEDY)
    assert isinstance(info.value, ModelThrottledError)
    assert isinstance(info.value, ThrottledError)
    assert len(tgi.generation_requests()) == 3


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_sagemaker_throttling_and_access_denied_are_inference_errors(
    wire: WireServer, streaming: bool
) -> None:
    client = InferenceClient(_sagemaker(wire), retry=RETRY)
    operation = "invoke_endpoint_with_response_stream" if streaming else "invoke_endpoint"

    def call() -> object:
        return _read(client.stream("Hi", GREEDY)) if streaming else client.generate("Hi", GREEDY)

    wire.fail(*[throttling()] * 3, access_denied())
    wire.reply(Json([{"generated_text": "unused"}]))
    for expected, kinds, attempts in (
        ("ThrottlingException", (EndpointThrottledError, ThrottledError, AWSThrottledError), 3),
        ("AccessDeniedException", (EndpointAccessDeniedError, AccessDeniedError), 1),
    ):
        before = len(wire.requests)
        with pytest.raises(InferenceError) as info:  # one except clause catches both
            call()
        assert isinstance(info.value, kinds)
        error: Any = info.value
        assert (error.code, error.service, error.operation) == (
            expected,
            "sagemaker-runtime",
            operation,
        )
        assert error.request_id
        assert len(wire.requests) - before == attempts


def test_sagemaker_without_credentials_is_an_inference_error(
    wire: WireServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance role
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(InferenceError) as info:
        _sagemaker(wire).generate("Hi", GREEDY)
    assert isinstance(info.value, EndpointAccessDeniedError)
    assert info.value.operation == "invoke_endpoint"
    assert "credentials" in str(info.value)
    assert wire.requests == []


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ModelThrottledError("x"), True),
        (EndpointThrottledError("x", service="s", operation="o"), True),
        (EndpointAccessDeniedError("x", service="s", operation="o"), False),
        (ModelError("x", status=429), True),
        (ModelError("x", status=424), False),
        (StreamBrokenError("x", partial_text="a"), False),
    ],
)
def test_the_retry_predicate_on_the_error_tree(error: Exception, retried: bool) -> None:
    assert isinstance(error, InferenceError)
    assert is_transient_inference_error(error) is retried
