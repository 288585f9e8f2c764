"""Re-exports :mod:`llm_twin_sdk.collection_routing`, which moved below the ``rag`` layer
so that settings can check collections without importing ``rag``."""

from ..collection_routing import (
    DEFAULT_COLLECTIONS,
    KINDLESS,
    KINDS,
    CollectionsSpec,
    resolve_collections,
)

__all__ = ["DEFAULT_COLLECTIONS", "KINDLESS", "KINDS", "CollectionsSpec", "resolve_collections"]
