"""Retrieval quality: recall@k, MRR and nDCG@k of a retriever over a labelled query set.

Retrieved chunks count as their documents, in rank order (a document once, at its best
chunk); MRR and nDCG are cut at the largest ``k`` (MRR@10, nDCG@10 by default), relevance
is binary. Example::

    report = evaluate(rag.retrieve, load_queries("examples/data/queries.jsonl"))
    print(report.to_markdown())                   # recall@5, recall@10, MRR@10, nDCG@10
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeAlias, cast, get_args

from pydantic import Field, field_validator

from ..display import Shown, html_block, table
from ..errors import InvalidDocumentError, InvalidInputError, InvalidParameterError
from ..types import Chunk, _Model, not_blank
from ..validation import check_k
from .sources import read_jsonl

__all__ = [
    "QUERY_KINDS",
    "EvaluationReport",
    "FilteredRetrieve",
    "LabelledQuery",
    "QueryKind",
    "QueryResult",
    "Retrieve",
    "Scores",
    "comparison_markdown",
    "document_ranking",
    "evaluate",
    "load_queries",
    "ndcg_at_k",
    "recall_at_k",
    "reciprocal_rank",
]

QueryKind: TypeAlias = Literal["paraphrase", "lexical", "author", "filtered", "multi"]
QUERY_KINDS: tuple[QueryKind, ...] = get_args(QueryKind)
"""paraphrase: natural wording; lexical: names an exact identifier; author: names a person
or platform; filtered: searched with metadata ``filters``; multi: answered by several
documents together."""


class FilteredRetrieve(Protocol):
    """A retriever that also takes metadata filters, such as ``rag.retrieve``."""

    def __call__(
        self, query: str, k: int, /, *, filters: Mapping[str, Sequence[str]] | None = ...
    ) -> list[Chunk]: ...


Retrieve: TypeAlias = Callable[[str, int], list[Chunk]] | FilteredRetrieve
"""A retriever: ``(query, n) -> chunks, best first``; one that takes ``filters=`` too
(:class:`FilteredRetrieve`, e.g. ``rag.retrieve``) is needed for queries with filters."""


OVERALL = "overall"


class LabelledQuery(_Model):
    """A question and the ids of the documents that answer it."""

    query: Annotated[str, Field(min_length=1), not_blank("query must not be blank")]
    relevant: tuple[str, ...] = Field(min_length=1, description="Ids of answering documents.")
    kind: QueryKind
    filters: dict[str, tuple[str, ...]] | None = Field(
        None, description="Metadata filters the query is searched with (as in retrieve)."
    )

    @field_validator("relevant")
    @classmethod
    def _relevant_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not item.strip() for item in value):
            raise ValueError("relevant document ids must not be blank")
        if len(set(value)) != len(value):
            raise ValueError("relevant document ids must not repeat")
        return value


def document_ranking(chunks: Iterable[Chunk]) -> list[str]:
    """Document ids of ``chunks`` in rank order, each kept once (at its first chunk)."""
    return list(dict.fromkeys(c.document_id for c in chunks))


def _relevant_set(relevant: Iterable[str]) -> set[str]:
    if isinstance(relevant, str):
        raise InvalidParameterError("relevant must be a collection of document ids, not a str")
    wanted = set(relevant)
    if not wanted:
        raise InvalidParameterError(
            "relevant is empty: a metric needs at least one relevant document id"
        )
    return wanted


def recall_at_k(ranked_doc_ids: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Fraction of ``relevant`` documents among the first ``k`` distinct ranked ids (a repeated
    id counts once, at its first position); ``InvalidParameterError`` if ``relevant`` is empty
    or ``k`` is not a positive integer."""
    wanted = _relevant_set(relevant)
    top = list(dict.fromkeys(ranked_doc_ids))[: check_k(k)]
    return sum(1 for doc_id in top if doc_id in wanted) / len(wanted)


