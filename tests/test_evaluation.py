"""Retrieval evaluation: metrics, the labelled query set, and a real pipeline's scores."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from llm_twin_sdk import Chunk, Document, Embedder, QdrantStore, RAGPipeline
from llm_twin_sdk.errors import InvalidDocumentError, InvalidParameterError
from llm_twin_sdk.rag.evaluation import (
    QUERY_KINDS,
    EvaluationReport,
    LabelledQuery,
    comparison_markdown,
    document_ranking,
    evaluate,
    load_queries,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "examples" / "data" / "queries.jsonl"


def chunk(document_id: str, position: int = 0) -> Chunk:
    return Chunk(
        id=f"{document_id}#{position}", document_id=document_id, position=position, text="."
    )


# -- metrics ----------------------------------------------------------------------------------


def test_recall_hand_computed() -> None:
    ranked = ["a", "b", "c", "d", "e", "f"]
    assert recall_at_k(ranked, {"c"}, 5) == 1.0
    assert recall_at_k(ranked, {"f"}, 5) == 0.0
    assert recall_at_k(ranked, ["a", "f"], 5) == 0.5
    assert recall_at_k(ranked, ["a", "f", "z"], 10) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, ["b"], 1) == 0.0


def test_recall_counts_repeated_ids_once() -> None:
    # "a" three times must not push "b" out of the top 2, nor count as three hits.
    assert recall_at_k(["a", "a", "a", "b"], {"b"}, 2) == 1.0
    assert recall_at_k(["a", "a", "b"], {"a", "b"}, 1) == 0.5


def test_recall_k_larger_than_list_and_empty_ranking() -> None:
    assert recall_at_k(["a", "b"], {"b"}, 100) == 1.0
    assert recall_at_k([], {"b"}, 5) == 0.0


def test_reciprocal_rank_hand_computed() -> None:
    assert reciprocal_rank(["a", "b", "c"], {"a"}) == 1.0
    assert reciprocal_rank(["a", "b", "c", "d"], {"d", "c"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a", "b"], {"z"}) == 0.0
    assert reciprocal_rank([], {"z"}) == 0.0
    # Duplicates collapse before ranking: "c" is the 2nd distinct document.
    assert reciprocal_rank(["a", "a", "a", "c"], {"c"}) == 0.5


def test_mrr_example_from_the_corpus_article() -> None:
    # maya-article-rag-eval-recall-mrr: first hits at rank 1, rank 4 and nowhere -> 0.417.
    rrs = [
        reciprocal_rank(["x", "b"], {"x"}),
        reciprocal_rank(["a", "b", "c", "x"], {"x"}),
        reciprocal_rank(["a", "b"], {"x"}),
    ]
    assert sum(rrs) / 3 == pytest.approx(0.4167, abs=1e-4)


@pytest.mark.parametrize("relevant", [set(), [], ()])
def test_metrics_reject_empty_relevant(relevant: set[str] | list[str] | tuple[str, ...]) -> None:
    with pytest.raises(InvalidParameterError, match="relevant is empty"):
        recall_at_k(["a"], relevant, 5)
    with pytest.raises(InvalidParameterError, match="relevant is empty"):
        reciprocal_rank(["a"], relevant)


def test_metrics_reject_bad_k_and_str_relevant() -> None:
    for k in (0, -1, True):
        with pytest.raises(InvalidParameterError, match="k must be"):
            recall_at_k(["a"], {"a"}, k)
    with pytest.raises(InvalidParameterError, match="not a str"):
        recall_at_k(["abc"], "abc", 5)


def test_document_ranking_dedupes_in_rank_order() -> None:
    chunks = [chunk("b", 1), chunk("a", 0), chunk("b", 0), chunk("c", 2), chunk("a", 3)]
    assert document_ranking(chunks) == ["b", "a", "c"]


# -- LabelledQuery and load_queries -------------------------------------------------------------


def test_labelled_query_validation() -> None:
    q = LabelledQuery(query="q", relevant=["a", "b"], kind="lexical")
    assert q.relevant == ("a", "b")
    bad: list[dict[str, object]] = [
        {"query": " ", "relevant": ["a"], "kind": "lexical"},
        {"query": "q", "relevant": [], "kind": "lexical"},
        {"query": "q", "relevant": ["a", "a"], "kind": "lexical"},
        {"query": "q", "relevant": ["a"], "kind": "semantic"},
        {"query": "q", "relevant": ["a"], "kind": "lexical", "extra": 1},
    ]
    for data in bad:
        with pytest.raises(InvalidParameterError):
            LabelledQuery.model_validate(data)


def test_load_queries_reports_the_bad_line(tmp_path: Path) -> None:
    good = json.dumps({"query": "q", "relevant": ["a"], "kind": "author"})
    cases = {
        "not json": "invalid JSON",
        "[" * 100_000: "nested too deeply",
        "[1, 2]": "expected a JSON object",
        json.dumps({"query": "q", "relevant": ["a"], "kind": "nope"}): "kind",
        json.dumps({"query": "q", "kind": "author"}): "relevant",
    }
    for bad, message in cases.items():
        path = tmp_path / "queries.jsonl"
        path.write_text(f"{good}\n\n{bad}\n", encoding="utf-8")
        with pytest.raises(InvalidDocumentError, match=rf"queries\.jsonl:3: .*{message}"):
            load_queries(path)


def test_load_queries_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_queries(tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(InvalidParameterError, match="no queries"):
        load_queries(empty)


# -- the labelled query set ---------------------------------------------------------------------


def test_query_set_is_valid(corpus: list[Document]) -> None:
    queries = load_queries(QUERIES)
    ids = {doc.id for doc in corpus}
    assert len(queries) >= 30
    assert len({q.query for q in queries}) == len(queries), "duplicate questions"
    for q in queries:
        unknown = set(q.relevant) - ids
        assert not unknown, f"{q.query!r} names unknown documents {unknown}"
    kinds = {q.kind for q in queries}
    sample_kinds = {"paraphrase", "lexical", "author"}  # filtered, multi: the numpy-docs set
    assert kinds == sample_kinds
    assert sample_kinds <= set(QUERY_KINDS)
    assert all(sum(q.kind == kind for q in queries) >= 6 for kind in sample_kinds)
    # Every document answers at least one question.
    assert {doc_id for q in queries for doc_id in q.relevant} == ids


def test_lexical_queries_name_a_string_of_their_documents(corpus: list[Document]) -> None:
    """Each lexical query's identifier appears in each relevant document, verbatim."""
    texts = {doc.id: doc.text for doc in corpus}
    for q in load_queries(QUERIES):
        if q.kind != "lexical":
            continue
        for doc_id in q.relevant:
            first = q.query.split()[0].strip("()").split("(")[0]
            assert first in texts[doc_id], f"{first!r} not in {doc_id}"


