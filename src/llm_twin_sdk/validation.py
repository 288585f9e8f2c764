"""Checks on call arguments shared by several modules; each raises a typed SDK error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import EmptyQueryError, InvalidDocumentError, InvalidParameterError
from .types import Document, DocumentMetadata

__all__ = ["build_document", "check_k", "check_query", "validate_documents"]


def check_query(query: str) -> str:
    """Return ``query`` if it is a non-blank string, else raise :class:`EmptyQueryError`."""
    if not isinstance(query, str):
        raise EmptyQueryError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise EmptyQueryError("query is empty: ask a question with some words in it")
    return query


def check_k(k: int) -> int:
    """Return ``k`` if it is a positive int, else raise :class:`InvalidParameterError`."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidParameterError(f"k must be a positive integer, got {k!r}")
    return k


def build_document(data: Mapping[Any, Any]) -> Document:
    """A validated document from a mapping; metadata first, for a flat error message."""
    if not all(isinstance(key, str) for key in data):
        raise InvalidDocumentError("document field names must be strings")
    fields = dict(data)
    metadata = fields.get("metadata")
    if isinstance(metadata, Mapping):
        if not all(isinstance(key, str) for key in metadata):
            raise InvalidDocumentError("document metadata field names must be strings")
        fields["metadata"] = DocumentMetadata(**metadata)
    return Document(**fields)


def validate_documents(documents: Iterable[Document | Mapping[str, Any]]) -> list[Document]:
    """Every document validated, ids unique; nothing is written anywhere.

    Raises:
        InvalidDocumentError: naming the document's position and id.
    """
    if isinstance(documents, (str, bytes, Document, Mapping)):
        raise InvalidDocumentError("expected a list of documents, not a single one")
    docs: list[Document] = []
    seen: set[str] = set()
    for index, item in enumerate(documents):
        if isinstance(item, Document):
            doc = item
        elif isinstance(item, Mapping):
            try:
                doc = build_document(item)
            except InvalidDocumentError as exc:
                raise InvalidDocumentError(
                    f"document #{index} (id={item.get('id')!r}): {exc}"
                ) from exc
        else:
            raise InvalidDocumentError(
                f"document #{index} must be a Document or a mapping, got {type(item).__name__}"
            )
        if doc.id in seen:
            raise InvalidDocumentError(f"document id {doc.id!r} appears twice (document #{index})")
        seen.add(doc.id)
        docs.append(doc)
    return docs
