from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
from pydantic import ValidationError

from llm_twin_sdk import (
    Chunk,
    Document,
    Generation,
    GenerationParams,
    InvalidDocumentError,
    InvalidInputError,
    InvalidParameterError,
    Message,
    Usage,
)
from llm_twin_sdk.types import to_messages
from llm_twin_sdk.validation import validate_documents


def test_generation_params_defaults_follow_reference_deployment() -> None:
    p = GenerationParams()
    assert (p.max_new_tokens, p.temperature, p.top_p, p.repetition_penalty) == (150, 0.01, 0.9, 1.1)
    assert p.stop == ()
    assert p.seed is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_new_tokens", 0),
        ("max_new_tokens", -5),
        ("temperature", -0.1),
        ("top_p", 0),
        ("top_p", 1.5),
        ("repetition_penalty", 0),
        ("stop", ("",)),
        ("temperature", float("nan")),
        ("max_new_tokens", "many"),
    ],
)
def test_invalid_generation_params_raise_typed_error(field: str, value: Any) -> None:
    with pytest.raises(InvalidParameterError, match=field) as info:
        GenerationParams(**{field: value})
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, ValidationError)
    assert isinstance(info.value.__cause__, ValidationError)


def test_unknown_generation_param_is_rejected() -> None:
    with pytest.raises(InvalidParameterError, match="max_tokens"):
        GenerationParams(max_tokens=10)  # type: ignore[call-arg]


def test_models_are_immutable() -> None:
    p = GenerationParams()
    with pytest.raises(ValidationError):
        p.temperature = 1.0  # type: ignore[misc]
    assert p.model_copy(update={"temperature": 0.5}).temperature == 0.5


def test_document_requires_text_and_id() -> None:
    with pytest.raises(InvalidDocumentError, match="no text"):
        Document(id="a", text="   \n")
    with pytest.raises(InvalidDocumentError, match="id"):
        Document(id="  ", text="hello")
    with pytest.raises(InvalidDocumentError, match="text"):
        Document(id="a")  # type: ignore[call-arg]


def test_document_metadata_is_validated() -> None:
    doc = Document(id="a", text="t", metadata={"author": "A", "kind": "post"})
    assert doc.metadata.author == "A"
    with pytest.raises(InvalidDocumentError, match="kind"):
        Document(id="a", text="t", metadata={"kind": "tweet"})
    with pytest.raises(InvalidDocumentError, match="colour"):
        Document(id="a", text="t", metadata={"colour": "red"})


def test_keys_that_are_not_strings_raise_the_sdk_error() -> None:
    message = "field names must be strings"
    with pytest.raises(InvalidDocumentError, match=f"invalid Document: {message}"):
        Document.model_validate({"id": "a", "text": "t", 1: "x"})
    with pytest.raises(InvalidDocumentError, match=f"invalid Document: {message}, nested"):
        Document(id="a", text="t", metadata={1: "x"})
    with pytest.raises(InvalidDocumentError, match=r"document #0 \(id='a'\): .*" + message):
        validate_documents([{"id": "a", "text": "t", "metadata": {("x",): 1}}])
    with pytest.raises(InvalidParameterError, match=message):
        GenerationParams.model_validate({1: 2})
    with pytest.raises(InvalidParameterError, match=message):
        GenerationParams().model_copy(update={1: 2})  # type: ignore[dict-item]
    with pytest.raises(InvalidParameterError, match=f"invalid Message: {message}"):
        to_messages([{1: 2}])  # type: ignore[dict-item]
    with pytest.raises(InvalidParameterError, match=r"invalid Message: .*valid dictionary"):
        to_messages(["not a message"])  # type: ignore[list-item]


def test_usage_total() -> None:
    assert Usage(prompt_tokens=3, completion_tokens=4).total_tokens == 7
    assert Usage(prompt_tokens=3, completion_tokens=4).model_dump()["total_tokens"] == 7


def test_to_messages_accepts_dicts_and_models() -> None:
    msgs = to_messages([{"role": "user", "content": "hi"}, Message(role="assistant", content="yo")])
    assert [m.role for m in msgs] == ["user", "assistant"]
    with pytest.raises(InvalidParameterError, match="role"):
        to_messages([{"role": "wizard", "content": "hi"}])
    with pytest.raises(InvalidParameterError, match="empty"):
        to_messages([])


def test_chunk_roundtrip() -> None:
    c = Chunk(id="x", document_id="d", position=0, text="t", score=0.5)
    assert Chunk.model_validate(c.model_dump()) == c


def test_model_validate_raises_one_sdk_error_with_one_message() -> None:
    from llm_twin_sdk import DocumentMetadata

    with pytest.raises(InvalidDocumentError) as info:
        DocumentMetadata.model_validate({"kind": "tweet"})
    assert str(info.value).count("invalid DocumentMetadata") == 1
    assert "kind" in str(info.value)
    with pytest.raises(InvalidParameterError, match="not JSON"):
        GenerationParams.model_validate_json("{oops")
    assert GenerationParams.model_validate_json('{"top_p": 0.5}').top_p == 0.5


@pytest.mark.parametrize(
    ("model", "data", "path"),
    [
        (Document, {"id": "a", "text": "t", "metadata": {"kind": "tweet"}}, "metadata.kind"),
        (Usage, {"prompt_tokens": -1, "completion_tokens": 0}, "prompt_tokens"),
        (
            Generation,
            {
                "text": "",
                "finish_reason": "stop",
                "latency_s": 0,
                "model": "m",
                "usage": {"prompt_tokens": -1, "completion_tokens": 0},
            },
            "usage.prompt_tokens",
        ),
    ],
)
def test_a_nested_model_error_names_the_full_path_once(
    model: type[Any], data: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidInputError) as built:
        model(**data)
    with pytest.raises(InvalidInputError) as validated:
        model.model_validate(data)
    for message in (str(built.value), str(validated.value)):
        assert message.startswith(f"invalid {model.__name__}: {path}: ")
        assert message.count("invalid") == 1
        assert message.count("got") == 1


@pytest.mark.parametrize("module", ["types", "aws", "redaction"])
def test_docstring_examples_run(module: str) -> None:
    results = doctest.testmod(importlib.import_module(f"llm_twin_sdk.{module}"))
    assert results.attempted > 0
    assert results.failed == 0