# -- evaluate -----------------------------------------------------------------------------------


def test_evaluate_with_a_scripted_retriever() -> None:
    queries = [
        LabelledQuery(query="one", relevant=("a",), kind="lexical"),
        LabelledQuery(query="two", relevant=("c", "z"), kind="paraphrase"),
    ]
    rankings = {
        # "a" at distinct rank 1 (its two chunks count once).
        "one": [chunk("a", 0), chunk("a", 1), chunk("b")],
        # "c" at distinct rank 6: outside top 5, inside top 10; "z" never found.
        "two": [chunk(d) for d in ["b", "d", "e", "f", "g", "c", "h"]],
    }
    asked: list[tuple[str, int]] = []

    def retrieve(query: str, n: int) -> list[Chunk]:
        asked.append((query, n))
        return rankings[query]

    report = evaluate(retrieve, queries, k_values=(10, 5, 5))
    assert report.k_values == (5, 10)
    assert asked == [("one", 10), ("two", 10)]  # what a caller asking for 10 sources gets
    assert report.results[0].ranked == ("a", "b")
    assert report.by_kind["lexical"].recall == {5: 1.0, 10: 1.0}
    assert report.by_kind["paraphrase"].recall == {5: 0.0, 10: 0.5}
    assert report.by_kind["paraphrase"].mrr == pytest.approx(1 / 6)
    assert list(report.by_kind) == ["paraphrase", "lexical"]
    assert report.overall.queries == 2
    assert report.overall.recall == {5: 0.5, 10: 0.75}
    assert report.overall.mrr == pytest.approx((1 + 1 / 6) / 2)
    assert [r.query.query for r in report.misses(5)] == ["two"]

    # nDCG@10: "a" at 1 -> 1; "c" at 6 of {c, z} -> (1 / log2 7) / (1 + 1 / log2 3) = 0.218.
    assert report.by_kind["lexical"].ndcg == 1.0
    assert report.by_kind["paraphrase"].ndcg == pytest.approx(0.21841, abs=1e-5)

    table = report.to_markdown()
    assert "| Queries | n | recall@5 | recall@10 | MRR@10 | nDCG@10 |" in table
    assert "| **overall** | 2 | 0.500 | 0.750 | 0.583 | 0.609 |" in table
    assert "| paraphrase | 1 | 0.000 | 0.500 | 0.167 | 0.218 |" in table

    comparison = comparison_markdown({"scripted": report})
    assert "| scripted | 0.500 | 0.750 | 0.583 | 0.609 | 0.000 | 1.000 |" in comparison

    evaluate(retrieve, queries, chunks_per_query=7)
    assert asked[-1] == ("two", 7)


