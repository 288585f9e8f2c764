"""Token-bounded chunking with overlap, on word boundaries: each chunk is an exact slice of the
text, bounded by the embedding model's tokenizer so that none is truncated when embedded."""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections.abc import Callable, Sequence
from hashlib import sha1

from ..errors import InvalidDocumentError, InvalidParameterError
from ..types import Chunk, Document

__all__ = [
    "CHUNK_NAMESPACE",
    "chunk_document",
    "chunk_documents",
    "chunk_id",
    "document_key",
    "split_offsets",
]

CHUNK_NAMESPACE = uuid.UUID("6f3b1a52-8f0c-5c4e-9a57-1d2f3e4a5b6c")
"""uuid5 namespace of chunk ids. Changing it would orphan every stored chunk."""
_NAMESPACE = CHUNK_NAMESPACE.bytes

DOCUMENT_KEY_CHARS = 18
"""The first 8 bytes of a UUID in its text form (``xxxxxxxx-xxxx-xxxx``)."""

Offsets = Sequence[tuple[int, int]]


def chunk_id(document_id: str, position: int) -> str:
    """Deterministic id of a document's chunk, a UUID: its first 8 bytes are those of the
    uuid5 of the document id (:func:`document_key`: every chunk of a document shares them),
    the last 8 those of the uuid5 of ``"<document id>:<position>"``."""
    # uuid5 without its UUID objects (ingestion computes this twice per chunk): SHA-1 of
    # namespace + name, the version nibble (5) in byte 6, the RFC 4122 variant in byte 8.
    document = sha1(_NAMESPACE + document_id.encode()).digest()
    own = sha1(_NAMESPACE + f"{document_id}:{position}".encode()).digest()
    raw = bytearray(document[:8] + own[8:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def document_key(point_id: object) -> str:
    """The part of a chunk id (:func:`chunk_id`) that its document's chunks share: a search
    groups its points by document without reading their payloads."""
    return str(point_id)[:DOCUMENT_KEY_CHARS]


def split_offsets(offsets: Offsets, max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of chunks, given the tokens' character offsets.

    Each span covers at most ``max_tokens`` tokens; consecutive spans share about
    ``overlap`` tokens (rounded to whole words). Spans start and end on word boundaries
    unless a single word is longer than ``max_tokens``.
    """
    if max_tokens <= 0:
        raise InvalidParameterError(f"max_tokens must be > 0, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise InvalidParameterError(
            f"overlap must be >= 0 and < max_tokens ({max_tokens}), got {overlap}"
        )
    n = len(offsets)
    if n == 0:
        return []
    if n <= max_tokens:  # one chunk: the word starts below are not needed
        return [(offsets[0][0], offsets[n - 1][1])]
    # Token indices that begin a whitespace-separated word; n marks the end.
    starts = [i for i in range(n) if i == 0 or offsets[i][0] > offsets[i - 1][1]]
    starts.append(n)
    spans: list[tuple[int, int]] = []
    first = 0
    while True:
        limit = first + max_tokens
        if limit >= n:
            last = n
        else:
            candidate = starts[bisect_right(starts, limit) - 1]
            last = candidate if candidate > first else limit  # one word over the limit
        spans.append((offsets[first][0], offsets[last - 1][1]))
        if last >= n:
            return spans
        # Next chunk starts at the last word start at or before `last - overlap`.
        nxt = starts[max(bisect_right(starts, last - overlap) - 1, 0)]
        if nxt <= first:  # that word is longer than the overlap: continue without one
            nxt = last
        first = nxt


def chunk_document(
    document: Document, offsets: Offsets, max_tokens: int, overlap: int
) -> list[Chunk]:
    """Split a document into chunks with deterministic ids and its metadata (exact slices
    of the validated document: built without validating them again)."""
    return [
        Chunk.model_construct(
            id=chunk_id(document.id, position),
            document_id=document.id,
            position=position,
            text=document.text[start:end],
            metadata=document.metadata,
        )
        for position, (start, end) in enumerate(split_offsets(offsets, max_tokens, overlap))
    ]


def chunk_documents(
    documents: Sequence[Document],
    token_offsets: Callable[[Sequence[str]], Sequence[Offsets]],
    max_tokens: int,
    overlap: int,
) -> list[tuple[Document, list[Chunk]]]:
    """Each document with its chunks, the token offsets of all of them computed in one
    ``token_offsets`` call (an embedder's). A document without a token raises
    :class:`~llm_twin_sdk.errors.InvalidDocumentError`."""
    chunked: list[tuple[Document, list[Chunk]]] = []
    offsets = token_offsets([d.text for d in documents])
    for doc, doc_offsets in zip(documents, offsets, strict=True):
        if not doc_offsets:
            raise InvalidDocumentError(
                f"document {doc.id!r} has no words the embedding model can read"
            )
        chunked.append((doc, chunk_document(doc, doc_offsets, max_tokens, overlap)))
    return chunked
