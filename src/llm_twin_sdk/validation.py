"""Checks on call arguments shared by several modules; each raises a typed SDK error."""

from __future__ import annotations

from .errors import EmptyQueryError, InvalidParameterError

__all__ = ["check_k", "check_query"]


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
