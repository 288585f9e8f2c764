"""RemoteEmbedder: embeddings from Hugging Face Text Embeddings Inference (TEI), over HTTP
(``POST /embed``) or on a SageMaker endpoint (``InvokeEndpoint``, the ``huggingface-tei``
images), with the body ``{"inputs": [...]}`` answered by one vector per input.

Texts go in batches of at most the server's ``max_client_batch_size`` (read from ``/info``
over HTTP), ``concurrency`` requests in flight, each retried through the SDK's one
:class:`~llm_twin_sdk.retry.RetryPolicy`; answers are checked (as many vectors as texts, one
size) before anything is returned. Example::

    embedder = RemoteEmbedder.http("http://127.0.0.1:8080", concurrency=8)
    embedder = RemoteEmbedder.sagemaker("twin-embeddings", region="eu-central-1")
    rag = RAGPipeline(embedder, QdrantStore.server("http://qdrant:6333"))
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ..errors import ConfigurationError, EmbeddingResponseError, EndpointNotFoundError
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy, is_transient_inference_error
from ..types import Timeouts
from .embedder_base import TokenOffsets, Vectors

if TYPE_CHECKING:
    from ..aws import AWSClients

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_CONCURRENCY", "RemoteEmbedder", "estimate_offsets"]

DEFAULT_BATCH_SIZE = 32
"""TEI's default ``max_client_batch_size``: texts per request when the server does not say."""
DEFAULT_CONCURRENCY = 4
"""Requests in flight at once by default."""
DEFAULT_MAX_TOKENS = 512
"""Tokens per text when the server does not say (TEI's ``max_input_length`` of BERT models)."""
_PIECE = 6  # characters per estimated token of a long word (word pieces are shorter)
_TOKEN = re.compile(rf"\w{{1,{_PIECE}}}|[^\w\s]")


def estimate_offsets(texts: Sequence[str]) -> TokenOffsets:
    """Token spans without the model's tokenizer: words (cut into pieces of at most 6
    characters, as word-piece tokenizers cut long words) and punctuation marks. It errs
    towards more tokens, so chunks stay within the model's limit. Pass the model's own
    (``token_offsets=Embedder(model).token_offsets``) to chunk exactly as it counts."""
    return [[m.span() for m in _TOKEN.finditer(text)] for text in texts]


