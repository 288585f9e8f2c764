"""Every error the SDK raises, under one root: :class:`LLMTwinError`.

Foreign exceptions are converted once, where they occur (``raise ... from exc``). The whole
tree, when each error is raised and what to do: docs/errors.md. Its core::

    LLMTwinError
    ├── ConfigurationError, InvalidInputError (ValueError)   wrong settings / call input
    │   (SpecFileError: a deployment spec file, line and field named;
    │    MissingExtraError: a thin install reaching for the [local] extra)
    ├── InferenceError      every failure of a generate or stream call (async jobs too)
    ├── ModelLoadError, EmbeddingError, RerankError, VectorStoreError
    └── AWSError, ThrottledError, DeploymentError, ScalingError

Warnings derive from :class:`LLMTwinWarning` (a ``UserWarning``): ``EmptyStoreWarning``,
``CollectionSettingsWarning``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class LLMTwinError(Exception):
    """Root of every exception raised by ``llm_twin_sdk``."""


class ConfigurationError(LLMTwinError, ValueError):
    """Settings or constructor arguments are invalid or inconsistent."""


class SpecFileError(ConfigurationError):
    """A deployment spec file (YAML, read by the ``llm-twin`` command line) cannot be used:
    ``path`` and, where known, ``line`` (1-based) and ``field`` (``endpoint.instance_type``)
    locate the problem; the message starts with ``<path>:<line>:``."""

    def __init__(
        self, message: str, *, path: str, line: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field


class MissingExtraError(ConfigurationError):
    """A part of the SDK is used whose pip extra is not installed (a thin
    ``pip install llm-twin-sdk`` reaching for the local footing: llama.cpp,
    sentence-transformers, the offline models). Raised before any side effect; ``extra`` names
    the extra, ``missing`` the distributions not found, ``install`` the command that adds them.
    """

    def __init__(
        self,
        *,
        feature: str,
        extra: str,
        missing: tuple[str, ...],
        instead: str | None = None,
    ) -> None:
        self.feature = feature
        self.extra = extra
        self.missing = missing
        self.install = f'pip install "llm-twin-sdk[{extra}]"'
        alternative = f", {instead}" if instead else ""
        super().__init__(
            f"{feature} needs the [{extra}] extra ({', '.join(missing)} not installed): "
            f"{self.install}{alternative}"
        )


class InvalidInputError(LLMTwinError, ValueError):
    """The input of a call is invalid. Raised before any side effect."""


class EmptyQueryError(InvalidInputError):
    """The query is empty or only whitespace."""


class InvalidParameterError(InvalidInputError):
    """A parameter (generation settings, ``k``, chunk sizes...) is out of range."""


class InvalidDocumentError(InvalidInputError):
    """A document cannot be ingested (no text, bad id, invalid metadata)."""


class PromptTooLongError(InvalidInputError):
    """The query alone does not fit in the model's input-token budget: ``prompt_tokens`` (what
    the prompt needs without context) exceed ``budget`` (context window - ``max_new_tokens``)."""

    def __init__(self, message: str, *, prompt_tokens: int, budget: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.budget = budget


class PayloadTooLargeError(InvalidInputError):
    """The request body exceeds what the endpoint accepts (SageMaker: 6 MB). Nothing was sent."""


class ModelArchiveError(ConfigurationError):
    """Your own inference code and weights (``CustomCodeSpec``) cannot be packed into a
    ``model.tar.gz``: a file is unreadable, or the archive is over S3's 5 GiB for one upload.
    Raised before any AWS call."""


class InvokeOnlyEndpointError(InvalidParameterError):
    """``generate`` / ``stream`` on an endpoint that runs your own inference code (engine
    ``"pytorch"``): it takes no text-generation payload, so nothing was sent; call
    ``client.invoke(body, content_type=...)``."""


class ModelLoadError(LLMTwinError):
    """A model (GGUF file, embedding model) is missing, unreadable or corrupt."""


class InferenceError(LLMTwinError):
    """Text generation failed."""


class InvokeResponseError(InferenceError):
    """An :meth:`~llm_twin_sdk.InferenceClient.invoke` answer cannot be read as asked
    (``.json()`` of a body that is not JSON, ``.text`` of one that is not text)."""


class ModelError(InferenceError):
    """The model server or container answered with an error: ``status`` is its HTTP status
    (SageMaker's ``OriginalStatusCode``), ``log_stream_arn`` its CloudWatch log stream."""

    def __init__(
        self, message: str, *, status: int | None = None, log_stream_arn: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.log_stream_arn = log_stream_arn


class ModelUnavailableError(InferenceError):
    """The model is overloaded, starting, or unreachable (503/502/504, connection refused).

    The retry policy retries it; this is raised once attempts or the deadline run out.
    """


class ConnectTimeoutError(ModelUnavailableError, TimeoutError):
    """No connection to the model within the connect timeout. Nothing was sent, so the
    retry policy retries it."""


class EndpointNotFoundError(InferenceError):
    """The endpoint, inference component or server route does not exist."""


class InferenceTimeoutError(InferenceError, TimeoutError):
    """The model did not answer within the read timeout (the request may still be running,
    so it is not retried)."""


class TLSHandshakeError(ConfigurationError, InferenceError):
    """The TLS handshake with a model server failed: its certificate is not trusted (pass
    ``verify=`` a CA bundle), or it wants a client certificate (``cert=``). Never retried."""


class StreamBrokenError(InferenceError):
    """A stream failed after it started; ``partial_text`` is the text received before."""

    def __init__(self, message: str, *, partial_text: str = "") -> None:
        super().__init__(message)
        self.partial_text = partial_text


class StreamAbandonedError(StreamBrokenError):
    """A local model stopped generating for a stream nobody read for ``stream_idle_timeout_s``
    (the model went to the next request). Pieces generated before were delivered first;
    ``partial_text`` is their text."""


class ModelBusyError(InferenceError, TimeoutError):
    """A request waited ``queue_timeout_s`` for a busy local model (other requests ahead of it)
    and was withdrawn: it never ran. ``waited_s`` is how long it waited. Not retried by the
    client (it already waited); a service answers 503 with ``Retry-After``."""

    def __init__(self, message: str, *, waited_s: float) -> None:
        super().__init__(message)
        self.waited_s = waited_s


class AsyncJobError(InferenceError):
    """One request of an asynchronous-inference job failed; ``index`` is its place in the
    job's input (``None``: the job as a whole). The job's other results are kept."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class AsyncInferenceFailedError(AsyncJobError):
    """SageMaker wrote the request's error to the endpoint's failure path (the container
    failed, or the request outlived its TTL or invocation timeout)."""


class AsyncOutputMissingError(AsyncJobError, TimeoutError):
    """No output and no failure appeared for a request before ``collect``'s timeout (or its
    output object is gone). ``resume`` the job later to look again; nothing is resent."""


class AsyncOutputMalformedError(AsyncJobError):
    """A request's output is there but cannot be read as asked (not JSON, not the protocol's
    answer)."""


class JobManifestError(InvalidInputError):
    """A job manifest cannot be read or written, is not a manifest, or does not belong to
    the endpoint asked to resume it."""


class EmbeddingError(LLMTwinError):
    """The embedding model failed to encode text."""


class EmbeddingResponseError(EmbeddingError):
    """An embedding server answered with the wrong shape: not JSON, fewer (or more) vectors
    than texts, vectors of unequal size or of another size than its first answers. Raised
    before any of the batch is written; ``expected`` / ``received`` count the vectors (or
    their sizes, ``what`` says which)."""

    def __init__(
        self, message: str, *, what: str = "vectors", expected: int | None = None,
        received: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.what = what
        self.expected = expected
        self.received = received


class RerankError(LLMTwinError):
    """The cross-encoder failed to score query-passage pairs."""


class VectorStoreError(LLMTwinError):
    """The vector store failed or could not be opened."""


class VectorStoreLockedError(VectorStoreError):
    """An embedded Qdrant folder (``path``) is held by another process (``pid``, when its
    lock file names it). Within one process every store on a folder shares it; several
    processes share a Qdrant server (``LLM_TWIN_QDRANT_URL``) instead."""

    def __init__(self, message: str, *, path: Path | None = None, pid: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.pid = pid


class VectorStoreUnavailableError(VectorStoreError):
    """A Qdrant server (``url``) could not be reached (refused, timed out, 5xx) after retries."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class CollectionMismatchError(VectorStoreError):
    """A collection exists but its vectors do not match the embedding model."""


