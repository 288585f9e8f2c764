"""The store's engine interface: exactly the Qdrant methods :class:`QdrantStore` calls,
typed by what the store reads of their results. qdrant-client's ``QdrantClient`` (a server)
and :class:`~llm_twin_sdk.rag.edge.EdgeClient` (Qdrant Edge in-process) implement it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias
from uuid import UUID

if TYPE_CHECKING:
    from qdrant_client.http import models

__all__ = [
    "CollectionInfo",
    "Point",
    "PointId",
    "QdrantEngine",
    "QueryResponse",
    "ReadConsistency",
    "ScoredPoint",
]

PointId: TypeAlias = int | str | UUID
ReadConsistency: TypeAlias = "int | models.ReadConsistencyType | None"
"""How many replicas a read asks (``None``: the server's default)."""


class Point(Protocol):
    """A point as retrieved by id: qdrant-client's ``Record``."""

    @property
    def id(self) -> PointId: ...
    @property
    def payload(self) -> dict[str, Any] | None: ...


class ScoredPoint(Point, Protocol):
    """A point found by a search: qdrant-client's ``ScoredPoint``."""

    @property
    def score(self) -> float: ...


class QueryResponse(Protocol):
    """The answer to one search of a batch: qdrant-client's ``QueryResponse``."""

    @property
    def points(self) -> Sequence[ScoredPoint]: ...


class _Config(Protocol):
    @property
    def params(self) -> models.CollectionParams: ...


class CollectionInfo(Protocol):
    """What the store reads of a collection's description: ``config.params`` (its vectors)."""

    @property
    def config(self) -> _Config: ...


class QdrantEngine(Protocol):
    """The Qdrant operations :class:`~llm_twin_sdk.rag.store.QdrantStore` uses (``consistency``
    and ``ordering``: :mod:`.cluster`; an in-process engine has one replica and ignores them)."""

    def collection_exists(self, collection_name: str, /) -> bool: ...
    def get_collection(self, collection_name: str, /) -> CollectionInfo: ...
    def create_collection(
        self,
        collection_name: str,
        /,
        *,
        vectors_config: models.VectorParams | Mapping[str, models.VectorParams],
        sparse_vectors_config: Mapping[str, models.SparseVectorParams] | None = ...,
        shard_number: int | None = ...,
        replication_factor: int | None = ...,
        write_consistency_factor: int | None = ...,
        on_disk_payload: bool | None = ...,
    ) -> object: ...
    def create_payload_index(
        self, collection_name: str, field_name: str, /, *, field_schema: models.PayloadSchemaType
    ) -> object: ...
    def delete_collection(self, collection_name: str, /) -> object: ...
    def upsert(
        self,
        collection_name: str,
        /,
        *,
        points: Sequence[models.PointStruct],
        wait: bool = ...,
        ordering: models.WriteOrdering | None = ...,
    ) -> object: ...
    def retrieve(
        self,
        collection_name: str,
        /,
        *,
        ids: Sequence[PointId],
        with_payload: bool | list[str],
        with_vectors: bool,
        consistency: ReadConsistency = ...,
    ) -> Sequence[Point]: ...
    def delete(
        self,
        collection_name: str,
        /,
        *,
        points_selector: models.PointIdsList,
        wait: bool = ...,
        ordering: models.WriteOrdering | None = ...,
    ) -> object: ...
    def query_batch_points(
        self,
        collection_name: str,
        /,
        *,
        requests: Sequence[models.QueryRequest],
        consistency: ReadConsistency = ...,
    ) -> Sequence[QueryResponse]: ...
    def scroll(
        self,
        collection_name: str,
        /,
        *,
        scroll_filter: models.Filter | None = ...,
        limit: int = ...,
        offset: PointId | None = ...,
        with_payload: bool | list[str] = ...,
        with_vectors: bool = ...,
        consistency: ReadConsistency = ...,
    ) -> tuple[Sequence[Point], PointId | None]: ...
    def count(
        self,
        collection_name: str,
        /,
        *,
        count_filter: models.Filter | None = ...,
        exact: bool = ...,
    ) -> models.CountResult: ...
    def facet(
        self,
        collection_name: str,
        /,
        *,
        key: str,
        limit: int = ...,
        exact: bool = ...,
        consistency: ReadConsistency = ...,
    ) -> models.FacetResponse: ...
    def cluster_status(self) -> models.ClusterStatusOneOf | models.ClusterStatusOneOf1: ...
    def close(self) -> None: ...
