"""Load benchmark of the example business service (examples/service/) under uvicorn.

The service runs on the embedded footing (MiniLM + Qdrant Edge over the sample corpus) with
the LLM (a) in process (llama.cpp through LocalBackend) and (b) behind a llama.cpp server
(``--llama-server PATH``: the native ``llama-server`` binary with ``--parallel`` slots;
without it, llama-cpp-python's ``python -m llama_cpp.server``, which serves one request at
a time). For each: ``--requests`` POST /rag at ``--concurrency`` with short answers, while a
prober in its own thread times ``GET /healthz`` (the event loop's lag under load); then the
same questions through ``AsyncLLMTwin`` on the same backend, in this process, at the same
concurrency ("direct"). Run from the repository root::

    .venv/bin/python benchmarks/service_load.py                 # both backends, 200 x 8
    .venv/bin/python benchmarks/service_load.py --only local --requests 40
    .venv/bin/python benchmarks/service_load.py --llama-server /path/to/llama-server --slots 8

Goals (issue 10): zero errors, /healthz p99 under 50 ms during load, service throughput at
least 90 % of direct. The markdown report goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
from run import load_corpus, log, machine_lines  # noqa: E402
from service_support import NODELAY, ServiceProcess, free_port  # noqa: E402

QUERIES = ROOT / "examples" / "data" / "queries.jsonl"
N_CTX = 2048
HEALTHZ_P99_GOAL_S = 0.050
THROUGHPUT_GOAL = 0.90


@dataclass
class Load:
    """One run: wall time, per-request latencies and errors (status or exception name)."""

    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # throughput of each round

    def add(self, other: Load) -> None:
        self.wall_s += other.wall_s
        self.latencies += other.latencies
        self.errors += other.errors
        self.probes += other.probes

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest-rank."""
    if not values:
        return float("nan")
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, round(q / 100 * len(ranked) + 0.5) - 1))]


def questions(n: int) -> list[str]:
    with QUERIES.open(encoding="utf-8") as handle:
        base = [json.loads(line)["query"] for line in handle if line.strip()]
    return [base[i % len(base)] for i in range(n)]


async def run_load(n: int, concurrency: int, call: Callable[[str], Any], asks: list[str]) -> Load:
    """``n`` calls of ``call(question)`` with ``concurrency`` in flight."""
    load = Load()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for question in asks[:n]:
        queue.put_nowait(question)

    async def worker() -> None:
        while not queue.empty():
            question = queue.get_nowait()
            started = time.perf_counter()
            try:
                await call(question)
            except Exception as exc:  # counted, reported by kind
                load.errors.append(str(exc)[:80] or type(exc).__name__)
            else:
                load.latencies.append(time.perf_counter() - started)
            if (done := len(load.latencies) + len(load.errors)) % 50 == 0:
                log(f"  {done}/{n} requests")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.wall_s = time.perf_counter() - started
    return load


class Prober(threading.Thread):
    """Times ``GET /healthz`` every ``every_s`` from its own thread and connection."""

    def __init__(self, url: str, every_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.url, self.every_s = url, every_s
        self.samples: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        transport = httpx.HTTPTransport(socket_options=NODELAY)
        with httpx.Client(transport=transport, timeout=10) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(f"{self.url}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.samples.append(time.perf_counter() - started)
                else:
                    self.failures += 1
                self.stop.wait(self.every_s)


def service_load(
    env: dict[str, str], asks: list[str], args: argparse.Namespace, log_path: Path
) -> Load:
    body = {"max_new_tokens": args.max_new_tokens, "temperature": 0.0}
    with ServiceProcess(env, log_path) as service:
        transport = httpx.AsyncHTTPTransport(
            socket_options=NODELAY, limits=httpx.Limits(max_connections=args.concurrency)
        )

        async def main() -> Load:
            async with httpx.AsyncClient(
                base_url=service.url, transport=transport, timeout=300
            ) as http:

                async def ask(question: str) -> None:
                    response = await http.post("/rag", json={"query": question, **body})
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:60]}")

                await run_load(len(set(asks)), args.concurrency, ask, asks)  # warm-up
                prober = Prober(service.url)
                prober.start()
                try:
                    load = await run_load(args.requests, args.concurrency, ask, asks)
                finally:
                    prober.stop.set()
                    prober.join()
                load.probes = prober.samples
                load.errors += ["healthz failed"] * prober.failures
                return load

        return asyncio.run(main())


