"""The seam to AWS: boto3 clients built once, every call retried and its errors converted.

The clients never retry by themselves (boto3's default sends 3 requests for one throttled
call), so :class:`~llm_twin_sdk.retry.RetryPolicy` is the only retry loop. Example::

    sm = AWSClients(region="eu-central-1").client("sagemaker")     # built once, then reused
    out = call_aws(sm, "describe_endpoint", EndpointName="twin")   # retried, typed errors
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .errors import (
    AccessDeniedError,
    AWSError,
    AWSThrottledError,
    ConfigurationError,
    LLMTwinError,
    ResourceNotFoundError,
)
from .retry import DEFAULT_RETRY_POLICY, RetryPolicy

if TYPE_CHECKING:
    from botocore.config import Config

__all__ = [
    "AWS_ERROR_CODES",
    "RETRYABLE_CODES",
    "S3_URI",
    "AWSClients",
    "AWSErrorKind",
    "aws_error",
    "boto3_session",
    "botocore_config",
    "call_aws",
    "check_client_options",
    "client_error_fields",
    "delete_if_exists",
    "describe_or_none",
    "error_kind",
    "is_retryable_aws_error",
    "pages",
    "split_s3_uri",
]

AWSErrorKind: TypeAlias = Literal[
    "throttled", "unavailable", "retry-later", "access-denied", "not-found", "already-exists"
]
"""What an AWS error code means to the SDK (see :data:`AWS_ERROR_CODES`)."""

_CODES_BY_KIND: dict[AWSErrorKind, str] = {
    # Throttling: retried; past the policy, AWSThrottledError (EndpointThrottledError).
    "throttled": "Throttling ThrottlingException ThrottledException TooManyRequestsException "
    "RequestLimitExceeded RequestThrottled RequestThrottledException SlowDown",
    # AWS or the model is unavailable for a moment: retried.
    "unavailable": "ServiceUnavailable ServiceUnavailableException InternalFailure InternalError "
    "InternalServerError InternalServiceError InternalDependencyException InternalStreamFailure "
    "ModelNotReadyException",
    # Another change is in progress (Application Auto Scaling): retried.
    "retry-later": "ConcurrentUpdateException",
    # Credentials or permissions: never retried.
    "access-denied": "AccessDenied AccessDeniedException UnauthorizedOperation "
    "UnrecognizedClientException InvalidClientTokenId ExpiredToken ExpiredTokenException "
    "InvalidSignatureException",
    # The named resource does not exist: never retried.
    "not-found": "ResourceNotFound ResourceNotFoundException NoSuchEntity ObjectNotFoundException",
    # The resource to create exists already (IAM, most services): never retried.
    "already-exists": "EntityAlreadyExists AlreadyExistsException ResourceAlreadyExistsException",
}
AWS_ERROR_CODES: Mapping[str, AWSErrorKind] = {
    code: kind for kind, codes in _CODES_BY_KIND.items() for code in codes.split()
}
"""The one table of AWS error codes the SDK knows, for every service it calls (the control
plane and SageMaker-runtime alike). Codes not listed are plain :class:`AWSError` (or, from an
invocation, :class:`~llm_twin_sdk.errors.InferenceError`) and are not retried, except on an
HTTP 5xx status."""

RETRYABLE_KINDS: frozenset[AWSErrorKind] = frozenset({"throttled", "unavailable", "retry-later"})
RETRYABLE_CODES = frozenset(
    code for code, kind in AWS_ERROR_CODES.items() if kind in RETRYABLE_KINDS
)
"""Codes the retry policy retries (derived from :data:`AWS_ERROR_CODES`)."""


def error_kind(code: str | None, message: str = "") -> AWSErrorKind | None:
    """What ``code`` means (:data:`AWS_ERROR_CODES`); a "could not find" message is not-found.

    >>> error_kind("ThrottlingException")
    'throttled'
    >>> error_kind("ValidationException", "Could not find endpoint 'x'.")
    'not-found'
    """
    kind = AWS_ERROR_CODES.get(code or "")
    if kind is None and "could not find" in message.lower():
        return "not-found"
    return kind


def client_error_fields(exc: Any) -> tuple[str, str, int, str | None]:
    """``(code, message, HTTP status, request id)`` of a botocore ``ClientError``."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    metadata = response.get("ResponseMetadata") or {}
    status = metadata.get("HTTPStatusCode")
    return (
        str(error.get("Code") or ""),
        str(error.get("Message") or exc),
        status if isinstance(status, int) else 0,
        metadata.get("RequestId"),
    )


