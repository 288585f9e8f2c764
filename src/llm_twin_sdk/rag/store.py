"""Qdrant vector store: embedded (Qdrant Edge) on a folder or in a temporary one, or a server.

A collection per document kind, points of two vectors (:mod:`.points`), one batched search per
collection fused by :mod:`.fusion` (docs/architecture.md, "Ingestion", "Retrieve")::

    store = QdrantStore.local("./qdrant")           # embedded, on a folder (the default footing)
    store = QdrantStore.server("http://localhost:6333", api_key="...")
    store = QdrantStore.server(url, cluster=QdrantClusterSettings(replication_factor=2))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

from ..collection_routing import DEFAULT_COLLECTIONS, KINDLESS, CollectionsSpec, resolve_collections
from ..errors import (
    InvalidParameterError,
    VectorStoreError,
    VectorStoreUnavailableError,
)
from ..retry import NO_RETRY, RetryPolicy
from ..types import Chunk, DocumentKind
from ..validation import check_k
from . import document_pages
from .chunking import document_key
from .cluster import QdrantClusterSettings, check_capacity, node_count
from .documents import DeleteReport, StoredDocument, check_document_ids, first_chunks
from .engine import Point, PointId, QdrantEngine, ScoredPoint
from .filters import FILTER_FIELDS, MetadataFilters, check_filters, to_qdrant_filter
from .fusion import (
    Fusion,
    QueryVectors,
    SearchMode,
    check_search_mode,
    fuse,
    fusion_depth,
    searches_of,
)
from .grouping import neighbour_ids
from .layout import create_collection, existing_dense_size, is_transient
from .points import point_rows, to_chunk, upsert_rows
from .sparse import LexicalEncoder, SparseVector
from .versions import StoredVersions

if TYPE_CHECKING:
    from qdrant_client import models

__all__ = [
    "DEFAULT_COLLECTIONS",
    "DeleteReport",
    "QdrantStore",
    "QueryVectors",
    "SearchMode",
    "StoredDocument",
    "StoredVersions",
]

T = TypeVar("T")
P = ParamSpec("P")

UPSERT_BATCH = 256
MAX_DOCUMENT_DEPTH = 2000
"""The deepest a search for distinct documents looks (chunks per list)."""
SERVER_RETRY_POLICY = RetryPolicy(
    max_attempts=4, initial_wait_s=0.25, max_wait_s=4.0, deadline_s=30.0
)
"""Retries of Qdrant server calls (connection errors, timeouts, 429, 5xx)."""


class QdrantStore:
    """Chunks and their vectors in Qdrant collections: dense (cosine) and lexical (sparse).

    Args:
        client: a ready engine: a ``QdrantClient`` or an ``EdgeClient`` (or use the
            constructors :meth:`local`, :meth:`memory` and :meth:`server`).
        collections: ``None`` (``posts``, ``articles``, ``repositories``), one name for every
            kind, or a mapping kind -> name (:mod:`~llm_twin_sdk.collection_routing`).
        where: how errors name the store's location.
        url: a server's URL.
        payload_indexes: keyword indexes on the filter fields (for filters and self-query).
        retry: retries of transient failures (default: none in-process, a short backoff
            for servers); a read a failing replica broke is retried like them.
        cluster: shards, replicas, read / write consistency, on-disk storage and
            quantization (:class:`~.cluster.QdrantClusterSettings`): applied when a
            collection is created, checked against an existing one and the server's nodes.

    A collection is created on first write with the embedder's vector size; an existing
    collection with another size or layout raises
    :class:`~llm_twin_sdk.errors.CollectionMismatchError`.
    """

    def __init__(
        self,
        client: QdrantEngine,
        collections: CollectionsSpec = None,
        *,
        where: str = "",
        payload_indexes: bool = True,
        retry: RetryPolicy | None = None,
        url: str | None = None,
        cluster: QdrantClusterSettings | None = None,
    ) -> None:
        self._client = client
        self.cluster = cluster or QdrantClusterSettings()
        self._consistency = self.cluster.consistency()
        self._ordering = self.cluster.ordering()
        self._nodes_checked = False
        self.routes: dict[DocumentKind, str] = resolve_collections(collections)
        """Collection of each document kind."""
        self.collections: tuple[str, ...] = tuple(dict.fromkeys(self.routes.values()))
        """Every collection of this store, in configuration order."""
        self._payload_indexes = payload_indexes
        self.where = where or "the given Qdrant client"
        self.url = url
        self.retry = retry or (SERVER_RETRY_POLICY if url else NO_RETRY)
        self._ready: dict[str, int] = {}
        self._lock = threading.Lock()
        self.lexical_encoder = LexicalEncoder()
        """Computes chunks' lexical vectors when :meth:`upsert` is not given them."""

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def local(
        cls,
        path: str | Path,
        collections: CollectionsSpec = None,
        *,
        cluster: QdrantClusterSettings | None = None,
    ) -> QdrantStore:
        """Embedded Qdrant (Qdrant Edge, in-process) on a folder, created if missing. Every
        store on one folder in this process shares one engine (the folder closes with the last
        of them); a folder another process holds raises
        :class:`~llm_twin_sdk.errors.VectorStoreLockedError` naming that process (several
        processes share a Qdrant server: :meth:`server`)."""
        return cls._embedded(Path(path).expanduser(), collections, cluster)

    @classmethod
    def memory(
        cls, collections: CollectionsSpec = None, *, cluster: QdrantClusterSettings | None = None
    ) -> QdrantStore:
        """Embedded Qdrant on a temporary folder removed by :meth:`close`: nothing persists.
        For tests and throwaway runs."""
        return cls._embedded(None, collections, cluster)

    @classmethod
    def _embedded(
        cls,
        folder: Path | None,
        collections: CollectionsSpec,
        cluster: QdrantClusterSettings | None,
    ) -> QdrantStore:
        from .edge import EdgeClient

        where = "memory" if folder is None else f"local folder {str(folder)!r}"
        if cluster is not None:  # one shard, one node: checked before the folder is opened
            check_capacity(cluster, 1, where, embedded=True)
        try:
            client = EdgeClient(folder)
        except VectorStoreError:
            raise
        except Exception as exc:  # the folder cannot be created or opened
            raise VectorStoreError(
                f"cannot create or open the Qdrant folder ({where}): {exc}"
            ) from exc
        return cls(client, collections, where=where, cluster=cluster)

    @classmethod
    def server(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        collections: CollectionsSpec = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        cluster: QdrantClusterSettings | None = None,
    ) -> QdrantStore:
        """A Qdrant server, cluster or Qdrant Cloud at ``url`` (``api_key`` for Cloud). Calls
        are retried on connection errors, timeouts, 429 and 5xx (``retry``, default
        :data:`SERVER_RETRY_POLICY`); a server still unreachable then raises
        :class:`VectorStoreUnavailableError` naming ``url``. ``cluster``: see the class."""
        from qdrant_client import QdrantClient

        try:
            client = QdrantClient(
                url=url, api_key=api_key, timeout=int(max(1, timeout_s)), check_compatibility=False
            )
        except Exception as exc:
            raise VectorStoreError(f"invalid Qdrant server URL {url!r}: {exc}") from None
        where = f"server {url!r}"
        return cls(client, collections, where=where, retry=retry, url=url, cluster=cluster)

    # -- plumbing -----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"QdrantStore(collections={list(self.collections)!r}, where={self.where})"

    def _call(
        self, action: str, collection: str | None, fn: Callable[P, T], /, *a: P.args, **k: P.kwargs
    ) -> T:
        """``fn(*a, **k)``, an engine call: transient server failures retried, errors converted."""
        try:
            return self.retry.call(partial(fn, *a, **k), is_transient)
        except VectorStoreError:
            raise
        except Exception as exc:
            target = f" on collection {collection!r}" if collection else ""
            if self.url is not None and is_transient(exc):
                raise VectorStoreUnavailableError(
                    f"Qdrant server {self.url} is unreachable or failing ({action}{target}) "
                    f"after {self.retry.max_attempts} attempts: {exc}. Check that it runs and "
                    "that LLM_TWIN_QDRANT_URL is right.",
                    url=self.url,
                ) from exc
            raise VectorStoreError(f"Qdrant {action} failed{target} ({self.where}): {exc}") from exc

    def collection_for(self, kind: DocumentKind | None) -> str:
        """The collection that holds chunks of documents of ``kind``."""
        return self.routes[kind or KINDLESS]

    def check_collections(self, names: Iterable[str] | None) -> tuple[str, ...]:
        """``names`` (default: every collection) after checking each is configured."""
        if names is None:
            return self.collections
        chosen = tuple(dict.fromkeys([names] if isinstance(names, str) else names))
        unknown = [name for name in chosen if name not in self.collections]
        if unknown or not chosen:
            raise InvalidParameterError(
                (f"unknown collection {unknown[0]!r}" if unknown else "no collection given")
                + f"; this store's collections: {', '.join(self.collections)}"
            )
        return chosen

    # -- operations ---------------------------------------------------------------------

    def ensure_collection(self, dimension: int, collection: str | None = None) -> None:
        """Create ``collection`` (default: every collection) unless it exists with this schema:
        a named ``dense`` vector of ``dimension`` (cosine) and a ``bm25`` sparse vector with
        the IDF modifier; another size or layout (such as the ``lexical`` sparse vector of
        llm-twin-sdk before Qdrant's BM25) raises
        :class:`~llm_twin_sdk.errors.CollectionMismatchError`. :attr:`cluster` settings
        the nodes cannot honour raise :class:`~llm_twin_sdk.errors.ClusterSettingsError`
        first (the server's cluster info, read once)."""
        for name in self.collections if collection is None else (collection,):
            if self._ready.get(name) != dimension:
                with self._lock:
                    self._check_nodes()
                    create = create_collection  # a retry after a lost answer finds it made
                    args = (self._client, name, dimension, self.cluster, self.where)
                    self._call("create collection", name, create, *args)
                    if self._payload_indexes:
                        self._create_indexes(name)
                    self._ready[name] = dimension

    def check_dimension(self, dimension: int, names: Iterable[str]) -> None:
        """Those of ``names`` that exist hold vectors of ``dimension`` in this SDK's layout,
        or :class:`~llm_twin_sdk.errors.CollectionMismatchError`; nothing is created."""
        for name in self._existing(names):
            if self._ready.get(name) != dimension:
                self._check_schema(name, dimension)

    def _create_indexes(self, name: str) -> None:
        """Keyword indexes on the filter fields, each call retried on its own (idempotent in
        Qdrant, so an existing collection gets the ones it lacks)."""
        from qdrant_client import models

        index = self._client.create_payload_index
        for key in FILTER_FIELDS:
            keyword = models.PayloadSchemaType.KEYWORD
            self._call("create payload index", name, index, name, key, field_schema=keyword)

    def _check_nodes(self) -> None:
        """Once, before the first collection is made: can the deployment honour
        :attr:`cluster` (replicas on distinct nodes)?"""
        if not self._nodes_checked and self.cluster.needs_nodes > 1:
            nodes = self._call("cluster info", None, node_count, self._client, self.where)
            check_capacity(self.cluster, nodes, self.where)
        self._nodes_checked = True

    def _check_schema(self, name: str, dimension: int | None = None) -> int:
        return existing_dense_size(self._client, name, self.cluster, self.where, dimension)

    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        sparse: Sequence[SparseVector] | None = None,
        *,
        fingerprints: Mapping[str, str] | None = None,
    ) -> None:
        """Write chunks with their vectors, each into its kind's collection (replacing a chunk
        with the same id). ``sparse``: their lexical vectors (default: :attr:`lexical_encoder`
        on their text); ``fingerprints``: document id -> content hash, stored for
        :meth:`StoredVersions.unchanged`."""
        if len(chunks) != len(vectors):
            raise VectorStoreError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if sparse is None:
            sparse = self.lexical_encoder.encode_documents([c.text for c in chunks])
        elif len(sparse) != len(chunks):
            raise VectorStoreError(f"{len(chunks)} chunks but {len(sparse)} sparse vectors")
        if not chunks:
            return
        grouped = point_rows(chunks, vectors, sparse, fingerprints or {}, self.collection_for)
        dimension = int(vectors.shape[1])
        for name in grouped:  # every schema checked before the first point is written
            self.ensure_collection(dimension, name)
        for name, rows in grouped.items():
            for start in range(0, len(rows), UPSERT_BATCH):
                batch = rows[start : start + UPSERT_BATCH]
                args = (self._client, name, batch, self._ordering)
                self._call("upsert", name, upsert_rows, *args)

    def stored_versions(self, chunks: Sequence[Chunk]) -> StoredVersions:
        """What the store holds of the documents of ``chunks``: their chunks at the positions
        ``chunks`` cover, in every collection, found by id (one lookup per collection)."""
        versions = StoredVersions()
        ids = StoredVersions.wanted_ids(chunks)
        fields = ["document_id", "fingerprint", "document_chunks"]
        for name in self._existing() if ids else ():
            for point in self._retrieve(name, ids, fields):
                versions.add(name, point)
        return versions

    def _retrieve(
        self, name: str, ids: Sequence[PointId], payload: bool | list[str]
    ) -> Sequence[Point]:
        retrieve = self._client.retrieve
        return self._call(
            "retrieve", name, retrieve, name, ids=ids, with_payload=payload, with_vectors=False,
            consistency=self._consistency,
        )  # fmt: skip

    def write_documents(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        sparse: Sequence[SparseVector] | None = None,
        *,
        fingerprints: Mapping[str, str] | None = None,
        previous: StoredVersions | None = None,
    ) -> None:
        """:meth:`upsert` the chunks of whole documents, replacing any earlier version of them:
        their stored chunks not in ``chunks`` (a shorter document's old tail, copies under a
        former kind) are deleted afterwards. ``previous``: :meth:`stored_versions` of these
        chunks, when the caller already has it."""
        if previous is None:
            previous = self.stored_versions(chunks)
        self.upsert(chunks, vectors, sparse, fingerprints=fingerprints)
        from qdrant_client import models

        for name, point_ids in previous.stale(chunks, self.collection_for).items():
            selector = models.PointIdsList(points=sorted(point_ids))
            self._delete(name, selector)

    def search(
        self,
        vector: npt.NDArray[np.float32] | None,
        k: int,
        *,
        sparse: SparseVector | None = None,
        mode: SearchMode = "dense",
        filters: MetadataFilters | None = None,
        collections: Iterable[str] | None = None,
    ) -> list[Chunk]:
        """The ``k`` best chunks for one query, best first, with their scores.

        ``vector`` is the query's dense embedding (``None`` in lexical mode), ``sparse`` its
        lexical vector (``LexicalEncoder.encode_query``; the lexical and hybrid modes need it).
        ``mode``: ``"dense"`` ranks by cosine similarity (score: the cosine); ``"lexical"`` by
        BM25 (score: the BM25 score, IDF applied by Qdrant); ``"hybrid"`` fuses the dense and
        lexical lists (each ``4 * k`` long, at least 20) as the default :class:`~.fusion.Fusion`
        says (score: the fused score), or keeps the dense list for a query without lexical
        terms. ``filters``: metadata every result must match (:mod:`.filters`);
        ``collections``: search only these.
        """
        return self.search_many(
            [QueryVectors(vector, sparse)], k, mode=mode, filters=filters, collections=collections
        )

    def search_many(
        self,
        queries: Sequence[QueryVectors],
        k: int,
        *,
        mode: SearchMode = "dense",
        filters: MetadataFilters | None = None,
        collections: Iterable[str] | None = None,
        fusion: Fusion | None = None,
        per_document: bool = False,
    ) -> list[Chunk]:
        """The ``k`` best chunks for several phrasings of one question, fused, best first: one
        ``query_batch_points`` request per collection, lists fused by :func:`.fusion.fuse`
        as ``fusion`` says (default :class:`.fusion.Fusion`). ``per_document``: the ``k``
        best documents instead, fused per document, each as its best chunk. A ``kind``
        filter skips the collections of other kinds.
        """
        from qdrant_client import models

        k = check_k(k)
        mode = check_search_mode(mode)
        checked = check_filters(filters)
        names = self._of_kinds(checked, self.check_collections(collections))
        searches = searches_of(queries, mode, fusion)
        depth = fusion_depth(len(searches), k, per_document=per_document)
        # In-process, payloads are read for the k winners only (a chunk's document is known
        # from its id); a server sends them with the lists (one round trip instead of one
        # more per collection).
        lazy = self.url is None
        condition = to_qdrant_filter(checked)
        while True:
            requests = [
                models.QueryRequest(
                    query=search.vector,
                    using=search.using,
                    filter=condition,
                    limit=depth,
                    with_payload=not lazy,
                )
                for search in searches
            ]
            merged, home, full = self._lists(names, requests)
            best = fuse(
                merged,
                k,
                depth,
                weights=[search.weight for search in searches],
                fusion=fusion,
                document_of=_document_of if per_document else None,
            )
            # Too few documents, and a collection had more to give: chunks crowded them out.
            if len(best) >= k or not per_document or not full or depth >= MAX_DOCUMENT_DEPTH:
                break
            depth = min(MAX_DOCUMENT_DEPTH, depth * 4)
        points = [point for point, _ in best]
        payloads = self._payloads(points, home) if lazy else {p.id: p.payload for p in points}
        return [to_chunk(p.id, payloads.get(p.id) or {}, score) for p, score in best]

    def _lists(
        self, names: Sequence[str], requests: Sequence[models.QueryRequest]
    ) -> tuple[list[list[ScoredPoint]], dict[PointId, str], bool]:
        """Each request's points, merged over the collections ``names``, every point's
        collection, and whether some collection filled a request's page (it has more)."""
        merged: list[list[ScoredPoint]] = [[] for _ in requests]
        home: dict[PointId, str] = {}  # point id -> its collection
        full = False
        for name in self._existing(names) if requests else ():
            if name not in self._ready:  # a collection this store has not written to yet
                self._ready[name] = self._call("collection lookup", name, self._check_schema, name)
            batch = self._client.query_batch_points
            read = self._consistency
            responses = self._call(
                "search", name, batch, name, requests=list(requests), consistency=read
            )
            for found, request, response in zip(merged, requests, responses, strict=True):
                found.extend(response.points)
                home.update((point.id, name) for point in response.points)
                full = full or len(response.points) >= (request.limit or 0)
        return merged, home, full

    def neighbours(self, chunks: Sequence[Chunk], radius: int = 1) -> list[Chunk]:
        """The stored chunks up to ``radius`` positions before and after each of ``chunks``
        in its document, not among ``chunks``: found by id (:func:`.grouping.neighbour_ids`),
        one lookup per collection, in the order of ``chunks`` then position. Example:
        ``store.neighbours(rag.retrieve(question, k=3))`` (positions p - 1 and p + 1 of each).
        """
        wanted = neighbour_ids(chunks, radius, self.collection_for)
        found: dict[str, Chunk] = {}
        for name in self._existing(dict.fromkeys(wanted.values())):
            ids = [point_id for point_id, home in wanted.items() if home == name]
            for point in self._retrieve(name, ids, True):
                found[str(point.id)] = to_chunk(point.id, point.payload or {}, None)
        return [found[point_id] for point_id in wanted if point_id in found]

    def _payloads(
        self, points: Sequence[ScoredPoint], home: Mapping[PointId, str]
    ) -> dict[PointId, dict[str, Any] | None]:
        """The payloads of ``points``, one lookup by id per collection they come from."""
        wanted: dict[str, list[PointId]] = {}
        for point in points:
            wanted.setdefault(home[point.id], []).append(point.id)
        return {
            r.id: r.payload for name, ids in wanted.items() for r in self._retrieve(name, ids, True)
        }

    def distinct(self, key: Literal["author", "platform"], limit: int = 1000) -> list[str]:
        """The values of ``key`` stored in any collection (most frequent first), e.g. the
        authors self-query may name."""
        counts: dict[str, int] = {}
        faceting, read = self._client.facet, self._consistency
        for name in self._existing():
            facet = self._call(
                "facet", name, faceting, name, key=key, limit=limit, exact=True, consistency=read
            )
            for hit in facet.hits:
                if isinstance(hit.value, str):
                    counts[hit.value] = counts.get(hit.value, 0) + hit.count
        return sorted(counts, key=lambda value: (-counts[value], value))[:limit]

    def _of_kinds(
        self, checked: Mapping[str, Sequence[str]], names: Sequence[str]
    ) -> tuple[str, ...]:
        """Those of ``names`` that may hold documents of the kinds a ``kind`` filter names."""
        if "kind" not in checked:
            return tuple(names)
        kinds = {name for kind, name in self.routes.items() if kind in checked["kind"]}
        return tuple(name for name in names if name in kinds)

    def count(self, *, documents: bool = False) -> int:
        """Number of chunks stored in every collection (0 before the first write); with
        ``documents=True``, the number of documents (one first chunk each)."""
        count = self._client.count
        condition = first_chunks() if documents else None
        return sum(
            self._call("count", n, count, n, count_filter=condition, exact=True).count
            for n in self._existing()
        )

    def documents(
        self, filters: MetadataFilters | None = None, *, page_size: int = 256
    ) -> Iterator[StoredDocument]:
        """Every stored document matching ``filters`` (:mod:`.filters`), collection by
        collection, read ``page_size`` at a time from their first chunks' payloads (no text,
        no vectors). ``filters`` are checked now; pages are read as the iterator advances."""
        checked = check_filters(filters)
        size = check_k(page_size, "page_size")
        condition = first_chunks(to_qdrant_filter(checked))
        names = self._of_kinds(checked, self.collections)
        return document_pages.listing(self, names, condition, size)

    def delete_documents(self, ids: str | Iterable[str]) -> DeleteReport:
        """Remove every chunk of the documents ``ids`` (one id or several), in every
        collection. Ids the store does not hold are reported (``missing``), not an error.

        Raises:
            InvalidParameterError: ``ids`` is not a string or strings (before any change).
        """
        return document_pages.delete_documents(self, check_document_ids(ids))

    def _pages(
        self, name: str, condition: models.Filter, fields: list[str], size: int
    ) -> Iterator[Sequence[Point]]:
        """The points of collection ``name`` matching ``condition``, a page at a time."""
        scroll, read = self._client.scroll, self._consistency
        offset: PointId | None = None
        while True:
            points, offset = self._call(
                "scroll", name, scroll, name, scroll_filter=condition, limit=size,
                offset=offset, with_payload=fields, with_vectors=False, consistency=read,
            )  # fmt: skip
            yield points
            if offset is None or not points:
                return

    def _delete(self, name: str, selector: models.PointIdsList) -> None:
        """Delete points, waiting for the configured write ordering (like :meth:`upsert`)."""
        delete, order = self._client.delete, self._ordering
        self._call(
            "delete", name, delete, name, points_selector=selector, wait=True, ordering=order
        )

    def delete_collections(self) -> None:
        """Remove every collection of this store and everything in them. Twice is fine."""
        for name in self.collections:
            self._call("delete collection", name, self._client.delete_collection, name)
            self._ready.pop(name, None)

    def close(self) -> None:
        """Release the client (an embedded folder closes with its last store). Safe to call
        twice."""
        self._call("close", None, self._client.close)

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _existing(self, names: Iterable[str] | None = None) -> Iterator[str]:
        """Those of ``names`` (default: every collection) that exist."""
        exists = self._client.collection_exists
        for name in self.collections if names is None else names:
            if name in self._ready or self._call("collection lookup", name, exists, name):
                yield name


def _document_of(point: ScoredPoint) -> str:
    return document_key(point.id)