def direct_load(settings: dict[str, Any], asks: list[str], args: argparse.Namespace) -> Load:
    from llm_twin_sdk import AsyncLLMTwin, GenerationParams, TwinSettings

    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=0.0)

    async def main() -> Load:
        twin = await asyncio.to_thread(AsyncLLMTwin.from_settings, TwinSettings(**settings))
        async with twin:
            params_ = twin.client.params.model_copy(update=dict(params))

            async def ask(question: str) -> None:
                await twin.ask(question, params=params_)

            await run_load(len(set(asks)), args.concurrency, ask, asks)  # warm-up
            return await run_load(args.requests, args.concurrency, ask, asks)

    return asyncio.run(main())


def compare(
    settings: dict[str, Any], asks: list[str], args: argparse.Namespace, log_path: Path
) -> tuple[Load, Load]:
    """Service and direct loads, interleaved over ``args.rounds`` rounds (each side first in
    half of them) so that load from other tenants of the machine slows both alike."""
    service, direct = Load(), Load()
    rounds: dict[str, list[float]] = {"service": [], "direct": []}
    per_round = args.requests // args.rounds
    for i in range(args.rounds):
        part = asks[i * per_round : (i + 1) * per_round]
        sub = argparse.Namespace(**{**vars(args), "requests": per_round})
        sides = [("service", service), ("direct", direct)]
        for name, total in sides if i % 2 == 0 else reversed(sides):
            log(f"  round {i + 1}/{args.rounds}: {name}, {per_round} x {args.concurrency}")
            if name == "service":
                load = service_load(env_of(settings), part, sub, log_path)
            else:
                load = direct_load(settings, part, sub)
            total.add(load)
            rounds[name].append(load.throughput)
            log(f"    {load.throughput:.3f} req/s, {len(load.errors)} errors")
    service.rounds, direct.rounds = rounds["service"], rounds["direct"]
    return service, direct


def env_of(settings: dict[str, Any]) -> dict[str, str]:
    return {f"LLM_TWIN_{name.upper()}": str(value) for name, value in settings.items()}


@contextmanager
def llama_server(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, str]]:
    """A llama.cpp server on 127.0.0.1 serving SmolLM2: (url, description)."""
    from llm_twin_sdk.offline_models import default_gguf_path

    port = free_port()
    gguf = str(default_gguf_path())
    if args.llama_server:
        command = [
            args.llama_server, "-m", gguf, "--host", "127.0.0.1", "--port", str(port),
            "-c", str(N_CTX * args.slots), "--parallel", str(args.slots), "--no-webui",
        ]  # fmt: skip
        what = f"native llama-server, {args.slots} parallel slots of {N_CTX} tokens"
    else:
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(N_CTX), "--interrupt_requests", "False",
        ]  # fmt: skip
        what = "llama-cpp-python server (no parallel slots: one request at a time)"
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "llama-server.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama server did not start:\n{log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        yield url, what
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ingest(folder: Path) -> int:
    from llm_twin_sdk import Embedder, QdrantStore, RAGPipeline

    store = QdrantStore.local(folder)
    pipeline = RAGPipeline(Embedder(), store)
    try:
        return pipeline.ingest(load_corpus()).chunks
    finally:
        pipeline.close()
        store.close()


