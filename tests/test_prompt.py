from __future__ import annotations

import pytest

from llm_twin_sdk import (
    Chunk,
    ConfigurationError,
    InferenceClient,
    InvalidParameterError,
    Message,
    PromptTemplate,
    PromptTooLongError,
    assemble_prompt,
)
from llm_twin_sdk.rag.prompt import prompt_budget


def words(messages: list[Message]) -> int:
    return sum(len(m.content.split()) for m in messages)


def _chunks(n: int, size: int = 20) -> list[Chunk]:
    return [
        Chunk(
            id=f"c{i}",
            document_id=f"d{i}",
            position=0,
            text=" ".join([f"w{i}"] * size),
            metadata={"author": "Maya Okafor", "title": f"T{i}", "kind": "post"},
            score=1 - i / 10,
        )
        for i in range(n)
    ]


def test_everything_fits() -> None:
    chunks = _chunks(3)
    p = assemble_prompt("why?", chunks, count_tokens=words, budget=10_000)
    assert p.sources == tuple(chunks)
    assert p.dropped == 0
    assert p.prompt_tokens == words(p.messages)
    user = p.messages[1].content
    assert user.index("[1] T0") < user.index("[2] T1") < user.index("[3] T2")
    assert "Maya Okafor" in user
    assert user.endswith("Question: why?")


def test_lowest_ranked_chunks_are_dropped_whole() -> None:
    chunks = _chunks(4)
    bare = words(PromptTemplate().render("why?", []))
    one = words(PromptTemplate().render("why?", chunks[:2]))
    p = assemble_prompt("why?", chunks, count_tokens=words, budget=one)
    assert [c.id for c in p.sources] == ["c0", "c1"]
    assert p.dropped == 2
    assert p.prompt_tokens <= one
    assert "w2" not in p.messages[1].content  # no partial chunk
    p0 = assemble_prompt("why?", chunks, count_tokens=words, budget=bare)
    assert p0.sources == ()
    assert "(no sources found)" in p0.messages[1].content


def test_query_alone_over_budget() -> None:
    with pytest.raises(PromptTooLongError, match="too long") as info:
        assemble_prompt("a very long question " * 50, _chunks(2), count_tokens=words, budget=30)
    assert info.value.budget == 30
    assert info.value.prompt_tokens > 30


def test_a_budget_without_room_is_an_invalid_parameter() -> None:
    # was: PromptTooLongError with budget 0 ("the model accepts -5 input tokens")
    for budget in (-5, 0):
        with pytest.raises(InvalidParameterError, match=f"positive number of tokens, got {budget}"):
            assemble_prompt("q", [], count_tokens=words, budget=budget)


def test_counts_with_the_serving_models_tokenizer(client: InferenceClient) -> None:
    chunks = _chunks(5, size=60)
    full = client.count_tokens(PromptTemplate().render("why?", chunks))
    p = assemble_prompt("why?", chunks, count_tokens=client.count_tokens, budget=full - 1)
    assert len(p.sources) == 4
    assert p.prompt_tokens == client.count_tokens(p.messages) <= full - 1


def test_custom_template() -> None:
    t = PromptTemplate(system="S", user="Q={query}\nC={context}", source="<{number}:{text}>")
    msgs = t.render("q", _chunks(1, size=1))
    assert msgs[0].content == "S"
    assert msgs[1].content == "Q=q\nC=<1:w0>"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user": "{query} only"},
        {"user": "{query} {context} {extra}"},
        {"source": "no text here {number}"},
        {"source": "{text} {secret}"},
    ],
)
def test_template_placeholders_are_checked(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        PromptTemplate(**kwargs)


def test_the_budget_is_what_max_new_tokens_leaves_of_the_context_window() -> None:
    assert prompt_budget(2048, 2000) == 48
    for max_new_tokens in (2048, 10**12):
        with pytest.raises(
            InvalidParameterError,
            match=rf"max_new_tokens \({max_new_tokens}\) must be below .* \(2048 tokens\)",
        ):
            prompt_budget(2048, max_new_tokens)
