"""HttpBackend against a real OpenAI-compatible server: ``python -m llama_cpp.server`` on the
SmolLM2 GGUF, started once for this module on 127.0.0.1 (few, short generations: 2 cores)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from llm_twin_sdk import (
    EndpointNotFoundError,
    GenerationParams,
    InferenceClient,
    LocalBackend,
    Message,
    ModelError,
)
from llm_twin_sdk.inference.backends.http import HttpBackend

pytestmark = pytest.mark.slow

GREEDY = GenerationParams(max_new_tokens=12, temperature=0.0, seed=7)
CHAT = [Message(role="user", content="Name one primary colour.")]


@pytest.fixture(scope="module")
def backend(llama_server: str) -> Iterator[HttpBackend]:
    http = HttpBackend(llama_server, context_window=2048)
    yield http
    http.close()


def test_chat_generate_and_stream(backend: HttpBackend) -> None:
    client = InferenceClient(backend)
    generation = client.generate(CHAT, GREEDY)
    assert generation.text.strip()
    assert generation.finish_reason in {"stop", "length"}
    assert 0 < generation.usage.completion_tokens <= GREEDY.max_new_tokens
    assert generation.usage.prompt_tokens > 5  # the server's own count, template included

    with client.stream(CHAT, GREEDY) as stream:
        pieces = list(stream)
    assert len(pieces) > 1
    assert stream.generation is not None
    assert stream.generation.text == "".join(pieces) == generation.text  # greedy: same text
    assert stream.generation.finish_reason == generation.finish_reason
    # llama.cpp sends no usage in streams: one content event per token.
    assert stream.generation.usage.completion_tokens == generation.usage.completion_tokens


def test_raw_text_completion(backend: HttpBackend, local_backend: LocalBackend) -> None:
    params = GenerationParams(max_new_tokens=6, temperature=0.0)
    generation = backend.generate("The capital of France is", params)
    assert generation.text.strip()
    assert generation.finish_reason == "length"
    assert generation.usage.completion_tokens == 6
    # The same model in-process, same prompt, greedy: the same words.
    assert generation.text == local_backend.generate("The capital of France is", params).text


def test_server_tokenizer_counts_exactly(llama_server: str, local_backend: LocalBackend) -> None:
    exact = HttpBackend(llama_server, tokenizer="server")
    text = "Quantize before you scale out: café costs drop."
    assert exact.count_tokens(text) == local_backend.count_tokens(text)
    exact.close()


@pytest.mark.asyncio
async def test_async_generate_and_stream(llama_server: str) -> None:
    async with HttpBackend(llama_server) as backend:
        generation = await backend.agenerate(CHAT, GREEDY)
        async with await backend.astream(CHAT, GREEDY) as stream:
            pieces = [piece async for piece in stream]
    assert generation.text.strip()
    assert "".join(pieces) == generation.text
    assert stream.generation is not None
    assert stream.generation.finish_reason == generation.finish_reason


def test_wrong_route_is_endpoint_not_found(llama_server: str) -> None:
    tgi_routes = HttpBackend(llama_server, api="tgi")  # llama.cpp has no /generate
    with pytest.raises(EndpointNotFoundError, match="/generate"):
        tgi_routes.generate("Hi", GREEDY)
    tgi_routes.close()
    prefixed = HttpBackend(llama_server + "/api")
    with pytest.raises(EndpointNotFoundError):
        prefixed.stream(CHAT, GREEDY)
    prefixed.close()


# -- structured output (GenerationParams.json_schema) -----------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
DESCRIBE = [
    Message(role="system", content="Reply with one JSON object describing the person."),
    Message(role="user", content="Maya Okafor is a 34 year old engineer."),
]
AS_JSON = GenerationParams(max_new_tokens=40, temperature=0.0, json_schema=PERSON)


def _person(text: str) -> dict[str, object]:
    data = json.loads(text)
    assert isinstance(data, dict)
    assert set(data) == {"name", "age"}
    assert isinstance(data["name"], str)
    assert isinstance(data["age"], int)
    return data


def test_json_schema_constrains_the_server(backend: HttpBackend) -> None:
    """llama-cpp-python's server applies the default {"type": "json_object", "schema"}."""
    _person(backend.generate(DESCRIBE, AS_JSON).text)
    with backend.stream(DESCRIBE, AS_JSON) as stream:
        pieces = list(stream)
    _person("".join(pieces))


def test_openai_json_schema_shape_is_rejected_by_llama_cpp_python(llama_server: str) -> None:
    """Why the default shape is json_object: this server's request model knows no other."""
    backend = HttpBackend(llama_server, json_schema_format="json_schema")
    with backend, pytest.raises(ModelError) as info:
        backend.generate(DESCRIBE, AS_JSON)
    # its error handler answers the request-model validation error with HTTP 500
    assert "validation error" in str(info.value)