MAX_POOL_CONNECTIONS = 64
"""HTTP connections per client (botocore's default, 10, would cap concurrent invocations)."""


PREVALIDATED_SERVICES = frozenset({"sagemaker-runtime"})
"""Services whose every request the SDK builds and checks itself before sending
(``SageMakerBackend``: names, body size, attributes): botocore's second check of the
parameters is turned off for their clients; it cost ~14 µs of a ~0.8 ms loopback call."""


def botocore_config(
    *, connect_timeout_s: float = 10.0, read_timeout_s: float = 60.0, validate: bool = True
) -> Config:
    """A botocore ``Config`` that never retries by itself (the SDK's policy does);
    ``validate=False`` skips botocore's parameter validation (for requests the SDK checked)."""
    from botocore.config import Config

    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        max_pool_connections=MAX_POOL_CONNECTIONS,
        user_agent_extra="llm-twin-sdk",
        parameter_validation=validate,
    )


_LOADERS: dict[str | None, Any] = {}
"""botocore's service-model loaders by data path, shared by every session built here: a new
session would parse the same JSON models again (~0.1 s per client, ~5x the rest)."""


def boto3_session(region: str | None = None, profile: str | None = None) -> Any:
    """A new ``boto3.Session`` whose clients read AWS's service models from a shared cache."""
    import boto3
    import botocore.loaders
    import botocore.session

    core = botocore.session.get_session()
    session = boto3.Session(botocore_session=core, region_name=region, profile_name=profile)
    data_path = core.get_config_variable("data_path")
    if data_path not in _LOADERS:
        _LOADERS[data_path] = botocore.loaders.create_loader(data_path)
    core.register_component("data_loader", _LOADERS[data_path])
    return session


@dataclass(kw_only=True, eq=False)
class AWSClients:
    """Builds boto3 clients from one session (region, profile), once per service.

    Args:
        region: AWS region; ``None`` uses the profile's or environment's.
        profile: named profile from the AWS config files.
        endpoint_url: one URL for every service (moto server, LocalStack) — tests only.
    """

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = field(default=None, repr=False)
    _session: Any = field(default=None, init=False, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def client(self, service: str) -> Any:
        """The boto3 client of ``service`` (built on first use, then reused)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._build(service, None)
            return self._clients[service]

    def new_client(self, service: str, config: Config) -> Any:
        """A client of ``service`` with a ``config`` of its own (timeouts...), not shared: the
        caller closes it."""
        with self._lock:
            return self._build(service, config)

    def _build(self, service: str, config: Config | None) -> Any:
        from botocore.exceptions import BotoCoreError

        try:
            if self._session is None:
                self._session = boto3_session(self.region, self.profile)
            config = config or botocore_config(validate=service not in PREVALIDATED_SERVICES)
            return self._session.client(service, endpoint_url=self.endpoint_url, config=config)
        except BotoCoreError as exc:  # unknown profile, no region...
            raise ConfigurationError(
                f"cannot build an AWS {service} client: {exc}. Pass region= (or set "
                "AWS_DEFAULT_REGION) and check the profile name."
            ) from exc


def check_client_options(
    who: str, region: str | None, profile: str | None, retry: object, **clients: object
) -> None:
    """Refuse injected ``clients`` given with ``region=`` / ``profile=`` (they have their own),
    and a ``retry`` that is not a :class:`~llm_twin_sdk.retry.RetryPolicy`."""
    given = [f"{name}=" for name, value in clients.items() if value is not None]
    if given and (region is not None or profile is not None):
        raise ConfigurationError(
            f"{who}: pass either {' or '.join(given)} or region=/profile=, not both"
        )
    if not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"{who}: retry must be a RetryPolicy, got {type(retry).__name__}")


def is_retryable_aws_error(exc: BaseException) -> bool:
    """True for throttling, AWS-side 5xx and transport errors; never for bad requests."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ClientError):
        code, _, status, _ = client_error_fields(exc)
        return code in RETRYABLE_CODES or status in {500, 502, 503, 504}
    return isinstance(exc, (ConnectionError, HTTPClientError))


def aws_error(exc: BaseException, client: Any, operation: str) -> LLMTwinError:
    """The SDK error for a botocore exception raised by ``client.<operation>``."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        service = str(client.meta.service_model.service_name)
    except AttributeError:
        service = "aws"
    where = f"{service}.{operation}"
    if isinstance(exc, ClientError):
        code, message, _, request_id = client_error_fields(exc)
        code = code or "Unknown"
        meaning = error_kind(code, message)
        kind = _ERROR_TYPES.get(meaning, AWSError) if meaning is not None else AWSError
        if meaning == "throttled":
            message += " (still throttled after the retry policy's attempts)"
        return kind(
            f"{where} failed: {code}: {message}",
            service=service,
            operation=operation,
            code=code,
            request_id=request_id,
        )
    if isinstance(exc, NoCredentialsError):
        return AccessDeniedError(
            f"{where} failed: no AWS credentials found. Configure a profile "
            "(aws configure) or set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.",
            service=service,
            operation=operation,
        )
    if isinstance(exc, BotoCoreError):
        return AWSError(f"{where} failed: {exc}", service=service, operation=operation)
    raise TypeError(f"not a botocore error: {exc!r}")


_ERROR_TYPES: Mapping[AWSErrorKind, type[AWSError]] = {
    "throttled": AWSThrottledError,
    "access-denied": AccessDeniedError,
    "not-found": ResourceNotFoundError,
}
"""The control plane's error type for each kind of code (others: :class:`AWSError`)."""


def call_aws(
    client: Any, operation: str, *, policy: RetryPolicy = DEFAULT_RETRY_POLICY, **params: Any
) -> Any:
    """Call ``client.<operation>(**params)`` under ``policy``; errors become SDK errors."""
    from botocore.exceptions import BotoCoreError, ClientError

    method = getattr(client, operation)
    try:
        return policy.call(lambda: method(**params), is_retryable_aws_error)
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, client, operation) from exc


