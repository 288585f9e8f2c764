"""Whole documents of a :class:`~.store.QdrantStore`, page by page: listing them from their
first chunks (:meth:`~.store.QdrantStore.documents`) and deleting every chunk of some
(:meth:`~.store.QdrantStore.delete_documents`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .documents import LISTED_FIELDS, DeleteReport, StoredDocument, listed
from .filters import to_qdrant_filter

if TYPE_CHECKING:
    from qdrant_client import models

    from .engine import PointId
    from .store import QdrantStore

__all__ = ["DELETE_PAGE", "delete_documents", "listing"]

DELETE_PAGE = 1024


def listing(
    store: QdrantStore, names: Sequence[str], condition: models.Filter, size: int
) -> Iterator[StoredDocument]:
    """The documents whose first chunks match ``condition`` in the collections ``names``."""
    for name in list(store._existing(names)):
        for page in store._pages(name, condition, LISTED_FIELDS, size):
            yield from (listed(point.payload, name) for point in page)


def delete_documents(store: QdrantStore, wanted: Sequence[str]) -> DeleteReport:
    """Delete every chunk of the documents ``wanted`` (checked ids), in every collection."""
    from qdrant_client import models

    found: dict[str, list[PointId]] = {}
    documents: set[str] = set()
    condition = to_qdrant_filter({"document_id": list(wanted)})
    if condition is None:  # no id given
        return DeleteReport(documents=0, chunks=0)
    for name in list(store._existing()):
        for page in store._pages(name, condition, ["document_id"], DELETE_PAGE):
            found.setdefault(name, []).extend(point.id for point in page)
            documents.update(str((point.payload or {}).get("document_id")) for point in page)
    for name, point_ids in found.items():
        for start in range(0, len(point_ids), DELETE_PAGE):
            store._delete(name, models.PointIdsList(points=point_ids[start : start + DELETE_PAGE]))
    return DeleteReport(
        documents=len(documents),
        chunks=sum(len(point_ids) for point_ids in found.values()),
        missing=tuple(i for i in wanted if i not in documents),
    )
