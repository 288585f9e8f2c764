"""What one retrieval asks Qdrant (a search per phrasing and vector), and how the answers
become one ranking: merged by score across collections, then fused by RRF (docs/architecture.md,
"Retrieve", step 4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt

from ..errors import InvalidParameterError
from .engine import PointId, ScoredPoint
from .points import DENSE_VECTOR, LEXICAL_VECTOR, to_qdrant_sparse
from .sparse import SparseVector

__all__ = ["QueryVectors", "SearchMode", "check_search_mode", "fuse", "fusion_depth", "searches_of"]

SearchMode = Literal["dense", "lexical", "hybrid"]
"""``dense``: embedding similarity; ``lexical``: BM25 over terms; ``hybrid``: both, fused by RRF."""
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)

FUSION_DEPTH_FACTOR = 4
"""Each list fused by RRF holds this many times ``k`` candidates (at least 20)."""
RRF_CONSTANT = 2
"""Qdrant's reciprocal rank fusion constant: score = sum over lists of 1 / (rank + 2)."""

P = TypeVar("P", bound=ScoredPoint)


def check_search_mode(mode: object) -> SearchMode:
    """``mode`` if it is one of :data:`SearchMode`, else :class:`InvalidParameterError`."""
    if isinstance(mode, str) and mode in SEARCH_MODES:
        return mode
    raise InvalidParameterError(
        f"search mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}"
    )


@dataclass(frozen=True)
class QueryVectors:
    """One query's dense embedding and lexical (sparse) vector; ``None`` where the search mode
    does not use it."""

    dense: npt.NDArray[np.float32] | None = None
    sparse: SparseVector | None = None


def searches_of(queries: Sequence[QueryVectors], mode: SearchMode) -> list[tuple[str, Any]]:
    """(vector name, query vector) of every search ``mode`` runs for ``queries``, one list
    each (a query without terms has no lexical search)."""
    found: list[tuple[str, Any]] = []
    for query in queries:
        if mode != "lexical":
            if query.dense is None:
                raise InvalidParameterError(f"{mode} search needs the query's dense vector")
            found.append((DENSE_VECTOR, query.dense.tolist()))
        if mode != "dense":
            if query.sparse is None:
                raise InvalidParameterError(f"{mode} search needs the query's sparse vector")
            if query.sparse.indices:
                found.append((LEXICAL_VECTOR, to_qdrant_sparse(query.sparse)))
    return found


def fusion_depth(lists: int, k: int) -> int:
    """How many points each search asks for: ``k`` for a single list, more when fused."""
    return k if lists <= 1 else max(20, FUSION_DEPTH_FACTOR * k)


def fuse(lists: Sequence[Sequence[P]], k: int, depth: int) -> list[tuple[P, float]]:
    """The ``k`` best points and their scores: each list (one query and vector, several
    collections) merged by score, then all fused by RRF; a single list keeps its scores."""
    ranked = [sorted(points, key=lambda p: p.score, reverse=True)[:depth] for points in lists]
    ranked = [points for points in ranked if points]
    if len(ranked) <= 1:
        return [(point, point.score) for point in (ranked[0][:k] if ranked else [])]
    scores: dict[PointId, float] = {}
    first: dict[PointId, P] = {}
    for points in ranked:
        for rank, point in enumerate(points):
            first.setdefault(point.id, point)
            scores[point.id] = scores.get(point.id, 0.0) + 1 / (rank + RRF_CONSTANT)
    best = sorted(scores, key=scores.__getitem__, reverse=True)[:k]
    return [(first[point_id], scores[point_id]) for point_id in best]
