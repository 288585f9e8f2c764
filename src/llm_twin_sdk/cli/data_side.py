"""The data side of ``llm-twin``: ``ingest``, ``ask``, ``eval``, on the footing the
``LLM_TWIN_*`` settings describe (by default embedded and offline).

The extras the footing needs are checked first (a thin install using the local footing:
``MissingExtraError``, exit 3). Inputs are read and checked before any model loads; with
``LLM_TWIN_BACKEND=sagemaker`` the AWS region and credentials are checked first too.
The twin and the pipeline come from a :class:`Footing` (``LLMTwin.from_settings``,
``RAGPipeline.from_settings``); a test hands in its own as the command's ``obj``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import InvalidParameterError
from ..extras import require_for_rag, require_for_settings
from .aws_side import aws_clients, epilog, settings
from .output import interrupted, print_json, stderr, stdout
from .render import show_evaluation, show_sources

if TYPE_CHECKING:
    from ..config import TwinSettings
    from ..rag.ingestion import IngestProgress
    from ..rag.pipeline import RAGPipeline
    from ..rag.sources import SkippedFile
    from ..twin import LLMTwin
    from ..types import Document

__all__ = ["Footing", "register"]


def _twin(s: TwinSettings) -> LLMTwin:
    from ..twin import LLMTwin

    return LLMTwin.from_settings(s)


def _pipeline(s: TwinSettings) -> RAGPipeline:
    from ..rag.pipeline import RAGPipeline

    # Ingest and retrieval without the LLM query steps need no LLM at all: none is loaded.
    return RAGPipeline.from_settings(
        s.model_copy(update={"self_query": False, "query_expansion": 1})
    )


@dataclass(frozen=True)
class Footing:
    """How the data commands build a twin (``ask``, ``eval`` with LLM query steps) and a
    pipeline (``ingest``, ``eval``) from settings; each is closed by the command."""

    twin: Callable[[TwinSettings], LLMTwin] = _twin
    pipeline: Callable[[TwinSettings], RAGPipeline] = _pipeline


def _footing(ctx: typer.Context) -> Footing:
    return ctx.obj if isinstance(ctx.obj, Footing) else Footing()


def _check_llm_footing(s: TwinSettings) -> None:
    """An endpoint's region and credentials, before the embedder or any model loads."""
    if s.backend == "sagemaker":
        aws_clients(s)


# -- ingest -------------------------------------------------------------------------------


def _load(paths: list[Path]) -> tuple[list[Document], list[SkippedFile]]:
    """Documents from files and folders, through the SDK's loaders (rag/sources.py)."""
    from ..rag.sources import load_folder, load_jsonl

    documents: list[Document] = []
    skipped: list[SkippedFile] = []
    for path in paths:
        if path.is_dir():
            loaded = load_folder(path)
        elif path.suffix.lower() == ".jsonl":
            documents += load_jsonl(path)
            continue
        elif path.is_file():  # one note: its id is its name without extension
            loaded = load_folder(path.parent, pattern=path.name, recursive=False)
        else:
            raise InvalidParameterError(f"{str(path)!r} does not exist")
        documents += loaded.documents
        skipped += loaded.skipped
    return documents, skipped


class _Bar:
    """Ingest progress: a rich bar on a terminal, a line per batch otherwise."""

    def __init__(self) -> None:
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _Bar:
        if stderr().is_terminal:
            from rich.progress import Progress

            self.progress = Progress(console=stderr(), transient=True)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc_info)

    def __call__(self, p: IngestProgress) -> None:
        docs = f"{p.documents_done}/{p.documents_total} documents"
        if self.progress is None:
            if p.documents_done:
                stderr().print(f"ingest: {docs}, {p.chunks_done}/{p.chunks_total} chunks")
            return
        if self.task is None:
            self.task = self.progress.add_task("ingest", total=p.chunks_total)
        self.progress.update(self.task, completed=p.chunks_done, description=f"ingest {docs}")


