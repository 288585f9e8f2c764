"""The embedded engine (Qdrant Edge behind qdrant-client's method names): folder layout,
one engine per folder shared within a process, the lock against other processes,
persistence, the temporary folder of memory(), and what it refuses."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from llm_twin_sdk import (
    Chunk,
    CollectionMismatchError,
    QdrantStore,
    VectorStoreError,
    VectorStoreLockedError,
)
from llm_twin_sdk.rag.chunking import chunk_id
from llm_twin_sdk.rag.edge import LAYOUT_FILE, LOCK_FILE, EdgeClient


def _chunks(doc: str, n: int, kind: str = "post") -> list[Chunk]:
    return [
        Chunk(
            id=chunk_id(doc, i),
            document_id=doc,
            position=i,
            text=f"{doc} part {i} about qdrant",
            metadata={"kind": kind, "author": "Maya Okafor"},
        )
        for i in range(n)
    ]


def _vectors(n: int, dim: int = 8) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    unit: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def test_folder_layout_persistence_and_reopening(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.write_documents(_chunks("a", 3), _vectors(3))
    store.close()
    assert (tmp_path / "q" / "posts" / LAYOUT_FILE).is_file()
    assert (tmp_path / "q" / LOCK_FILE).is_file()
    again = QdrantStore.local(tmp_path / "q")
    try:
        assert again.count() == 3
        hits = again.search(_vectors(3)[1], 1)
        assert hits[0].id == chunk_id("a", 1)
        assert hits[0].metadata.author == "Maya Okafor"
        assert again.distinct("author") == ["Maya Okafor"]  # keyword index on a reopened shard
    finally:
        again.close()


def _lock_is_free(folder: Path) -> bool:
    """Whether another open of the folder's lock file could lock it (as another process
    would: flock locks belong to an open file, so this works within one process too)."""
    with (folder / LOCK_FILE).open("a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_stores_on_one_folder_share_one_engine(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path, target_is_directory=True)
    first = QdrantStore.local(tmp_path / "q")
    second = QdrantStore.local(tmp_path / "link" / "q")  # the same folder, spelt otherwise
    assert isinstance(first._client, EdgeClient)
    assert isinstance(second._client, EdgeClient)
    assert first._client._open is second._client._open
    first.write_documents(_chunks("a", 3), _vectors(3))
    assert second.count() == 3  # what one writes, the other reads at once
    first.close()
    first.close()  # twice is one release
    with pytest.raises(VectorStoreError, match="closed"):
        first.count()
    assert second.count() == 3  # the folder stays open for the other holder
    assert not _lock_is_free(tmp_path / "q")
    second.close()
    assert _lock_is_free(tmp_path / "q")  # the last holder closed it
    again = QdrantStore.local(tmp_path / "q")
    assert again.count() == 3
    again.close()


def test_a_store_dropped_without_close_gives_back_its_handle(tmp_path: Path) -> None:
    kept = QdrantStore.local(tmp_path / "q")
    dropped = QdrantStore.local(tmp_path / "q")
    dropped.write_documents(_chunks("a", 2), _vectors(2))
    del dropped  # no gc.collect(): the handle is released when its last reference goes
    assert kept.count() == 2
    kept.close()
    assert _lock_is_free(tmp_path / "q")
    assert QdrantStore.local(tmp_path / "q").count() == 2  # flushed; this one is dropped too
    assert _lock_is_free(tmp_path / "q")


def test_threads_opening_and_closing_one_folder(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for round_ in range(5):
                store = QdrantStore.local(folder)
                store.write_documents(_chunks(f"d{n}-{round_}", 2), _vectors(2))
                assert store.search(_vectors(1)[0], 1)
                store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _lock_is_free(folder)
    with closing(QdrantStore.local(folder)) as store:
        assert store.count() == 6 * 5 * 2


HOLDER = """
import sys
from llm_twin_sdk import QdrantStore
store = QdrantStore.local(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
"""


def test_another_process_is_named_and_pointed_to_a_server(tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER, encoding="utf-8")
    folder = tmp_path / "q"
    holder = subprocess.Popen(
        [sys.executable, str(script), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(VectorStoreLockedError) as info:
            QdrantStore.local(folder)
        message = str(info.value)
        assert f"held by process {holder.pid} (holder.py)" in message
        assert "uvicorn --workers 2" in message
        assert "LLM_TWIN_QDRANT_URL" in message
        assert (info.value.pid, info.value.path) == (holder.pid, folder.resolve())
    finally:
        holder.communicate("\n", timeout=30)
    with QdrantStore.local(folder) as store:  # free once that process is gone
        assert store.count() == 0
        assert f'"pid": {os.getpid()}' in (folder / LOCK_FILE).read_text(encoding="utf-8")


def test_memory_store_leaves_nothing_behind() -> None:
    store = QdrantStore.memory()
    store.write_documents(_chunks("a", 2), _vectors(2))
    assert isinstance(store._client, EdgeClient)
    folder = store._client.folder
    assert folder.is_dir()
    store.close()
    store.close()  # twice is fine
    assert not folder.exists()


def test_delete_collections_twice_and_write_again(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.write_documents(_chunks("a", 2), _vectors(2))
    store.delete_collections()
    store.delete_collections()
    assert store.count() == 0
    assert not (tmp_path / "q" / "posts").exists()
    store.write_documents(_chunks("b", 1), _vectors(1))
    assert store.count() == 1
    store.close()


def test_a_collection_of_another_size_is_refused_after_reopening(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.write_documents(_chunks("a", 1), _vectors(1, dim=8))
    store.close()
    again = QdrantStore.local(tmp_path / "q")
    with pytest.raises(CollectionMismatchError, match="size 8"):
        again.write_documents(_chunks("b", 1), _vectors(1, dim=16))
    again.close()


def test_unsupported_filters_are_refused_not_ignored(tmp_path: Path) -> None:
    from qdrant_client import models

    client = EdgeClient(tmp_path / "q")
    try:
        client.create_collection(
            "c",
            vectors_config={"dense": models.VectorParams(size=2, distance=models.Distance.COSINE)},
        )
        request = models.QueryRequest(
            query=[1.0, 0.0],
            using="dense",
            filter=models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gt=1))]),
        )
        with pytest.raises(VectorStoreError, match="not supported in embedded mode"):
            client.query_batch_points("c", requests=[request])
    finally:
        client.close()


def test_operations_on_a_closed_folder_raise_a_store_error(tmp_path: Path) -> None:
    store = QdrantStore.local(tmp_path / "q")
    store.write_documents(_chunks("a", 1), _vectors(1))
    store.close()
    with pytest.raises(VectorStoreError, match="closed"):
        store.search(_vectors(1)[0], 1)


def test_an_unclosed_memory_store_is_removed_when_collected() -> None:
    import gc

    store = QdrantStore.memory()
    store.write_documents(_chunks("a", 1), _vectors(1))
    assert isinstance(store._client, EdgeClient)
    folder = store._client.folder
    del store
    gc.collect()
    assert not folder.exists()


def test_a_forked_child_cannot_use_or_unlock_its_parents_folder(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    store = QdrantStore.local(folder)
    store.write_documents(_chunks("a", 2), _vectors(2))
    pid = os.fork()
    if pid == 0:  # the child: refused, then exits without touching the parent's lock
        code = 0
        try:
            store.count()
            code = 3
        except VectorStoreLockedError as exc:
            code = 0 if f"process {os.getppid()}, which this process was forked" in str(exc) else 4
        try:
            QdrantStore.local(folder)  # a new open: the parent's lock refuses it
            code = code or 5
        except VectorStoreLockedError as exc:
            code = code or (0 if exc.pid == os.getppid() else 6)
        store.close()  # forgets it; the parent keeps its lock and shards
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not _lock_is_free(folder)  # still the parent's
    assert store.count() == 2
    store.close()
    assert _lock_is_free(folder)
