"""The lexical encoder: Qdrant's BM25 (stemming, stopwords, languages) plus whole technical
names, ranked by Qdrant itself (IDF applied at query time)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from llm_twin_sdk import ConfigurationError, QdrantStore
from llm_twin_sdk.lexical_languages import LANGUAGES
from llm_twin_sdk.rag.chunking import chunk_id
from llm_twin_sdk.rag.sparse import LexicalEncoder, SparseVector, compound_terms
from llm_twin_sdk.types import Chunk

ENCODER = LexicalEncoder()


def _terms(encoder: LexicalEncoder, text: str) -> set[int]:
    return set(encoder.encode_query(text).indices)


# -- terms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Set X-Accel-Buffering: no", ["x-accel-buffering"]),
        ("`max_new_tokens` and MAX_INPUT_TOKENS", ["max_new_tokens", "max_input_tokens"]),
        ("ef_construct=200", ["ef_construct=200", "ef_construct"]),
        ("max_new_tokens=1200 HTTP 422", ["max_new_tokens=1200", "max_new_tokens"]),
        ("on ml.g5.2xlarge.", ["ml.g5.2xlarge"]),
        ("--max-num-seqs 64 -v", ["--max-num-seqs", "-v"]),
        ("NoCapacityInvocationFailures! plain words, (no names)", []),
        ("__init__ _private", []),
        ("", []),
    ],
)
def test_compound_terms_are_the_technical_names(text: str, expected: list[str]) -> None:
    assert compound_terms(text) == expected


def test_stemming_meets_word_forms() -> None:
    text = "Compilation of the inferences took minutes."
    assert _terms(ENCODER, "compile inference") <= set(ENCODER.encode_document(text).indices)
    plain = LexicalEncoder(language="none")
    assert not _terms(plain, "compile inference") & set(plain.encode_document(text).indices)


def test_stopwords_carry_no_terms_unless_language_none() -> None:
    assert len(ENCODER.encode_query("the of and what is")) == 0
    assert len(LexicalEncoder(language="none").encode_query("the of and what is")) == 5


def test_languages_stem_their_own_words() -> None:
    german = LexicalEncoder(language="german")
    assert _terms(german, "Häuser") == _terms(german, "Haus")  # Snowball German
    assert _terms(ENCODER, "Häuser") != _terms(ENCODER, "Haus")


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_accepted_language_builds_in_qdrant(language: str) -> None:
    encoder = LexicalEncoder(language=language)
    assert len(encoder.encode_document("qdrant bm25 ml.g5.2xlarge")) >= 2


def test_document_weights_saturate_with_term_frequency() -> None:
    encoder = LexicalEncoder(k1=1.2, b=0.0)
    (index,) = _terms(encoder, "qdrant")
    weights = [
        encoder.encode_document(" ".join(["qdrant"] * n)).as_dict()[index] for n in (1, 2, 4, 50)
    ]
    assert weights[0] == pytest.approx(1.0)  # tf=1, no length normalisation
    assert weights[1] - weights[0] > weights[2] - weights[1] > 0
    assert weights[-1] < encoder.k1 + 1


def test_longer_documents_weigh_a_term_less() -> None:
    encoder = LexicalEncoder(avg_length=10)
    (index,) = _terms(encoder, "qdrant")
    short = encoder.encode_document("qdrant collection").as_dict()[index]
    long = encoder.encode_document("qdrant " + " ".join(f"word{i}" for i in range(40)))
    assert long.as_dict()[index] < short


def test_vectors_are_ascending_and_queries_weigh_one_per_term() -> None:
    query = ENCODER.encode_query("beta=0.1 beta beta ml.g5.2xlarge")
    assert list(query.indices) == sorted(set(query.indices))
    assert set(query.values) == {1.0}
    document = ENCODER.encode_document("Set max_new_tokens=1200 on ml.g5.2xlarge " * 3)
    assert list(document.indices) == sorted(set(document.indices))
    assert all(v > 0 for v in document.values)


def test_empty_text_gives_an_empty_vector() -> None:
    assert ENCODER.encode_document("") == SparseVector((), ())
    assert ENCODER.encode_documents([]) == []


def test_batch_matches_single() -> None:
    texts = ["one ef_construct=200", "", "two --flag", "Compilation"]
    assert ENCODER.encode_documents(texts) == [ENCODER.encode_document(t) for t in texts]
    assert ENCODER.encode_queries(texts) == [ENCODER.encode_query(t) for t in texts]


def test_vectors_are_the_same_in_every_process() -> None:
    text = "X-Accel-Buffering on ml.g5.2xlarge: compilation"
    code = (
        "from llm_twin_sdk.rag.sparse import LexicalEncoder\n"
        f"print(LexicalEncoder().encode_document({text!r}).indices)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == str(ENCODER.encode_document(text).indices)


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k1": 0},
        {"b": -0.1},
        {"b": 1.5},
        {"avg_length": 0},
        {"tokenizer": "whitespace"},
        {"language": "English"},
        {"language": "klingon"},
    ],
)
def test_invalid_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        LexicalEncoder(**kwargs)  # type: ignore[arg-type]  # wrong values on purpose


def test_unknown_language_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigurationError, match="unknown lexical language 'klingon'") as info:
        LexicalEncoder(language="klingon")
    assert "english, finnish" in str(info.value)
    assert str(info.value).endswith("turkish, none")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"language": "german"},
        {"language": "none"},
        {"tokenizer": "code"},
        {"compounds": False},
        {"k1": 1.5},
        {"b": 0.5},
        {"avg_length": 100},
    ],
)
def test_repr_changes_with_every_setting_that_changes_vectors(kwargs: dict[str, object]) -> None:
    other = LexicalEncoder(**kwargs)  # type: ignore[arg-type]  # each setting in turn
    assert repr(other) != repr(ENCODER)
    assert repr(LexicalEncoder(**kwargs)) == repr(other)  # type: ignore[arg-type]


def test_the_code_tokenizer_splits_camel_case() -> None:
    code = LexicalEncoder(tokenizer="code")
    assert _terms(code, "chat") <= _terms(code, "getChatCompletion")
    assert not _terms(ENCODER, "chat") & _terms(ENCODER, "getChatCompletion")


# -- ranking by Qdrant: a named identifier beats its parts scattered --------------------------

IDENTIFIERS = [
    (
        "max_new_tokens",
        "Raise max_new_tokens for longer answers.",
        "The max batch holds new requests; tokens are counted. New max tokens, max new.",
    ),
    (
        "ml.g5.2xlarge",
        "Deploy the endpoint on ml.g5.2xlarge instances.",
        "The ml team moved from g5 to a 2xlarge box; ml people like g5 and 2xlarge.",
    ),
    (
        "--max-num-seqs",
        "Start vLLM with --max-num-seqs 64 to bound the batch.",
        "The max number of seqs is a num; max seqs, num max, seqs.",
    ),
    (
        "MAX_INPUT_TOKENS",
        "TGI reads MAX_INPUT_TOKENS from the environment.",
        "The max input is tokens; input max tokens, max tokens input.",
    ),
    (
        "ef_construct=200",
        "Build the HNSW index with ef_construct=200 and m=16.",
        "The ef of each construct is 200; construct ef 200, ef construct.",
    ),
    (
        "getChatCompletion",
        "Call getChatCompletion for a reply.",
        "Get the chat completion: get chat, chat completion, get completion.",
    ),
]


@pytest.fixture
def identifier_store() -> Iterator[QdrantStore]:
    store = QdrantStore.memory("c")
    yield store
    store.close()


def _rank(store: QdrantStore, encoder: LexicalEncoder, query: str) -> list[str]:
    hits = store.search(None, 10, sparse=encoder.encode_query(query), mode="lexical")
    return [hit.document_id for hit in hits]


def _fill(store: QdrantStore, encoder: LexicalEncoder) -> None:
    texts = [text for _, named, scattered in IDENTIFIERS for text in (named, scattered)]
    texts += ["Unrelated filler about cooking pasta.", "More filler on gardening tools."]
    chunks = [
        Chunk(id=chunk_id(f"d{i}", 0), document_id=f"d{i}", position=0, text=t)
        for i, t in enumerate(texts)
    ]
    vectors = np.eye(len(texts), 8, dtype=np.float32) + 0.01
    store.write_documents(chunks, vectors, encoder.encode_documents(texts))


@pytest.mark.parametrize("position", range(len(IDENTIFIERS)))
def test_a_named_identifier_ranks_its_document_above_scattered_parts(
    identifier_store: QdrantStore, position: int
) -> None:
    _fill(identifier_store, ENCODER)
    query = IDENTIFIERS[position][0]
    ranking = _rank(identifier_store, ENCODER, f"How do I set {query}?")
    assert ranking[0] == f"d{2 * position}", ranking


def test_without_whole_names_the_scattered_parts_win(identifier_store: QdrantStore) -> None:
    """The whole-name terms are what ranks the named document first (the control)."""
    parts_only = LexicalEncoder(compounds=False)
    _fill(identifier_store, parts_only)
    lost = [
        query
        for position, (query, _, _) in enumerate(IDENTIFIERS)
        if _rank(identifier_store, parts_only, query)[0] != f"d{2 * position}"
    ]
    assert len(lost) >= 3, lost


def test_a_named_identifier_does_not_match_a_shared_stem() -> None:
    """Its pieces match pieces of names, not words: "Buffering" does not meet "buffer"."""
    query = _terms(ENCODER, "What does X-Accel-Buffering do?")
    prose = ENCODER.encode_document("One contiguous buffer per request, like paged memory.")
    named = ENCODER.encode_document("Set X-Accel-Buffering: no on the route.")
    assert not query & set(prose.indices)
    assert query <= set(named.indices)


def test_plain_words_still_find_an_identifier() -> None:
    named = set(ENCODER.encode_document("Raise max_new_tokens for longer answers.").indices)
    assert _terms(ENCODER, "max new tokens") <= named
    assert _terms(ENCODER, "g5 2xlarge") <= set(ENCODER.encode_document("ml.g5.2xlarge").indices)
