"""Ingestion bookkeeping: which version of each document the store holds, and where (every
stored chunk carries its document's fingerprint and chunk count; docs/architecture.md,
"Ingestion")."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..types import Chunk, DocumentKind
from .chunking import chunk_id
from .engine import Point

__all__ = ["StoredVersions", "document_lengths"]

Route = Callable[[DocumentKind | None], str]
"""The collection of a document kind (:meth:`QdrantStore.collection_for`)."""


def document_lengths(chunks: Iterable[Chunk]) -> dict[str, int]:
    """Chunk count of each document, as the positions in ``chunks`` say (whole documents)."""
    lengths: dict[str, int] = {}
    for chunk in chunks:
        lengths[chunk.document_id] = max(lengths.get(chunk.document_id, 0), chunk.position + 1)
    return lengths


def _places(chunks: Iterable[Chunk], route: Route) -> dict[str, set[tuple[str, str]]]:
    """(collection, chunk id) of each document's chunks."""
    places: dict[str, set[tuple[str, str]]] = {}
    for chunk in chunks:
        places.setdefault(chunk.document_id, set()).add((route(chunk.metadata.kind), chunk.id))
    return places


@dataclass
class StoredVersions:
    """What the store holds of some documents, found by chunk id: where each chunk is, with
    its document's fingerprint and chunk count as written."""

    chunks: dict[str, dict[tuple[str, str], str | None]] = field(default_factory=dict)
    """document id -> {(collection, chunk id): fingerprint}"""
    lengths: dict[str, int] = field(default_factory=dict)
    """document id -> the largest chunk count recorded among its stored chunks"""

    @staticmethod
    def wanted_ids(chunks: Sequence[Chunk]) -> list[str]:
        """Ids of every chunk the documents of ``chunks`` have now (to look up)."""
        return [chunk_id(doc, i) for doc, n in document_lengths(chunks).items() for i in range(n)]

    def add(self, collection: str, point: Point) -> None:
        """Record a point found in ``collection`` (points of other writers are ignored)."""
        payload = point.payload or {}
        document_id = payload.get("document_id")
        if not isinstance(document_id, str):
            return
        stored = self.chunks.setdefault(document_id, {})
        stored[(collection, str(point.id))] = payload.get("fingerprint")
        count = payload.get("document_chunks")
        if isinstance(count, int):
            self.lengths[document_id] = max(self.lengths.get(document_id, 0), count)

    def unchanged(
        self, chunks: Sequence[Chunk], fingerprints: Mapping[str, str], route: Route
    ) -> set[str]:
        """Documents stored exactly as ``chunks`` say, with these fingerprints (nothing to do)."""
        same: set[str] = set()
        for document_id, places in _places(chunks, route).items():
            stored = self.chunks.get(document_id, {})
            fingerprint = fingerprints.get(document_id)
            if (
                fingerprint is not None
                and set(stored) == places
                and self.lengths.get(document_id) == len(places)
                and all(value == fingerprint for value in stored.values())
            ):
                same.add(document_id)
        return same

    def stale(self, chunks: Sequence[Chunk], route: Route) -> dict[str, set[str]]:
        """Per collection, the stored points of these documents that ``chunks`` replace
        without overwriting: a shorter document's old tail, copies under a former kind."""
        written = {place for places in _places(chunks, route).values() for place in places}
        stale: dict[str, set[str]] = {}
        for document_id, new_length in document_lengths(chunks).items():
            places = self.chunks.get(document_id, {})
            for name, point_id in places:
                if (name, point_id) not in written:
                    stale.setdefault(name, set()).add(point_id)
            old_length = self.lengths.get(document_id, 0)
            tail = [chunk_id(document_id, p) for p in range(new_length, old_length)]
            for name in {name for name, _ in places}:
                stale.setdefault(name, set()).update(tail)
        return {name: ids for name, ids in stale.items() if ids}
