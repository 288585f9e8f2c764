from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_twin_sdk import Document, InvalidParameterError
from llm_twin_sdk.rag.chunking import chunk_document, chunk_id, document_key, split_offsets


def word_offsets(text: str) -> list[tuple[int, int]]:
    """One token per word: a whitespace tokenizer with character offsets."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def subword_offsets(text: str, piece: int) -> list[tuple[int, int]]:
    """Words cut into pieces of `piece` characters, like a word-piece tokenizer."""
    out: list[tuple[int, int]] = []
    for m in re.finditer(r"\S+", text):
        out.extend((s, min(s + piece, m.end())) for s in range(m.start(), m.end(), piece))
    return out


def test_short_text_is_one_chunk() -> None:
    text = "one two three"
    assert split_offsets(word_offsets(text), 10, 2) == [(0, len(text))]


def test_empty_offsets_give_no_chunk() -> None:
    assert split_offsets([], 10, 2) == []


def test_windows_respect_size_and_overlap() -> None:
    text = " ".join(f"w{i}" for i in range(20))
    spans = split_offsets(word_offsets(text), 8, 3)
    chunks = [text[s:e].split() for s, e in spans]
    assert chunks[0] == [f"w{i}" for i in range(8)]
    assert chunks[1][:3] == chunks[0][-3:]  # 3 words shared
    assert all(len(c) <= 8 for c in chunks)
    assert chunks[-1][-1] == "w19"


def test_chunks_end_on_word_boundaries() -> None:
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    offsets = subword_offsets(text, 2)  # 2-character pieces: words are 2-4 tokens
    for s, e in split_offsets(offsets, 7, 2):
        piece = text[s:e]
        assert piece == piece.strip()
        assert s == 0 or text[s - 1] == " ", piece
        assert e == len(text) or text[e] == " ", piece


def test_word_longer_than_limit_is_cut() -> None:
    text = "a " + "x" * 40 + " b"
    offsets = subword_offsets(text, 4)  # the long word is 10 tokens
    spans = split_offsets(offsets, 4, 1)
    assert all(sum(1 for o in offsets if s <= o[0] and o[1] <= e) <= 4 for s, e in spans)
    assert "".join(text[s:e] for s, e in spans).replace(" ", "").count("x") >= 40


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (4, 4), (4, -1)])
def test_invalid_sizes(size: int, overlap: int) -> None:
    with pytest.raises(InvalidParameterError):
        split_offsets([(0, 1)], size, overlap)


@settings(max_examples=400, deadline=None)
@given(
    words=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=120),
    size=st.integers(min_value=1, max_value=40),
    overlap_frac=st.floats(min_value=0, max_value=0.9),
    piece=st.integers(min_value=1, max_value=5),
)
def test_chunking_properties(words: list[int], size: int, overlap_frac: float, piece: int) -> None:
    text = " ".join("x" * n for n in words)
    offsets = subword_offsets(text, piece)
    overlap = min(int(size * overlap_frac), size - 1)
    spans = split_offsets(offsets, size, overlap)
    # Every token is in some chunk, no chunk is over the limit, chunks move forward.
    covered = set()
    for s, e in spans:
        inside = [i for i, (a, b) in enumerate(offsets) if s <= a and b <= e]
        assert 1 <= len(inside) <= size
        covered.update(inside)
    assert covered == set(range(len(offsets)))
    starts = [s for s, _ in spans]
    assert starts == sorted(set(starts))


def test_a_chunk_id_carries_its_documents_key() -> None:
    ids = [chunk_id("numpy.linalg.lstsq", position) for position in range(50)]
    assert len(set(ids)) == 50
    assert all(uuid.UUID(point_id) for point_id in ids)  # valid UUIDs: Qdrant point ids
    assert {document_key(point_id) for point_id in ids} == {document_key(ids[0])}
    assert document_key(uuid.UUID(ids[3])) == document_key(ids[0])  # a UUID object too
    others = {document_key(chunk_id(f"numpy.doc{i}", 0)) for i in range(1000)}
    assert len(others) == 1000
    assert document_key(ids[0]) not in others


def test_chunk_ids_are_deterministic_and_distinct() -> None:
    assert chunk_id("doc", 0) == chunk_id("doc", 0)
    assert len({chunk_id("doc", 0), chunk_id("doc", 1), chunk_id("doc2", 0)}) == 3


def test_chunk_document_copies_metadata_and_slices_text() -> None:
    doc = Document(
        id="d1",
        text="one two three four five six",
        metadata={"author": "Maya Okafor", "kind": "post"},
    )
    chunks = chunk_document(doc, word_offsets(doc.text), 4, 1)
    assert [c.text for c in chunks] == ["one two three four", "four five six"]
    assert [c.position for c in chunks] == [0, 1]
    assert all(c.metadata == doc.metadata and c.document_id == "d1" for c in chunks)
    assert chunks[1].id == chunk_id("d1", 1)


def test_overlap_reaching_before_the_first_token() -> None:
    # Found by hypothesis: a short first word followed by a word of several tokens.
    text = "x " + "xxxx"
    offsets = [(0, 1), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert split_offsets(offsets, 4, 2) == [(0, 1), (2, 6)]
    assert text[2:6] == "xxxx"
