"""A small Qdrant-like REST server for tests, on 127.0.0.1 (on :class:`fakes.server.FakeServer`).

It implements the REST routes ``QdrantStore`` uses, with the paths and JSON shapes of Qdrant
(``{"result": ..., "status": "ok", "time": ...}``; errors ``{"status": {"error": ...}}``):

- ``GET /collections/{name}/exists`` -> ``{"exists": bool}``
- ``GET /collections/{name}`` -> a ``CollectionInfo`` (the vectors config it was created with)
- ``PUT /collections/{name}`` (create), ``DELETE /collections/{name}`` -> ``true``/``false``
- ``PUT /collections/{name}/index`` -> an ``UpdateResult``
- ``PUT /collections/{name}/points`` (upsert), ``POST /collections/{name}/points/delete``
- ``POST /collections/{name}/points`` (retrieve by ids), ``.../points/count``,
  ``.../points/scroll`` (pages in id order), ``.../facet``
- ``POST /collections/{name}/points/query/batch``: dense (cosine) and sparse (dot product)
  queries, ``limit``, ``with_payload`` and ``must`` filters of ``match.value`` / ``match.any``.

- ``GET /cluster``: the cluster info: ``{"status": "disabled"}`` (a standalone server, the
  default) or, with ``server.peers = n``, a cluster of ``n`` peers.

A missing collection answers 404 like Qdrant. A collection keeps the parameters it was created
with (shards, replicas, write consistency, on-disk payload, the vectors' on-disk and
quantization) and ``GET /collections/{name}`` answers them. Collections can be seeded directly
with :meth:`QdrantServer.add_collection`. Every request is recorded (``server.requests``, with
its route name: ``cluster``, ``exists``, ``get_collection``, ``create_collection``,
``delete_collection``, ``create_index``, ``upsert``, ``retrieve``, ``delete``, ``count``,
``scroll``, ``facet``, ``query_batch``, its ``collection`` and its ``query``: ``wait``,
``ordering``, ``consistency``).

Faults are queued with :meth:`QdrantServer.fail` and consumed one per request, in order,
optionally by one route only:

    server.fail(Fault.http(503), Fault.http(503), route="count")   # the next two counts fail
    server.fail(Fault.drop())                                      # the next request, any route
    server.fail(Fault.slow(1.5))                                   # answer after 1.5 s
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .server import Exchange, FakeServer, Fault, Request

__all__ = [
    "DENSE_CONFIG",
    "Fault",
    "QdrantRequest",
    "QdrantServer",
    "StoredPoint",
    "collection_info",
]

DENSE_CONFIG: dict[str, Any] = {"dense": {"size": 8, "distance": "Cosine"}}
"""The vectors config of llm-twin-sdk's collections, for a dense size of 8."""
SPARSE_CONFIG: dict[str, Any] = {"bm25": {"modifier": "idf"}}
_C = r"/collections/(?P<collection>[^/]+)"


class QdrantRequest(Request):
    """A recorded request, with the collection it names."""

    @property
    def collection(self) -> str | None:
        return self.params.get("collection")


@dataclass
class StoredPoint:
    id: str | int
    payload: dict[str, Any] = field(default_factory=dict)
    vector: dict[str, Any] = field(default_factory=dict)


CREATE_PARAMS = ("shard_number", "replication_factor", "write_consistency_factor")


@dataclass
class _Collection:
    vectors: Any
    sparse_vectors: Any
    points: dict[str, StoredPoint] = field(default_factory=dict)
    indexes: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # shards, replicas, on_disk_payload
    quantization: Any = None  # the collection-level quantization_config


def collection_info(
    vectors: Any,
    sparse_vectors: Any,
    points: int,
    params: dict[str, Any] | None = None,
    quantization: Any = None,
) -> dict[str, Any]:
    """A ``CollectionInfo`` as a Qdrant 1.x server returns it (``params``: shards, replicas,
    write consistency, on-disk payload, when not Qdrant's defaults)."""
    defaults = {
        "shard_number": 1,
        "replication_factor": 1,
        "write_consistency_factor": 1,
        "on_disk_payload": True,
    }
    return {
        "status": "green",
        "optimizer_status": "ok",
        "indexed_vectors_count": 0,
        "points_count": points,
        "segments_count": 2,
        "config": {
            "params": {
                "vectors": vectors,
                **defaults,
                **(params or {}),
                "sparse_vectors": sparse_vectors,
            },
            "hnsw_config": {
                "m": 16,
                "ef_construct": 100,
                "full_scan_threshold": 10000,
                "max_indexing_threads": 0,
                "on_disk": False,
            },
            "optimizer_config": {
                "deleted_threshold": 0.2,
                "vacuum_min_vector_number": 1000,
                "default_segment_number": 0,
                "max_segment_size": None,
                "memmap_threshold": None,
                "indexing_threshold": 10000,
                "flush_interval_sec": 5,
                "max_optimization_threads": None,
            },
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": quantization,
            "strict_mode_config": {"enabled": False},
        },
        "payload_schema": {},
    }


