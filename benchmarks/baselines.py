"""The baselines the SDK's retrieval is compared with: what an engineer writes in an afternoon.

- plain dense: every chunk embedded with all-MiniLM-L6-v2 (the SDK's chunks), cosine by a
  numpy matrix product, a document scored by its best chunk;
- plain BM25: a textbook Okapi BM25 over whole documents (``\\w+`` tokens, lowercased, no
  stemming, no stop words; k1 1.2, b 0.75);
- simple RRF: the two document rankings above fused by reciprocal rank fusion, constant 60.

Each is a retriever for :func:`llm_twin_sdk.rag.evaluation.evaluate` (``(query, n,
filters=None) -> chunks``), returning one placeholder chunk per document.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llm_twin_sdk import Chunk, Document, Embedder

TOKEN = re.compile(r"\w+")
RRF_CONSTANT = 60
DEPTH = 100  # documents of each ranking fused by the simple RRF
CACHE = Path(__file__).resolve().parent / ".cache"


def cache_folder() -> Path:
    """benchmarks/.cache, made (and git-ignored) if need be."""
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    return CACHE


@cache
def embedded(embedder: Embedder, query: str) -> npt.NDArray[np.float32]:
    """The query's embedding, computed once for every row that searches it."""
    vector: npt.NDArray[np.float32] = embedder.encode([query])[0]
    return vector


def _encoded(embedder: Embedder, texts: list[str]) -> npt.NDArray[np.float32]:
    """``embedder.encode(texts)``, cached on disk (benchmarks/.cache, git-ignored) by model
    and texts: a re-run of the evaluation does not embed the corpus a second time."""
    digest = hashlib.sha256(json.dumps([embedder.model_name, texts]).encode()).hexdigest()
    path = CACHE / f"dense-{digest[:24]}.npy"
    if path.exists():
        cached: npt.NDArray[np.float32] = np.load(path)
        return cached
    vectors = embedder.encode(texts)
    np.save(cache_folder() / path.name, vectors)
    return vectors


def _matches(doc: Document, filters: Mapping[str, Sequence[str]] | None) -> bool:
    metadata = doc.metadata.model_dump()
    return all(metadata.get(field) in values for field, values in (filters or {}).items())


def _as_chunks(doc_ids: Sequence[str], scores: Sequence[float]) -> list[Chunk]:
    return [
        Chunk(id=f"{d}#0", document_id=d, position=0, text=d, score=float(s))
        for d, s in zip(doc_ids, scores, strict=True)
    ]


class Baselines:
    """The three baselines over one corpus and its chunks (embedded once)."""

    def __init__(
        self, corpus: Sequence[Document], chunks: Sequence[Chunk], embedder: Embedder
    ) -> None:
        self.docs = {doc.id: doc for doc in corpus}
        self.embedder = embedder
        self.chunk_docs = [c.document_id for c in chunks]
        self.chunk_vectors = _encoded(embedder, [c.text for c in chunks])
        self.doc_terms = {doc.id: Counter(TOKEN.findall(doc.text.lower())) for doc in corpus}
        self.lengths = {d: sum(t.values()) for d, t in self.doc_terms.items()}
        self.avg_length = sum(self.lengths.values()) / len(self.lengths)
        df: Counter[str] = Counter()
        for terms in self.doc_terms.values():
            df.update(terms.keys())
        n = len(corpus)
        self.idf = {t: math.log((n - f + 0.5) / (f + 0.5) + 1) for t, f in df.items()}

    def _allowed(self, filters: Mapping[str, Sequence[str]] | None) -> set[str]:
        return {d for d, doc in self.docs.items() if _matches(doc, filters)}

    def dense_ranking(
        self, query: str, filters: Mapping[str, Sequence[str]] | None = None
    ) -> list[tuple[str, float]]:
        """Documents by their best chunk's cosine with the query, best first."""
        allowed = self._allowed(filters)
        q = embedded(self.embedder, query)
        best: dict[str, float] = {}
        for doc_id, score in zip(self.chunk_docs, (self.chunk_vectors @ q).tolist(), strict=True):
            if doc_id in allowed and score > best.get(doc_id, -2.0):
                best[doc_id] = score
        return sorted(best.items(), key=lambda item: item[1], reverse=True)

    def bm25_ranking(
        self, query: str, filters: Mapping[str, Sequence[str]] | None = None
    ) -> list[tuple[str, float]]:
        """Documents by Okapi BM25 (k1 1.2, b 0.75), best first; those without a term left out."""
        allowed, k1, b = self._allowed(filters), 1.2, 0.75
        terms = set(TOKEN.findall(query.lower()))
        scores: dict[str, float] = {}
        for doc_id in allowed:
            tf, norm = (
                self.doc_terms[doc_id],
                k1 * (1 - b + b * self.lengths[doc_id] / self.avg_length),
            )
            score = sum(self.idf[t] * tf[t] * (k1 + 1) / (tf[t] + norm) for t in terms if t in tf)
            if score > 0:
                scores[doc_id] = score
        return sorted(scores.items(), key=lambda item: item[1], reverse=True)

    def dense(
        self, query: str, n: int, /, *, filters: Mapping[str, Sequence[str]] | None = None
    ) -> list[Chunk]:
        ranked = self.dense_ranking(query, filters)[:n]
        return _as_chunks([d for d, _ in ranked], [s for _, s in ranked])

    def bm25(
        self, query: str, n: int, /, *, filters: Mapping[str, Sequence[str]] | None = None
    ) -> list[Chunk]:
        ranked = self.bm25_ranking(query, filters)[:n]
        return _as_chunks([d for d, _ in ranked], [s for _, s in ranked])

    def rrf(
        self, query: str, n: int, /, *, filters: Mapping[str, Sequence[str]] | None = None
    ) -> list[Chunk]:
        scores: dict[str, float] = {}
        for ranking in (self.dense_ranking(query, filters), self.bm25_ranking(query, filters)):
            for rank, (doc_id, _) in enumerate(ranking[:DEPTH], start=1):
                scores[doc_id] = scores.get(doc_id, 0.0) + 1 / (RRF_CONSTANT + rank)
        best = sorted(scores, key=scores.__getitem__, reverse=True)[:n]
        return _as_chunks(best, [scores[d] for d in best])
