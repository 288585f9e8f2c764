"""Document sources: JSONL files, folders of Markdown/text notes, Python objects."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from llm_twin_sdk import Document, Embedder, QdrantStore
from llm_twin_sdk.errors import InvalidDocumentError, InvalidParameterError
from llm_twin_sdk.rag.pipeline import RAGPipeline
from llm_twin_sdk.rag.sources import FolderLoad, load_documents, load_folder, load_jsonl

CORPUS = Path(__file__).resolve().parent.parent / "examples" / "data" / "corpus.jsonl"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def skip_reasons(loaded: FolderLoad, root: Path) -> dict[str, str]:
    return {s.path.relative_to(root).as_posix(): s.reason for s in loaded.skipped}


# -- JSONL --------------------------------------------------------------------------------


def test_jsonl_loads_the_sample_corpus(corpus: list[Document]) -> None:
    docs = load_jsonl(CORPUS)
    assert len(docs) == 24
    assert docs == corpus


def test_jsonl_skips_blank_lines_and_accepts_str_paths(tmp_path: Path) -> None:
    file = write(
        tmp_path / "docs.jsonl",
        '{"id": "a", "text": "alpha"}\n\n   \n{"id": "b", "text": "beta", '
        '"metadata": {"kind": "post"}}\n',
    )
    docs = load_jsonl(str(file))
    assert [d.id for d in docs] == ["a", "b"]
    assert docs[1].metadata.kind == "post"


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "expected a JSON object, got list"),
        ('{"id": "x", "text": "t", "metadata": {"kind": "tweet"}}', "DocumentMetadata: kind:"),
        ('{"id": "x", "text": "   "}', "no text"),
        ('{"id": "x", "text": "t", "extra": 1}', "extra"),
        ('{"id": "a", "text": "again"}', "duplicate document id 'a' (first on line 1)"),
        ('{"id": "x", "text": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"id": "x", "text": "t", "n": ' + "9" * 5000 + "}", "invalid JSON: Exceeds the limit"),
        ('{"id": "x", "text": "t\\ud800"}', "lone surrogate '\\ud800' at position 1"),
    ],
)
def test_jsonl_bad_line_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    file = write(tmp_path / "docs.jsonl", f'{{"id": "a", "text": "alpha"}}\n\n{bad_line}\n')
    with pytest.raises(InvalidDocumentError) as info:
        load_jsonl(file)
    assert f"{file}:3:" in str(info.value)
    assert message in str(info.value)


def test_jsonl_undecodable_line(tmp_path: Path) -> None:
    file = write(
        tmp_path / "docs.jsonl", b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "\xff"}\n'
    )
    with pytest.raises(InvalidDocumentError, match=r"docs\.jsonl:2: not valid UTF-8"):
        load_jsonl(file)


def test_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(InvalidParameterError, match="is not a file"):
        load_jsonl(tmp_path)


# -- folders ------------------------------------------------------------------------------

GOOD_NOTE = """\
---
id: gpu-cost
author: Maya Okafor
platform: medium
kind: article
url: https://example.com/gpu-cost
title: "Cutting GPU cost: a field guide"
---