def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="JSONL files, Markdown/text files or folders of them."),
    ],
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Chunk, embed and store documents. Resumable: documents stored exactly as given are
    skipped, so an interrupted ingest run again goes on where it stopped.

    A JSONL file holds one document per line (`id`, `text`, `metadata`); a folder, Markdown
    and text notes with optional YAML front matter (docs/configuration.md). Every document
    is read and checked before the model loads.
    """
    s = settings()
    require_for_rag(s)  # a thin install without a remote embedder: exit 3, nothing read
    documents, skipped = _load(paths)
    for file in skipped:
        stderr().print(f"skipped {file.path}: {file.reason}")
    if not documents:
        raise InvalidParameterError("no documents to ingest in " + ", ".join(str(p) for p in paths))
    stored = 0
    try:
        with _footing(ctx).pipeline(s) as rag:
            with _Bar() as bar:
                report = rag.ingest(documents, progress=bar)
            stored = rag.count()
    except KeyboardInterrupt as stop:  # the SDK's interrupt says how far it got
        interrupted(str(stop) or "no document was stored yet; run the same ingest again")
    if json_:
        print_json(
            {
                **report.model_dump(mode="json"),
                "stored": stored,
                "skipped_files": [{"path": str(f.path), "reason": f.reason} for f in skipped],
            }
        )
        return
    unchanged = (
        f"; {report.unchanged} unchanged (already stored, skipped)" if report.unchanged else ""
    )
    stdout().print(
        f"ingested {report.documents} documents ({report.chunks} chunks){unchanged} in "
        f"{report.seconds:.1f} s; the store holds {stored} documents"
    )


# -- ask ----------------------------------------------------------------------------------


def _filters(pairs: list[str] | None) -> dict[str, list[str]] | None:
    filters: dict[str, list[str]] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise InvalidParameterError(f"--filter takes FIELD=VALUE, got {pair!r}")
        filters.setdefault(key.strip(), []).append(value.strip())
    return filters or None


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question.")],
    *,
    k: Annotated[int | None, typer.Option(min=1, help="Source documents (default: top_k).")] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, help="Longest answer, in tokens.")
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="Only sources with FIELD=VALUE (author, kind...)."),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the whole Answer as JSON, not streamed.")
    ] = False,
) -> None:
    """Answer a question from the stored documents: the text streams to stdout as it is
    written, the sources table follows."""
    s = settings()
    require_for_settings(s)
    filters = _filters(filter_)
    if not question.strip():
        raise InvalidParameterError("the question is empty")
    _check_llm_footing(s)
    written = 0
    try:
        with _footing(ctx).twin(s) as twin:
            params = None
            if max_new_tokens is not None:
                params = twin.client.params.model_copy(update={"max_new_tokens": max_new_tokens})
            if json_:
                answer = twin.ask(question, k=k, params=params, filters=filters)
                print_json(answer.model_dump(mode="json"))
                return
            with twin.stream(question, k=k, params=params, filters=filters) as stream:
                for piece in stream:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
                    written += len(piece)
                streamed = stream.answer
    except KeyboardInterrupt:
        interrupted(
            f"answer stopped after {written} characters; nothing was stored"
            if written
            else "stopped before the answer began; nothing was stored"
        )
    sys.stdout.write("\n")
    assert streamed is not None  # the stream ran to its end
    answer = streamed
    show_sources(answer.sources)
    stderr().print(
        f"{answer.usage.completion_tokens} tokens, {answer.timings.total_s:.1f} s "
        f"(retrieve {answer.timings.retrieve_s:.2f} s), finish: {answer.finish_reason}"
    )


# -- eval ---------------------------------------------------------------------------------


def eval_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Labelled queries (JSONL: query, relevant, kind).")],
    k: Annotated[
        list[int] | None, typer.Option("--k", min=1, help="Cut-offs for recall@k (repeatable).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Score retrieval on a labelled query file: recall@k, MRR and nDCG, per query kind and
    overall (the documents must be ingested first)."""
    from ..rag.evaluation import evaluate, load_queries

    s = settings()
    steps = s.self_query or s.query_expansion > 1  # these need the LLM: the twin's pipeline
    (require_for_settings if steps else require_for_rag)(s)
    queries = load_queries(file)
    k_values = tuple(k or (5, 10))
    if steps:
        _check_llm_footing(s)
    footing = _footing(ctx)
    started = time.perf_counter()
    if steps:
        with footing.twin(s) as twin:
            report = evaluate(twin.rag.retrieve, queries, k_values=k_values)
    else:
        with footing.pipeline(s) as rag:
            report = evaluate(rag.retrieve, queries, k_values=k_values)
    if json_:
        print_json(report.model_dump(mode="json"))
        return
    show_evaluation(report)
    stderr().print(f"{len(queries)} queries in {time.perf_counter() - started:.1f} s")


_EXAMPLES = {
    "ingest": [
        "llm-twin ingest examples/data/corpus.jsonl",
        "llm-twin ingest notes/ posts/launch.md --json",
        "LLM_TWIN_QDRANT_URL=http://localhost:6333 llm-twin ingest corpus.jsonl",
    ],
    "ask": [
        'llm-twin ask "How do I cut GPU cost?"',
        'llm-twin ask "What did Maya write about retries?" --filter author="Maya Okafor" --k 5',
        'LLM_TWIN_BACKEND=sagemaker LLM_TWIN_SAGEMAKER_ENDPOINT=llm-twin llm-twin ask "Hi" --json',
    ],
    "eval": [
        "llm-twin eval examples/data/queries.jsonl",
        "llm-twin eval examples/data/queries.jsonl --k 1 --k 5 --k 10 --json",
    ],
}


def register(app: typer.Typer) -> None:
    """Add the data commands to ``app``."""
    panel = "Data side (ingest and ask)"
    commands: dict[str, Callable[..., None]] = {"ingest": ingest, "ask": ask, "eval": eval_}
    for name, command in commands.items():
        app.command(name, epilog=epilog(_EXAMPLES[name]), rich_help_panel=panel)(command)
