"""A Text Embeddings Inference (TEI) server on 127.0.0.1, real HTTP, for tests and benchmarks.

- ``GET /info``: the model id, ``max_client_batch_size`` (:attr:`TEIServer.batch_limit`) and
  ``max_input_length``, as TEI answers them.
- ``POST /embed``: ``{"inputs": str | [str], "truncate": bool}`` -> one vector per input
  (:func:`embed_answer`: word hashing, unit length, so texts sharing words are close). More
  inputs than the batch limit: TEI's 413 ``Validation`` error.

Knobs: ``answer_delay_s`` (every answer waits, e.g. 0.05 s per batch), ``drop_vectors``
(answers that many vectors fewer than inputs), ``answer_dimension`` (vectors of another
size), and the faults of :mod:`fakes.server` (``server.fail(Fault.http(503))``).
Example::

    with TEIServer(dimension=16, batch_limit=4) as tei:
        embedder = RemoteEmbedder.http(tei.url)
        embedder.encode(["a", "b", "c", "d", "e"])       # two requests: 4 + 1 inputs
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from .server import Exchange, FakeServer, Request

__all__ = ["MODEL_ID", "TEIServer", "embed_answer", "hashed_vector"]

MODEL_ID = "fake/tei-hashing"
_WORD = re.compile(r"\w+")


def hashed_vector(text: str, dimension: int) -> list[float]:
    """Feature hashing of the words of ``text`` into ``dimension`` signed buckets, unit length."""
    vector = [0.0] * dimension
    for word in _WORD.findall(text.lower()):
        value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vector[value % dimension] += 1.0 if value & (1 << 63) else -1.0
    norm = sum(v * v for v in vector) ** 0.5
    return [v / norm for v in vector] if norm else [dimension**-0.5] * dimension


def embed_answer(body: Any, dimension: int) -> list[list[float]]:
    """What TEI answers to ``body`` (``{"inputs": str | [str]}``): one vector per input."""
    inputs = body["inputs"]
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    return [hashed_vector(str(text), dimension) for text in texts]


class TEIServer(FakeServer[Request]):
    """TEI's ``/info`` and ``/embed`` (module docstring)."""

    route_table: ClassVar[Sequence[tuple[str, str, str]]] = (
        ("GET", r"/info", "info"),
        ("POST", r"/embed", "embed"),
    )
    faulted_routes = frozenset({"embed"})

    def __init__(
        self,
        *,
        dimension: int = 16,
        batch_limit: int = 32,
        max_input_length: int = 512,
        model_id: str = MODEL_ID,
        answer_delay_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.dimension = dimension
        self.batch_limit = batch_limit
        self.max_input_length = max_input_length
        self.model_id = model_id
        self.answer_delay_s = answer_delay_s
        self.drop_vectors = 0
        self.answer_dimension: int | None = None
        self.texts_embedded = 0

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message, "error_type": "Backend" if status >= 500 else "Validation"}

    def answer(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.route == "info":
            exchange.json(200, self.info())
            return
        if request.route != "embed":
            exchange.json(404, {"error": f"no route {request.path}", "error_type": "NotFound"})
            return
        body = request.body
        if not isinstance(body, dict) or "inputs" not in body:
            exchange.json(422, self.error_body(422, "missing field `inputs`"))
            return
        inputs = body["inputs"]
        count = 1 if isinstance(inputs, str) else len(inputs)
        if count > self.batch_limit:
            message = f"batch size {count} > maximum allowed batch size {self.batch_limit}"
            exchange.json(413, self.error_body(413, message))
            return
        vectors = embed_answer(body, self.answer_dimension or self.dimension)
        with self.lock:
            self.texts_embedded += len(vectors)
        exchange.json(200, vectors[: max(0, len(vectors) - self.drop_vectors)])

    def info(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_sha": None,
            "model_dtype": "float32",
            "model_type": {"embedding": {"pooling": "mean"}},
            "max_concurrent_requests": 512,
            "max_input_length": self.max_input_length,
            "max_batch_tokens": 16384,
            "max_batch_requests": None,
            "max_client_batch_size": self.batch_limit,
            "tokenization_workers": 2,
            "version": "1.8.2",
        }
