"""How an ingest runs, without a model: batch sizes bounded in time, the progress a terminal,
a notebook or a callback gets, and what an interrupt says."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

from llm_twin_sdk import Document, IngestProgress, InvalidParameterError
from llm_twin_sdk.rag.chunking import chunk_id
from llm_twin_sdk.rag.ingestion import (
    FIRST_BATCH,
    BatchSizer,
    Tally,
    check_progress,
    in_notebook,
    interrupted,
    progress_reporter,
)
from llm_twin_sdk.types import Chunk


def _chunked(sizes: list[int]) -> list[tuple[Document, list[Chunk]]]:
    docs = []
    for n, size in enumerate(sizes):
        doc = Document(id=f"d{n}", text="text")
        chunks = [
            Chunk(id=chunk_id(doc.id, i), document_id=doc.id, position=i, text="t")
            for i in range(size)
        ]
        docs.append((doc, chunks))
    return docs


def test_the_first_batch_is_small_then_batches_take_about_the_time_asked() -> None:
    sizer = BatchSizer(limit=2048, seconds=5.0)
    assert sizer.target == FIRST_BATCH
    sizer.measured(64, 1.0)  # 64 chunks/s
    assert sizer.target == 320  # 5 s of work
    sizer.measured(320, 2.5)  # now 128 chunks/s: smoothed with the first, 96/s
    assert sizer.target == 480
    sizer.measured(480, 0.01)  # very fast: capped by the size limit
    assert sizer.target == 2048
    assert BatchSizer(limit=10, seconds=5.0).target == 10  # the limit caps the first too


def test_batches_too_small_to_measure_leave_the_size_alone() -> None:
    sizer = BatchSizer(limit=2048, seconds=5.0)
    sizer.measured(0, 0.2)  # every document unchanged: nothing embedded
    sizer.measured(3, 0.001)
    assert sizer.target == FIRST_BATCH
    assert sizer.rate is None


def test_batches_hold_whole_documents_and_follow_the_target() -> None:
    sizer = BatchSizer(limit=100, seconds=1.0)
    sizer.target = 5
    chunked = _chunked([3, 3, 3, 1, 7, 2, 2])
    batches = []
    for batch in sizer.batches(chunked):
        batches.append([doc.id for doc, _ in batch])
        sizer.target = 8  # read again as each batch starts
    assert batches == [["d0", "d1"], ["d2", "d3", "d4"], ["d5", "d6"]]


def test_progress_must_be_a_flag_or_a_function() -> None:
    assert check_progress(None) is None
    assert check_progress(False) is False
    assert check_progress(print) is print
    with pytest.raises(InvalidParameterError, match="progress must be True, False, None"):
        check_progress("yes")


class _Kernel:
    kernel = object()  # what an IPython kernel's shell has and a terminal IPython lacks


def _ipython(monkeypatch: pytest.MonkeyPatch, shell: object) -> None:
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell  # type: ignore[attr-defined]  # a module attribute
    monkeypatch.setitem(sys.modules, "IPython", module)


def test_notebook_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not in_notebook()  # plain Python
    _ipython(monkeypatch, None)
    assert not in_notebook()  # IPython imported, no shell running
    _ipython(monkeypatch, object())
    assert not in_notebook()  # a terminal IPython shell
    _ipython(monkeypatch, _Kernel())
    assert in_notebook()


def test_a_notebook_gets_a_text_bar_without_ipywidgets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def without_ipywidgets(name: str, package: str | None = None) -> object:
        return None if name == "ipywidgets" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_ipywidgets)  # as if not installed
    with progress_reporter(None, 10) as report:  # stderr is no terminal here, no notebook
        report(IngestProgress(5, 6, 5, 10))
    assert capsys.readouterr().err == ""
    _ipython(monkeypatch, _Kernel())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm.auto's "IProgress not found" would fail this
        with progress_reporter(None, 10) as report:
            report(IngestProgress(0, 6, 0, 10))
            report(IngestProgress(4, 6, 7, 10))
    err = capsys.readouterr().err
    assert "ingest:" in err
    assert "7/10" in err
    assert "4/6 documents" in err


def test_a_callback_gets_every_report_and_no_bar(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[IngestProgress] = []
    with progress_reporter(seen.append, 10) as report:
        report(IngestProgress(0, 2, 0, 10))
    assert seen == [IngestProgress(0, 2, 0, 10)]
    assert capsys.readouterr().err == ""


def test_what_an_interrupt_says() -> None:
    tally = Tally(IngestProgress(0, 504, 0, 1638))
    tally.add(documents=120, chunks=400, unchanged=20, written_chunks=330)
    message = interrupted(tally)
    assert message.startswith("ingest interrupted: 120 of 504 documents are stored")
    assert "100 written now, 20 already stored" in message
    assert "Run the same ingest again to resume" in message
