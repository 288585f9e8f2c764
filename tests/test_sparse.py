from __future__ import annotations

import subprocess
import sys

import pytest

from llm_twin_sdk import ConfigurationError
from llm_twin_sdk.rag.sparse import LexicalEncoder, SparseVector, term_index, tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Set X-Accel-Buffering: no", ["set", "x-accel-buffering", "x", "accel", "buffering"]),
        ("max_new_tokens", ["max_new_tokens"]),
        ("ef_construct=200", ["ef_construct=200", "ef_construct", "200"]),
        ("beta=0.1", ["beta=0.1", "beta", "0", "1"]),
        ("on ml.g5.2xlarge.", ["ml.g5.2xlarge", "ml", "g5", "2xlarge"]),
        ("--max-num-seqs 64", ["--max-num-seqs", "max", "num", "seqs", "64"]),
        ("-v", ["-v"]),
        ("NoCapacityInvocationFailures!", ["nocapacityinvocationfailures"]),
        ("The cost of the endpoint", ["cost", "endpoint"]),
        ("", []),
        ("  ... !!! ", []),
    ],
)
def test_tokenize_keeps_technical_names_whole(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_term_index_is_stable_across_processes() -> None:
    terms = ["x-accel-buffering", "ef_construct=200", "ml.g5.2xlarge", "é"]
    code = (
        "from llm_twin_sdk.rag.sparse import term_index\n"
        f"print(','.join(str(term_index(t)) for t in {terms!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout.strip()
    assert out == ",".join(str(term_index(t)) for t in terms)
    assert term_index("x-accel-buffering") == 3796249987  # pinned: stored vectors rely on it
    assert all(0 <= term_index(t) < 2**32 for t in terms)


def test_document_weights_saturate_with_term_frequency() -> None:
    encoder = LexicalEncoder(k1=1.2, b=0.0)
    index = term_index("qdrant")
    weights = [
        encoder.encode_document(" ".join(["qdrant"] * n)).as_dict()[index] for n in (1, 2, 4, 50)
    ]
    assert weights == sorted(weights)
    assert weights[0] == pytest.approx(1.0)  # tf=1, no length normalisation
    assert weights[1] - weights[0] > weights[2] - weights[1] > 0
    assert weights[-1] < encoder.k1 + 1


def test_longer_documents_weigh_a_term_less() -> None:
    encoder = LexicalEncoder(avg_length=10)
    index = term_index("qdrant")
    short = encoder.encode_document("qdrant collection").as_dict()[index]
    long = encoder.encode_document("qdrant " + " ".join(f"word{i}" for i in range(40)))
    assert long.as_dict()[index] < short
    assert LexicalEncoder(b=0).encode_document("qdrant words words").as_dict()[index] == (
        pytest.approx(1.0)
    )


def test_query_weights_are_one_per_distinct_term() -> None:
    query = LexicalEncoder().encode_query("beta=0.1 beta beta")
    assert set(query.indices) == {term_index(t) for t in ("beta=0.1", "beta", "0", "1")}
    assert set(query.values) == {1.0}
    assert list(query.indices) == sorted(query.indices)


def test_empty_text_gives_an_empty_vector() -> None:
    encoder = LexicalEncoder()
    assert encoder.encode_document("") == SparseVector((), ())
    assert len(encoder.encode_query("the of and")) == 0
    assert encoder.encode_documents([]) == []


def test_batch_matches_single() -> None:
    encoder = LexicalEncoder()
    texts = ["one ef_construct=200", "", "two --flag"]
    assert encoder.encode_documents(texts) == [encoder.encode_document(t) for t in texts]
    assert encoder.encode_queries(texts) == [encoder.encode_query(t) for t in texts]


@pytest.mark.parametrize("kwargs", [{"k1": 0}, {"b": -0.1}, {"b": 1.5}, {"avg_length": 0}])
def test_invalid_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        LexicalEncoder(**kwargs)


def test_sparse_vector_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="2 indices but 1 values"):
        SparseVector((1, 2), (1.0,))
