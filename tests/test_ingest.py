"""Ingestion at scale: batches of whole documents, a progress bar or callback, fingerprints
that skip unchanged documents, and resuming a run that was killed, interrupted (Ctrl-C) or
failed part-way."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from llm_twin_sdk import (
    CollectionMismatchError,
    ConfigurationError,
    Document,
    Embedder,
    EmbeddingError,
    IngestProgress,
    InvalidDocumentError,
    InvalidParameterError,
    QdrantStore,
    RAGPipeline,
)
from llm_twin_sdk.rag.chunking import chunk_id

ROOT = Path(__file__).resolve().parent.parent
CORPUS = "examples/data/corpus.jsonl"


def _written(store: QdrantStore) -> list[list[str]]:
    """Record the document ids of each write_documents call (the real method still runs)."""
    calls: list[list[str]] = []
    real = store.write_documents

    def spy(chunks: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(sorted({c.document_id for c in chunks}))
        real(chunks, *args, **kwargs)

    store.write_documents = spy  # type: ignore[method-assign]
    return calls


def test_batches_hold_whole_documents(
    embedder: Embedder, memory_store: QdrantStore, corpus: list[Document]
) -> None:
    rag = RAGPipeline(embedder, memory_store, ingest_batch=16)
    per_doc = {d.id: len(rag.chunk([d])) for d in corpus}
    calls = _written(memory_store)
    report = rag.ingest(corpus)
    assert len(calls) > 3
    written = [doc for call in calls for doc in call]
    assert sorted(written) == sorted(per_doc)  # every document once, never split
    for call in calls[:-1]:  # a batch closes once it holds 16 chunks or more
        sizes = [per_doc[d] for d in call]
        assert sum(sizes) >= 16
        assert sum(sizes) - min(sizes) < 16
    assert report.chunks == memory_store.count() == sum(per_doc.values())
    assert (report.documents, report.unchanged) == (len(corpus), 0)


def test_progress_bar_only_when_asked_or_on_a_terminal(
    embedder: Embedder, corpus: list[Document], capsys: pytest.CaptureFixture[str]
) -> None:
    RAGPipeline(embedder, QdrantStore.memory()).ingest(corpus[:3])  # stderr is not a tty here
    assert capsys.readouterr().err == ""
    RAGPipeline(embedder, QdrantStore.memory()).ingest(corpus[:3], progress=True)
    err = capsys.readouterr().err
    assert "ingest" in err
    assert "chunk" in err
    RAGPipeline(embedder, QdrantStore.memory()).ingest(corpus[:3], progress=False)
    assert capsys.readouterr().err == ""


def test_changed_settings_re_embed_and_leave_no_stale_chunks(
    embedder: Embedder, memory_store: QdrantStore, corpus: list[Document]
) -> None:
    coarse = RAGPipeline(embedder, memory_store, chunk_tokens=128, chunk_overlap=24)
    fine = RAGPipeline(embedder, memory_store, chunk_tokens=48, chunk_overlap=8)
    coarse.ingest(corpus)
    report = fine.ingest(corpus)  # other chunking: every fingerprint differs
    assert (report.documents, report.unchanged) == (len(corpus), 0)
    assert memory_store.count() == len(fine.chunk(corpus)) == report.chunks
    back = coarse.ingest(corpus)  # and back: the longer tails of the fine chunking go
    assert back.documents == len(corpus)
    assert memory_store.count() == len(coarse.chunk(corpus))


def test_a_chunk_deleted_by_hand_is_written_again(
    embedder: Embedder, memory_store: QdrantStore, corpus: list[Document]
) -> None:
    from qdrant_client import models

    rag = RAGPipeline(embedder, memory_store)
    rag.ingest(corpus)
    total = memory_store.count()
    doc = corpus[0]
    collection = memory_store.collection_for(doc.metadata.kind)
    memory_store._client.delete(
        collection, points_selector=models.PointIdsList(points=[chunk_id(doc.id, 0)])
    )
    report = rag.ingest(corpus)
    assert (report.documents, report.unchanged) == (1, len(corpus) - 1)
    assert memory_store.count() == total


class _FailsOnce:
    """``embedder``, but its ``fail_at``-th encode call raises (once)."""

    def __init__(self, embedder: Embedder, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls = embedder, fail_at, 0
        self.model_name, self.dimension = embedder.model_name, embedder.dimension
        self.max_tokens = embedder.max_tokens
        self.token_offsets = embedder.token_offsets

    def encode(self, texts: Sequence[str]) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            raise EmbeddingError("the embedding server went away")
        return self.inner.encode(texts)

    async def aencode(self, texts: Sequence[str]) -> Any:
        return self.encode(texts)


def test_a_failure_part_way_keeps_whole_batches_and_resumes(
    embedder: Embedder, memory_store: QdrantStore, corpus: list[Document]
) -> None:
    # The third batch fails to embed (batch n+1 embeds while batch n is written): the two
    # batches before it are stored, whole documents only, and a second run resumes.
    failing = _FailsOnce(embedder, fail_at=3)
    rag = RAGPipeline(failing, memory_store, ingest_batch=8)
    with pytest.raises(EmbeddingError) as info:
        rag.ingest(corpus)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "ingest the same documents again to resume" in notes
    stored = int(notes.split(" of ")[0])
    assert 0 < stored < len(corpus)
    assert memory_store.count() == len(rag.chunk(corpus[:stored]))  # whole documents only

    report = rag.ingest(corpus)
    assert report.unchanged == stored
    assert report.documents == len(corpus) - stored
    assert memory_store.count() == len(rag.chunk(corpus))


def test_a_collection_of_another_size_fails_before_any_write(
    embedder: Embedder, memory_store: QdrantStore, corpus: list[Document]
) -> None:
    # Changed on purpose by issue 13: the collections an ingest writes to are checked against
    # the embedder's size before the first write (it used to fail at the first batch holding
    # a repository, after the batches before it were written).
    memory_store.ensure_collection(8, "repositories")
    ordered = sorted(corpus, key=lambda d: d.metadata.kind == "repository")
    rag = RAGPipeline(embedder, memory_store, ingest_batch=8)
    with pytest.raises(CollectionMismatchError, match="size 8") as info:
        rag.ingest(ordered)
    assert "0 of" in " ".join(getattr(info.value, "__notes__", []))
    assert memory_store.count() == 0


def test_a_bad_document_anywhere_writes_nothing(
    embedder: Embedder, memory_store: QdrantStore, corpus: list[Document]
) -> None:
    rag = RAGPipeline(embedder, memory_store, ingest_batch=4)
    with pytest.raises(InvalidDocumentError):
        rag.ingest([*corpus, {"id": "last", "text": " "}])
    assert memory_store.count() == 0


INGEST_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from llm_twin_sdk import Document, Embedder, QdrantStore, RAGPipeline

    folder, corpus = sys.argv[1], sys.argv[2]
    docs = [Document(**json.loads(line)) for line in open(corpus, encoding="utf-8") if line.strip()]
    rag = RAGPipeline(Embedder(), QdrantStore.local(folder), ingest_batch=4)
    rag.ingest(docs, progress=True)
    print("DONE", flush=True)
    """
)


