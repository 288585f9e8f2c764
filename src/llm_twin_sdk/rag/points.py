"""Chunks as Qdrant points and back: a ``"dense"`` vector (cosine), a ``"bm25"`` sparse one
(Qdrant's BM25 terms, :mod:`.sparse`; IDF modifier; absent for a text without terms), and a
payload of the chunk's fields plus the bookkeeping of ingestion (:mod:`.versions`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import VectorStoreError
from ..types import Chunk, DocumentMetadata
from .sparse import SparseVector

if TYPE_CHECKING:
    from qdrant_client import models

__all__ = [
    "DENSE_VECTOR",
    "FORMER_LEXICAL_VECTOR",
    "LEXICAL_VECTOR",
    "to_chunk",
    "to_point",
    "to_qdrant_sparse",
]

DENSE_VECTOR = "dense"
LEXICAL_VECTOR = "bm25"
FORMER_LEXICAL_VECTOR = "lexical"
"""The sparse vector of llm-twin-sdk before Qdrant's BM25 (its own terms and hashes): a
collection holding it must be ingested again."""


_METADATA_FIELDS = tuple(DocumentMetadata.model_fields)


def to_qdrant_sparse(vector: SparseVector) -> models.SparseVector:
    from qdrant_client import models

    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def to_point(
    chunk: Chunk, dense: list[float], lexical: SparseVector, **bookkeeping: Any
) -> models.PointStruct:
    """The point of ``chunk``; ``bookkeeping`` (fingerprint, chunk count) joins its payload."""
    from qdrant_client import models

    named: dict[str, Any] = {DENSE_VECTOR: dense}
    if lexical.indices:  # a text without terms has no lexical vector (Qdrant: no point)
        named[LEXICAL_VECTOR] = to_qdrant_sparse(lexical)
    payload = {"document_id": chunk.document_id, "position": chunk.position, "text": chunk.text}
    payload.update(chunk.metadata.model_dump(exclude_none=True), **bookkeeping)
    return models.PointStruct(id=chunk.id, vector=named, payload=payload)


def to_chunk(point_id: object, payload: dict[str, Any], score: float | None) -> Chunk:
    """The chunk a point holds, with its search score."""
    try:
        return Chunk(
            id=str(point_id),
            document_id=payload["document_id"],
            position=payload["position"],
            text=payload["text"],
            metadata=DocumentMetadata(**{f: payload[f] for f in _METADATA_FIELDS if f in payload}),
            score=score,
        )
    except (KeyError, ValueError) as exc:
        raise VectorStoreError(
            f"point {point_id} was not written by llm-twin-sdk (payload lacks {exc}); "
            "use a collection of its own"
        ) from exc
