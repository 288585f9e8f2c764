"""Chunks as Qdrant points and back: a ``"dense"`` vector (cosine), a ``"bm25"`` sparse one
(Qdrant's BM25 terms, :mod:`.sparse`; IDF modifier; absent for a text without terms), and a
payload of the chunk's fields plus the bookkeeping of ingestion (:mod:`.versions`)."""

from __future__ import annotations

from collections.abc import Mapping
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
    "reingest_message",
    "to_chunk",
    "to_point",
    "to_qdrant_sparse",
    "written_before_bm25",
]

DENSE_VECTOR = "dense"
LEXICAL_VECTOR = "bm25"
FORMER_LEXICAL_VECTOR = "lexical"
"""The sparse vector of llm-twin-sdk before Qdrant's BM25 (its own terms and hashes): a
collection holding it must be ingested again."""


def written_before_bm25(sparse_vectors: Mapping[str, models.SparseVectorParams] | None) -> bool:
    """Whether a collection's sparse vectors are those of llm-twin-sdk before Qdrant's BM25."""
    from qdrant_client import models

    former = (sparse_vectors or {}).get(FORMER_LEXICAL_VECTOR)
    return former is not None and former.modifier == models.Modifier.IDF


def reingest_message(collection: str) -> str:
    """What to do with a collection written before Qdrant's BM25 (:func:`written_before_bm25`)."""
    return (
        f"collection {collection} was written by an earlier llm-twin-sdk's lexical encoder "
        f"(sparse vector {FORMER_LEXICAL_VECTOR!r}); its lexical vectors cannot be searched "
        "with Qdrant's BM25, which this version uses (other terms, other indices). Re-ingest: "
        "delete the collection(s) — `store.delete_collections()`, or remove the Qdrant folder — "
        "and ingest your documents again."
    )


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
