"""The embedded engine of ``QdrantStore.local`` / ``memory``: Qdrant Edge (Qdrant's Rust engine,
in-process) behind qdrant-client's method names (:class:`~llm_twin_sdk.rag.engine.QdrantEngine`).
A folder holds per collection ``<collection>/shard`` and ``<collection>/collection.json`` (its
vector layout), and the lock file of the process that opened it (:mod:`.folders`: one opened
folder per process, shared by every client on it).
"""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import VectorStoreError, VectorStoreLockedError
from . import folders
from .folders import LOCK_FILE
from .points import DENSE_VECTOR, LEXICAL_VECTOR

if TYPE_CHECKING:
    import qdrant_edge
    from qdrant_client.http import models

    from .engine import ReadConsistency
    from .points import PointRows

__all__ = ["LOCK_FILE", "CollectionLayout", "EdgeClient", "Found", "Hit"]

LAYOUT_FILE = "collection.json"
_LAYOUT = {"vectors", "sparse_vectors", "on_disk_payload"}  # what LAYOUT_FILE keeps of params


@dataclass(slots=True)
class Hit:
    """A point found or retrieved: what qdrant-client's ``ScoredPoint`` / ``Record`` carry
    that the store reads, without pydantic validation (hundreds per search)."""

    id: int | str
    payload: dict[str, Any] | None
    score: float = 0.0


@dataclass(slots=True)
class Found:
    """The points one search of a batch found (qdrant-client's ``QueryResponse``)."""

    points: list[Hit]


@dataclass(frozen=True)
class CollectionLayout:
    """A collection's vectors, read as a server's ``CollectionInfo``: ``info.config.params``."""

    params: models.CollectionParams

    @property
    def config(self) -> CollectionLayout:
        return self


