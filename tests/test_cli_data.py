"""The data side of ``llm-twin`` (ingest, ask, eval) in-process, fast: the commands get their
pipeline and twin from a :class:`Footing` built here — a real pipeline over a real embedded
Qdrant folder, with the word-hashing embedder and the scripted backend of tests/fakes (no
model). The real footing runs as a subprocess in test_cli_process.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import ROOT, run
from fakes import PIECES, HashingEmbedder, ScriptedBackend
from llm_twin_sdk import Answer, InferenceClient, LLMTwin, QdrantStore, RAGPipeline, TwinSettings
from llm_twin_sdk.cli.data_side import Footing

CORPUS = ROOT / "examples" / "data" / "corpus.jsonl"
QUERIES = ROOT / "examples" / "data" / "queries.jsonl"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QdrantStore]:
    """One embedded folder for every command of a test (as the real footing's folder)."""
    store = QdrantStore.local(tmp_path / "qdrant")
    yield store
    store.close()


@pytest.fixture
def built() -> list[TwinSettings]:
    """The settings each command built its footing with."""
    return []


@pytest.fixture
def footing(store: QdrantStore, built: list[TwinSettings]) -> Footing:
    def pipeline(settings: TwinSettings) -> RAGPipeline:
        built.append(settings)
        return RAGPipeline(HashingEmbedder(), store, top_k=settings.top_k)

    def twin(settings: TwinSettings) -> LLMTwin:
        return LLMTwin(pipeline(settings), InferenceClient(ScriptedBackend()))

    return Footing(twin=twin, pipeline=pipeline)


def test_ingest_then_again_skips_unchanged_documents(footing: Footing, store: QdrantStore) -> None:
    first = run("ingest", str(CORPUS), obj=footing)
    assert first.exit_code == 0, first.output
    assert "ingested 24 documents" in first.stdout
    assert "the store holds 24 documents" in first.stdout
    assert "ingest: 24/24 documents" in first.stderr  # progress lines without a terminal
    again = run("ingest", str(CORPUS), "--json", obj=footing)
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["documents"], report["chunks"], report["unchanged"]) == (0, 0, 24)
    assert report["stored"] == 24
    text = run("ingest", str(CORPUS), obj=footing).stdout
    assert "ingested 0 documents (0 chunks); 24 unchanged (already stored, skipped)" in text


def test_ingest_files_and_folders(footing: Footing, tmp_path: Path, store: QdrantStore) -> None:
    notes = tmp_path / "notes"
    (notes / "blog").mkdir(parents=True)
    (notes / "blog" / "gpu.md").write_text(
        "---\nauthor: Maya Okafor\nkind: post\n---\nQuantize before you scale out.\n"
    )
    (notes / "broken.md").write_text("---\nauthor: [unclosed\n---\nText\n")
    single = tmp_path / "single.txt"
    single.write_text("One note on its own.\n")
    result = run("ingest", str(notes), str(single), "--json", obj=footing)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["documents"] == 2
    assert [f["path"] for f in report["skipped_files"]] == [str(notes / "broken.md")]
    assert "skipped" in result.stderr
    assert {d.id for d in store.documents()} == {"blog/gpu", "single"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.jsonl"], "does not exist"),
        (["nope/"], "does not exist"),
    ],
)
def test_ingest_bad_paths_before_any_model(
    footing: Footing, built: list[TwinSettings], args: list[str], message: str
) -> None:
    result = run("ingest", *args, obj=footing)
    assert result.exit_code == 2
    assert message in result.output
    assert built == []  # refused before the pipeline (and its model) was built


def test_ingest_a_bad_jsonl_line_names_it(
    footing: Footing, built: list[TwinSettings], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{"id": "b"\n')
    result = run("ingest", str(bad), obj=footing)
    assert result.exit_code == 2
    assert f"{bad}:2: invalid JSON" in result.output
    assert built == []


def test_ingest_without_documents(footing: Footing, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("ingest", str(empty), obj=footing)
    assert result.exit_code == 2
    assert "no documents to ingest" in result.output


def test_ask_streams_then_shows_sources(footing: Footing) -> None:
    assert run("ingest", str(CORPUS), obj=footing).exit_code == 0
    result = run("ask", "How do I stop workers retrying at the same instant?", obj=footing)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "".join(PIECES)  # the streamed text first
    assert "Sources" in result.stdout
    assert "maya-post-backoff-jitter" in result.stdout
    assert "tokens" in result.stderr


def test_ask_json_prints_the_answer(footing: Footing) -> None:
    assert run("ingest", str(CORPUS), obj=footing).exit_code == 0
    result = run(
        "ask", "What did Lukas write about chunking?", "--json", "--k", "2",
        "--filter", "author=Lukas Brenner", "--max-new-tokens", "16", obj=footing,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    answer = Answer.model_validate_json(result.stdout)
    assert len(answer.sources) == 2
    assert {s.metadata.author for s in answer.sources} == {"Lukas Brenner"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "the question is empty"),
        (["Hi?", "--filter", "author"], "--filter takes FIELD=VALUE"),
        (["Hi?", "--filter", "colour=red"], "colour"),
        (["Hi?", "--k", "0"], "--k"),
    ],
)
def test_ask_bad_input(footing: Footing, args: list[str], message: str) -> None:
    result = run("ask", *args, obj=footing)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_ask_an_empty_store_warns(footing: Footing) -> None:
    result = run("ask", "Anything?", obj=footing)
    assert result.exit_code == 0, result.output
    assert "warning (EmptyStoreWarning)" in result.stderr
    assert "no sources" in result.stdout


def test_eval_scores_retrieval(footing: Footing) -> None:
    assert run("ingest", str(CORPUS), obj=footing).exit_code == 0
    table = run("eval", str(QUERIES), obj=footing)
    assert table.exit_code == 0, table.output
    for shown in ("Retrieval evaluation", "recall@5", "recall@10", "MRR@10", "overall"):
        assert shown in table.stdout
    result = run("eval", str(QUERIES), "--k", "1", "--k", "3", "--json", obj=footing)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["k_values"] == [1, 3]
    assert report["overall"]["queries"] == 36
    assert 0 < report["overall"]["recall"]["3"] <= 1


def test_eval_bad_file(footing: Footing, built: list[TwinSettings], tmp_path: Path) -> None:
    bad = tmp_path / "queries.jsonl"
    bad.write_text('{"query": "q", "relevant": [], "kind": "paraphrase"}\n')
    result = run("eval", str(bad), obj=footing)
    assert result.exit_code == 2
    assert f"{bad}:1" in result.output
    assert "relevant" in result.output
    assert built == []


def test_eval_with_llm_query_steps_retrieves_through_the_twin(
    footing: Footing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Query expansion needs the LLM: eval then retrieves through the twin's pipeline."""
    assert run("ingest", str(CORPUS), obj=footing).exit_code == 0
    twins: list[TwinSettings] = []

    def twin(settings: TwinSettings) -> LLMTwin:
        twins.append(settings)
        return footing.twin(settings)

    monkeypatch.setenv("LLM_TWIN_QUERY_EXPANSION", "2")
    result = run("eval", str(QUERIES), "--json", obj=Footing(twin=twin, pipeline=footing.pipeline))
    assert result.exit_code == 0, result.output
    assert [s.query_expansion for s in twins] == [2]
    assert json.loads(result.stdout)["overall"]["queries"] == 36
