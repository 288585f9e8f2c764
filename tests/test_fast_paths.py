"""The data plane's fast paths give exactly what the paths they replace gave.

Each optimisation of the per-call and per-token work (docs/benchmarks.md, "Data plane") has a
test here: results built without pydantic's second pass equal validated ones, the C-level token
estimate equals the per-character rule, a part that completes a piece and an error delivers
the piece first, and the client hands on the backend's stream with its first piece intact.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fakes import PartsRuntime, tgi_events
from llm_twin_sdk import (
    AWSClients,
    ConfigurationError,
    Generation,
    GenerationParams,
    InferenceClient,
    InferenceError,
    InvalidParameterError,
    Message,
    ModelError,
    SageMakerBackend,
    StreamBrokenError,
    Timeouts,
    Usage,
)
from llm_twin_sdk.inference import trusted
from llm_twin_sdk.inference.protocols.base import parse_json
from llm_twin_sdk.inference.protocols.framing import SSEDecoder
from llm_twin_sdk.inference.tokens import estimate_tokens
from llm_twin_sdk.types import to_messages

FAST = settings(max_examples=200, deadline=None)
GREEDY = GenerationParams(max_new_tokens=8, temperature=0.0)


# -- results and messages built without a second validation -----------------------------------


RESULTS = st.tuples(
    st.text(),
    st.sampled_from(["stop", "length"]),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.floats(0, 1e6),
    st.text(),
)


@FAST
@given(values=RESULTS)
def test_a_trusted_generation_is_the_validated_one(values: tuple[Any, ...]) -> None:
    text, finish, prompt_tokens, completion_tokens, latency, model = values
    built = trusted.generation(
        text,
        finish,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=latency,
        model=model,
    )
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    validated = Generation(
        text=text, finish_reason=finish, usage=usage, latency_s=latency, model=model
    )
    assert built == validated
    assert repr(built) == repr(validated)
    assert hash(built) == hash(validated)
    assert built.model_dump() == validated.model_dump()
    assert built.model_fields_set == validated.model_fields_set
    assert built.usage.model_fields_set == usage.model_fields_set
    assert built.usage.total_tokens == prompt_tokens + completion_tokens
    with pytest.raises(Exception, match="frozen"):
        built.text = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    "counts",
    [(-1, 2), (2, -1), (True, 2), (2.0, 2)],
    ids=["negative-prompt", "negative-completion", "bool", "float"],
)
def test_a_generation_of_unchecked_values_is_validated(counts: tuple[Any, Any]) -> None:
    """Counts from a user's tokenizer take pydantic's path: its error, or its coercion."""
    prompt_tokens, completion_tokens = counts

    def build(text: str) -> Generation:
        return trusted.generation(
            text,
            "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=0.1,
            model="m",
        )

    expected: Usage | str
    try:
        expected = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    except InvalidParameterError as exc:
        expected = str(exc)
    if isinstance(expected, str):
        with pytest.raises(InvalidParameterError) as caught:
            build("x")
        assert str(caught.value) == expected
    else:
        assert build("x").usage == expected


MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text()}
)


@FAST
@given(messages=st.lists(MESSAGE | st.builds(Message, role=st.just("user")), min_size=1))
def test_trusted_messages_are_the_validated_ones(messages: list[Any]) -> None:
    built, validated = trusted.messages(messages), to_messages(messages)
    assert built == validated
    assert [m.model_fields_set for m in built] == [m.model_fields_set for m in validated]
    assert trusted.messages(tuple(messages)) == validated


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "robot", "content": "hi"}],
        [{"role": "user", "content": 42}],
        [{"role": "user", "content": "hi", "name": "x"}],
        [{"role": ["user"], "content": "hi"}],
        [{"content": "hi"}],
        [{"role": "user", "content": "ok"}, "not a message"],
    ],
    ids=["empty", "role", "content", "extra", "unhashable-role", "missing", "not-a-dict"],
)
def test_invalid_messages_raise_what_validation_raises(messages: list[Any]) -> None:
    with pytest.raises(Exception) as expected:  # noqa: PT011 - whatever it raises
        to_messages(messages)
    with pytest.raises(type(expected.value)) as caught:
        trusted.messages(messages)
    assert str(caught.value) == str(expected.value)


def test_the_models_the_builders_mirror_are_pinned() -> None:
    """The builders check these fields' rules in plain Python: a new field, constraint or
    validator on these models must be mirrored in llm_twin_sdk/inference/trusted.py."""
    assert list(Message.model_fields) == ["role", "content"]
    assert list(Usage.model_fields) == ["prompt_tokens", "completion_tokens"]
    assert list(Generation.model_fields) == [
        "text",
        "finish_reason",
        "usage",
        "latency_s",
        "model",
    ]
    for model in (Message, Usage, Generation):
        decorators = model.__pydantic_decorators__
        assert not decorators.field_validators, model
        assert not decorators.validators, model
        # Usage's one model validator drops a dumped ``total_tokens`` (the builders never pass
        # one, so they need not mirror it); any other must be mirrored.
        expected = ["_dumped_total"] if model is Usage else []
        assert list(decorators.model_validators) == expected, model
    constraints = {
        (model.__name__, name): [repr(m) for m in field.metadata]
        for model in (Message, Usage, Generation)
        for name, field in model.model_fields.items()
    }
    assert constraints == {
        ("Message", "role"): [],
        ("Message", "content"): [],
        ("Usage", "prompt_tokens"): ["Ge(ge=0)"],
        ("Usage", "completion_tokens"): ["Ge(ge=0)"],
        ("Generation", "text"): [],
        ("Generation", "finish_reason"): [],
        ("Generation", "usage"): [],
        ("Generation", "latency_s"): ["Ge(ge=0)"],
        ("Generation", "model"): [],
    }


# -- the token estimate --------------------------------------------------------------------------


def _estimate_per_character(text: str) -> int:
    """The rule of docs (and of the SDK before it counted with bytes.translate)."""
    letters = digits = symbols = 0
    for char in text:
        if char < "\x80":
            if char.isalpha() or char == " ":
                letters += 1
            elif "0" <= char <= "9":
                digits += 1
            else:
                symbols += 1
    other = len(text) - letters - digits - symbols
    return math.ceil(letters / 3.2 + digits + symbols / 2 + 2 * other)


@FAST
@given(text=st.text(st.characters(codec=None)) | st.text("aZ 09.,\n\t\x7fé日🚀"))
@example(text="lone \ud800 surrogate")
@example(text="")
def test_the_token_estimate_is_the_per_character_rule(text: str) -> None:
    assert estimate_tokens(text) == _estimate_per_character(text)


# -- streams -------------------------------------------------------------------------------------


def _backend(*streams: list[bytes]) -> tuple[SageMakerBackend, PartsRuntime]:
    runtime = PartsRuntime(*streams)
    return SageMakerBackend("twin", runtime_client=runtime, api="generate"), runtime


ERROR_EVENT = b'data:{"error":"CUDA out of memory","error_type":"generation"}\n\n'


def test_pieces_before_an_error_in_the_same_part_are_delivered_first() -> None:
    events = tgi_events(["Hel", "lo", "!"], eos=None)[:2]  # not the final event
    backend, _ = _backend([b"".join([*events, ERROR_EVENT])])
    received: list[str] = []
    with (
        pytest.raises(StreamBrokenError, match="CUDA out of memory") as caught,
        backend.stream("Hi", GREEDY) as stream,
    ):
        received.extend(stream)
    assert received == ["Hel", "lo"]
    assert caught.value.partial_text == "Hello"


def test_a_malformed_event_after_pieces_in_the_same_part_breaks_the_stream() -> None:
    backend, _ = _backend([tgi_events(["ok", "!"])[0] + b"data:{not json\n\n"])
    received: list[str] = []
    with (
        pytest.raises(StreamBrokenError, match="malformed") as caught,
        backend.stream("Hi", GREEDY) as stream,
    ):
        received.extend(stream)
    assert received == ["ok"]
    assert caught.value.partial_text == "ok"
    assert isinstance(caught.value.__cause__, InferenceError)


def test_an_error_first_in_a_part_is_the_call_error_and_is_retried() -> None:
    answer = b"".join(tgi_events(["fine"], eos=None))
    overloaded = b'data:{"error":"Model is overloaded","error_type":"overloaded"}\n\n'
    backend, runtime = _backend([overloaded + answer], [answer])
    with pytest.raises(ModelError, match="overloaded") as caught:
        list(backend.stream("Hi", GREEDY))
    assert caught.value.status == 429
    backend, runtime = _backend([overloaded], [answer])
    from llm_twin_sdk.retry import RetryPolicy

    client = InferenceClient(backend, retry=RetryPolicy(sleep=lambda _: None))
    with client.stream("Hi", GREEDY) as stream:
        assert list(stream) == ["fine"]
    assert runtime.calls == 2


def test_the_client_hands_on_the_stream_with_its_first_piece() -> None:
    events = tgi_events(["one", " two", " three"], eos=None)
    backend, _ = _backend(events)
    with InferenceClient(backend).stream("Hi", GREEDY) as stream:
        assert stream.text == ""  # the first piece was read to open it, not yet delivered
        assert next(stream) == "one"
        assert stream.text == "one"
        assert list(stream) == [" two", " three"]
    assert stream.text == "one two three"
    assert stream.generation is not None
    assert stream.generation.text == "one two three"
    assert stream.closed


def test_a_stream_without_pieces_still_has_its_generation() -> None:
    backend, _ = _backend(tgi_events([], eos="<eos>"))
    with InferenceClient(backend).stream("Hi", GREEDY) as stream:
        assert list(stream) == []
    assert stream.generation is not None
    assert stream.generation.text == ""


def test_invalid_utf8_inside_a_line_is_an_inference_error() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data:{"a":"\xff') == []  # not decoded before its line is complete
    with pytest.raises(InferenceError, match="invalid UTF-8"):
        decoder.feed(b'"}\n\n')


def test_a_carriage_return_split_from_its_line_feed_ends_one_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data:1\r") == []  # held: the first half of \r\n, or a line end
    assert decoder.feed(b"\n\r") == []  # \r\n ended the data line; \r held again
    assert decoder.feed(b"data:2\r\r") == ["1"]  # that \r was a blank line: event 1
    assert decoder.close() == ["2"]


# -- JSON ----------------------------------------------------------------------------------------

JSON_TEXTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
).map(json.dumps)
SPACE = st.text(" \t\n\r\x0b\xa0\u2028", max_size=2)


@FAST
@given(text=st.tuples(SPACE, JSON_TEXTS | st.text(max_size=12), SPACE).map("".join))
@example(text='{"a": 1} {"b": 2}')
@example(text="\ufeff{}")
@example(text="NaN")
def test_parse_json_is_json_loads(text: str) -> None:
    for data in (text, text.encode("utf-8"), text.encode("utf-16")):
        assert _outcome(parse_json, data) == _outcome(json.loads, data)


def _outcome(parse: Any, data: str | bytes) -> str:
    """What parsing ``data`` gives: the value as JSON, or the error's type and message."""
    try:
        return json.dumps(parse(data))
    except ValueError as exc:
        return f"{type(exc).__name__}: {exc}"