def pages(
    client: Any,
    operation: str,
    key: str,
    *,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    **params: Any,
) -> Iterator[dict[str, Any]]:
    """Every item under ``key`` of every page of a ``NextToken``-paginated call.

    Each page is one :func:`call_aws` (retried, errors converted).

    Example: ``for ep in pages(sm, "list_endpoints", "Endpoints", SortBy="Name"): ...``
    """
    token: str | None = None
    while True:
        page = call_aws(
            client, operation, policy=policy, **params, **({"NextToken": token} if token else {})
        )
        yield from (page or {}).get(key) or []
        token = (page or {}).get("NextToken")
        if not token:
            return


def describe_or_none(
    client: Any, operation: str, *, policy: RetryPolicy = DEFAULT_RETRY_POLICY, **params: Any
) -> dict[str, Any] | None:
    """A ``describe_*`` (or any call's) answer, or ``None`` when the resource does not exist.

    Example: ``describe_or_none(sm, "describe_endpoint", EndpointName="twin")``.
    """
    try:
        answer = call_aws(client, operation, policy=policy, **params)
    except ResourceNotFoundError:
        return None
    return dict(answer) if answer else {}


def delete_if_exists(
    client: Any, operation: str, *, policy: RetryPolicy = DEFAULT_RETRY_POLICY, **params: Any
) -> bool:
    """Call a ``delete_*``; ``False`` when there was nothing to delete (idempotent teardown).

    Example: ``delete_if_exists(sm, "delete_model", ModelName="twin-12fd0641")``.
    """
    return describe_or_none(client, operation, policy=policy, **params) is not None


S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(\S*))?$")
"""``s3://<bucket>[/<prefix>]`` with a valid bucket name (3-63 lowercase letters, digits,
dots, hyphens)."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``("bucket", "key/or/prefix")`` of an ``s3://`` URI; ValueError when it is not one.

    >>> split_s3_uri("s3://twin-jobs/out/run-1")
    ('twin-jobs', 'out/run-1')
    """
    match = S3_URI.match(uri)
    if match is None:
        raise ValueError(f"not an S3 URI s3://<bucket>/<prefix>: {uri!r}")
    return match.group(1), (match.group(2) or "")
