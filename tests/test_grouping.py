"""rag.grouping: the best chunk per document, how deep to search, passages of overlapping
chunks, neighbour ids."""

from __future__ import annotations

import pytest

from llm_twin_sdk import Chunk, InvalidParameterError
from llm_twin_sdk.rag.chunking import chunk_id
from llm_twin_sdk.rag.grouping import (
    GAP,
    best_per_document,
    check_unit,
    join_overlapping,
    neighbour_ids,
    passage,
)


def _chunk(doc: str, position: int, text: str = "x", kind: str | None = None) -> Chunk:
    return Chunk(
        id=chunk_id(doc, position),
        document_id=doc,
        position=position,
        text=text,
        metadata={"kind": kind},
    )


def test_best_per_document_keeps_the_first_of_each_in_order() -> None:
    ranked = [_chunk("a", 3), _chunk("b", 0), _chunk("a", 1), _chunk("c", 2), _chunk("b", 1)]
    assert best_per_document(ranked) == [ranked[0], ranked[1], ranked[3]]
    assert best_per_document([]) == []


@pytest.mark.parametrize("unit", ["document", "chunk"])
def test_check_unit(unit: str) -> None:
    assert check_unit(unit) == unit
    with pytest.raises(InvalidParameterError, match="unit must be one of document, chunk"):
        check_unit(unit.upper())


def test_passage_writes_each_overlap_once() -> None:
    first, second, third = "the cat sat on", "sat on the mat", "the mat was red"
    chunks = [_chunk("a", 2, third), _chunk("a", 0, first), _chunk("a", 1, second)]
    assert passage(chunks) == "the cat sat on the mat was red"
    assert passage([_chunk("a", 0, first), _chunk("a", 2, third)]) == f"{first}{GAP}{third}"
    assert join_overlapping("no overlap here", "at all") == "no overlap here at all"
    # A chunk ends on a token: its last word may lack the comma that follows it.
    assert join_overlapping("cuts gpu cost", "gpu cost, again") == "cuts gpu cost, again"
    # Only whole words overlap: "cat" does not overlap "cathedral".
    assert join_overlapping("a cat", "cathedral") == "a cat cathedral"


def test_neighbour_ids() -> None:
    def route(kind: object) -> str:
        return f"c-{kind}"

    found = neighbour_ids([_chunk("a", 0, kind="post"), _chunk("b", 5)], 1, route)
    assert found == {
        chunk_id("a", 1): "c-post",
        chunk_id("b", 4): "c-None",
        chunk_id("b", 6): "c-None",
    }
    # A chunk given is not its neighbour's neighbour.
    assert neighbour_ids([_chunk("a", 0), _chunk("a", 1)], 1, route) == {chunk_id("a", 2): "c-None"}
    assert neighbour_ids([_chunk("a", 3)], 0, route) == {}
    with pytest.raises(InvalidParameterError, match="radius must be an integer from 0"):
        neighbour_ids([], -1, route)
