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
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.server import Exchange
from fakes.tei import TEIServer
from llm_twin_sdk import Document, QdrantStore, RAGPipeline, RemoteEmbedder

DIMENSION = 384


class FixedTEI(TEIServer):
    """A TEI server whose answers cost it nothing: one cached body per batch size."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        row = [round((i % 7 - 3) / 20, 6) for i in range(self.dimension)]
        self._row = json.dumps(row)
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


def run(url: str, concurrency: int, chunks: int, folder: Path) -> tuple[float, int]:
    """Chunks per second of one ingest of ``chunks`` one-chunk documents, and chunks written."""
    docs = documents(chunks, offset=concurrency * 1_000_000)
    with (
        RemoteEmbedder.http(url, concurrency=concurrency) as embedder,
        QdrantStore.local(folder / f"c{concurrency}") as store,
        RAGPipeline(embedder, store) as rag,
    ):
        embedder.encode(["warm up"])  # connections and the size, outside the timing
        started = time.perf_counter()
        report = rag.ingest(docs, progress=False)
        seconds = time.perf_counter() - started
    return report.chunks / seconds, report.chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per batch")
    parser.add_argument("--batch", type=int, default=8, help="texts per batch (server limit)")
    parser.add_argument("--seconds", type=float, default=6.0, help="server time per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per concurrency")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16])
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.concurrency = 1.0, 1, [1, 16]

    import tempfile

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
            for concurrency in args.concurrency:
                capacity = concurrency * args.batch / args.delay
                chunks = max(args.batch, round(capacity * args.seconds))
                rates = []
                for round_ in range(args.rounds):
                    rate, written = run(url, concurrency, chunks, Path(folder) / str(round_))
                    assert written == chunks, (written, chunks)
                    rates.append(rate)
                alone = encode_only(url, concurrency, chunks)
                conn.send("stats")
                in_flight = conn.recv()
                rate = statistics.median(rates)
                print(
                    f"| {concurrency} (seen: {in_flight}) | {capacity:,.0f} | {rate:,.0f} "
                    f"({', '.join(f'{r:,.0f}' for r in rates)}) | {rate / capacity:.2f} "
                    f"| {alone:,.0f} | {alone / capacity:.2f} |"
                )
    finally:
        conn.send("stop")
        conn.recv()
        process.join(timeout=10)
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
