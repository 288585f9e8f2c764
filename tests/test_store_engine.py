"""The store's engine interface: qdrant-client's ``QdrantClient`` (server) and the Qdrant Edge
adapter both implement ``QdrantEngine``. mypy checks the typed assignments below (no
``type: ignore``); the test checks the same at run time, signature by signature."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from llm_twin_sdk import QdrantStore
from llm_twin_sdk.rag.edge import EdgeClient
from llm_twin_sdk.rag.engine import QdrantEngine

METHODS = sorted(name for name in vars(QdrantEngine) if not name.startswith("_"))
POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[list[QdrantEngine]]:
    # Never contacted: qdrant-client connects on the first request, and none is sent.
    server: QdrantEngine = QdrantClient(url="http://127.0.0.1:9", check_compatibility=False)
    edge: QdrantEngine = EdgeClient(tmp_path / "edge")
    yield [server, edge]
    server.close()
    edge.close()


def test_the_interface_names_the_methods_the_store_calls() -> None:
    assert METHODS == [
        "close",
        "cluster_status",  # how many nodes hold the collections (issue 13: Qdrant as a cluster)
        "collection_exists",
        "count",
        "create_collection",
        "create_payload_index",
        "delete",
        "delete_collection",
        "facet",
        "get_collection",
        "query_batch_points",
        "retrieve",
        "scroll",
        "upsert",
    ]


def test_server_and_edge_clients_implement_every_method(engines: list[QdrantEngine]) -> None:
    for engine in engines:
        for name in METHODS:
            wanted = list(inspect.signature(getattr(QdrantEngine, name)).parameters.values())[1:]
            given = inspect.signature(getattr(engine, name)).parameters
            positional = [p for p in given.values() if p.kind in POSITIONAL]
            where = f"{type(engine).__name__}.{name}"
            for index, param in enumerate(wanted):
                if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                    assert index < len(positional), f"{where} lacks positional {param.name}"
                    continue
                assert param.kind is inspect.Parameter.KEYWORD_ONLY
                match = given.get(param.name)
                assert match is not None, f"{where} lacks argument {param.name}"
                assert match.kind is not inspect.Parameter.POSITIONAL_ONLY, where
                if param.default is not inspect.Parameter.empty:
                    assert match.default is not inspect.Parameter.empty, where


def test_a_store_runs_on_either_engine(engines: list[QdrantEngine]) -> None:
    server, edge = engines
    assert QdrantStore(server, url="http://127.0.0.1:9").url == "http://127.0.0.1:9"
    store = QdrantStore(edge)
    assert store.count() == 0
    assert store.distinct("author") == []