def reciprocal_rank(
    ranked_doc_ids: Sequence[str], relevant: Iterable[str], k: int | None = None
) -> float:
    """1 / rank of the first relevant id among the distinct ranked ids (the first ``k`` of
    them, if given); 0.0 if none."""
    wanted = _relevant_set(relevant)
    top = list(dict.fromkeys(ranked_doc_ids))
    for rank, doc_id in enumerate(top if k is None else top[: check_k(k)], start=1):
        if doc_id in wanted:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked_doc_ids: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Normalised discounted cumulative gain of the first ``k`` distinct ranked ids, with
    binary relevance: ``sum(1 / log2(rank + 1))`` over the relevant ones, divided by the same
    sum for an ideal ranking (every relevant id first)."""
    wanted = _relevant_set(relevant)
    top = list(dict.fromkeys(ranked_doc_ids))[: check_k(k)]
    gain = sum(1 / math.log2(rank + 1) for rank, d in enumerate(top, start=1) if d in wanted)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
    return gain / ideal


def load_queries(path: str | Path) -> list[LabelledQuery]:
    """Labelled queries from a JSONL file (one object per line; blank lines skipped). A missing
    or empty file raises ``InvalidParameterError``; a malformed line ``InvalidDocumentError``
    naming the file and line."""
    queries: list[LabelledQuery] = []
    for where, data in read_jsonl(path, "query file"):
        try:
            queries.append(LabelledQuery.model_validate(data))
        except InvalidInputError as exc:
            raise InvalidDocumentError(f"{where}: {exc}") from exc
    if not queries:
        raise InvalidParameterError(f"query file {str(path)!r} contains no queries")
    return queries


class QueryResult(_Model):
    """How one query fared."""

    query: LabelledQuery
    ranked: tuple[str, ...] = Field(description="Distinct document ids retrieved, best first.")
    recall: dict[int, float] = Field(description="recall@k for each k.")
    reciprocal_rank: float = Field(ge=0, le=1, description="Cut at the largest k.")
    ndcg: float = Field(ge=0, le=1, description="nDCG at the largest k.")


class Scores(_Model):
    """Mean metrics over a group of queries (one kind, or all of them)."""

    group: str = Field(description="A query kind, or 'overall'.")
    queries: int = Field(gt=0)
    recall: dict[int, float] = Field(description="Mean recall@k for each k.")
    mrr: float = Field(ge=0, le=1, description="Mean reciprocal rank, cut at the largest k.")
    ndcg: float = Field(ge=0, le=1, description="Mean nDCG at the largest k.")


class EvaluationReport(_Model):
    """Per-query results and mean scores per query kind and overall."""

    k_values: tuple[int, ...]
    chunks_per_query: int = Field(gt=0, description="Chunks asked of the retriever.")
    results: tuple[QueryResult, ...]
    by_kind: dict[str, Scores] = Field(description="Kinds present, in QUERY_KINDS order.")
    overall: Scores

    @property
    def groups(self) -> list[Scores]:
        """Every kind's scores, then the overall scores."""
        return [*self.by_kind.values(), self.overall]

    def misses(self, k: int) -> list[QueryResult]:
        """Queries with no relevant document in the top ``k``."""
        return [r for r in self.results if recall_at_k(r.ranked, r.query.relevant, k) == 0]

    def to_markdown(self) -> str:
        """A markdown table: one row per query kind and one overall row."""
        header = ["Queries", "n", *_metric_names(self.k_values)]
        lines = [_row(header), _row(["---", *("---:" for _ in header[1:])])]
        for scores in self.groups:
            name = f"**{scores.group}**" if scores.group == OVERALL else scores.group
            lines.append(_row([name, str(scores.queries), *_figures(scores, self.k_values)]))
        return "\n".join(lines)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat row per query, in the order evaluated: ``kind, query, recall@k`` (each
        ``k``), ``mrr``, ``ndcg``: ``pandas.DataFrame(report.to_records())``."""
        return [
            {
                "kind": r.query.kind,
                "query": r.query.query,
                **{f"recall@{k}": r.recall[k] for k in self.k_values},
                "mrr": r.reciprocal_rank,
                "ndcg": r.ndcg,
            }
            for r in self.results
        ]

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The overall scores, not every query's result.
        yield "queries", self.overall.queries
        yield "kinds", Shown(f"[{', '.join(self.by_kind)}]")
        names = _metric_names(self.k_values)
        for name, value in zip(names, _figures(self.overall, self.k_values), strict=True):
            yield name, Shown(value)

    def _repr_html_(self) -> str:
        """The report in Jupyter: :meth:`to_markdown`'s table, per kind and overall."""
        header = ["queries", "n", *_metric_names(self.k_values)]
        rows = [[s.group, s.queries, *_figures(s, self.k_values)] for s in self.groups]
        return html_block(
            "Retrieval evaluation",
            table(header, rows),
            fields={"chunks per query": self.chunks_per_query},
        )


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _metric_names(k_values: Sequence[int]) -> list[str]:
    top = max(k_values)
    return [*(f"recall@{k}" for k in k_values), f"MRR@{top}", f"nDCG@{top}"]