class EdgeClient:
    """Collections of Qdrant Edge shards in one folder (``path``, created if missing; ``None``:
    a temporary one removed by :meth:`close`), with qdrant-client's method names.

    Every client on one folder in this process shares one opened folder (:mod:`.folders`):
    what one writes, the others read. :meth:`close` (or garbage collection) gives back this
    client's handle; the last one closes the folder and releases its lock.

    Raises:
        VectorStoreLockedError: another process holds the folder.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        import qdrant_edge

        self._edge = qdrant_edge
        self._open = folders.acquire(None if path is None else Path(path))
        self.folder = self._open.path
        self._release = weakref.finalize(self, folders.release, self._open)

    @property
    def closed(self) -> bool:
        """Whether this client was closed (its folder may stay open for other clients)."""
        return not self._release.alive

    # -- collections -------------------------------------------------------------------------

    def collection_exists(self, name: str) -> bool:
        self._check_open()
        return (self.folder / name / LAYOUT_FILE).is_file()

    def create_collection(
        self,
        name: str,
        vectors_config: models.VectorParams | Mapping[str, models.VectorParams],
        sparse_vectors_config: Mapping[str, models.SparseVectorParams] | None = None,
        *,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
        on_disk_payload: bool | None = None,
    ) -> bool:
        """A collection of one shard (on-disk storage and quantization as the vectors' params
        say); more shards or replicas raise :class:`VectorStoreError` (one process)."""
        from qdrant_client.http import models

        distributed = (shard_number, replication_factor, write_consistency_factor)
        if any((value or 1) > 1 for value in distributed):
            raise VectorStoreError("embedded Qdrant holds one shard, without replicas")
        edge = self._edge
        if isinstance(vectors_config, Mapping):
            vectors: Any = dict(vectors_config)
            dense: Any = {key: _edge_vector(edge, p) for key, p in vectors.items()}
        else:
            vectors, dense = vectors_config, _edge_vector(edge, vectors_config)
        sparse_config = dict(sparse_vectors_config or {})
        sparse = {
            key: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf if p.modifier else None)
            for key, p in sparse_config.items()
        }
        layout = models.CollectionParams(
            vectors=vectors, sparse_vectors=sparse_config or None, on_disk_payload=on_disk_payload
        )
        with self._guard():
            folder = self.folder / name
            if (folder / LAYOUT_FILE).is_file():
                raise VectorStoreError(f"collection {name!r} already exists")
            shutil.rmtree(folder, ignore_errors=True)  # a half-created collection
            config = edge.EdgeConfig(
                vectors=dense, sparse_vectors=sparse or None, on_disk_payload=on_disk_payload
            )
            self._open.shards[name] = edge.EdgeShard.create(str(folder / "shard"), config)
            tmp = folder / f"{LAYOUT_FILE}.tmp"  # written whole, then renamed: never half-read
            tmp.write_text(layout.model_dump_json(include=_LAYOUT, exclude_none=True), "utf-8")
            os.replace(tmp, folder / LAYOUT_FILE)
        return True

    def get_collection(self, name: str) -> CollectionLayout:
        """The collection's vector layout, read as ``CollectionInfo.config.params``."""
        from qdrant_client.http import models

        self._check_open()
        text = (self.folder / name / LAYOUT_FILE).read_text(encoding="utf-8")
        params = models.CollectionParams.model_validate_json(text)
        if isinstance(params.vectors, dict) and set(params.vectors) == {""}:
            params.vectors = params.vectors[""]  # one unnamed vector, as older folders write it
        return CollectionLayout(params)

    def delete_collection(self, name: str) -> bool:
        with self._guard():
            shard = self._open.shards.pop(name, None)
            if shard is not None:
                shard.close()
            existed = (self.folder / name).exists()
            shutil.rmtree(self.folder / name, ignore_errors=True)
        return existed

    def _check_open(self) -> None:
        if self.closed or self._open.closed:
            raise VectorStoreError(f"this store's Qdrant folder {str(self.folder)!r} is closed")
        if self._open.inherited():
            raise VectorStoreLockedError(
                f"Qdrant folder {str(self.folder)!r} was opened by process {self._open.pid}, "
                "which this process was forked from: an embedded folder serves one process. "
                "Open the store in each worker after it starts, or, for several workers, use "
                "a Qdrant server (LLM_TWIN_QDRANT_URL).",
                path=self.folder,
                pid=self._open.pid,
            )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Hold the folder's lock while this client is open (one call at a time per folder)."""
        with self._open.guard:
            self._check_open()
            yield

    @contextmanager
    def _shard(self, name: str) -> Iterator[qdrant_edge.EdgeShard]:
        """The shard of collection ``name`` (loaded on first use), under the folder's lock."""
        with self._guard():
            shard = self._open.shards.get(name)
            if shard is None:
                if not self.collection_exists(name):
                    raise VectorStoreError(f"collection {name!r} does not exist")
                shard = self._edge.EdgeShard.load(str(self.folder / name / "shard"))
                self._open.shards[name] = shard
            yield shard

    # -- points ------------------------------------------------------------------------------

    def create_payload_index(self, name: str, field_name: str, field_schema: Any = None) -> None:
        keyword = self._edge.PayloadSchemaType.Keyword
        with self._shard(name) as shard:
            shard.update(self._edge.UpdateOperation.create_field_index(field_name, keyword))

    def upsert(
        self,
        name: str,
        points: Sequence[models.PointStruct],
        wait: bool = True,
        ordering: models.WriteOrdering | None = None,
    ) -> None:
        edge = self._edge
        converted = [
            edge.Point(_point_id(p.id), _edge_vectors(edge, p.vector), p.payload) for p in points
        ]
        with self._shard(name) as shard:
            shard.update(edge.UpdateOperation.upsert_points(converted))

    def upsert_rows(self, name: str, rows: PointRows) -> None:
        """:meth:`upsert` of :class:`~llm_twin_sdk.rag.points.PointRows`, built straight
        into Qdrant Edge's points (no qdrant-client model per point): what ingestion writes."""
        edge = self._edge
        point, sparse = edge.Point, edge.SparseVector
        converted = []
        for point_id, dense, lexical, payload in zip(
            rows.ids, rows.dense, rows.sparse, rows.payloads, strict=True
        ):
            named: dict[str, Any] = {DENSE_VECTOR: dense}
            if lexical.indices:  # a text without terms has no lexical vector
                named[LEXICAL_VECTOR] = sparse(list(lexical.indices), list(lexical.values))
            converted.append(point(point_id, named, payload))
        with self._shard(name) as shard:
            shard.update(edge.UpdateOperation.upsert_points(converted))

    def retrieve(
        self,
        name: str,
        ids: Sequence[Any],
        with_payload: bool | Sequence[str] = True,
        with_vectors: bool = False,
        consistency: ReadConsistency = None,
    ) -> list[Hit]:
        payload = list(with_payload) if not isinstance(with_payload, bool) else with_payload
        with self._shard(name) as shard:
            records = shard.retrieve([_point_id(i) for i in ids], payload, with_vectors)
        return [Hit(_point_id(r.id), r.payload) for r in records]

    def scroll(
        self,
        name: str,
        *,
        scroll_filter: models.Filter | None = None,
        limit: int = 10,
        offset: Any = None,
        with_payload: bool | Sequence[str] = True,
        with_vectors: bool = False,
        consistency: ReadConsistency = None,
    ) -> tuple[list[Hit], int | str | None]:
        """A page of ``limit`` points from ``offset`` (a point id; ``None``: the first), in
        id order, and the id that starts the next page (``None`` after the last)."""
        edge = self._edge
        payload = list(with_payload) if not isinstance(with_payload, bool) else with_payload
        request = edge.ScrollRequest(
            offset=None if offset is None else _point_id(offset),
            limit=limit,
            filter=_edge_filter(edge, scroll_filter),
            with_payload=payload,
            with_vector=with_vectors,
        )
        with self._shard(name) as shard:
            records, following = shard.scroll(request)
        hits = [Hit(_point_id(r.id), r.payload) for r in records]
        return hits, None if following is None else _point_id(following)

    def delete(
        self,
        name: str,
        points_selector: models.PointIdsList,
        wait: bool = True,
        ordering: models.WriteOrdering | None = None,
    ) -> None:
        delete = self._edge.UpdateOperation.delete_points
        with self._shard(name) as shard:
            shard.update(delete([_point_id(i) for i in points_selector.points]))

    def count(
        self, name: str, count_filter: models.Filter | None = None, exact: bool = True
    ) -> models.CountResult:
        from qdrant_client.http import models

        request = self._edge.CountRequest(exact, _edge_filter(self._edge, count_filter))
        with self._shard(name) as shard:
            return models.CountResult(count=shard.count(request))

    def facet(
        self,
        name: str,
        key: str,
        limit: int = 10,
        exact: bool = False,
        consistency: ReadConsistency = None,
    ) -> models.FacetResponse:
        from qdrant_client.http import models

        with self._shard(name) as shard:
            response = shard.facet(self._edge.FacetRequest(key, limit, exact))
        return models.FacetResponse(
            hits=[models.FacetValueHit(value=hit.value, count=hit.count) for hit in response.hits]
        )

    def query_batch_points(
        self,
        name: str,
        requests: Sequence[models.QueryRequest],
        consistency: ReadConsistency = None,
    ) -> list[Found]:
        """Every request in one planned batch (Qdrant Edge scores them together); each
        response's ``points`` are :class:`Hit` objects (plain attributes, no validation)."""
        edge = self._edge
        batch = edge.QueryBatchRequest([_edge_request(edge, r) for r in requests])
        with self._shard(name) as shard:
            found = shard.query_batch(batch)
        return [
            Found([Hit(_point_id(p.id), p.payload, p.score) for p in points]) for points in found
        ]

    def cluster_status(self) -> models.ClusterStatusOneOf:
        """One node in this process: Qdrant's answer of a server without cluster mode."""
        from qdrant_client.http import models

        return models.ClusterStatusOneOf(status="disabled")

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Give back this client's handle on the folder; the last one flushes and closes the
        shards and releases the folder (a temporary one is removed). Safe to call twice."""
        self._release()


def _edge_vector(edge: Any, params: models.VectorParams) -> Any:
    distance = {"Cosine": edge.Distance.Cosine, "Dot": edge.Distance.Dot}.get(
        params.distance.value, edge.Distance.Euclid
    )
    return edge.EdgeVectorParams(
        size=params.size,
        distance=distance,
        on_disk=params.on_disk,
        quantization_config=_edge_quantization(edge, params.quantization_config),
    )


def _edge_quantization(edge: Any, config: object) -> Any:
    """qdrant-client's scalar, binary or product quantization as Qdrant Edge takes it."""
    if config is None:
        return None
    scalar = getattr(config, "scalar", None)
    if scalar is not None:
        return edge.ScalarQuantizationConfig(
            edge.ScalarType.Int8, quantile=scalar.quantile, always_ram=scalar.always_ram
        )
    binary = getattr(config, "binary", None)
    if binary is not None:
        return edge.BinaryQuantizationConfig(always_ram=binary.always_ram)
    product = getattr(config, "product", None)
    if product is not None:
        ratio = getattr(edge.CompressionRatio, product.compression.value.upper())
        return edge.ProductQuantizationConfig(ratio, always_ram=product.always_ram)
    raise VectorStoreError(f"quantization not supported in embedded mode: {config!r}")