class RemoteEmbedder:
    """A :class:`~llm_twin_sdk.rag.embedder_base.TextEmbedder` served by Text Embeddings
    Inference. Build it with :meth:`http` or :meth:`sagemaker`; thread-safe.

    Args:
        send: one request: a JSON body in, the answer's bytes out (no retry), raising the
            SDK's model-call errors (:class:`~llm_twin_sdk.errors.ModelUnavailableError`...).
        model_name: the served model's name (part of every document's fingerprint).
        batch_size: texts per request (the server's ``max_client_batch_size`` at most).
        concurrency: requests in flight at once, at most.
        max_tokens: tokens per text the server reads (longer chunks are not allowed).
        dimension: the vector size, if known (else learnt from the first answer).
        retry: the retry policy of each request (transient failures: throttling, 5xx...).
        token_offsets: how texts are cut into tokens for chunking (default
            :func:`estimate_offsets`).
        max_body_bytes: the largest request body (SageMaker: 6 MB); batches are cut to fit.
        close: closes the connection (called by :meth:`close`).
        where: how errors name the server.

    Raises:
        ConfigurationError: a batch size, concurrency or limit below 1.
    """

    def __init__(
        self,
        send: Callable[[bytes], bytes],
        *,
        model_name: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        dimension: int | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        token_offsets: Callable[[Sequence[str]], TokenOffsets] | None = None,
        max_body_bytes: int | None = None,
        close: Callable[[], None] | None = None,
        where: str = "the embedding server",
    ) -> None:
        for name, value in (
            ("batch_size", batch_size),
            ("concurrency", concurrency),
            ("max_tokens", max_tokens),
            ("dimension", 1 if dimension is None else dimension),
            ("max_body_bytes", 1 if max_body_bytes is None else max_body_bytes),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self._send = send
        self._model_name = model_name
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._max_tokens = max_tokens
        self._dimension = dimension
        self.retry = retry
        self._offsets = token_offsets or estimate_offsets
        self.max_body_bytes = max_body_bytes
        self._close = close
        self.where = where
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def http(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        batch_size: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: Timeouts | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        token_offsets: Callable[[Sequence[str]], TokenOffsets] | None = None,
        verify: Any = True,
        transport: Any = None,
    ) -> RemoteEmbedder:
        """A TEI server at ``url``: its ``/info`` (read now, retried) gives the model, the
        batch limit (``max_client_batch_size``; ``batch_size`` may only lower it) and the
        token limit; texts go to ``POST /embed``. ``api_key``: a bearer token (never shown);
        ``verify``, ``transport``: as :class:`~llm_twin_sdk.inference.backends.http.HttpBackend`'s.

        Example: ``RemoteEmbedder.http("http://127.0.0.1:8080", concurrency=16)``.
        """
        from ..inference.backends.http import HttpBackend

        backend = HttpBackend(
            url, api="tgi", api_key=api_key, timeout=timeout, verify=verify, transport=transport
        )
        try:
            info = _server_info(backend, retry)
            limit = _positive(info.get("max_client_batch_size"), DEFAULT_BATCH_SIZE)
            if batch_size is not None and batch_size > limit:
                raise ConfigurationError(
                    f"batch_size {batch_size} is over the server's max_client_batch_size "
                    f"({limit}) at {backend.base_url}"
                )
            return cls(
                functools.partial(backend.invoke, "/embed"),
                model_name=str(info.get("model_id") or f"tei:{backend.base_url}"),
                batch_size=batch_size or limit,
                concurrency=concurrency,
                max_tokens=_positive(info.get("max_input_length"), DEFAULT_MAX_TOKENS),
                retry=retry,
                token_offsets=token_offsets,
                close=backend.close,
                where=f"the TEI server at {backend.base_url}",
            )
        except BaseException:
            backend.close()
            raise

    @classmethod
    def sagemaker(
        cls,
        endpoint_name: str,
        *,
        model: str | None = None,
        inference_component_name: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        aws: AWSClients | None = None,
        runtime_client: Any = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout: Timeouts | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        token_offsets: Callable[[Sequence[str]], TokenOffsets] | None = None,
    ) -> RemoteEmbedder:
        """A TEI container on the SageMaker endpoint ``endpoint_name`` (deployed with
        ``EndpointSpec(engine="tei", ...)``), called through the SDK's SageMaker connection
        (:class:`~llm_twin_sdk.inference.backends.sagemaker.SageMakerBackend`: its clients,
        timeouts and error table). ``model``: the served model's name (default
        ``sagemaker:<endpoint>``); ``batch_size``: the container's ``MAX_CLIENT_BATCH_SIZE``
        (TEI's default 32). Bodies stay under SageMaker's 6 MB.

        Example: ``RemoteEmbedder.sagemaker("twin-embeddings", region="eu-central-1")``.
        """
        from ..inference.backends.sagemaker import MAX_PAYLOAD_BYTES, SageMakerBackend

        backend = SageMakerBackend(
            endpoint_name,
            inference_component_name=inference_component_name,
            runtime_client=runtime_client,
            aws=aws,
            region=region,
            profile=profile,
            timeout=timeout,
        )
        return cls(
            backend.invoke,
            model_name=model or f"sagemaker:{backend.model_name}",
            batch_size=batch_size,
            concurrency=concurrency,
            max_tokens=max_tokens,
            retry=retry,
            token_offsets=token_offsets,
            max_body_bytes=MAX_PAYLOAD_BYTES,
            close=backend.close,
            where=f"SageMaker endpoint {backend.model_name!r}",
        )

    # -- the interface --------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def dimension(self) -> int:
        """The vector size: known from the first answer (asked with one short text when
        nothing was embedded yet)."""
        if self._dimension is None:
            self.encode(["dimension"])
        assert self._dimension is not None
        return self._dimension

    def __repr__(self) -> str:
        return (
            f"RemoteEmbedder(model={self._model_name!r}, where={self.where!r}, "
            f"batch_size={self.batch_size}, concurrency={self.concurrency})"
        )

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embeddings of ``texts`` in their order, shape ``(len(texts), dimension)``: batches
        of :attr:`batch_size`, :attr:`concurrency` requests at once. A failed batch (after
        the retry policy) stops the rest and raises; nothing partial is returned.

        Raises:
            EmbeddingResponseError: an answer of the wrong shape (count, size, not JSON).
            InferenceError: the server failed (ModelUnavailableError, ModelThrottledError...).
        """
        texts = list(texts)
        if not texts:
            return np.empty((0, self._dimension or 0), dtype=np.float32)
        batches = self._batches(texts)
        if len(batches) == 1 or self.concurrency == 1:
            return _stack([self._embed(batch) for batch in batches])
        futures = [self._executor().submit(self._embed, batch) for batch in batches]
        return _stack(_results(futures))

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        """:meth:`encode` in a worker thread: ``await embedder.aencode(["a question"])``."""
        return await asyncio.to_thread(self.encode, texts)

    def token_offsets(self, texts: Sequence[str]) -> TokenOffsets:
        return self._offsets(texts)

    def close(self) -> None:
        """Stop the request threads and close the connection this embedder built."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self._close is not None:
            self._close()

    def __enter__(self) -> RemoteEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="llm-twin-tei")
            return self._pool

    def _batches(self, texts: list[str]) -> list[list[str]]:
        """``texts`` cut into batches of at most :attr:`batch_size`, and of bodies under
        :attr:`max_body_bytes` (a text alone too large is sent, and refused, on its own)."""
        if self.max_body_bytes is None:
            size = self.batch_size
            return [texts[i : i + size] for i in range(0, len(texts), size)]
        batches: list[list[str]] = []
        batch: list[str] = []
        room = self.max_body_bytes - 64  # the body's fixed part
        used = 0
        for text in texts:
            cost = len(orjson.dumps(text)) + 2
            if batch and (len(batch) >= self.batch_size or used + cost > room):
                batches.append(batch)
                batch, used = [], 0
            batch.append(text)
            used += cost
        batches.append(batch)
        return batches

    def _embed(self, texts: list[str]) -> Vectors:
        body = orjson.dumps({"inputs": texts, "truncate": True})
        raw = self.retry.call(lambda: self._send(body), is_transient_inference_error)
        return self._vectors(raw, len(texts))

    def _vectors(self, raw: bytes, count: int) -> Vectors:
        """The answer's vectors, after checking their count and size."""
        try:
            # orjson: ~8x json's speed on 8 x 384 floats, which is most of a request's CPU
            vectors = np.asarray(orjson.loads(raw), dtype=np.float32)
        except (ValueError, TypeError) as exc:
            text = raw[:120].decode("utf-8", errors="replace")
            raise EmbeddingResponseError(
                f"{self.where} answered what is not a list of vectors of one size: {text!r}"
            ) from exc
        if vectors.ndim != 2 or len(vectors) != count:
            received = len(vectors) if vectors.ndim >= 1 else 0
            raise EmbeddingResponseError(
                f"{self.where} answered {received} vector(s) for {count} text(s); nothing of "
                "this batch was used",
                expected=count,
                received=received,
            )
        size = int(vectors.shape[1])
        with self._lock:
            if self._dimension is None:
                self._dimension = size
        if size != self._dimension or size == 0 or not np.isfinite(vectors).all():
            raise EmbeddingResponseError(
                f"{self.where} answered vectors of size {size}, but its vectors are "
                f"{self._dimension} long (a model changed behind the URL?) or not finite; "
                "nothing of this batch was used",
                what="dimension",
                expected=self._dimension,
                received=size,
            )
        return vectors


def _results(futures: list[Future[Vectors]]) -> list[Vectors]:
    """Every future's result in order; at the first failure, the requests not started are
    cancelled and those running awaited (no request outlives the call), then it raises."""
    try:
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        for future in futures:
            if not future.cancelled():
                future.exception()  # wait for it; its error (if any) is not the first
        raise


def _stack(parts: list[Vectors]) -> Vectors:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _positive(value: object, default: int) -> int:
    """``value`` if it is an integer >= 1, else ``default``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return default


def _server_info(backend: Any, retry: RetryPolicy) -> dict[str, Any]:
    """A TEI server's ``/info`` (empty for a server without it, e.g. a proxy of ``/embed``)."""
    try:
        raw = retry.call(lambda: backend.invoke("/info"), is_transient_inference_error)
    except EndpointNotFoundError:
        return {}
    try:
        info = orjson.loads(raw)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}
