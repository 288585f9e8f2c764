"""Wire protocols: one request format per protocol whatever the connection, the one
``repetition_penalty`` decision, the LMI protocol over HTTP and SageMaker, one token estimate."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fakes import DEFAULT_TOKENS, Fault, Json, Llama, Stream, TGIServer, WireServer, lmi_lines
from fakes.shapes import LMI_FAILED
from llm_twin_sdk import (
    Document,
    GenerationParams,
    HttpBackend,
    InferenceClient,
    InvalidParameterError,
    LocalBackend,
    ModelError,
    SageMakerBackend,
    StreamBrokenError,
)
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.inference.protocols import finish_reason
from llm_twin_sdk.inference.tokens import estimate_tokens
from llm_twin_sdk.retry import RetryPolicy
from llm_twin_sdk.types import to_messages

CHAT = to_messages([{"role": "user", "content": "Say hello to the team."}])
TEXT = "The three primary colours are"
SCRIPT = "".join(DEFAULT_TOKENS)
OK = {"generated_text": "ok", "details": {"finish_reason": "eos_token", "generated_tokens": 1}}
PARAMS = GenerationParams(
    max_new_tokens=12, temperature=0.7, top_p=0.9, repetition_penalty=1.3, stop=("\n\n",), seed=3
)


@pytest.fixture
def wire(wire: WireServer) -> WireServer:
    wire.default = Json(OK)  # conftest's server, answering OK when no reply is queued
    return wire


def _read_into(stream: Any, pieces: list[str]) -> None:
    with stream:
        pieces.extend(stream)


def _sagemaker(wire: WireServer, **options: Any) -> SageMakerBackend:
    return SageMakerBackend(
        "twin", aws=AWSClients(region="us-east-1", endpoint_url=wire.url), **options
    )


def _bodies(
    tgi: TGIServer, wire: WireServer, http: dict[str, Any], sm: dict[str, Any], prompts: Any
) -> list[tuple[Any, Any]]:
    """The bodies HTTP and SageMaker send for the same prompts and parameters."""
    sent = []
    with HttpBackend(tgi.url, **http) as over_http, _sagemaker(wire, **sm) as over_sagemaker:
        for prompt in prompts:
            over_http.generate(prompt, PARAMS)
            over_sagemaker.generate(prompt, PARAMS)
            sent.append((tgi.requests[-1].body, wire.requests[-1].body))
    return sent


PAIRS = [  # (HttpBackend options, SageMakerBackend options, prompts) speaking one protocol
    ({"api": "tgi"}, {"api": "generate"}, [TEXT]),
    ({"api": "tgi"}, {"api": "messages"}, [TEXT]),  # text prompts go to TGI generate
    ({"api": "openai", "json_schema_format": "tgi"}, {"api": "messages"}, [CHAT]),
    ({"api": "lmi"}, {"api": "lmi"}, [TEXT, CHAT]),
]
PAIR_IDS = ["tgi-generate", "tgi-generate-of-messages-api", "openai-compatible", "lmi"]


@pytest.mark.parametrize(("http", "sm", "prompts"), PAIRS, ids=PAIR_IDS)
def test_one_protocol_one_body_over_http_and_sagemaker(
    tgi: TGIServer, wire: WireServer, http: dict[str, Any], sm: dict[str, Any], prompts: Any
) -> None:
    for over_http, over_sagemaker in _bodies(tgi, wire, http, sm, prompts):
        assert over_http == over_sagemaker


@pytest.mark.parametrize(("http", "sm", "prompts"), PAIRS, ids=PAIR_IDS)
def test_repetition_penalty_one_rule_per_protocol(
    tgi: TGIServer, wire: WireServer, http: dict[str, Any], sm: dict[str, Any], prompts: Any
) -> None:
    """TGI generate and LMI text: ``parameters.repetition_penalty``; chat completions (OpenAI
    compatible, LMI's chat schema): a top-level ``repetition_penalty``, never OpenAI's additive
    ``presence_penalty``; nothing at all at 1.0."""
    for body in (b for pair in _bodies(tgi, wire, http, sm, prompts) for b in pair):
        fields = body.get("parameters", body)
        assert fields["repetition_penalty"] == 1.3
        assert "presence_penalty" not in json.dumps(body)
    with HttpBackend(tgi.url, **http) as backend:
        backend.generate(prompts[0], PARAMS.model_copy(update={"repetition_penalty": 1.0}))
    assert "repetition_penalty" not in json.dumps(tgi.requests[-1].body)


def test_lmi_request_shape(tgi: TGIServer) -> None:
    with HttpBackend(tgi.url, api="lmi") as backend:
        backend.generate(TEXT, PARAMS)
        backend.generate(CHAT, PARAMS)
    text, chat = (r.body for r in tgi.requests)
    assert [r.path for r in tgi.requests] == ["/invocations", "/invocations"]
    assert text["inputs"] == TEXT
    assert text["stream"] is False
    assert text["parameters"] == {
        "max_new_tokens": 12,
        "return_full_text": False,
        "details": True,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "repetition_penalty": 1.3,
        "stop_sequences": ["\n\n"],  # LMI's name for stop sequences
        "seed": 3,
    }
    assert chat["messages"] == [{"role": "user", "content": "Say hello to the team."}]
    assert (chat["max_tokens"], chat["temperature"], chat["top_p"]) == (12, 0.7, 0.9)


def test_lmi_over_http(tgi: TGIServer) -> None:
    greedy = GenerationParams(max_new_tokens=64, temperature=0.0)
    with HttpBackend(tgi.url, api="lmi") as backend:
        assert backend.generate(TEXT, greedy).text == SCRIPT
        with backend.stream(TEXT, greedy) as stream:
            assert list(stream) == list(DEFAULT_TOKENS)  # JSON lines cut anywhere
        assert stream.generation is not None
        assert stream.generation.usage.completion_tokens == len(DEFAULT_TOKENS)
        with backend.stream(CHAT, greedy) as chat:  # LMI's chat schema, as JSON lines
            assert "".join(chat) == SCRIPT
        stop = greedy.model_copy(update={"stop": (" costs",)})
        assert backend.generate(TEXT, stop).text == SCRIPT[: SCRIPT.index(" costs")]
        with backend.stream(TEXT, greedy.model_copy(update={"max_new_tokens": 3})) as short:
            list(short)
        assert short.generation is not None
        assert short.generation.finish_reason == "length"
    assert [r.headers["accept"] for r in tgi.requests[1:3]] == ["application/jsonlines"] * 2


def test_lmi_errors_over_http(tgi: TGIServer) -> None:
    greedy = GenerationParams(max_new_tokens=64, temperature=0.0)
    schema = greedy.model_copy(update={"json_schema": {"type": "object"}})
    with HttpBackend(tgi.url, api="lmi") as backend:
        with pytest.raises(InvalidParameterError, match="json_schema"):
            backend.generate(TEXT, schema)
        assert tgi.requests == []  # nothing was sent
        tgi.fail(Fault.raw(424, {"error": "invoke handler failure", "code": 424}))
        with pytest.raises(ModelError, match="invoke handler failure") as info:
            backend.generate(TEXT, greedy)
        assert info.value.status == 424
        tgi.fail(Fault.error_event(after=2))  # LMI's error line: finish_reason "error"
        pieces: list[str] = []
        with pytest.raises(StreamBrokenError, match="LMI") as broken:
            _read_into(backend.stream(TEXT, greedy), pieces)
        assert broken.value.partial_text == "".join(pieces) == "".join(DEFAULT_TOKENS[:2])


def test_lmi_over_sagemaker_with_the_real_model(
    local_backend: LocalBackend, aws_credentials: None
) -> None:
    greedy = GenerationParams(max_new_tokens=10, temperature=0.0, seed=1)
    with WireServer(local_backend, default=Llama(container="lmi")) as server:
        aws = AWSClients(region="us-east-1", endpoint_url=server.url)
        with SageMakerBackend("twin", aws=aws, api="lmi") as backend:
            for prompt in (TEXT, CHAT):
                whole = backend.generate(prompt, greedy)
                with backend.stream(prompt, greedy) as stream:
                    pieces = list(stream)
                assert len(pieces) > 1
                assert "".join(pieces) == whole.text.strip() or "".join(pieces) == whole.text
                assert stream.generation is not None
                assert stream.generation.usage.completion_tokens == whole.usage.completion_tokens
        server.reply(Llama(part_size=3, container="lmi"))
        with (
            SageMakerBackend("twin", aws=aws, api="lmi") as backend,
            backend.stream(TEXT, greedy) as tiny,
        ):
            assert "".join(tiny) == backend.generate(TEXT, greedy).text
    streamed = [r for r in server.requests if r.streaming]
    assert all(r.headers["x-amzn-sagemaker-accept"] == "application/jsonlines" for r in streamed)
    assert all("inputs" in r.body or "messages" in r.body for r in server.requests)


def test_lmi_shapes_over_sagemaker(wire: WireServer) -> None:
    """Token lines split anywhere, vLLM-native ``outputs`` lines, ``data:``-prefixed lines,
    LMI's object answer, and its error line."""
    data = b"".join(lmi_lines(["Grüße", " aus", " 🚀"], finish_reason="length"))
    outputs = b'{"outputs": ["This"]}\n{"outputs": [" is"]}\n{"outputs": [" it"]}\n'
    wire.reply(
        Stream([data[i : i + 5] for i in range(0, len(data), 5)]),
        Stream([outputs]),
        Stream(
            [b'data:{"token": {"id": 1, "text": "sse", "log_prob": -1}, "generated_text": "sse"}\n']
        ),
        Json({"generated_text": "object", "details": {"finish_reason": "length"}}),
        Stream([lmi_lines(["one", " two"])[0], LMI_FAILED]),
    )
    with _sagemaker(wire, api="lmi") as backend:
        with backend.stream(TEXT, GenerationParams()) as stream:
            assert list(stream) == ["Grüße", " aus", " 🚀"]
        assert stream.generation is not None
        assert stream.generation.finish_reason == "length"
        assert stream.generation.usage.completion_tokens == 3
        with backend.stream(TEXT, GenerationParams()) as native:
            assert list(native) == ["This", " is", " it"]  # the body's end ends the stream
        with backend.stream(TEXT, GenerationParams()) as prefixed:
            assert list(prefixed) == ["sse"]
        whole = backend.generate(TEXT, GenerationParams())
        assert (whole.text, whole.finish_reason) == ("object", "length")
        with pytest.raises(StreamBrokenError, match="failed during generation") as info:
            _read_into(backend.stream(TEXT, GenerationParams()), [])
        assert info.value.partial_text == "one"


def test_one_finish_reason_mapping() -> None:
    for length in ("length", "max_tokens", "model_length"):
        assert finish_reason(length) == "length"
    for other in ("stop", "eos_token", "stop_sequence", "end_turn", None, "error"):
        assert finish_reason(other) == "stop"


MULTILINGUAL = [
    "Grüße aus Köln! Die Straßenbahn fährt über die Brücke, während die Möwen kreisen.",
    "L'été dernier, nous sommes allés à la montagne où l'air était très frais.",
    "日本語のテキストはトークンの数が多くなる傾向があります。東京は大きな都市です。",
    "大型语言模型在中文文本上通常每个字需要一个或多个词元。",
    "Большие языковые модели требуют больше токенов для кириллицы.",
    "🚀🔥 Ship it! 🎉🎉 café ☕ naïve résumé",
    "3.14159265358979323846 2.71828182845904523536 1234567890",  # within 5 %: not asserted
]


def test_one_token_estimate_errs_high(
    local_backend: LocalBackend, corpus: list[Document], tgi: TGIServer
) -> None:
    """The estimate is never below the real count (SmolLM2's tokenizer) on prose in six
    scripts, emoji and numbers; both remote backends count with it, the same way."""
    for text in [d.text for d in corpus] + MULTILINGUAL[:-1]:
        assert estimate_tokens(text) >= local_backend.count_tokens(text) - 1  # minus BOS
    http = HttpBackend(tgi.url)
    sagemaker = SageMakerBackend("twin", region="us-east-1")
    for prompt in (TEXT, CHAT, MULTILINGUAL[2]):
        assert http.count_tokens(prompt) == sagemaker.count_tokens(prompt)
    assert estimate_tokens("2025") == 4  # one token per digit


def test_client_over_lmi_retries_a_throttled_start(tgi: TGIServer) -> None:
    tgi.fail(Fault.raw(429, {"error": "too many requests", "code": 429}))
    client = InferenceClient(
        HttpBackend(tgi.url, api="lmi"), retry=RetryPolicy(max_attempts=2, sleep=lambda s: None)
    )
    with client.stream(TEXT, GenerationParams(max_new_tokens=64)) as stream:
        assert "".join(stream) == SCRIPT
    assert len(tgi.requests) == 2