def _point_id(point_id: Any) -> int | str:
    """A point id as both sides spell it: an int, or a string (uuids as text)."""
    return point_id if isinstance(point_id, int) else str(point_id)


def _edge_vectors(edge: Any, vector: Any) -> Any:
    """A point's vector(s) (named ones: a dict) or a query's vector, as Qdrant Edge takes them."""
    if isinstance(vector, dict):
        return {key: _edge_vectors(edge, value) for key, value in vector.items()}
    if hasattr(vector, "indices"):  # models.SparseVector
        return edge.SparseVector(list(vector.indices), list(vector.values))
    return list(vector)


def _edge_filter(edge: Any, condition: models.Filter | None) -> Any:
    if condition is None:
        return None
    from qdrant_client.http import models

    must: list[Any] = []
    conditions = condition.must if isinstance(condition.must, list) else [condition.must]
    for field in conditions if condition.must is not None else []:
        if not isinstance(field, models.FieldCondition):
            raise VectorStoreError(f"filter condition not supported in embedded mode: {field!r}")
        match = field.match
        if isinstance(match, models.MatchValue):
            must.append(edge.FieldCondition(field.key, match=edge.MatchValue(match.value)))
        elif isinstance(match, models.MatchAny):
            must.append(edge.FieldCondition(field.key, match=edge.MatchAny(list(match.any))))
        else:
            raise VectorStoreError(f"match not supported in embedded mode: {match!r}")
    return edge.Filter(must=must)


def _edge_request(edge: Any, request: models.QueryRequest) -> Any:
    query = edge.Query.Nearest(_edge_vectors(edge, request.query), using=request.using)
    return edge.QueryRequest(
        limit=request.limit or 10,
        query=query,
        filter=_edge_filter(edge, request.filter),
        with_payload=bool(request.with_payload),
        with_vector=False,
    )
