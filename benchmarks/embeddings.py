"""Ingestion through a remote embedder: throughput against a TEI-like server's capacity.

    .venv/bin/python benchmarks/embeddings.py            # 1, 4 and 16 requests in flight
    .venv/bin/python benchmarks/embeddings.py --quick    # smoke run (a few seconds)

The server (``tests/fakes/tei.py``, in a child process: it shares no GIL with the client, as a
real TEI server would not) takes ``--delay`` (50 ms) per ``/embed`` batch of at most
``--batch`` texts, however many batches run at once, and answers with one write on a
TCP_NODELAY socket. Its vectors (384 floats, as all-MiniLM-L6-v2's) are precomputed, so its
own CPU is not what is measured. Its capacity at ``c`` requests in flight is
``c * batch / delay`` chunks per second; the client is ``RAGPipeline.ingest`` with
``RemoteEmbedder.http(url, concurrency=c)`` into the embedded Qdrant store (Qdrant Edge, a
temporary folder): chunking, fingerprints, BM25 vectors, writes -- everything an ingest does.
Documents are one chunk each; each run ingests about ``--seconds`` of the server's capacity.
A ratio is chunks per second over the server's capacity (goal at 16: >= 0.80); "encode
alone" is ``RemoteEmbedder.encode`` of the same texts without a store (the remote side only).

"Local write path alone" (``--local`` runs only it) is the rest: ``RAGPipeline.ingest`` of
``--local-chunks`` such documents with an embedder that returns precomputed vectors (no server,
no HTTP), against raw Qdrant Edge upserting the same points (``EdgeShard.update`` of
``qdrant_edge.Point`` built from ready lists, 256 per call): what the SDK's chunking,
fingerprints, BM25 and point building add per chunk, in median microseconds of CPU and wall.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.server import Exchange
from fakes.tei import TEIServer
from llm_twin_sdk import Document, ProcessEmbedder, QdrantStore, RAGPipeline, RemoteEmbedder
from llm_twin_sdk.rag.embedder_base import TokenOffsets, Vectors
from llm_twin_sdk.rag.embedder_tei import estimate_offsets

DIMENSION = 384
ROW = [round((i % 7 - 3) / 20, 6) for i in range(DIMENSION)]


class FixedTEI(TEIServer):
    """A TEI server whose answers cost it nothing: one cached body per batch size."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._row = json.dumps(ROW[: self.dimension])
        self._bodies: dict[int, bytes] = {}

    def answer(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.route != "embed":
            super().answer(exchange)
            return
        count = len(request.body["inputs"])
        body = self._bodies.get(count)
        if body is None:
            body = self._bodies[count] = ("[" + ",".join([self._row] * count) + "]").encode()
        exchange.send(200, body)


def serve(conn: Connection, delay_s: float, batch: int) -> None:
    with FixedTEI(dimension=DIMENSION, batch_limit=batch, answer_delay_s=delay_s) as server:
        conn.send(server.url)
        while conn.recv() != "stop":
            conn.send(server.max_in_flight)
            server.max_in_flight = 0
        conn.send(None)


def documents(count: int, offset: int) -> list[Document]:
    """``count`` documents of one chunk each (about 60 words), distinct per ``offset``."""
    return [
        Document(
            id=f"doc-{offset + i}",
            text=" ".join(f"term{(offset + i) * 13 + j} word{j % 50}" for j in range(30)),
            metadata={"kind": "post"},
        )
        for i in range(count)
    ]


def encode_only(url: str, concurrency: int, chunks: int) -> float:
    """Chunks per second of ``RemoteEmbedder.encode`` alone (no store): the remote side."""
    texts = [doc.text for doc in documents(chunks, offset=0)]
    with RemoteEmbedder.http(url, concurrency=concurrency) as embedder:
        embedder.encode(texts[:concurrency])
        started = time.perf_counter()
        embedder.encode(texts)
        return chunks / (time.perf_counter() - started)


def run(
    url: str, concurrency: int, chunks: int, folder: Path, *, child: bool = False
) -> tuple[float, int]:
    """Chunks per second of one ingest of ``chunks`` one-chunk documents, and chunks written;
    ``child``: the embedder in a child process (``ProcessEmbedder``)."""
    docs = documents(chunks, offset=concurrency * 1_000_000 + child * 500_000)
    factory = functools.partial(RemoteEmbedder.http, url, concurrency=concurrency)
    with (
        ProcessEmbedder(factory) if child else factory() as embedder,
        QdrantStore.local(folder / f"c{concurrency}-{child}") as store,
        RAGPipeline(embedder, store) as rag,
    ):
        embedder.encode(["warm up"])  # connections and the size, outside the timing
        started = time.perf_counter()
        report = rag.ingest(docs, progress=False)
        seconds = time.perf_counter() - started
    return report.chunks / seconds, report.chunks


class PrecomputedEmbedder:
    """A ``TextEmbedder`` whose vectors cost nothing: the local write path alone."""

    model_name = "precomputed"
    dimension = DIMENSION
    max_tokens = 512

    def __init__(self) -> None:
        self._row = np.asarray(ROW, dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> Vectors:
        return np.tile(self._row, (len(texts), 1))

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        return self.encode(texts)

    def token_offsets(self, texts: Sequence[str]) -> TokenOffsets:
        return estimate_offsets(texts)


def local_ingest(chunks: int, folder: Path) -> tuple[float, float]:
    """Wall and CPU seconds per chunk of ``RAGPipeline.ingest`` without a server."""
    docs = documents(chunks, offset=0)
    with QdrantStore.local(folder) as store, RAGPipeline(PrecomputedEmbedder(), store) as rag:
        rag.ingest(documents(64, offset=10**9), progress=False)  # collections, imports
        wall, cpu = time.perf_counter(), time.process_time()
        report = rag.ingest(docs, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert report.chunks == chunks, (report.chunks, chunks)
    return wall / chunks, cpu / chunks


def raw_edge(chunks: int, folder: Path) -> tuple[float, float]:
    """Wall and CPU seconds per chunk of Qdrant Edge upserting the same points, built from
    ready lists (a dense vector, the BM25 one, the payload the SDK writes), 256 per call."""
    import qdrant_edge as edge

    from llm_twin_sdk.rag.sparse import LexicalEncoder

    docs = documents(chunks, offset=0)
    sparse = LexicalEncoder().encode_documents([doc.text for doc in docs])
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, doc.id)) for doc in docs]
    payloads = [
        {"document_id": d.id, "position": 0, "text": d.text, "kind": "post", "document_chunks": 1}
        for d in docs
    ]
    config = edge.EdgeConfig(
        vectors={"dense": edge.EdgeVectorParams(size=DIMENSION, distance=edge.Distance.Cosine)},
        sparse_vectors={"bm25": edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
    )
    shard = edge.EdgeShard.create(str(folder / "shard"), config)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, chunks, 256):
            points = [
                edge.Point(
                    ids[i],
                    {
                        "dense": list(ROW),
                        "bm25": edge.SparseVector(list(sparse[i].indices), list(sparse[i].values)),
                    },
                    payloads[i],
                )
                for i in range(start, min(start + 256, chunks))
            ]
            shard.update(edge.UpdateOperation.upsert_points(points))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        shard.close()
    return wall / chunks, cpu / chunks


