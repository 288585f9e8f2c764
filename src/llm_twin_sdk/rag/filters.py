"""Metadata filters for retrieval: restrict results to an author, platform, kind or document.

A value is one string or a list of strings (any of them matches); several fields must all
match; filters are checked before any work. Example::

    twin.ask("Which posts cover RAG?", filters={"author": "Maya Okafor", "kind": ["post"]})
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, get_args

from ..errors import InvalidParameterError
from ..types import DocumentKind

if TYPE_CHECKING:
    from qdrant_client import models

__all__ = ["FILTER_FIELDS", "MetadataFilters", "check_filters", "string_values", "to_qdrant_filter"]

MetadataFilters: TypeAlias = Mapping[str, "str | Sequence[str]"]

FILTER_FIELDS = ("author", "platform", "kind", "document_id")
"""Payload fields that can be filtered on (the store keeps a keyword index on each)."""

_KINDS = frozenset(get_args(DocumentKind))


def check_filters(filters: MetadataFilters | None) -> dict[str, tuple[str, ...]]:
    """Validated filters as ``{field: allowed values}``; ``{}`` for none.

    Raises:
        InvalidParameterError: unknown field, a value that is not a string (or list of
            strings), an empty list, or an unknown ``kind``.
    """
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise InvalidParameterError(
            f"filters must be a mapping such as {{'author': 'Maya Okafor'}}, got "
            f"{type(filters).__name__}"
        )
    checked: dict[str, tuple[str, ...]] = {}
    for field, value in filters.items():
        if field not in FILTER_FIELDS:
            raise InvalidParameterError(
                f"cannot filter on {field!r}; filterable fields: {', '.join(FILTER_FIELDS)}"
            )
        values = string_values(value)
        if not values or not all(values):
            raise InvalidParameterError(
                f"filter {field!r} needs a non-empty string or a non-empty list of them, "
                f"got {value!r}"
            )
        if field == "kind" and not set(values) <= _KINDS:
            raise InvalidParameterError(
                f"filter 'kind' accepts {', '.join(sorted(_KINDS))}; got {list(values)!r}"
            )
        checked[field] = values
    return checked


def string_values(value: object) -> tuple[str, ...] | None:
    """``value``, one string or a collection of strings, as a tuple; ``None`` if it is not."""
    values = (value,) if isinstance(value, str) else value
    if isinstance(values, (bytes, Mapping)) or not isinstance(values, Collection):
        return None
    return tuple(values) if all(isinstance(v, str) for v in values) else None


def to_qdrant_filter(filters: Mapping[str, Sequence[str]]) -> models.Filter | None:
    """The Qdrant filter for validated filters (``None`` when there are none)."""
    if not filters:
        return None
    from qdrant_client import models

    conditions: list[Any] = [
        models.FieldCondition(
            key=field,
            match=models.MatchValue(value=values[0])
            if len(values) == 1
            else models.MatchAny(any=list(values)),
        )
        for field, values in filters.items()
    ]
    return models.Filter(must=conditions)