Quantize before you scale out.
"""


def test_folder_front_matter_plain_files_and_nested_ids(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    write(root / "gpu.md", GOOD_NOTE)
    write(root / "plain.txt", "No front matter here.\nJust text.\n")
    write(root / "blog" / "2024" / "retries.markdown", "---\nkind: post\n---\nBack off.\n")
    write(root / "empty-front.md", "---\n---\nBody after empty front matter.\n")
    write(root / "ignored.rst", "Not matched by the default patterns.")

    loaded = load_folder(root)

    assert loaded.skipped == ()
    by_id = {d.id: d for d in loaded.documents}
    assert set(by_id) == {"gpu-cost", "plain", "blog/2024/retries", "empty-front"}
    gpu = by_id["gpu-cost"]
    assert gpu.text == "Quantize before you scale out.\n"
    assert gpu.metadata.model_dump() == {
        "author": "Maya Okafor",
        "platform": "medium",
        "kind": "article",
        "url": "https://example.com/gpu-cost",
        "title": "Cutting GPU cost: a field guide",
    }
    assert by_id["plain"].text == "No front matter here.\nJust text.\n"
    assert by_id["plain"].metadata.model_dump() == dict.fromkeys(
        ("author", "platform", "kind", "url", "title")
    )
    assert by_id["blog/2024/retries"].metadata.kind == "post"
    assert by_id["blog/2024/retries"].text == "Back off.\n"
    assert by_id["empty-front"].text == "Body after empty front matter.\n"


def test_folder_order_is_sorted_and_deterministic(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    for name in ["zeta.md", "alpha.txt", "mid/b.md", "mid/a.md", "beta.markdown"]:
        write(root / name, f"text of {name}")
    first = load_folder(root)
    assert [d.id for d in first.documents] == ["alpha", "beta", "mid/a", "mid/b", "zeta"]
    assert load_folder(root) == first


def test_folder_non_recursive_and_custom_pattern(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    write(root / "top.md", "top")
    write(root / "top.txt", "top text")
    write(root / "sub" / "deep.md", "deep")
    shallow = load_folder(root, recursive=False)
    assert [d.id for d in shallow.documents] == ["top"]
    assert [s.path.name for s in shallow.skipped] == ["top.txt"]  # same default id "top"
    assert [d.id for d in load_folder(root, pattern="*.md").documents] == ["sub/deep", "top"]
    only_top = load_folder(root, pattern=("*.md",), recursive=False)
    assert [d.id for d in only_top.documents] == ["top"]
    with pytest.raises(InvalidParameterError, match="pattern"):
        load_folder(root, pattern=())


def test_folder_each_bad_file_is_reported_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "notes"
    write(root / "good.md", GOOD_NOTE)
    write(root / "also-good.txt", "Plain text is fine.")
    write(root / "bad-kind.md", "---\nkind: tweet\n---\nBody.\n")
    write(root / "unknown-key.md", "---\nauthor: Maya\ntags: [a, b]\n---\nBody.\n")
    write(root / "bad-yaml.md", "---\ntitle: [unclosed\n---\nBody.\n")
    write(root / "list-front.md", "---\n- a\n- b\n---\nBody.\n")
    write(root / "unclosed.md", "---\nauthor: Maya\nBody without a closing fence.\n")
    write(root / "empty-body.md", "---\nauthor: Maya\n---\n\n   \n")
    write(root / "empty.txt", "")
    write(root / "latin1.txt", "caf\xe9".encode("latin-1"))
    write(root / "bad-type.md", "---\ntitle: 2024\n---\nBody.\n")

    with caplog.at_level(logging.WARNING, logger="llm_twin_sdk.rag.sources"):
        loaded = load_folder(root)

    assert [d.id for d in loaded.documents] == ["also-good", "gpu-cost"]
    reasons = skip_reasons(loaded, root)
    assert set(reasons) == {
        "bad-kind.md",
        "unknown-key.md",
        "bad-yaml.md",
        "list-front.md",
        "unclosed.md",
        "empty-body.md",
        "empty.txt",
        "latin1.txt",
        "bad-type.md",
    }
    assert reasons["bad-kind.md"].startswith("invalid DocumentMetadata: kind: Input should be")
    assert "unknown front matter key(s) 'tags'" in reasons["unknown-key.md"]
    assert "not valid YAML" in reasons["bad-yaml.md"]
    assert "must be a mapping" in reasons["list-front.md"]
    assert "not closed" in reasons["unclosed.md"]
    assert "empty body" in reasons["empty-body.md"]
    assert "empty body" in reasons["empty.txt"]
    assert "not valid UTF-8" in reasons["latin1.txt"]
    assert "invalid DocumentMetadata: title:" in reasons["bad-type.md"]
    # skipped files come in path order, each logged at WARNING with its reason
    assert [s.path.name for s in loaded.skipped] == sorted(reasons)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(reasons)
    for skipped in loaded.skipped:
        assert any(str(skipped.path) in w and skipped.reason in w for w in warnings)


def test_folder_duplicate_ids_keep_the_first_in_path_order(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    write(root / "a.md", "---\nid: shared\n---\nfirst\n")
    write(root / "b.md", "---\nid: shared\n---\nsecond\n")
    write(root / "note.md", "markdown note")
    write(root / "note.txt", "text note with the same default id")

    loaded = load_folder(root)

    assert [(d.id, d.text) for d in loaded.documents] == [
        ("shared", "first\n"),
        ("note", "markdown note"),
    ]
    reasons = skip_reasons(loaded, root)
    assert reasons == {
        "b.md": "duplicate document id 'shared' (already used by a.md)",
        "note.txt": "duplicate document id 'note' (already used by note.md)",
    }


def test_folder_bad_id_in_front_matter_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    write(root / "blank-id.md", "---\nid: '  '\n---\nBody.\n")
    write(root / "ok.md", "Body.")
    loaded = load_folder(root)
    assert [d.id for d in loaded.documents] == ["ok"]
    assert "id" in skip_reasons(loaded, root)["blank-id.md"]


def test_folder_missing_or_file_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_folder(tmp_path / "missing")
    file = write(tmp_path / "note.md", "text")
    with pytest.raises(InvalidParameterError, match="is a file, not a folder"):
        load_folder(file)


def test_folder_load_is_immutable(tmp_path: Path) -> None:
    write(tmp_path / "notes" / "a.md", "text")
    loaded = load_folder(tmp_path / "notes")
    with pytest.raises(AttributeError):
        loaded.documents = ()  # type: ignore[misc]


# -- dispatch -----------------------------------------------------------------------------


def test_load_documents_dispatches_on_the_source(
    tmp_path: Path, corpus: list[Document], caplog: pytest.LogCaptureFixture
) -> None:
    assert load_documents(CORPUS) == corpus
    assert load_documents(str(CORPUS)) == corpus

    root = tmp_path / "notes"
    write(root / "a.md", GOOD_NOTE)
    write(root / "b.md", "---\nkind: tweet\n---\nBody.\n")
    with caplog.at_level(logging.WARNING, logger="llm_twin_sdk.rag.sources"):
        docs = load_documents(root)
    assert [d.id for d in docs] == ["gpu-cost"]
    assert any("skipped 1 files" in r.getMessage() for r in caplog.records)
    assert [d.id for d in load_documents(str(root))] == ["gpu-cost"]

    given: list[Document | dict[str, Any]] = [
        Document(id="x", text="one"),
        {"id": "y", "text": "two", "metadata": {}},
    ]
    assert load_documents(given) == [Document(id="x", text="one"), Document(id="y", text="two")]
    assert load_documents(d for d in corpus[:2]) == corpus[:2]
    assert load_documents([]) == []


def test_load_documents_bad_input(tmp_path: Path) -> None:
    single: Any = {"id": "x", "text": "t"}
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_documents(tmp_path / "missing.md")
    other = write(tmp_path / "notes.csv", "a,b")
    with pytest.raises(InvalidParameterError, match=r"is not a \.jsonl file"):
        load_documents(other)
    with pytest.raises(InvalidDocumentError, match="not a single document"):
        load_documents(single)
    with pytest.raises(InvalidDocumentError, match="not a single document"):
        load_documents(Document(id="x", text="t"))  # type: ignore[arg-type]
    with pytest.raises(InvalidDocumentError, match=r"document #1 \(id='b'\)"):
        load_documents([{"id": "a", "text": "t"}, {"id": "b", "text": ""}])
    with pytest.raises(InvalidDocumentError, match="appears twice"):
        load_documents([{"id": "a", "text": "t"}, Document(id="a", text="u")])
    with pytest.raises(InvalidDocumentError, match="must be a Document or a mapping"):
        load_documents([42])  # type: ignore[list-item]
    for nothing in (None, 42):
        with pytest.raises(InvalidDocumentError, match=r"a \.jsonl path, a folder or a list"):
            load_documents(nothing)  # type: ignore[arg-type]


@pytest.mark.slow
def test_folder_ingest_skips_bad_files_and_ingests_the_rest(
    tmp_path: Path, embedder: Embedder, memory_store: QdrantStore
) -> None:
    root = tmp_path / "notes"
    write(root / "a.md", GOOD_NOTE)
    write(root / "sub" / "b.txt", "Exponential backoff with full jitter avoids thundering herds.")
    write(root / "bad.md", "---\nkind: tweet\n---\nBody.\n")
    loaded = load_folder(root)
    report = RAGPipeline(embedder, memory_store).ingest(loaded.documents)
    assert report.documents == 2
    assert [s.path.name for s in loaded.skipped] == ["bad.md"]
