"""Qdrant vector store: embedded local mode, in memory, or a Qdrant server.

Example::

    store = QdrantStore.local("./qdrant")           # embedded, on a folder (the default footing)
    store = QdrantStore.memory()                    # for tests
    store = QdrantStore.server("http://localhost:6333", api_key="...")

Every qdrant-client error is converted into :class:`~llm_twin_sdk.errors.VectorStoreError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..errors import (
    CollectionMismatchError,
    ConfigurationError,
    VectorStoreError,
    VectorStoreLockedError,
)
from ..types import Chunk, DocumentMetadata

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = ["QdrantStore"]

T = TypeVar("T")

_METADATA_FIELDS = tuple(DocumentMetadata.model_fields)
UPSERT_BATCH = 256


class QdrantStore:
    """Chunks and their vectors in one Qdrant collection (cosine distance).

    The collection is created on first write with the embedder's vector size; an existing
    collection with another size raises :class:`CollectionMismatchError`.

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
        """Create the collection (cosine, ``dimension``) unless it exists with that size."""
        if self._ready_dimension == dimension:
            return
        from qdrant_client import models

        with self._lock, self._errors("create collection"):
            if self._client.collection_exists(self.collection):
                info = self._client.get_collection(self.collection)
                params = info.config.params.vectors
                size = getattr(params, "size", None)
                if size != dimension:
                    raise CollectionMismatchError(
                        f"collection {self.collection!r} ({self.where}) holds vectors of size "
                        f"{size}, but the embedding model makes {dimension}. Use another "
                        "collection name, or delete this collection and ingest again."
                    )
            else:
                self._client.create_collection(
                    self.collection,
                    vectors_config=models.VectorParams(
                        size=dimension, distance=models.Distance.COSINE
                    ),
                )
                if self._payload_indexes:  # local mode has none (it scans)
                    self._client.create_payload_index(
                        self.collection,
                        "document_id",
                        field_schema=models.PayloadSchemaType.KEYWORD,
                    )
            self._ready_dimension = dimension

    def upsert(self, chunks: Sequence[Chunk], vectors: npt.NDArray[np.float32]) -> None:
        """Write chunks with their vectors; a chunk with an existing id replaces it."""
        if len(chunks) != len(vectors):
            raise VectorStoreError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if not chunks:
            return
        self.ensure_collection(int(vectors.shape[1]))
        from qdrant_client import models

        with self._errors("upsert"):
            for start in range(0, len(chunks), UPSERT_BATCH):
                part = chunks[start : start + UPSERT_BATCH]
                self._client.upsert(
                    self.collection,
                    points=models.Batch(
                        ids=[c.id for c in part],
                        vectors=vectors[start : start + UPSERT_BATCH].tolist(),
                        payloads=[_payload(c) for c in part],
                    ),
                    wait=True,
                )

    def write_documents(self, chunks: Sequence[Chunk], vectors: npt.NDArray[np.float32]) -> None:
        """Store the chunks of whole documents, replacing any earlier version of them.

        Chunks of these documents that are already stored but not in ``chunks`` (the tail of
        a document that got shorter) are deleted. The lookup is one filtered scroll for all
        documents and one delete by id, whatever the number of documents.
        """
        document_ids = sorted({c.document_id for c in chunks})
        existing = self._chunk_ids_of(document_ids)
        self.upsert(chunks, vectors)
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

    def search(self, vector: npt.NDArray[np.float32], k: int) -> list[Chunk]:
        """The ``k`` chunks nearest to ``vector``, best first, with their scores."""
        if not self._exists():
            return []
        response = self._call(
            "search",
            lambda: self._client.query_points(
                self.collection, query=vector.tolist(), limit=k, with_payload=True
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