class CollectionSettingsMismatchError(CollectionMismatchError):
    """A collection exists with other cluster or storage settings (shards, replicas, on-disk
    storage, quantization) than the configured ``qdrant_cluster``; ``differences`` maps each
    setting to ``(found, configured)``. Settings apply when a collection is created."""

    def __init__(self, message: str, *, differences: dict[str, tuple[object, object]]) -> None:
        super().__init__(message)
        self.differences = differences


class ClusterSettingsError(ConfigurationError, VectorStoreError):
    """Cluster settings (``setting``) that the Qdrant deployment cannot honour: more replicas
    than its ``nodes`` (from the server's cluster info), or shards and replicas on embedded
    Qdrant. Raised before anything is written."""

    def __init__(self, message: str, *, setting: str, nodes: int | None) -> None:
        super().__init__(message)
        self.setting = setting
        self.nodes = nodes


class ThrottledError(LLMTwinError):
    """A service kept throttling (HTTP 429, ``ThrottlingException``) past the retry policy."""


class AWSError(LLMTwinError):
    """An AWS API call failed: ``service`` (``"sagemaker"``), ``operation`` (the boto3 method),
    AWS's error ``code`` (``None`` for transport errors) and ``request_id`` (for support)."""

    def __init__(
        self,
        message: str,
        *,
        service: str,
        operation: str,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.operation = operation
        self.code = code
        self.request_id = request_id


class AWSThrottledError(AWSError, ThrottledError):
    """AWS throttled the call on every attempt of the retry policy."""


class AccessDeniedError(AWSError):
    """The AWS credentials lack a permission the call needs."""


class ResourceNotFoundError(AWSError):
    """The named AWS resource (endpoint, model, component, role...) does not exist."""


class ModelThrottledError(InferenceError, ThrottledError):
    """The model server (HTTP 429) or endpoint throttled the call, past the retry policy."""


class EndpointThrottledError(ModelThrottledError, AWSThrottledError):
    """SageMaker-runtime throttled an invocation (``ThrottlingException``), past the retry
    policy. Carries the AWS fields (``service``, ``operation``, ``code``, ``request_id``)."""


class EndpointAccessDeniedError(InferenceError, AccessDeniedError):
    """SageMaker-runtime refused the credentials for an invocation (missing
    ``sagemaker:InvokeEndpoint``, expired token, no credentials). Carries the AWS fields."""


class DeploymentError(LLMTwinError):
    """A SageMaker deployment of ``endpoint_name`` failed (``failure_reason``: SageMaker's)."""

    def __init__(
        self, message: str, *, endpoint_name: str | None = None, failure_reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.endpoint_name = endpoint_name
        self.failure_reason = failure_reason


class EndpointTimeoutError(DeploymentError, TimeoutError):
    """An endpoint or inference component did not reach its target state in time."""


class ScalingError(LLMTwinError):
    """An autoscaling policy could not be validated, applied or removed."""


class LLMTwinWarning(UserWarning):
    """Root of every warning the SDK emits (filter them all with
    ``warnings.filterwarnings("ignore", category=LLMTwinWarning)``)."""


class EmptyStoreWarning(LLMTwinWarning):
    """A retrieval ran over a vector store that holds no documents at all: the answer has
    no sources. Ingest documents first, or check the store's folder or URL."""


class CollectionSettingsWarning(LLMTwinWarning):
    """An existing collection differs from the configured ``qdrant_cluster`` settings and
    ``on_mismatch`` is ``"warn"``: it is used as it is; or the server's cluster info could
    not be read to check the settings."""


if not TYPE_CHECKING:  # type checkers export the classes above without a list
    __all__ = [
        name
        for name, value in globals().items()
        if isinstance(value, type) and issubclass(value, (LLMTwinError, LLMTwinWarning))
    ]
