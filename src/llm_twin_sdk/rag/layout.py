"""The layout of a collection of llm-twin-sdk, and checking an existing one: a named dense
vector (cosine) and a sparse ``bm25`` vector with Qdrant's IDF modifier (:mod:`.points`).
Also which Qdrant server failures are worth retrying."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import CollectionMismatchError
from .cluster import QdrantClusterSettings, check_collection
from .points import DENSE_VECTOR, FORMER_LEXICAL_VECTOR, LEXICAL_VECTOR

if TYPE_CHECKING:
    from qdrant_client import models

    from .engine import QdrantEngine

__all__ = [
    "checked_dense_size",
    "create_collection",
    "existing_dense_size",
    "is_transient",
    "layout_of",
    "reingest_message",
]

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def layout_of(
    dimension: int, cluster: QdrantClusterSettings | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The vectors and sparse vectors config of a new collection of ``dimension`` (the dense
    vector on disk and quantized as ``cluster`` says)."""
    from qdrant_client import models

    params = models.VectorParams(size=dimension, distance=models.Distance.COSINE)
    dense = {DENSE_VECTOR: cluster.dense_params(params) if cluster else params}
    sparse = {LEXICAL_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}
    return dense, sparse


def create_collection(
    engine: QdrantEngine, name: str, dimension: int, cluster: QdrantClusterSettings, where: str
) -> None:
    """Create collection ``name`` with the layout of ``dimension`` and the ``cluster``
    settings unless it exists; an existing one (or one another store made meanwhile) is
    checked (:func:`existing_dense_size`). ``where`` names the store in errors."""
    if not engine.collection_exists(name):
        try:
            dense, sparse = layout_of(dimension, cluster)
            engine.create_collection(
                name,
                vectors_config=dense,
                sparse_vectors_config=sparse,
                **cluster.create_options(),
            )
            return
        except Exception as exc:
            if is_transient(exc) or not engine.collection_exists(name):
                raise
            # another store on the same engine (or server) made it meanwhile: check it
    existing_dense_size(engine, name, cluster, where, dimension)


def existing_dense_size(
    engine: QdrantEngine,
    name: str,
    cluster: QdrantClusterSettings,
    where: str,
    dimension: int | None = None,
) -> int:
    """The dense size of the existing collection ``name``, after checking its layout (and
    ``dimension``, if given) and its ``cluster`` settings (:func:`.cluster.check_collection`)."""
    info = engine.get_collection(name)
    label = f"{name!r} ({where})"
    size = checked_dense_size(info.config.params, label, dimension)
    check_collection(cluster, info, label)
    return size


def checked_dense_size(
    params: models.CollectionParams, collection: str, dimension: int | None = None
) -> int:
    """The dense size of an existing collection (``collection`` names it in errors) whose
    ``params`` are checked: the layout of llm-twin-sdk and, if given, ``dimension``;
    otherwise :class:`CollectionMismatchError` saying what to do."""
    from qdrant_client import models

    dense = params.vectors.get(DENSE_VECTOR) if isinstance(params.vectors, dict) else None
    sparse = (params.sparse_vectors or {}).get(LEXICAL_VECTOR)
    if dense is not None and sparse is None and written_before_bm25(params.sparse_vectors):
        raise CollectionMismatchError(reingest_message(collection))
    if dense is None or sparse is None or sparse.modifier != models.Modifier.IDF:
        found = (
            "was written by an older llm-twin-sdk with a single unnamed vector"
            if isinstance(params.vectors, models.VectorParams)
            else "does not have the layout of llm-twin-sdk"
        )
        raise CollectionMismatchError(
            f"collection {collection} {found}; it needs a named dense vector "
            f"{DENSE_VECTOR!r} and a sparse vector {LEXICAL_VECTOR!r} with the IDF modifier. "
            "Ingest your documents again into a new collection (another collection name), "
            "or delete this one first."
        )
    if dimension is not None and dense.size != dimension:
        raise CollectionMismatchError(
            f"collection {collection} holds vectors of size {dense.size}, but the embedding "
            f"model makes {dimension}. Use another collection name, or delete this collection "
            "and ingest again."
        )
    return int(dense.size)


def written_before_bm25(sparse_vectors: Mapping[str, models.SparseVectorParams] | None) -> bool:
    """Whether a collection's sparse vectors are those of llm-twin-sdk before Qdrant's BM25."""
    from qdrant_client import models

    former = (sparse_vectors or {}).get(FORMER_LEXICAL_VECTOR)
    return former is not None and former.modifier == models.Modifier.IDF


def reingest_message(collection: str) -> str:
    """What to do with a collection written before Qdrant's BM25 (:func:`written_before_bm25`)."""
    return (
        f"collection {collection} was written by an earlier llm-twin-sdk's lexical encoder "
        f"(sparse vector {FORMER_LEXICAL_VECTOR!r}); its lexical vectors cannot be searched "
        "with Qdrant's BM25, which this version uses (other terms, other indices). Re-ingest: "
        "delete the collection(s) — `store.delete_collections()`, or remove the Qdrant folder — "
        "and ingest your documents again."
    )


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: a connection error, a timeout, a 429 or a 5xx from a Qdrant server
    (not an answer of the wrong shape, which qdrant-client also wraps)."""
    import httpx
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, ResourceExhaustedResponse):  # a 429 with Retry-After
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_STATUS
    if isinstance(exc, ResponseHandlingException):
        exc = exc.source
    return isinstance(exc, (httpx.TransportError, TimeoutError, ConnectionError))
