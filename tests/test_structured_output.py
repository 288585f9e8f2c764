"""Structured output: ``GenerationParams.json_schema`` through every backend, and self-query.

The local backend runs the real SmolLM2 model with a llama.cpp grammar; the HTTP and SageMaker
backends are checked on the wire (TGI-like test server, SageMaker-runtime wire server backed by
the same real model), so the JSON the model writes is parsed and validated end to end.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # via sagemaker-core
import pytest

from fakes import TGIServer, WireServer
from llm_twin_sdk import (
    ConfigurationError,
    GenerationParams,
    InferenceClient,
    InvalidParameterError,
    LocalBackend,
    ModelError,
)
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.inference.backends.http import HttpBackend
from llm_twin_sdk.inference.backends.sagemaker import SageMakerBackend
from llm_twin_sdk.rag.query import SelfQuery
from llm_twin_sdk.types import Message, to_messages

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "role": {"enum": ["engineer", "writer", None]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}
CHAT = to_messages(
    [
        {"role": "system", "content": "Reply with one JSON object describing the person."},
        {"role": "user", "content": "Maya Okafor is a 34 year old engineer."},
    ]
)
KNOWN = {"author": ["Maya Okafor", "Lukas Brenner"], "platform": ["linkedin", "medium"]}


def _params(schema: dict[str, Any] | None = PERSON, **update: Any) -> GenerationParams:
    return GenerationParams(
        max_new_tokens=48, temperature=0.0, top_p=1.0, repetition_penalty=1.0, json_schema=schema
    ).model_copy(update=update)


def _valid(text: str, schema: dict[str, Any] = PERSON) -> Any:
    """The JSON in ``text``, checked against ``schema`` (raises if either fails).

    Texts of the same greedy request are compared nowhere here: llama.cpp evaluates a prompt
    whose prefix is cached differently from a fresh one, and near-tied digits can flip (seen:
    ``"age":22`` fresh, ``"age":25`` with the prompt cached), grammar or not.
    """
    data = json.loads(text)
    jsonschema.validate(data, schema)
    return data


def _unique(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema no other test used (the grammar cache lives as long as the session model)."""
    return {**schema, "description": f"test {uuid.uuid4()}"}


# -- GenerationParams.json_schema -------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [["not", "a", "mapping"], "{}", 3, {"a": {1, 2}}, {"a": float("nan")}, {"a": object()}],
)
def test_json_schema_must_be_a_json_mapping(value: Any) -> None:
    with pytest.raises(InvalidParameterError, match="json_schema"):
        GenerationParams(json_schema=value)


def test_json_schema_is_copied_and_params_stay_hashable_and_readable() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
    params = GenerationParams(json_schema=schema)
    schema["properties"]["a"]["type"] = "integer"  # the caller's dict changes later
    assert params.json_schema == {"type": "object", "properties": {"a": {"type": "string"}}}
    reordered = GenerationParams(
        json_schema={"properties": {"a": {"type": "string"}}, "type": "object"}
    )
    assert params == reordered
    assert hash(params) == hash(reordered)  # pydantic's frozen hash would fail on a dict
    assert hash(params) != hash(GenerationParams())
    assert len({params, reordered, GenerationParams()}) == 2
    assert params.model_dump()["json_schema"] == params.json_schema
    assert GenerationParams.model_validate_json(params.model_dump_json()) == params
    assert params.model_copy(update={"temperature": 0.5}).json_schema == params.json_schema
    assert "json_schema=None" in repr(GenerationParams())
    long = GenerationParams(json_schema=PERSON)
    assert len(repr(long)) < len(repr(GenerationParams())) + 100  # shortened in reprs
    assert repr(long).count("...") == 1


# -- LocalBackend (the real SmolLM2 model, llama.cpp grammar) --------------------------------