def _start(tmp_path: Path, script: str, *, text: bool) -> subprocess.Popen[Any]:
    """``script`` in a new process, given a folder (``tmp_path / "qdrant"``) and the corpus."""
    path = tmp_path / "ingest.py"
    path.write_text(script, encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(path), str(tmp_path / "qdrant"), str(ROOT / CORPUS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
    )


def test_a_killed_run_resumes_without_duplicates(
    tmp_path: Path, embedder: Embedder, corpus: list[Document]
) -> None:
    folder = tmp_path / "qdrant"
    process = _start(tmp_path, INGEST_SCRIPT, text=False)
    assert process.stderr is not None
    # tqdm redraws "ingest:  NN%|...| done/total" on stderr; kill once some batches are in
    seen = b""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        byte = process.stderr.read(1)
        if not byte:
            break
        seen += byte
        tail = seen.decode("utf-8", "replace").rsplit("\r", 1)[-1]
        if "/" in tail and "chunk" in tail:
            done = tail.split("|")[-1].strip().split("/")[0]
            if done.isdigit() and int(done) >= 20:
                break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, seen.decode("utf-8", "replace")[-2000:]

    store = QdrantStore.local(folder)
    rag = RAGPipeline(embedder, store, ingest_batch=4)
    try:
        interrupted = rag.store.count()
        expected = len(rag.chunk(corpus))
        assert 0 < interrupted < expected  # killed part-way
        report = rag.ingest(corpus)
        assert report.unchanged > 0
        assert report.documents + report.unchanged == len(corpus)
        assert rag.store.count() == expected  # nothing twice, nothing missing
        again = rag.ingest(corpus)
        assert (again.documents, again.unchanged) == (0, len(corpus))
    finally:
        rag.close()
        store.close()


def test_progress_callback_sees_every_batch(
    embedder: Embedder, memory_store: QdrantStore, corpus: list[Document]
) -> None:
    seen: list[IngestProgress] = []
    rag = RAGPipeline(embedder, memory_store, ingest_batch=16)
    rag.ingest(corpus, progress=seen.append)
    chunks = len(rag.chunk(corpus))
    assert seen[0] == IngestProgress(0, len(corpus), 0, chunks, 0.0)  # before the first batch
    assert (seen[-1].documents_done, seen[-1].chunks_done) == (len(corpus), chunks)
    assert len(seen) > 3
    assert all(
        a.documents_done < b.documents_done and a.chunks_done < b.chunks_done
        for a, b in itertools.pairwise(seen)
    )
    again: list[IngestProgress] = []
    rag.ingest(corpus, progress=again.append)  # unchanged documents count as done
    assert (again[-1].documents_done, again[-1].chunks_done) == (len(corpus), chunks)


def test_bad_progress_is_refused_before_any_write(
    embedder: Embedder, memory_store: QdrantStore, corpus: list[Document]
) -> None:
    with pytest.raises(InvalidParameterError, match="progress must be"):
        RAGPipeline(embedder, memory_store).ingest(corpus, progress="bar")  # type: ignore[arg-type]  # the wrong type on purpose
    assert memory_store.count() == 0


def test_bad_batch_seconds_are_refused(embedder: Embedder, memory_store: QdrantStore) -> None:
    for bad in (0, -1.0, float("nan"), "5"):
        with pytest.raises(ConfigurationError, match="ingest_batch_seconds"):
            RAGPipeline(embedder, memory_store, ingest_batch_seconds=bad)  # type: ignore[arg-type]  # wrong on purpose


INTERRUPTED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from llm_twin_sdk import Document, Embedder, QdrantStore, RAGPipeline

    folder, corpus = sys.argv[1], sys.argv[2]
    lines = [json.loads(line) for line in open(corpus, encoding="utf-8") if line.strip()]
    docs = [Document(**{**d, "id": f"{d['id']}-{n}"}) for n in range(10) for d in lines]
    rag = RAGPipeline(Embedder(), QdrantStore.local(folder), ingest_batch=16)
    rag.ingest(docs, progress=lambda p: print("DONE", p.documents_done, flush=True))
    print("FINISHED", flush=True)
    """
)


def test_ctrl_c_keeps_finished_batches_and_says_how_to_resume(
    tmp_path: Path, embedder: Embedder, corpus: list[Document]
) -> None:
    folder = tmp_path / "qdrant"
    process = _start(tmp_path, INTERRUPTED_SCRIPT, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    for line in process.stdout:  # a few batches in, press Ctrl-C
        if (line.startswith("DONE") and int(line.split()[1]) >= 30) or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert "FINISHED" not in out, "the ingest ended before the interrupt: make it longer"
    assert process.returncode in (-signal.SIGINT, 1, 130), err[-2000:]  # an uncaught interrupt
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(
        r"KeyboardInterrupt: ingest interrupted: (\d+) of 240 documents are stored "
        r"\((\d+) written now, 0 already stored\)\. Run the same ingest again to resume: "
        r"stored documents are skipped\.",
        last,
    )
    assert match, err[-2000:]
    assert "torch" not in err  # the user's frames and the SDK's raise, nothing underneath
    assert err.count('  File "') <= 3, err

    stored = int(match.group(1))
    docs = [d.model_copy(update={"id": f"{d.id}-{n}"}) for n in range(10) for d in corpus]
    with closing(QdrantStore.local(folder)) as store, RAGPipeline(embedder, store) as rag:
        kept = rag.count()
        assert 30 <= stored <= kept <= stored + 16  # (+ a batch written as the signal came)
        report = rag.ingest(docs)  # the same ingest again resumes
        assert (report.unchanged, report.documents) == (kept, len(docs) - kept)
        assert rag.count() == len(docs)
