"""Chunks grouped by document: the best chunk of each document (ranking kept), the ids of a
chunk's neighbours, and a document's chunks merged into one passage
(their shared overlap written once). docs/architecture.md, "The request path", steps 2.6-3::

    best_per_document(chunks)[:k]           # the k best distinct documents, best first
    passage([chunk_3, chunk_4])              # one text, the overlap of 3 and 4 written once
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, get_args

from ..errors import InvalidParameterError
from ..types import Chunk, DocumentKind
from ..validation import MAX_K
from .chunking import chunk_id

__all__ = [
    "Unit",
    "best_per_document",
    "check_radius",
    "check_unit",
    "neighbour_ids",
    "passage",
]

Unit = Literal["document", "chunk"]
"""What one result of ``retrieve`` is: a distinct document (its best chunk) or a chunk."""
UNITS: tuple[Unit, ...] = get_args(Unit)

GAP = " … "
"""Between two chunks of one passage that are not consecutive."""


def check_unit(unit: object) -> Unit:
    """``unit`` if it is ``"document"`` or ``"chunk"``, else :class:`InvalidParameterError`."""
    if isinstance(unit, str) and unit in UNITS:
        return unit
    raise InvalidParameterError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")


def best_per_document(chunks: Iterable[Chunk]) -> list[Chunk]:
    """The first (best-ranked) chunk of each document in ``chunks``, order kept."""
    seen: set[str] = set()
    best: list[Chunk] = []
    for chunk in chunks:
        if chunk.document_id not in seen:
            seen.add(chunk.document_id)
            best.append(chunk)
    return best


def check_radius(radius: object, name: str = "radius") -> int:
    """``radius`` if it is an integer from 0 to ``MAX_K``, else :class:`InvalidParameterError`."""
    if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_K:
        raise InvalidParameterError(f"{name} must be an integer from 0 to {MAX_K}, got {radius!r}")
    return radius


def neighbour_ids(
    chunks: Iterable[Chunk], radius: int, route: Callable[[DocumentKind | None], str]
) -> dict[str, str]:
    """Chunk id -> collection (``route`` of the kind) of the chunks up to ``radius`` positions
    before and after each of ``chunks`` in its document, not among ``chunks``, in order.

    Raises:
        InvalidParameterError: ``radius`` is not an integer from 0 to ``MAX_K``.
    """
    radius = check_radius(radius)
    chunks = list(chunks)
    given = {chunk.id for chunk in chunks}
    wanted: dict[str, str] = {}
    for chunk in chunks if radius else ():
        name = route(chunk.metadata.kind)
        for position in range(max(0, chunk.position - radius), chunk.position + radius + 1):
            point_id = chunk_id(chunk.document_id, position)
            if point_id not in given:
                wanted.setdefault(point_id, name)
    return wanted


def passage(chunks: Iterable[Chunk]) -> str:
    """The text of one document's ``chunks``, in document order: consecutive chunks are
    joined where they overlap (consecutive chunks share about ``chunk_overlap`` tokens, whole
    words), so the shared words appear once; chunks that are not consecutive are joined by
    :data:`GAP`."""
    text = ""
    previous: int | None = None
    for chunk in sorted({c.position: c for c in chunks}.values(), key=lambda c: c.position):
        if previous is None:
            text = chunk.text
        elif chunk.position == previous + 1:
            text = join_overlapping(text, chunk.text)
        else:
            text = f"{text}{GAP}{chunk.text}"
        previous = chunk.position
    return text


def join_overlapping(first: str, second: str) -> str:
    """``first`` then ``second`` without the longest run of whole words that ends ``first``
    and starts ``second`` (the chunks' overlap: chunks end on a token, maybe before a comma);
    a space between them if none."""
    for start in range(len(first)):
        word_start = not first[start].isspace() and (start == 0 or first[start - 1].isspace())
        shared = len(first) - start
        whole = not second[shared : shared + 1].isalnum()  # "cost" of "cost," too
        if word_start and whole and second.startswith(first[start:]):
            return first[:start] + second
    return f"{first} {second}"