# -- botocore's second check of the runtime's parameters ------------------------------------------


def test_runtime_clients_skip_botocores_parameter_check_others_keep_it(
    aws_credentials: None,
) -> None:
    """SageMakerBackend checks every parameter it sends (names, body size, attributes) before
    anything is sent; botocore checking them again cost ~14 µs per call."""
    from botocore.exceptions import EndpointConnectionError, ParamValidationError

    aws = AWSClients(region="us-east-1", endpoint_url="http://127.0.0.1:9")  # nothing listens
    backend = SageMakerBackend("twin", aws=aws)
    default, _ = backend._client(None)
    own, _ = backend._client(Timeouts(connect_s=1, read_s=5))
    assert default is aws.client("sagemaker-runtime")
    for runtime in (default, own):  # not checked by botocore: sent (and refused)
        with pytest.raises(EndpointConnectionError):
            runtime.invoke_endpoint(EndpointName=42, Body=b"{}")
    with pytest.raises(ParamValidationError):  # other services: checked
        aws.client("sagemaker").describe_endpoint(EndpointName=42)
    with pytest.raises(ConfigurationError, match="endpoint name"):
        SageMakerBackend("not a name!", aws=aws)
    with pytest.raises(ConfigurationError, match="custom_attributes"):
        SageMakerBackend("twin", aws=aws, custom_attributes="x" * 1025)
    backend.close()