@pytest.fixture
def grammar_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``LlamaGrammar.from_json_schema`` call (the real function still runs)."""
    from llama_cpp.llama_grammar import LlamaGrammar

    calls: list[str] = []
    real = LlamaGrammar.from_json_schema.__func__  # type: ignore[attr-defined]

    def spy(cls: type[LlamaGrammar], json_schema: str, verbose: bool = True) -> LlamaGrammar:
        calls.append(json_schema)
        grammar: LlamaGrammar = real(cls, json_schema, verbose=verbose)
        return grammar

    monkeypatch.setattr(LlamaGrammar, "from_json_schema", classmethod(spy))
    return calls


@pytest.fixture
def completion_calls(
    local_backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """The keyword arguments of every llama.cpp ``create_completion`` call."""
    with local_backend._worker.borrow() as llm:  # the worker's model (generations run there)
        pass
    real = llm.create_completion
    calls: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(llm, "create_completion", spy)
    return calls


def test_local_generate_writes_json_matching_the_schema(
    local_backend: LocalBackend, completion_calls: list[dict[str, Any]]
) -> None:
    generation = local_backend.generate(CHAT, _params())
    data = _valid(generation.text)
    assert set(data) == {"name", "age", "role"}
    assert completion_calls[-1]["grammar"] is not None


def test_local_stream_writes_json_matching_the_schema(local_backend: LocalBackend) -> None:
    with local_backend.stream(CHAT, _params()) as stream:
        pieces = list(stream)
    assert len(pieces) > 1
    _valid("".join(pieces))
    assert stream.generation is not None
    assert stream.generation.text == "".join(pieces)


def test_local_text_prompt_with_a_schema(local_backend: LocalBackend) -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4}
    generation = local_backend.generate("Three prime numbers: ", _params(schema))
    _valid(generation.text, schema)


def test_local_grammar_is_built_once_per_distinct_schema(
    local_backend: LocalBackend, grammar_builds: list[str]
) -> None:
    schema = _unique(PERSON)
    params = _params(schema, max_new_tokens=8)
    local_backend.generate(CHAT, params)
    local_backend.generate(CHAT, params)
    # the same schema with its keys in another order is the same grammar
    same = _params(dict(reversed(list(schema.items()))), max_new_tokens=8)
    with local_backend.stream(CHAT, same) as stream:
        list(stream)
    assert len(grammar_builds) == 1
    local_backend.generate(CHAT, _params(_unique(PERSON), max_new_tokens=8))
    assert len(grammar_builds) == 2


def test_local_without_a_schema_sends_no_grammar(
    local_backend: LocalBackend, completion_calls: list[dict[str, Any]]
) -> None:
    local_backend.generate(CHAT, _params(None, max_new_tokens=4))
    with local_backend.stream(CHAT, _params(None, max_new_tokens=4)) as stream:
        list(stream)
    assert len(completion_calls) == 2
    assert all("grammar" not in call for call in completion_calls)


def test_local_schema_llama_cpp_cannot_compile_is_an_invalid_parameter(
    local_backend: LocalBackend,
) -> None:
    with pytest.raises(InvalidParameterError, match="grammar"):
        local_backend.generate(CHAT, _params({"type": "no-such-type"}))
    local_backend.generate(CHAT, _params(max_new_tokens=2))  # the lock was not left held


# -- SelfQuery with the real model ------------------------------------------------------------


def test_self_query_default_params_constrain_to_the_metadata_object(
    client: InferenceClient,
) -> None:
    schema = SelfQuery(client).params.json_schema
    assert schema is not None
    assert schema["required"] == ["author", "platform", "kind"]
    assert schema["additionalProperties"] is False
    jsonschema.validate({"author": "A", "platform": None, "kind": "post"}, schema)
    jsonschema.validate({"author": None, "platform": None, "kind": None}, schema)
    for bad in (
        {"author": "A", "platform": None},
        {"author": "A", "platform": None, "kind": "tweet"},
        {"author": "A", "platform": None, "kind": None, "url": "x"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@pytest.mark.parametrize(
    "question",
    [
        "What did Maya Okafor write about LoRA on LinkedIn?",
        "Show me Lukas Brenner's Medium articles about quantization.",
        "How do I cut GPU cost?",
    ],
)
def test_self_query_gets_json_from_the_tiny_model(
    client: InferenceClient, question: str, caplog: pytest.LogCaptureFixture
) -> None:
    self_query = SelfQuery(client)
    schema = self_query.params.json_schema
    assert schema is not None
    raw = client.generate(self_query.prompt(question), self_query.params).text
    _valid(raw, schema)  # what the model wrote is the JSON object asked for
    with caplog.at_level(logging.INFO, logger="llm_twin_sdk.rag.query"):
        filters = self_query.extract(question, known=KNOWN)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert set(filters) <= {"author", "platform", "kind"}
    for name, values in filters.items():
        assert len(values) == 1
        if name in KNOWN:
            assert values[0] in KNOWN[name]


def test_self_query_extracts_from_the_reference_question(
    client: InferenceClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llm_twin_sdk.rag.query"):
        filters = SelfQuery(client).extract(
            "What did Maya Okafor write about LoRA on LinkedIn?", known=KNOWN
        )
    assert "no JSON object" not in caplog.text
    assert not caplog.records, caplog.text
    assert filters  # the model named something the question names; values are not asserted


# -- HttpBackend: TGI native -------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[TGIServer]:
    with TGIServer() as srv:
        yield srv
    assert srv.handler_errors == []


def test_tgi_native_sends_the_schema_as_a_grammar(server: TGIServer) -> None:
    with HttpBackend(server.url, api="tgi") as backend:
        backend.generate("Describe Maya.", _params())
        with backend.stream("Describe Maya.", _params()) as stream:
            list(stream)
        backend.generate("Describe Maya.", _params(None))
    plain, streamed, without = server.requests
    assert plain.path == "/generate"
    assert streamed.path == "/generate_stream"
    for request in (plain, streamed):
        assert request.body["parameters"]["grammar"] == {"type": "json", "value": PERSON}
    assert "grammar" not in without.body["parameters"]
    assert "response_format" not in without.body


def test_tgi_native_with_the_real_model_writes_valid_json(local_backend: LocalBackend) -> None:
    prompt = "Maya Okafor is a 34 year old engineer. As JSON: "
    with TGIServer(backend=local_backend) as srv, HttpBackend(srv.url, api="tgi") as backend:
        generation = backend.generate(prompt, _params())
        with backend.stream(prompt, _params()) as stream:
            pieces = list(stream)
    _valid(generation.text)
    _valid("".join(pieces))  # not always the same text: see _valid's note


# -- HttpBackend: OpenAI-compatible (recorded by the TGI-like server) --------------------------


def test_openai_default_shape_suits_llama_cpp_and_tgi(server: TGIServer) -> None:
    """The schema under ``schema`` (llama.cpp) and ``value`` (TGI, which accepts it)."""
    with HttpBackend(server.url, model="twin") as backend:
        backend.generate(CHAT, _params())
    (request,) = server.requests
    assert request.body["response_format"] == {
        "type": "json_object",
        "schema": PERSON,
        "value": PERSON,
    }


def test_openai_llama_cpp_shape_is_rejected_by_tgi(server: TGIServer) -> None:
    backend = HttpBackend(server.url, model="twin", json_schema_format="json_object")
    with backend, pytest.raises(ModelError) as info:
        backend.generate(CHAT, _params())
    assert info.value.status == 422
    (request,) = server.requests
    assert request.body["response_format"] == {"type": "json_object", "schema": PERSON}


@pytest.mark.parametrize(
    ("prompt", "route"),
    [(CHAT, "/v1/chat/completions"), ("Describe Maya as JSON.", "/v1/completions")],
)
def test_openai_tgi_shape_is_accepted_by_tgi(
    server: TGIServer, prompt: str | list[Message], route: str
) -> None:
    with HttpBackend(server.url, model="twin", json_schema_format="tgi") as backend:
        backend.generate(prompt, _params())
        with backend.stream(prompt, _params()) as stream:
            list(stream)
    for request in server.requests:
        assert request.path == route
        assert request.body["response_format"] == {"type": "json_object", "value": PERSON}


def test_openai_json_schema_shape(server: TGIServer) -> None:
    backend = HttpBackend(server.url, model="twin", json_schema_format="json_schema")
    with backend, pytest.raises(ModelError):  # TGI reads response_format as {"type", "value"}
        backend.generate(CHAT, _params())
    (request,) = server.requests
    assert request.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": PERSON},
    }


def test_openai_without_a_schema_sends_no_response_format(server: TGIServer) -> None:
    with HttpBackend(server.url, model="twin") as backend:
        backend.generate(CHAT, _params(None))
        with backend.stream("Hi", _params(None)) as stream:
            list(stream)
    assert all("response_format" not in r.body for r in server.requests)
    assert all("grammar" not in r.body for r in server.requests)


def test_json_schema_format_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="json_schema_format"):
        HttpBackend("http://127.0.0.1:9", json_schema_format="xml")  # type: ignore[arg-type]


# -- SageMakerBackend (wire server backed by the real model) ---------------------------------


@pytest.fixture(scope="module")
def wire_server(local_backend: LocalBackend) -> Iterator[WireServer]:
    with WireServer(local_backend) as server:
        yield server


@pytest.fixture
def wire(wire_server: WireServer) -> Iterator[WireServer]:
    wire_server.reset()
    yield wire_server
    assert not wire_server.handler_errors, wire_server.handler_errors


@pytest.fixture
def aws(wire: WireServer, aws_credentials: None) -> AWSClients:
    return AWSClients(region="us-east-1", endpoint_url=wire.url)


def test_sagemaker_messages_api_sends_response_format(aws: AWSClients, wire: WireServer) -> None:
    with SageMakerBackend("twin", aws=aws) as backend:
        generation = backend.generate(CHAT, _params())
        with backend.stream(CHAT, _params()) as stream:
            pieces = list(stream)
    _valid(generation.text)  # the wire server hands the grammar to the real model
    _valid("".join(pieces))
    for request in wire.requests:
        body = request.body
        assert body["response_format"] == {"type": "json_object", "value": PERSON}
        assert "parameters" not in body


def test_sagemaker_generate_api_sends_a_grammar(aws: AWSClients, wire: WireServer) -> None:
    prompt = "Maya Okafor is a 34 year old engineer. As JSON: "
    with SageMakerBackend("twin", aws=aws, api="generate") as backend:
        generation = backend.generate(prompt, _params())
        with backend.stream(prompt, _params()) as stream:
            pieces = list(stream)
    _valid(generation.text)
    _valid("".join(pieces))  # not always the same text: see _valid's note
    for request in wire.requests:
        body = request.body
        assert body["parameters"]["grammar"] == {"type": "json", "value": PERSON}
        assert "response_format" not in body


def test_sagemaker_without_a_schema_sends_neither(aws: AWSClients, wire: WireServer) -> None:
    with SageMakerBackend("twin", aws=aws) as backend:
        backend.generate(CHAT, _params(None, max_new_tokens=4))
        backend.generate("Hello", _params(None, max_new_tokens=4))
    chat, text = (request.body for request in wire.requests)
    assert "response_format" not in chat
    assert "grammar" not in text["parameters"]
