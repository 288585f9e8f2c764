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


# -- one source per document, neighbours within the budget -----------------------------------


def _document(doc: str, positions: range, size: int = 10) -> list[Chunk]:
    """Chunks of one document whose consecutive texts share two words (the overlap)."""
    words_ = [f"{doc}w{i}" for i in range(100)]
    return [
        Chunk(
            id=f"{doc}-{p}",
            document_id=doc,
            position=p,
            text=" ".join(words_[p * (size - 2) : p * (size - 2) + size]),
            metadata={"title": doc.upper()},
        )
        for p in positions
    ]


def test_one_source_block_per_document() -> None:
    a, b = _document("a", range(3)), _document("b", range(1))
    p = assemble_prompt("why?", [a[1], a[0], b[0], a[2]], count_tokens=words, budget=10_000)
    assert [s.id for s in p.sources] == ["a-1", "b-0"]  # the best chunk of each, in rank order
    user = p.messages[1].content
    assert user.count("[1] A") == user.count("[2] B") == 1
    assert "[3]" not in user
    # Room for all: a's other chunks join its block in document order, the overlap once.
    assert [c.id for c in p.added] == ["a-0", "a-2"]
    assert p.passages[0] == " ".join(f"aw{i}" for i in range(26))
    assert p.passages[0] in user


def test_neighbours_join_nearest_first_in_rank_order_within_the_budget() -> None:
    a, b = _document("a", range(5)), _document("b", range(3))
    best, around = [a[2], b[1]], [a[1], a[3], b[0], b[2], a[0]]
    only_best = assemble_prompt("why?", best, count_tokens=words, budget=10_000)
    every = assemble_prompt("why?", best, count_tokens=words, budget=10_000, neighbours=around)
    assert {c.id for c in every.added} == {c.id for c in around}
    assert only_best.added == ()
    assert only_best.passages == (a[2].text, b[1].text)
    # Each neighbour adds 8 new words: room for two of them goes to a's nearest ones.
    two = assemble_prompt(
        "why?", best, count_tokens=words, budget=only_best.prompt_tokens + 17, neighbours=around
    )
    assert [c.id for c in two.added] == ["a-1", "a-3"]
    assert two.prompt_tokens <= only_best.prompt_tokens + 17
    assert two.passages[1] == b[1].text
    # A budget that holds the best chunks only: no neighbour, never over the budget.
    tight = assemble_prompt(
        "why?", best, count_tokens=words, budget=only_best.prompt_tokens + 7, neighbours=around
    )
    assert tight.added == ()
    assert tight.prompt_tokens == only_best.prompt_tokens
    # Not every document's best chunk fits: no neighbour either.
    dropped = assemble_prompt(
        "why?", best, count_tokens=words, budget=only_best.prompt_tokens - 1, neighbours=around
    )
    assert dropped.dropped == 1
    assert dropped.added == ()
    # Neighbours of documents not in the prompt are ignored.
    other = assemble_prompt(
        "why?", [a[2]], count_tokens=words, budget=10_000, neighbours=_document("z", range(2))
    )
    assert other.added == ()


def test_render_takes_one_text_per_source() -> None:
    chunks = _chunks(2)
    messages = PromptTemplate().render("why?", chunks, ["first", "second"])
    assert "[1] T0 (Maya Okafor, post)\nfirst" in messages[1].content
    with pytest.raises(InvalidParameterError, match="2 sources but 1 texts"):
        PromptTemplate().render("why?", chunks, ["first"])