def report_rows(name: str, service: Load, direct: Load) -> list[str]:
    ratio = service.throughput / direct.throughput if direct.throughput else float("nan")
    p50, p99 = percentile(service.probes, 50), percentile(service.probes, 99)
    goals = [
        f"errors {'✓' if not service.errors and not direct.errors else '✗'}",
        f"healthz p99 {'✓' if p99 < HEALTHZ_P99_GOAL_S else '✗'}",
        f"ratio {'✓' if ratio >= THROUGHPUT_GOAL else '✗'}",
    ]

    def ms(values: Sequence[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:.0f}"

    worst = max(service.probes, default=0.0)
    probes = f"{p50 * 1000:.1f} / {p99 * 1000:.1f} (max {worst * 1000:.1f})"
    return [
        f"| {name} | service | {service.throughput:.2f} | {ms(service.latencies, 50)} "
        f"| {ms(service.latencies, 95)} | {len(service.errors)} | {probes} | {ratio:.0%} "
        f"| {', '.join(goals)} |",
        f"| {name} | direct | {direct.throughput:.2f} | {ms(direct.latencies, 50)} "
        f"| {ms(direct.latencies, 95)} | {len(direct.errors)} | | | |",
    ]


def round_note(service: Load, direct: Load) -> str:
    pairs = zip(service.rounds, direct.rounds, strict=True)
    return ", ".join(f"service {s:.3f} / direct {d:.3f} ({s / d:.0%})" for s, d in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--only", choices=("local", "server"))
    parser.add_argument("--llama-server", help="native llama.cpp `llama-server` binary")
    parser.add_argument("--slots", type=int, default=8, help="its --parallel slots")
    parser.add_argument("--rounds", type=int, default=2, help="service/direct alternations")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    asks = questions(args.requests)
    rows: list[str] = []
    notes: list[str] = []
    machine = machine_lines()  # the load average before the run
    with tempfile.TemporaryDirectory(prefix="service-load-") as tmp:
        workdir = Path(tmp)
        folder = workdir / "qdrant"
        log(f"ingesting the corpus into {folder}")
        chunks = ingest(folder)
        base = {"qdrant_path": folder, "n_ctx": N_CTX}
        if args.only in (None, "local"):
            log("(a) llama.cpp in process")
            service, direct = compare(base, asks, args, workdir / "service-local.log")
            rows += report_rows("llama.cpp in process", service, direct)
            notes.append(f"(a) req/s per round: {round_note(service, direct)}")
            notes += (
                [f"(a) errors: {service.errors[:3] + direct.errors[:3]}"]
                if service.errors or direct.errors
                else []
            )
        if args.only in (None, "server"):
            with llama_server(args, workdir) as (url, what):
                remote = base | {
                    "backend": "http",
                    "http_url": url,
                    "http_api": "openai",
                    "context_window": N_CTX,
                }
                log(f"(b) {what}")
                service, direct = compare(remote, asks, args, workdir / "service-http.log")
            rows += report_rows("llama.cpp server", service, direct)
            notes.append(f"(b) req/s per round: {round_note(service, direct)}")
            notes.append(f"(b) server: {what}")
            if service.errors or direct.errors:
                notes.append(f"(b) errors: {service.errors[:3] + direct.errors[:3]}")
    print("## Service under load (benchmarks/service_load.py)\n")
    print(*machine, sep="\n")
    print(
        f"\n{args.requests} POST /rag at concurrency {args.concurrency}, max_new_tokens "
        f"{args.max_new_tokens}, greedy, in {args.rounds} interleaved rounds per side (after "
        f"a warm-up asking every distinct question once); {chunks} chunks in Qdrant Edge; "
        "uvicorn, one worker; /healthz probed every 100 ms from another thread during the load.\n"
    )
    print(
        "| backend | path | req/s | p50 ms | p95 ms | errors | /healthz p50 / p99 ms "
        "| service / direct | goals |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(*rows, sep="\n")
    if notes:
        print("\n" + "\n".join(f"- {note}" for note in notes))


if __name__ == "__main__":
    main()
