"""Embedded Qdrant folders opened by this process: one per folder, shared by every holder.

A folder is opened once per process (its lock taken, its shards loaded once) and shared by
every :class:`~llm_twin_sdk.rag.edge.EdgeClient` on it — two twins, a sync and an async one, a
notebook cell run again — counted by handle; the last handle to close (or to be garbage
collected) closes it. Another *process* is refused with :class:`VectorStoreLockedError` naming
the process that holds the folder (written into the lock file) and pointing to a Qdrant server,
the way to share one store between processes (docs/configuration.md, "Embedded Qdrant")::

    first = acquire(Path("./qdrant"))      # opens the folder, takes its lock
    second = acquire(Path("qdrant"))       # the same OpenFolder: one engine, two handles
    release(first); release(second)        # the second release closes it
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import VectorStoreLockedError

if TYPE_CHECKING:
    import qdrant_edge

__all__ = ["LOCK_FILE", "OpenFolder", "acquire", "holder_of", "ignored_by_git", "release"]

LOCK_FILE = ".llm-twin.lock"
"""In every embedded folder: locked by the process that holds it, which writes who it is."""


@dataclass(eq=False)
class OpenFolder:
    """An opened folder: its lock file, its loaded shards and the lock that serialises every
    use of them (Qdrant Edge shards are not made for concurrent calls)."""

    path: Path
    temporary: bool
    lock_file: IO[str]
    shards: dict[str, qdrant_edge.EdgeShard] = field(default_factory=dict)
    guard: threading.RLock = field(default_factory=threading.RLock)
    handles: int = 0
    closed: bool = False
    pid: int = field(default_factory=os.getpid)
    """The process that opened it: a child forked from it must not use it (nor unlock it)."""

    def inherited(self) -> bool:
        """Whether this process was forked from the one that opened the folder."""
        return self.pid != os.getpid()

    def close(self) -> None:
        """Flush and close every shard, release the lock (a temporary folder is removed).
        In a forked child, only forget it: the shards and the lock are the parent's."""
        with self.guard:
            if self.closed:
                return
            self.closed = True
            if self.inherited():
                self.shards = {}
                return
            shards, self.shards = list(self.shards.values()), {}
            try:
                for shard in shards:
                    shard.flush()
                    shard.close()
            finally:
                fcntl.flock(self.lock_file, fcntl.LOCK_UN)
                self.lock_file.close()
                if self.temporary:
                    shutil.rmtree(self.path, ignore_errors=True)


_open: dict[Path, OpenFolder] = {}
_registry = threading.Lock()
_pending: deque[OpenFolder] = deque()  # releases from finalizers that found the lock taken


def acquire(path: Path | None) -> OpenFolder:
    """A handle on the folder ``path`` (created if missing; ``None``: a new temporary folder):
    the folder this process already opened there, or a newly opened one.

    Raises:
        VectorStoreLockedError: another process holds the folder.
        OSError: the folder cannot be created.
    """
    if path is None:
        temporary = _take(Path(tempfile.mkdtemp(prefix="llm-twin-")), temporary=True)
        temporary.handles = 1
        return temporary
    path.mkdir(parents=True, exist_ok=True)
    key = path.resolve()
    with _registry:
        folder = _open.get(key)
        if folder is None or folder.closed or folder.inherited():
            folder = _open[key] = _take(key, temporary=False)
        folder.handles += 1
    _drain()
    return folder


def release(folder: OpenFolder) -> None:
    """Give back one handle; the last one closes the folder. Safe from a garbage-collection
    finalizer in any thread: when the registry is busy (even in this very thread), the release
    is queued and done by whoever holds the registry, before it lets go."""
    _pending.append(folder)
    _drain()


def _drain() -> None:
    while _pending and _registry.acquire(blocking=False):
        try:
            while _pending:
                folder = _pending.popleft()
                folder.handles -= 1
                if folder.handles <= 0:
                    if _open.get(folder.path) is folder:
                        del _open[folder.path]
                    folder.close()  # under the registry: a reopening waits for the lock's release
        finally:
            _registry.release()


def _take(path: Path, *, temporary: bool) -> OpenFolder:
    """Open ``path``'s lock file and lock it, or raise naming the process that holds it."""
    lock_file = (path / LOCK_FILE).open("a+", encoding="utf-8")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        holder = holder_of(path)
        raise VectorStoreLockedError(
            f"Qdrant folder {str(path)!r} is held by {_describe(holder)}: an embedded folder "
            "serves one process at a time (within a process, every twin and store on it shares "
            "it). Close that process's store, point LLM_TWIN_QDRANT_PATH at another folder, or, "
            "for several processes (e.g. `uvicorn --workers 2`), run a Qdrant server and set "
            "LLM_TWIN_QDRANT_URL.",
            path=path,
            pid=holder.get("pid") if isinstance(holder.get("pid"), int) else None,
        ) from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(json.dumps(_this_process()) + "\n")
    lock_file.flush()
    return OpenFolder(path, temporary, lock_file)


def _this_process() -> dict[str, Any]:
    """Who holds a folder: process id, host and program name (never its arguments, which may
    carry secrets)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return {"pid": os.getpid(), "host": socket.gethostname(), "program": program}


def ignored_by_git(data_folder: Path) -> None:
    """Give ``data_folder`` (a project's ``.llm-twin``) a ``.gitignore`` that ignores it all,
    as ``venv`` does, so vectors are never committed by mistake. Best effort."""
    ignore = data_folder / ".gitignore"
    try:
        if data_folder.is_dir() and not ignore.exists():
            ignore.write_text("# made by llm-twin-sdk: its data stays out of git\n*\n", "utf-8")
    except OSError:
        pass  # a read-only project: nothing lost but the convenience


def holder_of(path: Path) -> dict[str, Any]:
    """What the lock file of ``path`` says of the process holding it (``{}`` if unknown)."""
    try:
        text = (path / LOCK_FILE).read_text(encoding="utf-8")
        found = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not isinstance(holder.get("pid"), int):
        return "another process"
    where = "" if holder.get("host") in (None, socket.gethostname()) else f" on {holder['host']}"
    program = f" ({holder['program']})" if isinstance(holder.get("program"), str) else ""
    return f"process {holder['pid']}{program}{where}"
