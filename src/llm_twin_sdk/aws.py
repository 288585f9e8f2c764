"""The seam to AWS: boto3 clients built once, every call retried and its errors converted.

boto3 retries on its own by default (3 requests for one throttled call). The clients built
here turn that off, so :class:`~llm_twin_sdk.retry.RetryPolicy` is the only retry loop and the
number of requests that reach AWS is exactly the policy's attempts.

Example::

    aws = AWSClients(region="eu-central-1")            # or AWSClients(profile="ml")
    sm = aws.client("sagemaker")                       # built once, then reused
    out = call_aws(sm, "describe_endpoint", EndpointName="twin")   # retried, typed errors
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

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
    "RETRYABLE_CODES",
    "AWSClients",
    "aws_error",
    "botocore_config",
    "call_aws",
    "is_retryable_aws_error",
]

RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServiceError",
        "ConcurrentUpdateException",  # Application Auto Scaling: retry later
        "ModelNotReadyException",
    }
)
_THROTTLE_CODES = frozenset(
    c
    for c in RETRYABLE_CODES
    if "hrottl" in c or c in {"TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
    }
)
_NOT_FOUND_CODES = frozenset(
    {"ResourceNotFound", "ResourceNotFoundException", "NoSuchEntity", "ObjectNotFoundException"}
)


MAX_POOL_CONNECTIONS = 64
"""HTTP connections per client (botocore's default, 10, would cap concurrent invocations)."""


def botocore_config(*, connect_timeout_s: float = 10.0, read_timeout_s: float = 60.0) -> Config:
    """A botocore ``Config`` that never retries by itself (the SDK's policy does)."""
    from botocore.config import Config

    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        max_pool_connections=MAX_POOL_CONNECTIONS,
        user_agent_extra="llm-twin-sdk",
    )


class AWSClients:
    """Builds boto3 clients from one session (region, profile), once per service.

    Args:
        region: AWS region; ``None`` uses the profile's or environment's.
        profile: named profile from the AWS config files.
        endpoint_url: one URL for every service (moto server, LocalStack) — tests only.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self.region = region
        self.profile = profile
        self.endpoint_url = endpoint_url
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AWSClients(region={self.region!r}, profile={self.profile!r})"

    def client(self, service: str) -> Any:
        """The boto3 client of ``service`` (built on first use, then reused)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._build(service)
            return self._clients[service]

    def _build(self, service: str) -> Any:
        import boto3
        from botocore.exceptions import BotoCoreError

        try:
            if self._session is None:
                self._session = boto3.Session(region_name=self.region, profile_name=self.profile)
            return self._session.client(
                service, endpoint_url=self.endpoint_url, config=botocore_config()
            )
        except BotoCoreError as exc:  # unknown profile, no region...
            raise ConfigurationError(
                f"cannot build an AWS {service} client: {exc}. Pass region= (or set "
                "AWS_DEFAULT_REGION) and check the profile name."
            ) from exc


def is_retryable_aws_error(exc: BaseException) -> bool:
    """True for throttling, AWS-side 5xx and transport errors; never for bad requests."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in RETRYABLE_CODES or status in {500, 502, 503, 504}
    return isinstance(exc, (ConnectionError, HTTPClientError))


def _service_name(client: Any) -> str:
    try:
        return str(client.meta.service_model.service_name)
    except AttributeError:
        return "aws"


def aws_error(exc: BaseException, client: Any, operation: str) -> LLMTwinError:
    """The SDK error for a botocore exception raised by ``client.<operation>``."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    service = _service_name(client)
    where = f"{service}.{operation}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "Unknown"
        message = error.get("Message") or str(exc)
        request_id = exc.response.get("ResponseMetadata", {}).get("RequestId")
        kind: type[AWSError] = AWSError
        if code in _THROTTLE_CODES:
            kind = AWSThrottledError
            message += " (still throttled after the retry policy's attempts)"
        elif code in _ACCESS_CODES:
            kind = AccessDeniedError
        elif code in _NOT_FOUND_CODES or "could not find" in message.lower():
            kind = ResourceNotFoundError
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
