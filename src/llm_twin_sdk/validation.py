"""Checks on call arguments shared by several modules; each raises a typed SDK error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import EmptyQueryError, InvalidDocumentError, InvalidParameterError
from .types import Document, DocumentMetadata, unicode_problem

__all__ = ["MAX_K", "build_document", "check_k", "check_query", "validate_documents"]

MAX_K = 10_000
"""The most chunks one retrieval may ask for (``k``, ``rerank_candidates``): far more than a
prompt holds, and a bound on the work one call can cause."""


def check_query(query: str) -> str:
    """``query`` if it is a non-blank string: else :class:`EmptyQueryError`, or
    :class:`InvalidParameterError` for text that is not valid Unicode (a lone surrogate)."""
    if not isinstance(query, str):
        raise EmptyQueryError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise EmptyQueryError("query is empty: ask a question with some words in it")
    if problem := unicode_problem(query):
        raise InvalidParameterError(f"query {problem}")
    return query


def check_k(k: int, name: str = "k") -> int:
    """``k`` if it is an int from 1 to :data:`MAX_K`, else :class:`InvalidParameterError`."""
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= MAX_K:
        raise InvalidParameterError(f"{name} must be a positive integer up to {MAX_K}, got {k!r}")
    return k


def build_document(data: Mapping[Any, Any]) -> Document:
    """A validated document from a mapping; metadata first, for a flat error message."""
    fields = dict(data)
    if isinstance(metadata := fields.get("metadata"), Mapping):
        fields["metadata"] = DocumentMetadata.model_validate(metadata)
    return Document.model_validate(fields)


def validate_documents(documents: Iterable[Document | Mapping[str, Any]]) -> list[Document]:
    """Every document validated, ids unique; nothing is written anywhere.

    Raises:
        InvalidDocumentError: naming the document's position and id.
    """
    if isinstance(documents, (str, bytes, Document, Mapping)) or not isinstance(
        documents, Iterable
    ):
        raise InvalidDocumentError(
            "expected a list of documents (Document objects or mappings with 'id' and 'text'), "
            f"got {type(documents).__name__}"
        )
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