class QdrantServer(FakeServer[QdrantRequest]):
    """A Qdrant-like REST server on 127.0.0.1 in a background thread. Use as a context manager."""

    route_table = (
        ("GET", "/cluster", "cluster"),
        ("GET", _C + "/exists", "exists"),
        ("GET", _C, "get_collection"),
        ("PUT", _C, "create_collection"),
        ("DELETE", _C, "delete_collection"),
        ("PUT", _C + "/index", "create_index"),
        ("PUT", _C + "/points", "upsert"),
        ("POST", _C + "/points", "retrieve"),
        ("POST", _C + "/points/delete", "delete"),
        ("POST", _C + "/points/count", "count"),
        ("POST", _C + "/points/scroll", "scroll"),
        ("POST", _C + "/facet", "facet"),
        ("POST", _C + "/points/query/batch", "query_batch"),
    )
    request_type = QdrantRequest

    def __init__(self) -> None:
        super().__init__()
        self.collections: dict[str, _Collection] = {}
        self.peers: int | None = None
        """``None``: a standalone server (cluster mode disabled); ``n``: a cluster of n peers."""

    def add_collection(
        self,
        name: str,
        points: Sequence[StoredPoint] = (),
        *,
        vectors: Any = None,
        sparse_vectors: Any = None,
        params: dict[str, Any] | None = None,
        quantization: Any = None,
    ) -> None:
        """Seed a collection (default: llm-twin-sdk's layout, dense size 8, Qdrant's default
        parameters) with ``points``."""
        collection = _Collection(
            vectors=DENSE_CONFIG if vectors is None else vectors,
            sparse_vectors=SPARSE_CONFIG if sparse_vectors is None else sparse_vectors,
            params=dict(params or {}),
            quantization=quantization,
        )
        for point in points:
            collection.points[str(point.id)] = point
        with self.lock:
            self.collections[name] = collection

    def error_body(self, status: int, message: str) -> Any:
        return {"status": {"error": message}, "time": 0.0}

    def answer(self, exchange: Exchange) -> None:
        started = time.monotonic()
        request = exchange.request
        assert isinstance(request, QdrantRequest)
        if request.route == "cluster":
            exchange.json(200, {"result": self.cluster_info(), "status": "ok", "time": 0.0})
            return
        if request.route is None or request.collection is None:
            exchange.json(404, self.error_body(404, f"no route {request.method} {request.path}"))
            return
        try:
            result = self._route(request.route, request.collection, request.body)
        except _HTTPError as error:
            exchange.json(error.status, self.error_body(error.status, str(error)))
            return
        exchange.json(200, {"result": result, "status": "ok", "time": time.monotonic() - started})

    def _route(self, route: str, name: str, body: Any) -> Any:
        with self.lock:
            if route == "exists":
                return {"exists": name in self.collections}
            if route == "create_collection":
                if name in self.collections:
                    raise _HTTPError(400, f"Wrong input: Collection `{name}` already exists!")
                kept = (*CREATE_PARAMS, "on_disk_payload")
                self.collections[name] = _Collection(
                    vectors=body.get("vectors"),
                    sparse_vectors=body.get("sparse_vectors"),
                    params={key: body[key] for key in kept if key in body},
                    quantization=body.get("quantization_config"),
                )
                return True
            if route == "delete_collection":
                return self.collections.pop(name, None) is not None
            collection = self.collections.get(name)
            if collection is None:
                raise _HTTPError(404, f"Not found: Collection `{name}` doesn't exist!")
            handler: Callable[[_Collection, Any], Any] = getattr(self, f"_{route}")
            return handler(collection, body)

    def cluster_info(self) -> dict[str, Any]:
        """``GET /cluster`` as Qdrant answers it: disabled, or the peers of a cluster."""
        if self.peers is None:
            return {"status": "disabled"}
        peers = {str(1000 + i): {"uri": f"http://node-{i}:6335/"} for i in range(self.peers)}
        return {
            "status": "enabled",
            "peer_id": 1000,
            "peers": peers,
            "raft_info": {
                "term": 1,
                "commit": 10,
                "pending_operations": 0,
                "leader": 1000,
                "role": "Leader",
                "is_voter": True,
            },
            "consensus_thread_status": {
                "consensus_thread_status": "working",
                "last_update": "2026-01-01T00:00:00Z",
            },
            "message_send_failures": {},
        }

    def _get_collection(self, collection: _Collection, body: Any) -> Any:
        return collection_info(
            collection.vectors,
            collection.sparse_vectors,
            len(collection.points),
            collection.params,
            collection.quantization,
        )

    def _create_index(self, collection: _Collection, body: Any) -> Any:
        collection.indexes[body["field_name"]] = body["field_schema"]
        return {"operation_id": 0, "status": "completed"}

    def _upsert(self, collection: _Collection, body: Any) -> Any:
        for point in body["points"]:
            collection.points[str(point["id"])] = StoredPoint(
                point["id"], point.get("payload") or {}, point.get("vector") or {}
            )
        return {"operation_id": 1, "status": "completed"}

    def _delete(self, collection: _Collection, body: Any) -> Any:
        for point_id in body["points"]:
            collection.points.pop(str(point_id), None)
        return {"operation_id": 2, "status": "completed"}

    def _retrieve(self, collection: _Collection, body: Any) -> Any:
        found = [collection.points.get(str(point_id)) for point_id in body["ids"]]
        return [
            {"id": point.id, "payload": _payload(point, body.get("with_payload", True))}
            for point in found
            if point is not None
        ]

    def _count(self, collection: _Collection, body: Any) -> Any:
        condition = (body or {}).get("filter")
        points = collection.points.values()
        return {"count": sum(1 for p in points if _matches(p.payload, condition))}

    def _scroll(self, collection: _Collection, body: Any) -> Any:
        """Points matching ``filter`` in id order (as strings), ``limit`` from ``offset``."""
        matching = sorted(
            (p for p in collection.points.values() if _matches(p.payload, body.get("filter"))),
            key=lambda p: str(p.id),
        )
        offset = body.get("offset")
        start = next((i for i, p in enumerate(matching) if str(p.id) == str(offset)), 0)
        limit = int(body.get("limit") or 10)
        page, rest = matching[start : start + limit], matching[start + limit :]
        return {
            "points": [
                {"id": p.id, "payload": _payload(p, body.get("with_payload", True))} for p in page
            ],
            "next_page_offset": rest[0].id if rest else None,
        }

    def _facet(self, collection: _Collection, body: Any) -> Any:
        counts: dict[Any, int] = {}
        for point in collection.points.values():
            value = point.payload.get(body["key"])
            if value is not None and _matches(point.payload, body.get("filter")):
                counts[value] = counts.get(value, 0) + 1
        hits = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
        return {"hits": [{"value": v, "count": n} for v, n in hits[: body.get("limit", 10)]]}

    def _query_batch(self, collection: _Collection, body: Any) -> Any:
        return [self._query(collection, search) for search in body["searches"]]

    def _query(self, collection: _Collection, search: Mapping[str, Any]) -> Any:
        query = search["query"]
        if isinstance(query, dict) and "nearest" in query:
            query = query["nearest"]
        using = str(search.get("using") or "")
        scored: list[tuple[float, StoredPoint]] = []
        for point in collection.points.values():
            stored = point.vector.get(using) if isinstance(point.vector, dict) else None
            if stored is None or not _matches(point.payload, search.get("filter")):
                continue
            if isinstance(query, list):
                if len(query) != len(stored):
                    raise _HTTPError(
                        400,
                        f"Wrong input: Vector dimension error: expected dim: "
                        f"{len(stored)}, got {len(query)}",
                    )
                score = _cosine(query, stored)
            else:
                score = _sparse_dot(query, stored)
                if score == 0.0:
                    continue
            scored.append((score, point))
        scored.sort(key=lambda item: -item[0])
        limit = int(search.get("limit") or 10)
        return {
            "points": [
                {
                    "id": point.id,
                    "version": 0,
                    "score": score,
                    "payload": _payload(point, search.get("with_payload", False)),
                }
                for score, point in scored[:limit]
            ]
        }


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def _sparse_dot(query: Mapping[str, Any], stored: Mapping[str, Any]) -> float:
    values: dict[int, float] = dict(zip(stored["indices"], stored["values"], strict=True))
    pairs: list[tuple[int, float]] = list(zip(query["indices"], query["values"], strict=True))
    return sum(v * values.get(i, 0.0) for i, v in pairs)


def _matches(payload: Mapping[str, Any], condition: Any) -> bool:
    if not condition:
        return True
    if set(condition) - {"must"}:
        raise _HTTPError(400, f"Format error in JSON body: unsupported filter {condition}")
    for clause in condition.get("must") or []:
        value = payload.get(clause["key"])
        match = clause["match"]
        if "value" in match and value != match["value"]:
            return False
        if "any" in match and value not in match["any"]:
            return False
    return True


def _payload(point: StoredPoint, selector: Any) -> dict[str, Any] | None:
    if selector is False or selector is None:
        return None
    if isinstance(selector, list):
        return {key: value for key, value in point.payload.items() if key in selector}
    return dict(point.payload)
