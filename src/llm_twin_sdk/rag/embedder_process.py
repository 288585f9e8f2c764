"""A :class:`~llm_twin_sdk.rag.embedder_base.TextEmbedder` run in a child process.

With a remote embedder and many requests in flight, the requests' own work (HTTP, JSON, the
vectors) shares one interpreter with the ingest's chunking, BM25 and writes; on a small
machine that, not the server, becomes the ceiling (docs/benchmarks.md, section 11).
:class:`ProcessEmbedder` builds the embedder in a child process (``spawn``) and sends it each
batch's texts through a pipe: the ingesting process only chunks and writes. Example::

    factory = functools.partial(RemoteEmbedder.http, "http://tei:8080", concurrency=16)
    with ProcessEmbedder(factory) as embedder, QdrantStore.local("data") as store:
        RAGPipeline(embedder, store).ingest(documents)

``factory`` must be picklable (a module-level function or a ``functools.partial`` of one, not
a lambda), and, as with any ``spawn``ed process, a script that builds a ProcessEmbedder needs
the ``if __name__ == "__main__":`` guard (the child imports the script's module). Errors
raised in the child reach the caller as the same typed SDK errors; anything else, and a child
that ends, is an :class:`~llm_twin_sdk.errors.EmbeddingError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from ..errors import ConfigurationError, EmbeddingError, LLMTwinError
from .embedder_base import TextEmbedder, TokenOffsets, Vectors
from .embedder_tei import estimate_offsets

__all__ = ["ProcessEmbedder"]

_START_TIMEOUT_S = 120.0  # importing the SDK and building the embedder (a server's /info)


class ProcessEmbedder:
    """``factory()``'s embedder, run in a child process; thread-safe (one batch at a time
    crosses the pipe; the child's embedder keeps its own requests in flight).

    Args:
        factory: builds the embedder in the child (picklable, e.g. ``functools.partial(
            RemoteEmbedder.http, url, concurrency=16)``).
        token_offsets: how texts are cut into tokens for chunking, here in the caller's
            process (default :func:`~llm_twin_sdk.rag.embedder_tei.estimate_offsets`).

    Raises:
        ConfigurationError: ``factory`` cannot be pickled.
        LLMTwinError: what building the embedder raised in the child (e.g.
            :class:`~llm_twin_sdk.errors.ModelUnavailableError` for a server not there).
    """

    def __init__(
        self,
        factory: Callable[[], TextEmbedder],
        *,
        token_offsets: Callable[[Sequence[str]], TokenOffsets] | None = None,
    ) -> None:
        try:
            pickle.dumps(factory)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"ProcessEmbedder needs a picklable factory (a module-level function or a "
                f"functools.partial of one), got {factory!r:.80}: {exc}"
            ) from exc
        self._offsets = token_offsets or estimate_offsets
        self._lock = threading.Lock()
        self._sent = 0  # requests sent; each answer carries its number
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, factory), name="llm-twin-embedder", daemon=True
        )
        self._process.start()
        child.close()
        if not self._conn.poll(_START_TIMEOUT_S):
            self.close()
            raise EmbeddingError(f"the embedding process did not start in {_START_TIMEOUT_S:g} s")
        try:
            facts = self._reply()
        except BaseException:
            self.close()
            raise
        self._model_name: str = facts["model_name"]
        self._dimension: int = facts["dimension"]
        self._max_tokens: int = facts["max_tokens"]
        self.concurrency: int = facts["concurrency"]
        self.batch_size: int = facts["batch_size"]

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def __repr__(self) -> str:
        state = "running" if self._process.is_alive() else "ended"
        return f"ProcessEmbedder(model={self._model_name!r}, pid={self._process.pid}, {state})"

    def encode(self, texts: Sequence[str]) -> Vectors:
        """The child's ``encode(texts)``: the same vectors, errors and order."""
        with self._lock:
            self._sent += 1
            try:
                self._conn.send(("encode", self._sent, list(texts)))
            except (OSError, ValueError) as exc:
                raise self._ended() from exc
            # An answer left unread by an interrupted call comes first: skip it.
            vectors: Vectors = self._reply(self._sent)
            return vectors

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        """:meth:`encode` in a thread: the event loop never waits on the pipe."""
        return await asyncio.to_thread(self.encode, texts)

    def token_offsets(self, texts: Sequence[str]) -> TokenOffsets:
        return self._offsets(texts)

    def close(self) -> None:
        """End the child (its embedder closed); idempotent."""
        with self._lock:
            if self._process.is_alive():
                with contextlib.suppress(OSError, ValueError):
                    self._conn.send(("close", 0, None))
                self._process.join(10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)
            self._conn.close()

    def __enter__(self) -> ProcessEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _reply(self, number: int = 0) -> Any:
        """The child's answer to request ``number`` (0: its start), or its error raised."""
        while True:
            try:
                answered, status, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise self._ended() from exc
            if answered == number:
                break
        if status == "ok":
            return value
        error = pickle.loads(value) if isinstance(value, bytes) else EmbeddingError(str(value))
        raise error

    def _ended(self) -> EmbeddingError:
        self._process.join(1)
        return EmbeddingError(
            f"the embedding process (pid {self._process.pid}) ended "
            f"(exit code {self._process.exitcode}); build a new ProcessEmbedder"
        )


def _serve(conn: Connection, factory: Callable[[], TextEmbedder]) -> None:
    """The child: build the embedder, report its facts, then encode until told to close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    embedder: Any = None
    try:
        embedder = factory()
        facts = {
            "model_name": embedder.model_name,
            "dimension": embedder.dimension,
            "max_tokens": embedder.max_tokens,
            "concurrency": getattr(embedder, "concurrency", 1),
            "batch_size": getattr(embedder, "batch_size", 32),
        }
        conn.send((0, "ok", facts))
    except BaseException as exc:
        conn.send((0, "error", _portable(exc)))
        return
    try:
        while True:
            command, number, texts = conn.recv()
            if command == "close":
                return
            try:
                conn.send((number, "ok", embedder.encode(texts)))
            except Exception as exc:  # one batch failed: the child serves the next
                conn.send((number, "error", _portable(exc)))
    except (EOFError, OSError):
        return  # the caller is gone
    finally:
        close = getattr(embedder, "close", None)
        if callable(close):
            close()


def _portable(exc: BaseException) -> bytes | str:
    """``exc`` pickled, when it is an SDK error that survives the trip; else its text (the
    caller raises it as an EmbeddingError)."""
    if isinstance(exc, LLMTwinError):
        try:
            data = pickle.dumps(exc)
            pickle.loads(data)
            return data
        except Exception:  # an attribute that does not pickle: the text will do
            pass
    return f"{type(exc).__name__}: {exc}"
