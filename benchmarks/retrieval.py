"""Retrieval latency of llm-twin-sdk on embedded Qdrant (local mode), at growing corpus sizes.

Run from the repository root::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/retrieval.py                  # 1k, 10k, 50k
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/retrieval.py --quick          # smoke run
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/retrieval.py --sizes 1000,10000

Measures, with the default hybrid search over the default three collections and no LLM:

1. ``rag.retrieve(question, k=5)`` latency (p50, p95, mean) at each size, split into the
   query embedding and the store search, plus the store alone by search mode;
2. the cost of query expansion at 10k chunks: one phrasing, three phrasings through the
   pipeline's batched path, and three phrasings searched one by one by hand.

The corpora are synthetic, built cheaply from the sample corpus: its real chunks are
embedded once with the real model, then cycled with distinct document ids; each copy's text
is the source chunk with its sentences shuffled and a few corpus words appended, and its
dense vector is the source embedding plus gaussian noise, re-normalised. Lexical vectors are
computed from the varied texts by the SDK's ``LexicalEncoder``.

The markdown report goes to stdout; progress goes to stderr. Every figure is from timed
calls after a warm-up; compared variants are interleaved per question.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import load_corpus, log, machine_lines, stage_clock

if TYPE_CHECKING:
    from llm_twin_sdk import Chunk, Embedder, QdrantStore, RAGPipeline
    from llm_twin_sdk.rag.query import QueryExpander
    from llm_twin_sdk.rag.store import SearchMode

os.environ.setdefault("HF_HUB_OFFLINE", "1")

K = 5
SEED = 1234
NOISE_SIGMA = 0.05
APPENDED_WORDS = 3
WRITE_SLICE = 2000
WARMUP_CALLS = 3
RRF_K = 60
EXPANSION_GOAL_RATIO = 1.5

# Each entry: a question, then two fixed paraphrases (the "expansion" without an LLM).
QUESTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "How should I set MAX_INPUT_TOKENS and MAX_TOTAL_TOKENS for TGI on SageMaker?",
        "What values of the TGI token limits avoid 422 validation errors?",
        "How do prompt length and max_new_tokens relate to TGI's total token limit?",
    ),
    (
        "How do I retry throttled LLM requests without a thundering herd?",
        "What backoff strategy with jitter should clients use after HTTP 429?",
        "How can many clients retry failed calls without all hitting the endpoint at once?",
    ),
    (
        "How can a SageMaker LLM endpoint scale down to zero instances when idle?",
        "Can an idle SageMaker inference endpoint run with no instances to save money?",
        "What autoscaling setup lets a SageMaker endpoint go to zero copies?",
    ),
    (
        "How do I run CI for a machine learning project without a GPU?",
        "Can the tests of an ML codebase pass on CPU-only CI runners?",
        "What should continuous integration check when no GPU is available?",
    ),
    (
        "How do I monitor prompts and LLM traces with Opik?",
        "What does Opik record about each prompt and completion?",
        "How can I track prompt versions and their outputs in production?",
    ),
    (
        "What is the maximum sequence length of all-MiniLM-L6-v2?",
        "How many tokens can the MiniLM sentence embedding model read before truncating?",
        "What are the dimension and the token limit of all-MiniLM-L6-v2 embeddings?",
    ),
    (
        "How should I track fine-tuning experiments instead of spreadsheets?",
        "Which tool records the hyperparameters and metrics of fine-tuning runs?",
        "Why are spreadsheets a bad place to log training runs?",
    ),
    (
        "How do I deploy an open LLM on SageMaker with the TGI container?",
        "What steps put a Hugging Face model behind a SageMaker TGI endpoint?",
        "Which instance type and environment variables does a TGI deployment need?",
    ),
    (
        "How do I build a feature pipeline that can be rerun safely?",
        "What makes a data ingestion pipeline idempotent?",
        "How can a crawling and cleaning pipeline run twice without duplicating documents?",
    ),
    (
        "How do I measure retrieval quality before tuning prompts?",
        "Which metrics like recall@k evaluate a RAG retriever?",
        "How should I build an evaluation set for retrieval?",
    ),
    (
        "Which 4-bit quantization format should I use: GPTQ, AWQ or GGUF?",
        "What are the trade-offs between 4-bit quantization formats for inference?",
        "Is GGUF or AWQ better for serving a quantized model?",
    ),
    (
        "How do I keep GPU endpoint costs under control?",
        "What causes surprising bills on GPU inference endpoints?",
        "Which budget alarms and scaling rules keep GPU spending predictable?",
    ),
    (
        "What is query expansion in RAG and when does it help?",
        "Why search several rephrasings of one question?",
        "How many generated query variants should a retriever fuse?",
    ),
    (
        "How does self-query extract metadata filters from a question?",
        "Can an LLM turn an author name in a question into a Qdrant filter?",
        "What is the self-query step of a retrieval pipeline?",
    ),
    (
        "How do I stream tokens to a browser with server-sent events?",
        "Why does nginx buffer my SSE stream and how does X-Accel-Buffering disable it?",
        "How can an LLM API push tokens over HTTP as they are generated?",
    ),
    (
        "Does the order of retrieved chunks in the prompt matter?",
        "Where should the most relevant context go in an LLM prompt?",
        "How does chunk ordering affect answers, lost in the middle?",
    ),
    (
        "How big should RAG chunks be and how much overlap do they need?",
        "What chunk size and overlap work for embedding documents?",
        "Why does chunking decide whether RAG succeeds?",
    ),
    (
        "How does hybrid search in Qdrant combine BM25 and dense vectors?",
        "What is reciprocal rank fusion of sparse and dense results?",
        "How do I set up sparse plus dense retrieval in Qdrant?",
    ),
    (
        "Why add a cross-encoder reranker after vector search?",
        "How much does a reranker improve the top results of retrieval?",
        "What does a cross-encoder score that a bi-encoder cannot?",
    ),
    (
        "How is the vector index of the twin built and updated?",
        "Which repository creates the Qdrant collections for the LLM twin?",
        "How are embeddings written to the vector database in twin-vector-index?",
    ),
    (
        "How do I fine-tune a model with QLoRA on a single GPU?",
        "What LoRA rank and learning rate does twin-qlora use?",
        "How does 4-bit QLoRA training reduce GPU memory?",
    ),
    (
        "How is DPO preference tuning done in twin-dpo?",
        "What data does direct preference optimization need?",
        "How do I align the twin with chosen and rejected answers?",
    ),
    (
        "How do I serve the model with vLLM?",
        "What settings like --max-num-seqs does twin-vllm-serve use?",
        "How does vLLM batch concurrent requests for throughput?",
    ),
    (
        "How do the twin crawlers collect posts and articles?",
        "Which sources do the crawlers scrape for the LLM twin?",
        "How are crawled documents cleaned and stored?",
    ),
    (
        "What HNSW settings like ef_construct should a Qdrant collection use?",
        "How do I tune Qdrant's HNSW index for recall and speed?",
        "Which Qdrant index parameters matter for retrieval latency?",
    ),
    (
        "How do I autoscale a SageMaker endpoint on invocations per instance?",
        "Which target tracking metric should drive SageMaker autoscaling?",
        "How fast does SageMaker add instances when traffic grows?",
    ),
    (
        "What timeout should an LLM client use for slow generations?",
        "How do I set connect and read timeouts for an inference endpoint?",
        "When should a request to an LLM give up and retry?",
    ),
    (
        "How do I choose between LoRA and full fine-tuning?",
        "When is a LoRA adapter good enough compared to training all weights?",
        "What are the costs of full fine-tuning versus LoRA?",
    ),
    (
        "How does a RAG pipeline answer a question from my own posts?",
        "What steps turn retrieved chunks into an LLM answer?",
        "How does retrieval-augmented generation use a vector store?",
    ),
    (
        "How do I avoid re-embedding unchanged documents when ingesting again?",
        "Can an ingestion job skip documents that did not change?",
        "How do content hashes avoid embedding the same text twice?",
    ),
)


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    latency_rounds: int  # passes over the questions per size (timed calls = rounds x questions)
    mode_rounds: int  # passes for the store-only dense / lexical / hybrid split
    expansion_size: int
    expansion_rounds: int
    questions: int


FULL = Settings(
    sizes=(1000, 10000, 50000),
    latency_rounds=4,
    mode_rounds=1,
    expansion_size=10000,
    expansion_rounds=2,
    questions=len(QUESTIONS),
)
QUICK = Settings(
    sizes=(1000, 10000),
    latency_rounds=1,
    mode_rounds=1,
    expansion_size=10000,
    expansion_rounds=1,
    questions=10,
)


# -- statistics ----------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mark(met: bool | None) -> str:
    return "-" if met is None else ("PASS" if met else "**FAIL**")


# -- synthetic corpus ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """The sample corpus' real chunks and their real embeddings."""

    chunks: list[Chunk]
    vectors: npt.NDArray[np.float32]
    vocabulary: list[str]
    embed_s: float