def _figures(scores: Scores, k_values: Sequence[int]) -> list[str]:
    return [
        *(f"{scores.recall[k]:.3f}" for k in k_values),
        f"{scores.mrr:.3f}",
        f"{scores.ndcg:.3f}",
    ]


def comparison_markdown(reports: dict[str, EvaluationReport]) -> str:
    """One markdown table comparing named reports: overall scores, then recall@k per kind
    (``k``: the smallest of the first report's)."""
    if not reports:
        raise InvalidParameterError("no reports to compare")
    first = next(iter(reports.values()))
    k_values, small_k = first.k_values, min(first.k_values)
    kinds = [kind for kind in QUERY_KINDS if kind in first.by_kind]
    header = [
        "Configuration",
        *_metric_names(k_values),
        *(f"{kind} r@{small_k}" for kind in kinds),
    ]
    lines = [_row(header), _row(["---", *("---:" for _ in header[1:])])]
    for name, report in reports.items():
        if report.k_values != k_values:
            raise InvalidParameterError(
                f"report {name!r} uses k={report.k_values}, the first uses k={k_values}"
            )
        per_kind = [
            f"{report.by_kind[kind].recall[small_k]:.3f}" if kind in report.by_kind else "-"
            for kind in kinds
        ]
        lines.append(_row([name, *_figures(report.overall, k_values), *per_kind]))
    return "\n".join(lines)


def _mean_scores(group: str, results: Sequence[QueryResult], k_values: Sequence[int]) -> Scores:
    n = len(results)
    return Scores(
        group=group,
        queries=n,
        recall={k: sum(r.recall[k] for r in results) / n for k in k_values},
        mrr=sum(r.reciprocal_rank for r in results) / n,
        ndcg=sum(r.ndcg for r in results) / n,
    )


def evaluate(
    retrieve: Retrieve,
    queries: Iterable[LabelledQuery],
    *,
    k_values: Sequence[int] = (5, 10),
    chunks_per_query: int | None = None,
) -> EvaluationReport:
    """Run every query through ``retrieve`` (``(query, n) -> chunks``, best first, such as
    ``RAGPipeline.retrieve``; a query with ``filters`` is searched with them) and score the
    document ranking at each of ``k_values``.

    ``chunks_per_query`` results are asked of ``retrieve`` (default ``max(k_values)``: what
    a caller asking for that many sources gets; a chunk-level retriever whose chunks share
    documents then yields fewer distinct documents). Errors raised by ``retrieve`` propagate
    unchanged.
    """
    items = list(queries)
    if not items:
        raise InvalidParameterError("no queries to evaluate")
    if wrong := [type(item).__name__ for item in items if not isinstance(item, LabelledQuery)]:
        raise InvalidParameterError(f"queries must be LabelledQuery objects, got {wrong[0]}")
    if isinstance(k_values, (int, str)) or not k_values:
        raise InvalidParameterError(f"k_values must be a non-empty sequence, got {k_values!r}")
    ks = tuple(sorted({check_k(k) for k in k_values}))
    n_chunks = ks[-1] if chunks_per_query is None else check_k(chunks_per_query)

    results: list[QueryResult] = []
    for item in items:
        found = (
            retrieve(item.query, n_chunks)
            if item.filters is None
            else cast(FilteredRetrieve, retrieve)(item.query, n_chunks, filters=item.filters)
        )
        ranked = document_ranking(found)
        results.append(
            QueryResult(
                query=item,
                ranked=tuple(ranked),
                recall={k: recall_at_k(ranked, item.relevant, k) for k in ks},
                reciprocal_rank=reciprocal_rank(ranked, item.relevant, ks[-1]),
                ndcg=ndcg_at_k(ranked, item.relevant, ks[-1]),
            )
        )

    by_kind = {
        kind: _mean_scores(kind, group, ks)
        for kind in QUERY_KINDS
        if (group := [r for r in results if r.query.kind == kind])
    }
    return EvaluationReport(
        k_values=ks,
        chunks_per_query=n_chunks,
        results=tuple(results),
        by_kind=by_kind,
        overall=_mean_scores(OVERALL, results, ks),
    )
