"""The second evaluation set: numpy's docstrings and the questions labelled on them.

Checks the set itself, never a retriever: the question file loads as ``LabelledQuery`` lines,
has its kinds in their minimum numbers, and every label points at a document of
``build_corpus()`` that can answer it (a lexical question's backticked identifiers appear
verbatim in each relevant document, a filtered question's documents pass its filters).
"""

from __future__ import annotations

import re
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from llm_twin_sdk import Document
from llm_twin_sdk.rag.evaluation import LabelledQuery, QueryKind, load_queries

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from evalsets.numpy_docs import NUMPY_VERSION, QUERIES, build_corpus

MIN_PER_KIND: dict[QueryKind, int] = {"paraphrase": 40, "lexical": 25, "filtered": 15, "multi": 20}
IDENTIFIER = re.compile(r"`([^`]+)`")


@pytest.fixture(scope="module")
def corpus() -> dict[str, Document]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # another numpy warns; its ids must still be there
        return {d.id: d for d in build_corpus()}


@pytest.fixture(scope="module")
def queries() -> list[LabelledQuery]:
    return load_queries(QUERIES)


def test_the_questions_are_many_distinct_and_of_every_kind(queries: list[LabelledQuery]) -> None:
    assert len(queries) >= 100
    texts = [q.query.strip().lower() for q in queries]
    assert len(set(texts)) == len(texts), "a question is repeated"
    kinds = Counter(q.kind for q in queries)
    for kind, least in MIN_PER_KIND.items():
        assert kinds[kind] >= least, f"{kind}: {kinds[kind]} questions, fewer than {least}"
    assert set(kinds) == set(MIN_PER_KIND)


def test_every_relevant_id_is_a_corpus_document(
    queries: list[LabelledQuery], corpus: dict[str, Document]
) -> None:
    missing = {(q.query, r) for q in queries for r in q.relevant if r not in corpus}
    assert not missing


def test_a_lexical_question_names_identifiers_found_verbatim_in_its_documents(
    queries: list[LabelledQuery], corpus: dict[str, Document]
) -> None:
    lexical = [q for q in queries if q.kind == "lexical"]
    for q in lexical:
        names = IDENTIFIER.findall(q.query)
        assert names, f"lexical question without a `backticked` identifier: {q.query!r}"
        for doc_id in q.relevant:
            absent = [n for n in names if n not in corpus[doc_id].text]
            assert not absent, f"{absent} not in {doc_id} (question {q.query!r})"


def test_filters_are_on_filtered_questions_only_and_hold_for_their_documents(
    queries: list[LabelledQuery], corpus: dict[str, Document]
) -> None:
    for q in queries:
        assert (q.filters is not None) == (q.kind == "filtered"), q.query
        for field, allowed in (q.filters or {}).items():
            assert field in {"author", "platform", "kind"}, field
            for doc_id in q.relevant:
                value = getattr(corpus[doc_id].metadata, field)
                assert value in allowed, f"{doc_id}: {field}={value!r} not in {allowed}"


def test_a_multi_question_has_two_to_five_documents(queries: list[LabelledQuery]) -> None:
    for q in queries:
        if q.kind == "multi":
            assert 2 <= len(q.relevant) <= 5, q.query


def test_the_corpus_is_deterministic_and_without_duplicates(corpus: dict[str, Document]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, second = build_corpus(), build_corpus()
    assert first == second
    assert len({d.id for d in first}) == len(first)
    assert len({d.text for d in first}) == len(first)
    assert len(first) == len(corpus)


def test_the_documents_are_numpy_callables_with_their_metadata(
    corpus: dict[str, Document],
) -> None:
    platforms = Counter(d.metadata.platform for d in corpus.values())
    assert set(platforms) == {"numpy", "numpy.linalg", "numpy.fft", "numpy.random"}
    assert 400 <= len(corpus) <= 600
    for doc_id, doc in corpus.items():
        assert doc.metadata.title == doc_id
        assert doc.metadata.kind == "article"
        assert doc.text.startswith(doc_id)
        assert " at 0x" not in doc.text.partition("\n")[0]  # no address in a signature
        assert doc_id.startswith(doc.metadata.platform or "?")
    # an alias is kept once under its own name; scalar types and deprecated aliases are out
    kept = {"numpy.absolute", "numpy.vstack", "numpy.tensordot", "numpy.random.Generator.normal"}
    dropped = {"numpy.abs", "numpy.row_stack", "numpy.linalg.tensordot", "numpy.float64"}
    assert kept <= corpus.keys()
    assert not dropped & corpus.keys()
    assert corpus["numpy.linalg.lstsq"].text.startswith("numpy.linalg.lstsq(a, b, rcond=")


def test_the_labelled_numpy_version_builds_without_a_warning() -> None:
    if np.__version__ != NUMPY_VERSION:
        pytest.skip(f"numpy {np.__version__} installed, the set was labelled on {NUMPY_VERSION}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_corpus()


def test_another_numpy_version_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(np, "__version__", "0.0.1")
    with pytest.warns(UserWarning, match=f"labelled on numpy {re.escape(NUMPY_VERSION)}"):
        build_corpus()