def load_base(embedder: Embedder) -> Base:
    from llm_twin_sdk import QdrantStore, RAGPipeline

    probe = RAGPipeline(embedder, QdrantStore.memory())
    try:
        chunks = probe.chunk(load_corpus())
    finally:
        probe.close()
        probe.store.close()  # the pipeline borrows its store
    started = time.perf_counter()
    vectors = embedder.encode([c.text for c in chunks])
    embed_s = time.perf_counter() - started
    words = {w for c in chunks for w in re.findall(r"[A-Za-z][A-Za-z0-9_-]{3,}", c.text)}
    return Base(chunks, vectors, sorted(words), embed_s)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def varied_text(text: str, copy: int, rng: random.Random, vocabulary: Sequence[str]) -> str:
    """Copy 0: the text as is; other copies: sentences shuffled, a few corpus words appended."""
    if copy == 0:
        return text
    sentences = _SENTENCE_END.split(text)
    rng.shuffle(sentences)
    return " ".join(sentences) + " " + " ".join(rng.choices(vocabulary, k=APPENDED_WORDS))


def noisy(vectors: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """``vectors`` plus gaussian noise (``NOISE_SIGMA`` per dimension), re-normalised."""
    out = vectors + rng.normal(0.0, NOISE_SIGMA, size=vectors.shape)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


@dataclass
class Build:
    size: int
    synth_s: float = 0.0
    lexical_s: float = 0.0
    write_s: float = 0.0
    reopen_s: float = 0.0
    folder_mib: float = 0.0
    per_collection: Counter[str] = field(default_factory=Counter)
    mean_cosine_to_source: float = 0.0

    @property
    def total_s(self) -> float:
        return self.synth_s + self.lexical_s + self.write_s


def build_store(store: QdrantStore, base: Base, size: int, seed: int) -> Build:
    """Write ``size`` synthetic chunks (whole copies of the base corpus, the last one cut)
    with ``write_documents``, in slices of about ``WRITE_SLICE`` chunks of whole documents."""
    from llm_twin_sdk import Chunk
    from llm_twin_sdk.rag.chunking import chunk_id
    from llm_twin_sdk.rag.sparse import LexicalEncoder

    encoder = LexicalEncoder()
    text_rng = random.Random(seed)
    vec_rng = np.random.default_rng(seed)
    per_copy = len(base.chunks)
    copies_per_slice = max(1, WRITE_SLICE // per_copy)
    build = Build(size)
    cosines: list[float] = []
    made = copy = 0
    while made < size:
        started = time.perf_counter()
        chunks: list[Chunk] = []
        sources: list[int] = []
        for _ in range(copies_per_slice):
            if made >= size:
                break
            take = min(per_copy, size - made)
            for j in range(take):
                src = base.chunks[j]
                document_id = f"{src.document_id}-syn{copy:05d}"
                chunks.append(
                    Chunk(
                        id=chunk_id(document_id, src.position),
                        document_id=document_id,
                        position=src.position,
                        text=varied_text(src.text, copy, text_rng, base.vocabulary),
                        metadata=src.metadata,
                    )
                )
                sources.append(j)
            made += take
            copy += 1
        source_vectors = base.vectors[sources]
        vectors = noisy(source_vectors, vec_rng)
        cosines.extend(np.sum(vectors * source_vectors, axis=1).tolist())
        texts = [c.text for c in chunks]
        lexical_at = time.perf_counter()
        sparse = encoder.encode_documents(texts)
        write_at = time.perf_counter()
        store.write_documents(chunks, vectors, sparse)
        done = time.perf_counter()
        build.synth_s += lexical_at - started
        build.lexical_s += write_at - lexical_at
        build.write_s += done - write_at
        build.per_collection.update(store.collection_for(c.metadata.kind) for c in chunks)
        log(f"build {size}: {made}/{size} chunks written")
    build.mean_cosine_to_source = statistics.fmean(cosines)
    return build


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1024**2


# -- 1. latency ----------------------------------------------------------------------------------


@dataclass
class Call:
    total: float
    encode: float
    search: float
    results: int


def timed_retrieve(rag: RAGPipeline, question: str, totals: dict[str, float]) -> Call:
    """One ``rag.retrieve`` with ``encode`` and ``search_many`` clocked (``stage_clock``)."""
    totals.clear()
    started = time.perf_counter()
    chunks = rag.retrieve(question, k=K)
    total = time.perf_counter() - started
    return Call(total, totals.get("encode", 0.0), totals.get("search_many", 0.0), len(chunks))


@dataclass
class Latency:
    size: int
    calls: list[Call]
    modes: dict[str, list[float]]
    build: Build


def bench_latency(
    rag: RAGPipeline, questions: Sequence[str], settings: Settings, build: Build
) -> Latency:
    from llm_twin_sdk.rag.store import QueryVectors

    log(f"latency {build.size}: warm-up")
    for question in questions[:WARMUP_CALLS]:
        rag.retrieve(question, k=K)
    totals: dict[str, float] = {}
    calls: list[Call] = []
    with (
        stage_clock(rag.embedder, ["encode"], totals),
        stage_clock(rag.store, ["search_many"], totals),
    ):
        for r in range(settings.latency_rounds):
            log(f"latency {build.size}: round {r + 1}/{settings.latency_rounds}")
            order = questions if r % 2 == 0 else list(reversed(questions))
            calls.extend(timed_retrieve(rag, q, totals) for q in order)

    # The store alone, by search mode, on precomputed query vectors.
    dense = rag.embedder.encode(list(questions))
    vectors = [
        QueryVectors(dense=dense[i], sparse=rag.lexical_encoder.encode_query(q))
        for i, q in enumerate(questions)
    ]
    names: list[SearchMode] = ["dense", "lexical", "hybrid"]
    modes: dict[str, list[float]] = {mode: [] for mode in names}
    for r in range(settings.mode_rounds):
        log(f"store by mode {build.size}: round {r + 1}/{settings.mode_rounds}")
        for i, qv in enumerate(vectors):
            for mode in names if (i + r) % 2 == 0 else reversed(names):
                started = time.perf_counter()
                rag.store.search_many([qv], K, mode=mode)
                modes[mode].append(time.perf_counter() - started)
    return Latency(build.size, calls, modes, build)


# -- 2. expansion --------------------------------------------------------------------------------


def fixed_expander(paraphrases: dict[str, tuple[str, str]]) -> QueryExpander:
    from llm_twin_sdk.rag.query import QueryExpander

    class FixedExpander(QueryExpander):
        """The question and two pre-written paraphrases: expansion without the LLM call."""

        def __init__(self) -> None:
            super().__init__(None, n=1)

        def expand(self, question: str) -> list[str]:
            return [question, *paraphrases[question]]

    return FixedExpander()


def naive_rrf(lists: Sequence[Sequence[Chunk]], k: int) -> list[Chunk]:
    """Reciprocal rank fusion by chunk id, as written by hand."""
    scores: dict[str, float] = {}
    first: dict[str, Chunk] = {}
    for results in lists:
        for rank, chunk in enumerate(results):
            scores[chunk.id] = scores.get(chunk.id, 0.0) + 1.0 / (RRF_K + rank + 1)
            first.setdefault(chunk.id, chunk)
    best = sorted(scores, key=lambda cid: scores[cid], reverse=True)[:k]
    return [first[cid] for cid in best]


@dataclass
class Expansion:
    size: int
    seconds: dict[str, list[float]]
    overlaps: list[float]
    encode_b: list[float]
    encode_c: list[float]
    rounds: int


def bench_expansion(
    embedder: Embedder, store: QdrantStore, entries: Sequence[tuple[str, str, str]], rounds: int
) -> Expansion:
    from llm_twin_sdk import RAGPipeline

    paraphrases = {q: (p1, p2) for q, p1, p2 in entries}
    single = RAGPipeline(embedder, store)
    expanded = RAGPipeline(embedder, store, expander=fixed_expander(paraphrases))
    lexical = single.lexical_encoder
    totals: dict[str, float] = {}

    def run_a(q: str) -> list[Chunk]:
        return single.retrieve(q, k=K)

    def run_b(q: str) -> list[Chunk]:
        return expanded.retrieve(q, k=K)

    def run_c(q: str) -> list[Chunk]:
        lists = []
        for phrasing in (q, *paraphrases[q]):
            vector = embedder.encode([phrasing])[0]
            lists.append(
                store.search(vector, K, sparse=lexical.encode_query(phrasing), mode="hybrid")
            )
        return naive_rrf(lists, K)

    runners: dict[str, Callable[[str], list[Chunk]]] = {"a": run_a, "b": run_b, "c": run_c}
    log(f"expansion {store.count()}: warm-up")
    for q, _, _ in entries[:WARMUP_CALLS]:
        for run in runners.values():
            run(q)
    seconds: dict[str, list[float]] = {key: [] for key in runners}
    encode: dict[str, list[float]] = {"b": [], "c": []}
    overlaps: list[float] = []
    keys = list(runners)
    with stage_clock(embedder, ["encode"], totals):
        for r in range(rounds):
            log(f"expansion: round {r + 1}/{rounds}")
            for i, (q, _, _) in enumerate(entries):
                ids: dict[str, set[str]] = {}
                order = keys if (i + r) % 2 == 0 else list(reversed(keys))
                for key in order:
                    totals.clear()
                    started = time.perf_counter()
                    chunks = runners[key](q)
                    seconds[key].append(time.perf_counter() - started)
                    if key in encode:
                        encode[key].append(totals.get("encode", 0.0))
                    ids[key] = {c.id for c in chunks}
                overlaps.append(len(ids["b"] & ids["c"]) / K)
    return Expansion(store.count(), seconds, overlaps, encode["b"], encode["c"], rounds)


# -- report --------------------------------------------------------------------------------------


def render(
    latencies: list[Latency],
    expansion: Expansion | None,
    *,
    base: Base,
    settings: Settings,
    quick: bool,
    elapsed: float,
) -> str:
    mode = "quick (smoke run: fewer calls)" if quick else "full"
    lines = [
        "# llm-twin-sdk retrieval benchmarks (embedded Qdrant)",
        "",
        f"Mode: {mode}. Wall time of this run: {elapsed:.0f} s. Peak RSS: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB.",
        "",
        "## Machine",
        "",
        *machine_lines(),
        "",
        "## Setup",
        "",
        "- Store: `QdrantStore.local(fresh tmp folder)` (Qdrant local mode, no server), default "
        "collections (`posts`, `articles`, `repositories`), default hybrid search "
        "(dense cosine + Qdrant BM25, fused by DBSF per document), `k=5` documents; pipeline "
        "`RAGPipeline(Embedder(), store)`; no LLM anywhere.",
        f"- **Synthetic corpora.** The sample corpus ({len(base.chunks)} real chunks with real "
        f"metadata) is embedded once with all-MiniLM-L6-v2 ({base.embed_s:.1f} s); each size "
        "cycles over those chunks with distinct document ids (`<doc>-syn<copy>`, ids from "
        "`chunk_id`). Texts are synthetic variations (copy 0 as is; other copies: sentence "
        f"order shuffled, {APPENDED_WORDS} corpus words appended); dense vectors are synthetic: "
        f"the source chunk's real embedding + gaussian noise (sigma {NOISE_SIGMA} per "
        "dimension), re-normalised; lexical vectors are `LexicalEncoder().encode_documents` of "
        f"the varied texts. Written with `store.write_documents` in slices of ~{WRITE_SLICE} "
        "chunks (whole documents), then the store is closed and the folder reopened, as an "
        "application would.",
        f"- {settings.questions} distinct questions on the corpus topics; per size "
        f"{WARMUP_CALLS} untimed warm-up calls, then {settings.latency_rounds} pass(es) over "
        "the questions, each call timed on its own. Embedding and store times are clocked "
        "inside the same calls by wrapping `Embedder.encode` and `QdrantStore.search_many`.",
    ]

    lines += [
        "",
        "## Summary",
        "",
        "| benchmark | figure | goal | met |",
        "|---|---|---|---|",
    ]
    for lat in latencies:
        totals = [c.total for c in lat.calls]
        lines.append(
            f"| `retrieve(k=5)` at {lat.size:,} chunks | p50 {ms(pct(totals, 50))}, "
            f"p95 {ms(pct(totals, 95))} | report only | - |"
        )
    if expansion is not None:
        a, b, c = (statistics.median(expansion.seconds[key]) for key in "abc")
        met = b / a <= EXPANSION_GOAL_RATIO
        lines += [
            f"| 3 phrasings, batched (b) / single (a), {expansion.size:,} chunks "
            f"| {b / a:.2f}x | <= {EXPANSION_GOAL_RATIO}x | {mark(met)} |",
            f"| 3 phrasings, hand loop (c) / single (a) | {c / a:.2f}x | report only | - |",
            f"| sanity: (b) and (c) share >= 1 of the top {K} on every question | "
            f"{sum(o > 0 for o in expansion.overlaps)}/{len(expansion.overlaps)} questions, "
            f"mean overlap {statistics.fmean(expansion.overlaps) * 100:.0f}% | all "
            f"| {mark(all(o > 0 for o in expansion.overlaps))} |",
        ]
    full_results = all(c.results == K for lat in latencies for c in lat.calls)
    lines.append(
        f"| sanity: every timed `retrieve` returned {K} chunks | "
        f"{'yes' if full_results else 'no'} | yes | {mark(full_results)} |"
    )

    lines += [
        "",
        "## 1. `rag.retrieve(question, k=5)` latency",
        "",
        "| chunks | timed calls | p50 | p95 | mean | median query embedding | "
        "median store `search_many` | median store + rest (total - embedding) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lat in latencies:
        totals = [c.total for c in lat.calls]
        lines.append(
            f"| {lat.size:,} | {len(totals)} | {ms(pct(totals, 50))} | {ms(pct(totals, 95))} "
            f"| {ms(statistics.fmean(totals))} "
            f"| {ms(statistics.median(c.encode for c in lat.calls))} "
            f"| {ms(statistics.median(c.search for c in lat.calls))} "
            f"| {ms(statistics.median(c.total - c.encode for c in lat.calls))} |"
        )
    lines += [
        "",
        "Share of the median call (medians of each part, so they need not sum to 100%):",
        "",
    ]
    for lat in latencies:
        total = statistics.median(c.total for c in lat.calls)
        enc = statistics.median(c.encode for c in lat.calls)
        search = statistics.median(c.search for c in lat.calls)
        lines.append(
            f"- {lat.size:,} chunks: embedding {enc / total * 100:.0f}%, store search "
            f"{search / total * 100:.0f}%, other (checks, `encode_query`, result objects) "
            f"{max(0.0, total - enc - search) / total * 100:.0f}%."
        )
    lines += [
        "",
        "### Store alone by search mode (`store.search_many([query], 5, mode=...)`, "
        "precomputed query vectors, modes interleaved per question)",
        "",
        "| chunks | dense | lexical | hybrid (one batched request per collection) | "
        "lexical / dense |",
        "|---|---|---|---|---|",
    ]
    for lat in latencies:
        d, x, h = (statistics.median(lat.modes[m]) for m in ("dense", "lexical", "hybrid"))
        lines.append(f"| {lat.size:,} | {ms(d)} | {ms(x)} | {ms(h)} | {x / d:.1f}x |")
    lines += [
        "",
        "### Builds (not a goal)",
        "",
        "| chunks | per collection | synthesize | lexical vectors | `write_documents` | "
        "build total | write rate | reopen folder | folder size | mean cos(noisy, source) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lat in latencies:
        b_ = lat.build
        per = ", ".join(f"{name} {n:,}" for name, n in sorted(b_.per_collection.items()))
        lines.append(
            f"| {b_.size:,} | {per} | {b_.synth_s:.1f} s | {b_.lexical_s:.1f} s "
            f"| {b_.write_s:.1f} s | {b_.total_s:.1f} s | {b_.size / b_.write_s:.0f} chunks/s "
            f"| {b_.reopen_s:.2f} s | {b_.folder_mib:.0f} MiB | {b_.mean_cosine_to_source:.2f} |"
        )

    if expansion is not None:
        a_s, b_s, c_s = (expansion.seconds[key] for key in "abc")
        a, b, c = (statistics.median(v) for v in (a_s, b_s, c_s))
        pair_b = statistics.median(x / y for x, y in zip(b_s, a_s, strict=True))
        pair_c = statistics.median(x / y for x, y in zip(c_s, a_s, strict=True))
        counts = Counter(round(o * K) for o in expansion.overlaps)
        lines += [
            "",
            f"## 2. Query expansion cost at {expansion.size:,} chunks",
            "",
            "- (a) `rag.retrieve(q, k=5)`, one phrasing; (b) `RAGPipeline(..., "
            "expander=FixedExpander())` whose `expand()` returns the question + 2 fixed "
            "paraphrases (no LLM): one `encode` of the 3 phrasings, one batched "
            "`query_batch_points` per collection, RRF in the SDK; (c) by hand, per phrasing "
            "`embedder.encode([p])` + `store.search(vec, 5, sparse=..., mode='hybrid')`, then "
            "RRF by chunk id in Python.",
            f"- {len(a_s)} timed calls per variant ({expansion.rounds} pass(es) over the "
            "questions) after an untimed warm-up, the three interleaved per question, order "
            "alternating.",
            "",
            "| variant | median | p95 | median embedding | ratio to (a) (of medians) | "
            "median per-question ratio | goal | met |",
            "|---|---|---|---|---|---|---|---|",
            f"| (a) single query | {ms(a)} | {ms(pct(a_s, 95))} | - | 1.00 | 1.00 | - | - |",
            f"| (b) 3 phrasings, batched | {ms(b)} | {ms(pct(b_s, 95))} "
            f"| {ms(statistics.median(expansion.encode_b))} | {b / a:.2f} | {pair_b:.2f} "
            f"| <= {EXPANSION_GOAL_RATIO} | {mark(b / a <= EXPANSION_GOAL_RATIO)} |",
            f"| (c) 3 phrasings, hand loop | {ms(c)} | {ms(pct(c_s, 95))} "
            f"| {ms(statistics.median(expansion.encode_c))} | {c / a:.2f} | {pair_c:.2f} "
            "| - | - |",
            "",
            f"- (b) vs (c) top-5 overlap: mean {statistics.fmean(expansion.overlaps) * 100:.0f}%; "
            "questions by shared chunks: "
            + ", ".join(f"{n}/{K}: {counts[n]}" for n in sorted(counts, reverse=True))
            + ". (They need not be equal: (b) fuses 6 lists of 20 candidates, (c) fuses 3 "
            "already-fused hybrid top-5 lists.)",
            f"- (b) - (a) = {ms(b - a)}; (c) - (b) = {ms(c - b)}.",
        ]
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------------


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1000,10000, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return sizes


def measure_size(
    embedder: Embedder,
    base: Base,
    size: int,
    settings: Settings,
    *,
    latency: bool,
    expansion: bool,
) -> tuple[Latency | None, Expansion | None]:
    from llm_twin_sdk import QdrantStore, RAGPipeline

    entries = QUESTIONS[: settings.questions]
    questions = [q for q, _, _ in entries]
    with tempfile.TemporaryDirectory(prefix=f"bench-retrieval-{size}-") as tmp:
        folder = Path(tmp)
        store = QdrantStore.local(folder)
        try:
            log(f"build {size}: writing synthetic chunks")
            build = build_store(store, base, size, SEED + size)
        finally:
            store.close()
        build.folder_mib = folder_mib(folder)
        started = time.perf_counter()
        store = QdrantStore.local(folder)
        build.reopen_s = time.perf_counter() - started
        try:
            stored = store.count()
            if stored != size:
                raise RuntimeError(f"store holds {stored} chunks, expected {size}")
            lat = (
                bench_latency(RAGPipeline(embedder, store), questions, settings, build)
                if latency
                else None
            )
            exp = (
                bench_expansion(embedder, store, entries, settings.expansion_rounds)
                if expansion
                else None
            )
        finally:
            store.close()
    return lat, exp


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run with fewer calls")
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        help="comma-separated corpus sizes in chunks (default 1000,10000,50000; "
        "1000,10000 with --quick)",
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    sizes: tuple[int, ...] = args.sizes or settings.sizes
    started = time.perf_counter()

    from llm_twin_sdk import Embedder

    log("loading the embedder (all-MiniLM-L6-v2)")
    embedder = Embedder()
    base = load_base(embedder)
    log(f"base corpus: {len(base.chunks)} real chunks embedded in {base.embed_s:.1f} s")

    latencies: list[Latency] = []
    expansion: Expansion | None = None
    for size in sizes:
        lat, exp = measure_size(
            embedder,
            base,
            size,
            settings,
            latency=True,
            expansion=size == settings.expansion_size,
        )
        if lat is not None:
            latencies.append(lat)
        expansion = exp or expansion
    if expansion is None:
        _, expansion = measure_size(
            embedder, base, settings.expansion_size, settings, latency=False, expansion=True
        )
    sys.stdout.write(
        render(
            latencies,
            expansion,
            base=base,
            settings=settings,
            quick=args.quick,
            elapsed=time.perf_counter() - started,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