def local_write_path(chunks: int, rounds: int) -> None:
    """Print the "local write path alone" row: medians of ``rounds`` runs each."""
    sdk: list[tuple[float, float]] = []
    raw: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(rounds):  # interleaved: a burst of load hits both alike
            sdk.append(local_ingest(chunks, Path(folder) / f"sdk{round_}"))
            raw.append(raw_edge(chunks, Path(folder) / f"raw{round_}"))
    sdk_wall, sdk_cpu = (statistics.median(x) * 1e6 for x in zip(*sdk, strict=True))
    raw_wall, raw_cpu = (statistics.median(x) * 1e6 for x in zip(*raw, strict=True))
    what = f"{chunks:,} one-chunk documents, no server"
    print(f"\nlocal write path alone ({what}), medians of {rounds}:")
    print()
    print("| | chunks/s | wall (us/chunk) | CPU (us/chunk) |")
    print("|---|---|---|---|")
    print(f"| SDK ingest | {1e6 / sdk_wall:,.0f} | {sdk_wall:.0f} | {sdk_cpu:.0f} |")
    print(f"| raw Qdrant Edge upsert | {1e6 / raw_wall:,.0f} | {raw_wall:.0f} | {raw_cpu:.0f} |")
    print(f"| ratio (raw / SDK time) | {raw_wall / sdk_wall:.2f} | | {raw_cpu / sdk_cpu:.2f} |")


def remote_rows(url: str, conn: Connection, args: argparse.Namespace, folder: Path) -> None:
    """One table row per concurrency (and per concurrency with the embedder in a child)."""
    rows = [(c, False) for c in args.concurrency] + [(c, True) for c in args.child]
    for concurrency, child in rows:
        capacity = concurrency * args.batch / args.delay
        chunks = max(args.batch, round(capacity * args.seconds))
        rates = []
        for round_ in range(args.rounds):
            where = folder / str(round_)
            rate, written = run(url, concurrency, chunks, where, child=child)
            assert written == chunks, (written, chunks)
            rates.append(rate)
        alone = encode_only(url, concurrency, chunks)
        conn.send("stats")
        in_flight = conn.recv()
        rate = statistics.median(rates)
        print(
            f"| {concurrency}{', child process' if child else ''} (seen: {in_flight}) "
            f"| {capacity:,.0f} | {rate:,.0f} "
            f"({', '.join(f'{r:,.0f}' for r in rates)}) | {rate / capacity:.2f} "
            f"| {alone:,.0f} | {alone / capacity:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per batch")
    parser.add_argument("--batch", type=int, default=8, help="texts per batch (server limit)")
    parser.add_argument("--seconds", type=float, default=6.0, help="server time per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per concurrency")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument(
        "--child",
        type=int,
        nargs="*",
        default=[16],
        help="concurrencies also run with the embedder in a child process (ProcessEmbedder)",
    )
    parser.add_argument("--local", action="store_true", help="the local write path alone")
    parser.add_argument("--local-chunks", type=int, default=10_000, help="its documents")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.concurrency, args.child = 1.0, 1, [1, 16], [16]
        args.local_chunks = 2_000
    if args.local:
        load = os.getloadavg()
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        local_write_path(args.local_chunks, args.rounds)
        return

    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    process = context.Process(target=serve, args=(child, args.delay, args.batch), daemon=True)
    process.start()
    url = conn.recv()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    print(f"server: {args.delay * 1000:.0f} ms per batch of <= {args.batch} texts, {DIMENSION}-d")
    print()
    print(
        "| requests in flight | server capacity (chunks/s) | ingest (chunks/s, runs) | ratio "
        "| encode alone (chunks/s) | ratio |"
    )
    print("|---|---|---|---|---|---|")
    try:
        with tempfile.TemporaryDirectory() as folder:
            run(url, 1, args.batch, Path(folder) / "warm-up")  # imports, first connections
            remote_rows(url, conn, args, Path(folder))
    finally:
        conn.send("stop")
        conn.recv()
        process.join(timeout=10)
    local_write_path(args.local_chunks, args.rounds)
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
