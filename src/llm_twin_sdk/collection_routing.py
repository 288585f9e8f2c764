"""Which Qdrant collection holds which document kind (below the ``rag`` layer: settings check
``TwinSettings.collections`` as the store does). By default chunks go to ``posts``,
``articles`` and ``repositories`` by kind (no kind: with the articles)::

    QdrantStore.memory("twin")                             # one collection for every kind
    QdrantStore.memory({"repository": "code"})             # posts / articles / code
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias, get_args

from .errors import ConfigurationError
from .types import DocumentKind

__all__ = ["DEFAULT_COLLECTIONS", "KINDLESS", "KINDS", "CollectionsSpec", "resolve_collections"]

CollectionsSpec: TypeAlias = "str | Mapping[DocumentKind, str] | Mapping[str, str] | None"
"""How collections are configured: ``None``, one name, or a mapping kind -> name."""

KINDS: tuple[DocumentKind, ...] = get_args(DocumentKind)

DEFAULT_COLLECTIONS: Mapping[DocumentKind, str] = {
    "post": "posts",
    "article": "articles",
    "repository": "repositories",
}
"""Where chunks go by their document's kind, unless configured otherwise."""

KINDLESS: DocumentKind = "article"
"""Documents without a kind are stored in this kind's collection (long-form text)."""


def resolve_collections(collections: CollectionsSpec) -> dict[DocumentKind, str]:
    """The collection of each kind, from ``collections``: ``None``, one name, or a mapping
    of some kinds (the others keep their default).

    Raises:
        ConfigurationError: an unknown kind, or a name that is empty, longer than 255
            characters or holds a ``/``.
    """
    routes = dict(DEFAULT_COLLECTIONS)
    if isinstance(collections, str):
        routes = dict.fromkeys(KINDS, collections)
    elif isinstance(collections, Mapping):
        unknown = sorted(str(kind) for kind in set(collections) - set(KINDS))
        if unknown:
            raise ConfigurationError(
                f"collections maps document kinds ({', '.join(KINDS)}) to collection names; "
                f"unknown kinds: {', '.join(unknown)}"
            )
        routes.update(collections)  # type: ignore[arg-type]
    elif collections is not None:
        raise ConfigurationError(
            "collections must be a name or a mapping kind -> name, got "
            f"{type(collections).__name__}"
        )
    for name in routes.values():
        if not isinstance(name, str) or not name.strip() or len(name) > 255 or "/" in name:
            raise ConfigurationError(
                f"invalid collection name {name!r}: use 1-255 characters without '/'"
            )
    return routes