def test_mrr_and_ndcg_are_cut_at_the_largest_k() -> None:
    far = [chunk(d) for d in "bcdefghijkl"] + [chunk("a")]  # "a" 12th
    report = evaluate(
        lambda query, n: far, [LabelledQuery(query="q", relevant=("a",), kind="paraphrase")]
    )
    assert report.overall.mrr == 0.0
    assert report.overall.ndcg == 0.0
    assert reciprocal_rank([c.document_id for c in far], {"a"}) == pytest.approx(1 / 12)


def test_ndcg_hand_computed() -> None:
    assert ndcg_at_k(["a", "b"], {"a", "b"}, 10) == 1.0
    assert ndcg_at_k(["b", "a"], {"a"}, 10) == pytest.approx(1 / math.log2(3))
    # Two relevant, one found at rank 1: 1 / (1 + 1 / log2 3).
    assert ndcg_at_k(["a", "x"], {"a", "z"}, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # k smaller than the relevant set: the ideal has k hits.
    assert ndcg_at_k(["a", "x"], {"a", "y", "z"}, 1) == 1.0
    assert ndcg_at_k(["a", "a", "b"], {"b"}, 2) == pytest.approx(1 / math.log2(3))  # repeats once
    assert ndcg_at_k([], {"a"}, 5) == 0.0


def test_filtered_queries_are_searched_with_their_filters() -> None:
    seen: list[object] = []

    def retrieve(
        query: str, k: int, /, *, filters: Mapping[str, Sequence[str]] | None = None
    ) -> list[Chunk]:
        seen.append(filters)
        return [chunk("a")]

    queries = [
        LabelledQuery(query="q", relevant=("a",), kind="paraphrase"),
        LabelledQuery(
            query="r", relevant=("a",), kind="filtered", filters={"platform": ["numpy.fft"]}
        ),
    ]
    report = evaluate(retrieve, queries)
    assert seen == [None, {"platform": ("numpy.fft",)}]
    assert list(report.by_kind) == ["paraphrase", "filtered"]


def test_evaluate_rejects_bad_arguments() -> None:
    q = [LabelledQuery(query="q", relevant=("a",), kind="author")]

    def retrieve(query: str, n: int) -> list[Chunk]:
        return []

    with pytest.raises(InvalidParameterError, match="no queries"):
        evaluate(retrieve, [])
    with pytest.raises(InvalidParameterError, match="k_values"):
        evaluate(retrieve, q, k_values=())
    with pytest.raises(InvalidParameterError, match="k must be"):
        evaluate(retrieve, q, k_values=(5, 0))
    with pytest.raises(InvalidParameterError, match="k must be"):
        evaluate(retrieve, q, chunks_per_query=0)
    with pytest.raises(InvalidParameterError, match="LabelledQuery"):
        evaluate(retrieve, [{"query": "q"}])  # type: ignore[list-item]
    asked: list[str] = []

    def counting(query: str, n: int) -> list[Chunk]:
        asked.append(query)
        return []

    with pytest.raises(InvalidParameterError, match="LabelledQuery"):
        evaluate(counting, [*q, {"query": "q"}])  # type: ignore[list-item]
    assert asked == []  # every query is checked before the first retrieval
    # Nothing retrieved: zero scores, not an error.
    assert evaluate(retrieve, q).overall.mrr == 0.0


@pytest.fixture(scope="module")
def dense_rag(embedder: Embedder, corpus: list[Document]) -> Iterator[RAGPipeline]:
    store = QdrantStore.memory("evaluation")
    rag = RAGPipeline(embedder, store, search="dense")
    rag.ingest(corpus)
    yield rag
    rag.close()
    store.close()


@pytest.fixture(scope="module")
def dense_report(dense_rag: RAGPipeline) -> EvaluationReport:
    return evaluate(dense_rag.retrieve, load_queries(QUERIES))


def test_dense_pipeline_scores(dense_report: EvaluationReport) -> None:
    # Measured (dense): recall@5 0.94, recall@10 0.94, MRR 0.82. A random ranking of 24 documents
    # scores about 0.21 / 0.42 / 0.15; the floors catch a broken pipeline, not a small drift.
    overall = dense_report.overall
    assert overall.queries == 36
    assert overall.recall[5] >= 0.7
    assert overall.recall[10] >= 0.8
    assert overall.mrr >= 0.6
    for scores in dense_report.by_kind.values():
        assert scores.recall[10] >= 0.6, scores


def test_a_broken_ranking_fails_the_floors(dense_rag: RAGPipeline) -> None:
    """The same retriever with its ranking reversed scores far below the floors above."""

    def reversed_retrieve(query: str, n: int) -> list[Chunk]:
        return dense_rag.retrieve(query, 200)[::-1][:n]

    report = evaluate(reversed_retrieve, load_queries(QUERIES))
    assert report.overall.recall[10] < 0.5
    assert report.overall.mrr < 0.4
