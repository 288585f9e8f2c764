"""What one retrieval asks Qdrant (a search per phrasing and vector), and how the answers
become one ranking: each list merged by score across collections, then the lists fused
(docs/architecture.md, "Retrieve", step 4).

Three ways to fuse, compared on two evaluation sets (docs/benchmarks.md, section 6):

- ``"rrf"``, reciprocal rank fusion: a point scores ``sum(weight / (constant + rank))`` over
  the lists that hold it (rank 1 = first). Ranks only: scores of different scales never meet.
- ``"dbsf"``, distribution-based score fusion (Qdrant's): each list's scores are mapped
  through ``mean +/- 3 std`` onto ``[0, 1]``, then summed with the weights.
- ``"minmax"``: each list's scores mapped onto ``[0, 1]`` by its own minimum and maximum,
  then summed with the weights.

A point missing from a list gets nothing from it. Fused per document, each list first keeps
its best chunk of every document, so a document counts once per list, and is represented by
its best chunk in the list that gave it most.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt

from ..errors import ConfigurationError, InvalidParameterError
from .engine import ScoredPoint
from .points import DENSE_VECTOR, LEXICAL_VECTOR, to_qdrant_sparse
from .sparse import SparseVector

__all__ = [
    "FUSION_METHODS",
    "Fusion",
    "FusionMethod",
    "QueryVectors",
    "SearchList",
    "SearchMode",
    "check_search_mode",
    "fuse",
    "fusion_depth",
    "searches_of",
]

SearchMode = Literal["dense", "lexical", "hybrid"]
"""``dense``: embedding similarity; ``lexical``: BM25 over terms; ``hybrid``: both, fused."""
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)

FusionMethod = Literal["rrf", "dbsf", "minmax"]
"""How hybrid search fuses its lists (module docstring)."""
FUSION_METHODS: tuple[FusionMethod, ...] = get_args(FusionMethod)

FUSION_DEPTH_FACTOR = 4
"""Each fused list holds this many times ``k`` candidates (at least 20)."""
DOCUMENT_DEPTH_FACTOR = 3
"""... and three times more when fusing documents (a search for more documents follows if
the chunks of the first held too few distinct documents)."""

P = TypeVar("P", bound=ScoredPoint)


def check_search_mode(mode: object) -> SearchMode:
    """``mode`` if it is one of :data:`SearchMode`, else :class:`InvalidParameterError`."""
    if isinstance(mode, str) and mode in SEARCH_MODES:
        return mode
    raise InvalidParameterError(
        f"search mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}"
    )


def _weight(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value):
        raise ConfigurationError(f"{name} must be finite, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Fusion:
    """How hybrid search fuses its ranked lists (one per phrasing and vector).

    Example::

        RAGPipeline(embedder, store, fusion=Fusion("rrf", rrf_constant=60))
        RAGPipeline(embedder, store, fusion=Fusion("dbsf", lexical_weight=0.5))

    Args:
        method: ``"rrf"``, ``"dbsf"`` or ``"minmax"`` (module docstring).
        rrf_constant: RRF's ``constant``: larger flattens the bonus of the first ranks.
        dense_weight, lexical_weight: the weight of every dense / lexical list (each also
            multiplied by its phrasing's :attr:`QueryVectors.weight`).
    """

    method: FusionMethod = "dbsf"
    rrf_constant: float = 60.0
    dense_weight: float = 1.0
    lexical_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise ConfigurationError(
                f"fusion method must be one of {', '.join(FUSION_METHODS)}, got {self.method!r}"
            )
        _weight("rrf_constant", self.rrf_constant)
        if (
            _weight("dense_weight", self.dense_weight)
            + _weight("lexical_weight", self.lexical_weight)
            <= 0
        ):
            raise ConfigurationError("dense_weight and lexical_weight cannot both be 0")

    def weight_of(self, vector: str) -> float:
        """The weight of a list searched with the vector named ``vector``."""
        return self.dense_weight if vector == DENSE_VECTOR else self.lexical_weight


@dataclass(frozen=True)
class QueryVectors:
    """One phrasing's dense embedding and lexical (sparse) vector; ``None`` where the search
    mode does not use it. ``weight``: how much this phrasing's lists count in fusion (the
    question itself 1; an LLM's rewording less)."""

    dense: npt.NDArray[np.float32] | None = None
    sparse: SparseVector | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class SearchList:
    """One search of a retrieval: the vector it uses, the query vector, its fusion weight."""

    using: str
    vector: Any
    weight: float


def searches_of(
    queries: Sequence[QueryVectors], mode: SearchMode, fusion: Fusion | None = None
) -> list[SearchList]:
    """Every search ``mode`` runs for ``queries``, one list each (a phrasing without terms
    has no lexical search), weighted by the phrasing and by ``fusion``'s vector weights."""
    fusion = fusion or Fusion()
    found: list[SearchList] = []
    for query in queries:
        if mode != "lexical":
            if query.dense is None:
                raise InvalidParameterError(f"{mode} search needs the query's dense vector")
            weight = query.weight * fusion.weight_of(DENSE_VECTOR)
            found.append(SearchList(DENSE_VECTOR, query.dense.tolist(), weight))
        if mode != "dense":
            if query.sparse is None:
                raise InvalidParameterError(f"{mode} search needs the query's sparse vector")
            if query.sparse.indices:
                weight = query.weight * fusion.weight_of(LEXICAL_VECTOR)
                found.append(SearchList(LEXICAL_VECTOR, to_qdrant_sparse(query.sparse), weight))
    return found


def fusion_depth(lists: int, k: int, *, per_document: bool = False) -> int:
    """How many points each search asks for: ``k`` for a single list, more when fused, and
    more again for ``k`` documents (several chunks of one document share a list)."""
    depth = k if lists <= 1 else max(20, FUSION_DEPTH_FACTOR * k)
    return depth * DOCUMENT_DEPTH_FACTOR if per_document else depth


def _normalised(scores: Sequence[float], method: FusionMethod, constant: float) -> list[float]:
    """A ranked list's scores (best first) as fusion contributions, before weighting."""
    if method == "rrf":
        return [1.0 / (constant + rank) for rank in range(1, len(scores) + 1)]
    values = np.asarray(scores, dtype=np.float64)
    if method == "dbsf":
        mean, spread = values.mean(), 3.0 * values.std()
        low, high = mean - spread, mean + spread
    else:
        low, high = values.min(), values.max()
    if high <= low:  # one point, or all tied: each counts fully
        return [1.0] * len(scores)
    return [float(x) for x in np.clip((values - low) / (high - low), 0.0, 1.0)]


def fuse(
    lists: Sequence[Sequence[P]],
    k: int,
    depth: int,
    *,
    weights: Sequence[float] | None = None,
    fusion: Fusion | None = None,
    document_of: Callable[[P], Hashable] | None = None,
) -> list[tuple[P, float]]:
    """The ``k`` best points (or documents, through their best chunk) and their scores.

    Each list (one phrasing and vector, several collections merged) is sorted by score and
    cut at ``depth``; the lists are then fused as ``fusion`` says, each weighted by
    ``weights`` (default 1). A single list keeps its own scores. ``document_of`` gives a
    point's document: with it, documents are fused (module docstring) and at most one point
    per document is returned.
    """
    fusion = fusion or Fusion()
    weights = [1.0] * len(lists) if weights is None else list(weights)
    if len(weights) != len(lists):
        raise InvalidParameterError(f"{len(lists)} lists but {len(weights)} weights")
    key: Callable[[P], Hashable] = document_of or (lambda p: p.id)
    ranked: list[tuple[list[P], float]] = []
    for points, weight in zip(lists, weights, strict=True):
        seen: set[Hashable] = set()
        best: list[P] = []
        for point in sorted(points, key=lambda p: p.score, reverse=True)[:depth]:
            if (item := key(point)) not in seen:
                seen.add(item)
                best.append(point)
        if best and weight > 0:
            ranked.append((best, weight))
    if len(ranked) <= 1:
        return [(point, point.score) for point in (ranked[0][0][:k] if ranked else [])]
    scores: dict[Hashable, float] = {}
    representative: dict[Hashable, tuple[float, P]] = {}  # the largest contribution's point
    for points, weight in ranked:
        contributions = _normalised([p.score for p in points], fusion.method, fusion.rrf_constant)
        for point, contribution in zip(points, contributions, strict=True):
            item, share = key(point), weight * contribution
            scores[item] = scores.get(item, 0.0) + share
            if item not in representative or share > representative[item][0]:
                representative[item] = (share, point)
    best_items = sorted(scores, key=scores.__getitem__, reverse=True)[:k]
    return [(representative[item][1], scores[item]) for item in best_items]
