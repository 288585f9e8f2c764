"""Qdrant vector store: embedded local mode, in memory, or a Qdrant server.

Example::

    store = QdrantStore.local("./qdrant")           # embedded, on a folder (the default footing)
    store = QdrantStore.memory()                    # for tests
    store = QdrantStore.server("http://localhost:6333", api_key="...")

Every point holds two named vectors: ``"dense"`` (the embedding, cosine) and ``"lexical"``
(a BM25-style sparse vector from :class:`~llm_twin_sdk.rag.sparse.LexicalEncoder`, with
Qdrant's IDF modifier). :meth:`QdrantStore.search` ranks by either, or fuses both with
reciprocal rank fusion inside Qdrant (``prefetch`` + ``FusionQuery(fusion=Fusion.RRF)``).

Every qdrant-client error is converted into :class:`~llm_twin_sdk.errors.VectorStoreError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt

from ..errors import (
    CollectionMismatchError,
    ConfigurationError,
    InvalidParameterError,
    VectorStoreError,
    VectorStoreLockedError,
)
from ..types import Chunk, DocumentMetadata
from .filters import FILTER_FIELDS, MetadataFilters, check_filters, to_qdrant_filter
from .sparse import LexicalEncoder, SparseVector

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = ["DENSE_VECTOR", "LEXICAL_VECTOR", "QdrantStore", "SearchMode"]

T = TypeVar("T")

SearchMode = Literal["dense", "lexical", "hybrid"]
"""``dense``: embedding similarity; ``lexical``: BM25 over terms; ``hybrid``: both, fused by RRF."""
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)

DENSE_VECTOR = "dense"
LEXICAL_VECTOR = "lexical"
_METADATA_FIELDS = tuple(DocumentMetadata.model_fields)
UPSERT_BATCH = 256
HYBRID_PREFETCH_FACTOR = 4
"""Each list fused in hybrid search holds this many times ``k`` candidates (at least 20)."""


def check_search_mode(mode: object) -> SearchMode:
    """``mode`` if it is one of :data:`SearchMode`, else :class:`InvalidParameterError`."""
    if not isinstance(mode, str) or mode not in SEARCH_MODES:
        raise InvalidParameterError(
            f"search mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}"
        )
    return mode  # type: ignore[return-value]


class QdrantStore:
    """Chunks and their vectors in one Qdrant collection: dense (cosine) and lexical (sparse).

    The collection is created on first write with the embedder's vector size; an existing
    collection with another size or layout raises :class:`CollectionMismatchError`.

    Prefer the constructors :meth:`local`, :meth:`memory` and :meth:`server`; pass a
    ready ``QdrantClient`` to the initialiser to share one.
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str = "llm_twin",
        *,
        where: str = "",
        payload_indexes: bool = True,
    ) -> None:
        if not collection.strip():
            raise ConfigurationError("collection name must not be empty")
        self._client = client
        self._payload_indexes = payload_indexes
        self.collection = collection
        self.where = where or "the given Qdrant client"
        self._ready_dimension: int | None = None
        self._lock = threading.Lock()
        self.lexical_encoder = LexicalEncoder()
        """Computes chunks' lexical vectors when :meth:`upsert` is not given them."""

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def local(cls, path: str | Path, collection: str = "llm_twin") -> QdrantStore:
        """Embedded Qdrant on a folder (created if missing). One process at a time."""
        folder = Path(path).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VectorStoreError(f"cannot create Qdrant folder {str(folder)!r}: {exc}") from exc
        from qdrant_client import QdrantClient

        try:
            client = QdrantClient(path=str(folder))
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise VectorStoreLockedError(
                    f"Qdrant folder {str(folder)!r} is already opened by another process or "
                    "client. Close that one first, point LLM_TWIN_QDRANT_PATH at another "
                    "folder, or use a Qdrant server (LLM_TWIN_QDRANT_URL) for shared access."
                ) from exc
            raise VectorStoreError(f"cannot open Qdrant folder {str(folder)!r}: {exc}") from exc
        except Exception as exc:
            raise VectorStoreError(f"cannot open Qdrant folder {str(folder)!r}: {exc}") from exc
        return cls(client, collection, where=f"local folder {str(folder)!r}", payload_indexes=False)

    @classmethod
    def memory(cls, collection: str = "llm_twin") -> QdrantStore:
        """Qdrant in memory: nothing persists. For tests and throwaway runs."""
        from qdrant_client import QdrantClient

        client = QdrantClient(location=":memory:")
        return cls(client, collection, where="memory", payload_indexes=False)

    @classmethod
    def server(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        collection: str = "llm_twin",
        timeout_s: float = 10.0,
    ) -> QdrantStore:
        """A Qdrant server or Qdrant Cloud at ``url`` (``api_key`` for Cloud)."""
        from qdrant_client import QdrantClient

        try:
            client = QdrantClient(
                url=url, api_key=api_key, timeout=int(max(1, timeout_s)), check_compatibility=False
            )
        except Exception as exc:
            raise VectorStoreError(f"invalid Qdrant server URL {url!r}: {exc}") from None
        return cls(client, collection, where=f"server {url!r}")

    # -- plumbing -----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"QdrantStore(collection={self.collection!r}, where={self.where})"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except VectorStoreError:
            raise
        except Exception as exc:
            raise VectorStoreError(
                f"Qdrant {action} failed on collection {self.collection!r} ({self.where}): {exc}"
            ) from exc

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        with self._errors(action):
            return fn()

    # -- operations ---------------------------------------------------------------------

    def ensure_collection(self, dimension: int) -> None:
        """Create the collection (named ``dense`` vector of ``dimension``, cosine, and a
        ``lexical`` sparse vector with the IDF modifier) unless it exists with that schema.

        An existing collection of another size or another layout (the single unnamed vector
        of llm-twin-sdk before hybrid search) raises :class:`CollectionMismatchError`.
        """
        if self._ready_dimension == dimension:
            return
        from qdrant_client import models

        with self._lock, self._errors("create collection"):
            if self._client.collection_exists(self.collection):
                self._check_schema(dimension)
            else:
                self._client.create_collection(
                    self.collection,
                    vectors_config={
                        DENSE_VECTOR: models.VectorParams(
                            size=dimension, distance=models.Distance.COSINE
                        )
                    },
                    sparse_vectors_config={
                        LEXICAL_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                )
                if self._payload_indexes:  # local mode has none (it scans)
                    for field in FILTER_FIELDS:
                        self._client.create_payload_index(
                            self.collection, field, field_schema=models.PayloadSchemaType.KEYWORD
                        )
            self._ready_dimension = dimension

    def _check_schema(self, dimension: int | None) -> int:
        """The dense size of the existing collection, after checking its layout."""
        from qdrant_client import models

        params = self._client.get_collection(self.collection).config.params
        dense = params.vectors.get(DENSE_VECTOR) if isinstance(params.vectors, dict) else None
        sparse = (params.sparse_vectors or {}).get(LEXICAL_VECTOR)
        modifier = sparse.modifier if sparse is not None else None
        if dense is None or sparse is None or modifier != models.Modifier.IDF:
            old = isinstance(params.vectors, models.VectorParams)
            raise CollectionMismatchError(
                f"collection {self.collection!r} ({self.where}) "
                + (
                    "was written by an older llm-twin-sdk with a single unnamed vector"
                    if old
                    else "does not have the layout of llm-twin-sdk"
                )
                + f"; it needs a named dense vector {DENSE_VECTOR!r} and a sparse vector "
                f"{LEXICAL_VECTOR!r} with the IDF modifier. Ingest your documents again into "
                "a new collection (another collection name), or delete this one first."
            )
        if dimension is not None and dense.size != dimension:
            raise CollectionMismatchError(
                f"collection {self.collection!r} ({self.where}) holds vectors of size "
                f"{dense.size}, but the embedding model makes {dimension}. Use another "
                "collection name, or delete this collection and ingest again."
            )
        return int(dense.size)

    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        sparse: Sequence[SparseVector] | None = None,
    ) -> None:
        """Write chunks with their vectors; a chunk with an existing id replaces it.

        ``sparse`` are the chunks' lexical vectors; when not given they are computed from
        the chunks' text with :attr:`lexical_encoder`.
        """
        if len(chunks) != len(vectors):
            raise VectorStoreError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if sparse is None:
            sparse = self.lexical_encoder.encode_documents([c.text for c in chunks])
        elif len(sparse) != len(chunks):
            raise VectorStoreError(f"{len(chunks)} chunks but {len(sparse)} sparse vectors")
        if not chunks:
            return
        self.ensure_collection(int(vectors.shape[1]))
        from qdrant_client import models

        with self._errors("upsert"):
            for start in range(0, len(chunks), UPSERT_BATCH):
                end = start + UPSERT_BATCH
                points = [
                    models.PointStruct(
                        id=chunk.id,
                        vector=_named_vectors(dense, lexical),
                        payload=_payload(chunk),
                    )
                    for chunk, dense, lexical in zip(
                        chunks[start:end],
                        vectors[start:end].tolist(),
                        sparse[start:end],
                        strict=True,
                    )
                ]
                self._client.upsert(self.collection, points=points, wait=True)

    def write_documents(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        sparse: Sequence[SparseVector] | None = None,
    ) -> None:
        """Store the chunks of whole documents, replacing any earlier version of them.

        ``sparse`` are the chunks' lexical vectors (computed from their text when not
        given). Chunks of these documents that are already stored but not in ``chunks``
        (the tail of a document that got shorter) are deleted. The lookup is one filtered
        scroll for all documents and one delete by id, whatever the number of documents.
        """
        document_ids = sorted({c.document_id for c in chunks})
        existing = self._chunk_ids_of(document_ids)
        self.upsert(chunks, vectors, sparse)
        stale = existing - {c.id for c in chunks}
        if stale:
            from qdrant_client import models

            selector = models.PointIdsList(points=sorted(stale))
            self._call(
                "delete",
                lambda: self._client.delete(self.collection, points_selector=selector, wait=True),
            )

    def _chunk_ids_of(self, document_ids: Sequence[str]) -> set[str]:
        if not document_ids or not self._exists():
            return set()
        from qdrant_client import models

        condition = models.Filter(
            must=[
                models.FieldCondition(
                    key="document_id", match=models.MatchAny(any=list(document_ids))
                )
            ]
        )
        ids: set[str] = set()
        offset: Any = None
        with self._errors("scroll"):
            while True:
                points, offset = self._client.scroll(
                    self.collection,
                    scroll_filter=condition,
                    limit=1024,
                    offset=offset,
                    with_payload=False,
                    with_vectors=False,
                )
                ids.update(str(p.id) for p in points)
                if offset is None:
                    return ids

    def search(
        self,
        vector: npt.NDArray[np.float32] | None,
        k: int,
        *,
        sparse: SparseVector | None = None,
        mode: SearchMode = "dense",
        filters: MetadataFilters | None = None,
    ) -> list[Chunk]:
        """The ``k`` best chunks, best first, with their scores.

        Args:
            vector: the query's dense embedding (not used, may be ``None``, in lexical mode).
            k: number of chunks.
            sparse: the query's lexical vector (``LexicalEncoder.encode_query``); needed by
                the lexical and hybrid modes.
            mode: ``"dense"`` ranks by cosine similarity (score: the cosine);
                ``"lexical"`` by BM25 (score: the BM25 score, IDF applied by Qdrant);
                ``"hybrid"`` fuses the dense and lexical lists (each ``4 * k`` long, at
                least 20) with reciprocal rank fusion in Qdrant (score: the RRF score).
                A query with no lexical terms falls back to the dense list alone.
            filters: metadata every result must match (see :mod:`~.filters`).
        """
        mode = check_search_mode(mode)
        condition = to_qdrant_filter(check_filters(filters))
        if mode != "lexical" and vector is None:
            raise InvalidParameterError(f"{mode} search needs the query's dense vector")
        if mode != "dense" and sparse is None:
            raise InvalidParameterError(f"{mode} search needs the query's sparse vector")
        if not self._exists():
            return []
        if self._ready_dimension is None:  # a collection this store has not written to yet
            with self._errors("collection lookup"):
                self._ready_dimension = self._check_schema(None)
        from qdrant_client import models

        query: Any
        prefetch: list[Any] | None = None
        using: str | None = None
        if mode == "dense":
            assert vector is not None
            query, using = vector.tolist(), DENSE_VECTOR
        elif mode == "lexical":
            assert sparse is not None
            if not sparse.indices:
                return []
            query, using = _qdrant_sparse(sparse), LEXICAL_VECTOR
        else:
            assert vector is not None
            assert sparse is not None
            depth = max(20, HYBRID_PREFETCH_FACTOR * k)
            prefetch = [
                models.Prefetch(
                    query=vector.tolist(), using=DENSE_VECTOR, limit=depth, filter=condition
                )
            ]
            if sparse.indices:
                prefetch.append(
                    models.Prefetch(
                        query=_qdrant_sparse(sparse),
                        using=LEXICAL_VECTOR,
                        limit=depth,
                        filter=condition,
                    )
                )
            query = models.FusionQuery(fusion=models.Fusion.RRF)
        response = self._call(
            "search",
            lambda: self._client.query_points(
                self.collection,
                query=query,
                using=using,
                prefetch=prefetch,
                query_filter=condition,
                limit=k,
                with_payload=True,
            ),
        )
        return [_chunk(point.id, point.payload or {}, point.score) for point in response.points]

    def count(self) -> int:
        """Number of chunks stored (0 when the collection does not exist yet)."""
        if not self._exists():
            return 0
        return self._call("count", lambda: self._client.count(self.collection, exact=True).count)

    def delete_collection(self) -> None:
        """Remove the collection and everything in it. Deleting twice is not an error."""
        self._call("delete collection", lambda: self._client.delete_collection(self.collection))
        self._ready_dimension = None

    def close(self) -> None:
        """Release the client (and a local folder's lock). Safe to call twice."""
        self._call("close", self._client.close)

    def _exists(self) -> bool:
        return self._ready_dimension is not None or self._call(
            "collection lookup", lambda: self._client.collection_exists(self.collection)
        )


def _qdrant_sparse(vector: SparseVector) -> Any:
    from qdrant_client import models

    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _named_vectors(dense: list[float], lexical: SparseVector) -> dict[str, Any]:
    named: dict[str, Any] = {DENSE_VECTOR: dense}
    if lexical.indices:  # a text without terms has no lexical vector (Qdrant: no point)
        named[LEXICAL_VECTOR] = _qdrant_sparse(lexical)
    return named


def _payload(chunk: Chunk) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "document_id": chunk.document_id,
        "position": chunk.position,
        "text": chunk.text,
    }
    payload.update(chunk.metadata.model_dump(exclude_none=True))
    return payload


def _chunk(point_id: Any, payload: dict[str, Any], score: float | None) -> Chunk:
    try:
        return Chunk(
            id=str(point_id),
            document_id=payload["document_id"],
            position=payload["position"],
            text=payload["text"],
            metadata=DocumentMetadata(**{f: payload[f] for f in _METADATA_FIELDS if f in payload}),
            score=score,
        )
    except (KeyError, ValueError) as exc:
        raise VectorStoreError(
            f"point {point_id} was not written by llm-twin-sdk (payload lacks {exc}); "
            "use a collection of its own"
        ) from exc
