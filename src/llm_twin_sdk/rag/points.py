"""Chunks as Qdrant points and back: a ``"dense"`` vector (cosine), a ``"bm25"`` sparse one
(Qdrant's BM25 terms, :mod:`.sparse`; IDF modifier; absent for a text without terms), and a
payload of the chunk's fields plus the bookkeeping of ingestion (:mod:`.versions`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import VectorStoreError
from ..types import Chunk, DocumentKind, DocumentMetadata
from .sparse import SparseVector
from .versions import document_lengths

if TYPE_CHECKING:
    from qdrant_client import models

    from .engine import QdrantEngine

__all__ = [
    "DENSE_VECTOR",
    "FORMER_LEXICAL_VECTOR",
    "LEXICAL_VECTOR",
    "PointRows",
    "point_rows",
    "to_chunk",
    "to_qdrant_sparse",
    "upsert_rows",
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


def _payload(chunk: Chunk, metadata: dict[str, Any]) -> dict[str, Any]:
    payload = {"document_id": chunk.document_id, "position": chunk.position, "text": chunk.text}
    payload.update(metadata)
    return payload


@dataclass(frozen=True, slots=True)
class PointRows:
    """The points of one collection, column by column: ids, dense vectors (lists of floats),
    BM25 vectors and payloads, built without pydantic (:func:`point_rows`). Qdrant Edge
    takes them as they are (``EdgeClient.upsert_rows``); a server as qdrant-client's
    ``PointStruct`` (:meth:`structs`)::

        for name, rows in point_rows(chunks, vectors, sparse, {}, store.collection_for).items():
            print(name, len(rows), rows.ids[0])
    """

    ids: list[str]
    dense: list[list[float]]
    sparse: list[SparseVector]
    payloads: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, part: slice) -> PointRows:
        """The rows of ``part`` (a slice), e.g. one upsert's worth."""
        return PointRows(self.ids[part], self.dense[part], self.sparse[part], self.payloads[part])

    def structs(self) -> list[models.PointStruct]:
        """These points as qdrant-client's ``PointStruct`` (a text without terms has no
        ``bm25`` vector)."""
        from qdrant_client import models

        points = []
        for point_id, dense, lexical, payload in zip(
            self.ids, self.dense, self.sparse, self.payloads, strict=True
        ):
            named: dict[str, Any] = {DENSE_VECTOR: dense}
            if lexical.indices:
                named[LEXICAL_VECTOR] = to_qdrant_sparse(lexical)
            points.append(models.PointStruct(id=point_id, vector=named, payload=payload))
        return points


def point_rows(
    chunks: Sequence[Chunk],
    vectors: npt.NDArray[np.float32],
    sparse: Sequence[SparseVector],
    fingerprints: Mapping[str, str],
    collection_for: Callable[[DocumentKind | None], str],
) -> dict[str, PointRows]:
    """The points of ``chunks`` (same order as ``vectors`` and ``sparse``) grouped by their
    kind's collection: each payload holds the chunk's fields, its metadata, its document's
    chunk count and, when ``fingerprints`` has it, its document's fingerprint
    (:mod:`.versions`). A document's metadata is dumped once, not once per chunk."""
    lengths = document_lengths(chunks)
    dumped: dict[int, tuple[str, dict[str, Any]]] = {}  # id(metadata) -> collection, payload
    grouped: dict[str, PointRows] = {}
    # a row at a time: one tolist() of a whole batch (2048 x 384) holds the GIL ~30 ms,
    # while the embedding requests in flight wait for it to read their answers
    rows_of = (row.tolist() for row in vectors)
    for chunk, dense, lexical in zip(chunks, rows_of, sparse, strict=True):
        metadata = chunk.metadata
        known = dumped.get(id(metadata))
        if known is None:
            known = collection_for(metadata.kind), metadata.model_dump(exclude_none=True)
            dumped[id(metadata)] = known
        name, fields = known
        payload = _payload(chunk, fields)
        payload["document_chunks"] = lengths[chunk.document_id]
        fingerprint = fingerprints.get(chunk.document_id)
        if fingerprint is not None:
            payload["fingerprint"] = fingerprint
        rows = grouped.get(name)
        if rows is None:
            rows = grouped[name] = PointRows([], [], [], [])
        rows.ids.append(chunk.id)
        rows.dense.append(dense)
        rows.sparse.append(lexical)
        rows.payloads.append(payload)
    return grouped


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


def upsert_rows(
    engine: QdrantEngine, name: str, rows: PointRows, ordering: models.WriteOrdering | None
) -> None:
    """Write ``rows`` into collection ``name`` and wait for it: Qdrant Edge builds its own
    points from them (no pydantic model per point), a server gets ``PointStruct`` with the
    write ``ordering``."""
    from .edge import EdgeClient

    if isinstance(engine, EdgeClient):
        engine.upsert_rows(name, rows)
    else:
        engine.upsert(name, points=rows.structs(), wait=True, ordering=ordering)
