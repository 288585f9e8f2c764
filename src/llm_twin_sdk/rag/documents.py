"""The documents a store holds, as its users see them: listed (:class:`StoredDocument`, read
from their first chunks' payloads, no vectors) and deleted (:class:`DeleteReport`)::

    for doc in rag.documents(filters={"kind": "post"}):
        print(doc.id, doc.metadata.title, doc.chunks)
    report = rag.delete(["post-1", "post-9"])     # report.missing == ("post-9",) if unknown
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..display import listing
from ..errors import InvalidParameterError
from ..types import DocumentMetadata

if TYPE_CHECKING:
    from qdrant_client import models

__all__ = ["DeleteReport", "StoredDocument", "check_document_ids", "first_chunks", "listed"]

LISTED_FIELDS = ["document_id", "document_chunks", *DocumentMetadata.model_fields]
"""The payload fields a listing reads (never the text or the vectors)."""
MAX_ID_LENGTH = 512  # as Document.id


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document in the store: its ``id``, ``metadata``, number of ``chunks`` and the
    ``collection`` that holds them."""

    id: str
    metadata: DocumentMetadata
    chunks: int
    collection: str


@dataclass(frozen=True, slots=True)
class DeleteReport:
    """What :meth:`RAGPipeline.delete` removed: ``documents`` and their ``chunks``;
    ``missing``: the ids asked for that the store did not hold (not an error)."""

    documents: int
    chunks: int
    missing: tuple[str, ...] = ()

    def __repr__(self) -> str:
        missing = f", missing={listing(self.missing)}" if self.missing else ""
        return f"DeleteReport(documents={self.documents}, chunks={self.chunks}{missing})"


def check_document_ids(ids: str | Iterable[str]) -> tuple[str, ...]:
    """``ids`` (one id, or an iterable of them) deduplicated in order, each checked.

    Raises:
        InvalidParameterError: not a string or an iterable of non-blank strings of at most
            512 characters.
    """
    if isinstance(ids, str):
        ids = (ids,)
    elif not isinstance(ids, Iterable) or isinstance(ids, (bytes, Mapping)):
        raise InvalidParameterError(
            f"document ids must be a string or a list of strings, got {type(ids).__name__}"
        )
    checked: dict[str, None] = {}
    for value in ids:
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
            raise InvalidParameterError(
                f"a document id must be a non-blank string of at most {MAX_ID_LENGTH} "
                f"characters, got {value!r:.80}"
            )
        checked[value] = None
    return tuple(checked)


def first_chunks(condition: models.Filter | None = None) -> models.Filter:
    """``condition`` restricted to each document's first chunk (one point per document)."""
    from qdrant_client import models

    first = models.FieldCondition(key="position", match=models.MatchValue(value=0))
    must = [] if condition is None or condition.must is None else condition.must
    return models.Filter(must=[*(must if isinstance(must, list) else [must]), first])


def listed(payload: Mapping[str, Any] | None, collection: str) -> StoredDocument:
    """The :class:`StoredDocument` of a first chunk's payload."""
    payload = payload or {}
    fields = DocumentMetadata.model_fields
    return StoredDocument(
        id=str(payload.get("document_id", "")),
        metadata=DocumentMetadata(**{k: v for k, v in payload.items() if k in fields}),
        chunks=int(payload.get("document_chunks") or 1),
        collection=collection,
    )
