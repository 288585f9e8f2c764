"""The one retry policy and the AWS seam: attempts on the wire, waits, typed errors."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from llm_twin_sdk import (
    AccessDeniedError,
    AWSError,
    AWSThrottledError,
    ConfigurationError,
    ResourceNotFoundError,
    ThrottledError,
)
from llm_twin_sdk.aws import (
    AWSClients,
    botocore_config,
    call_aws,
    error_kind,
    is_retryable_aws_error,
)
from llm_twin_sdk.retry import RetryPolicy


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "req-1"},
        },
        "DescribeEndpoint",
    )


def test_policy_retries_then_succeeds_and_waits_grow(
    fast_retry: RetryPolicy, sleeps: list[float]
) -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _client_error("ThrottlingException")
        return "ok"

    assert fast_retry.call(flaky, is_retryable_aws_error) == "ok"
    assert len(calls) == 3
    assert len(sleeps) == 2
    assert all(0 <= s <= 2 for s in sleeps)


def test_policy_gives_up_after_max_attempts(fast_retry: RetryPolicy, sleeps: list[float]) -> None:
    calls = []

    def always() -> None:
        calls.append(1)
        raise _client_error("ThrottlingException")

    with pytest.raises(ClientError):
        fast_retry.call(always, is_retryable_aws_error)
    assert len(calls) == 4
    assert len(sleeps) == 3


def test_policy_never_retries_what_is_not_retryable(fast_retry: RetryPolicy) -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise _client_error("ValidationException")

    with pytest.raises(ClientError):
        fast_retry.call(bad, is_retryable_aws_error)
    assert len(calls) == 1


def test_deadline_stops_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    clock = iter(range(0, 1000, 10))  # every reading of the clock is 10 s later
    monkeypatch.setattr(time, "monotonic", lambda: float(next(clock)))
    policy = RetryPolicy(max_attempts=100, initial_wait_s=0, deadline_s=25, sleep=lambda s: None)
    calls = []

    def always() -> None:
        calls.append(1)
        raise _client_error("ThrottlingException")

    with pytest.raises(ClientError):
        policy.call(always, is_retryable_aws_error)
    assert 1 < len(calls) < 100


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"initial_wait_s": -1}, {"deadline_s": 0}])
def test_invalid_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (_client_error("ThrottlingException"), True),
        (_client_error("ServiceUnavailable", 503), True),
        (_client_error("InternalFailure", 500), True),
        (_client_error("SomethingNew", 502), True),
        (_client_error("ValidationException"), False),
        (_client_error("AccessDeniedException", 403), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), True),
        (ValueError("x"), False),
    ],
)
def test_what_is_retryable(error: BaseException, retryable: bool) -> None:
    assert is_retryable_aws_error(error) is retryable


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("EntityAlreadyExists", "already-exists"),
        ("ResourceAlreadyExistsException", "already-exists"),
        ("NoSuchEntity", "not-found"),
        ("ValidationException", None),
    ],
)
def test_the_one_code_table_knows_resources_that_exist_already(code: str, kind: str | None) -> None:
    """The control plane's races (a role created concurrently) read the same table."""
    assert error_kind(code) == kind
    assert not is_retryable_aws_error(_client_error(code))


def test_clients_never_retry_by_themselves() -> None:
    assert botocore_config().retries == {"total_max_attempts": 1, "mode": "standard"}


def test_clients_are_built_once(aws_credentials: None) -> None:
    aws = AWSClients(region="us-east-1")
    assert aws.client("sagemaker") is aws.client("sagemaker")
    assert aws.client("sagemaker") is not aws.client("cloudwatch")


def test_sessions_share_the_parsed_service_models(aws_credentials: None) -> None:
    first, second = AWSClients(region="us-east-1"), AWSClients(region="eu-west-1")
    models = [aws.client("sagemaker").meta.service_model for aws in (first, second)]
    assert models[0].metadata is models[1].metadata  # parsed once, not once per session
    assert [m.signing_name for m in models] == ["sagemaker", "sagemaker"]


def test_unknown_profile_is_a_configuration_error(aws_credentials: None) -> None:
    with pytest.raises(ConfigurationError, match="profile"):
        AWSClients(profile="does-not-exist").client("sagemaker")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ThrottlingException", AWSThrottledError),
        ("AccessDeniedException", AccessDeniedError),
        ("ResourceNotFound", ResourceNotFoundError),
        ("ValidationException", AWSError),
    ],
)
def test_call_aws_converts_errors_and_counts_wire_attempts(
    aws_credentials: None, fast_retry: RetryPolicy, code: str, kind: type[AWSError]
) -> None:
    client = AWSClients(region="us-east-1").client("sagemaker")
    with Stubber(client) as stub:
        for _ in range(4):
            stub.add_client_error(
                "describe_endpoint",
                service_error_code=code,
                service_message="nope",
                http_status_code=400,
            )
        with pytest.raises(kind) as info:
            call_aws(client, "describe_endpoint", policy=fast_retry, EndpointName="twin")
        pending = len(stub._queue)  # responses not consumed
    err = info.value
    assert (err.service, err.operation, err.code) == ("sagemaker", "describe_endpoint", code)
    assert "sagemaker.describe_endpoint" in str(err)
    assert isinstance(err.__cause__, ClientError)
    expected_attempts = 4 if code == "ThrottlingException" else 1
    assert pending == 4 - expected_attempts
    if kind is AWSThrottledError:
        assert isinstance(err, ThrottledError)


def test_call_aws_returns_the_response(aws_credentials: None, fast_retry: RetryPolicy) -> None:
    client = AWSClients(region="us-east-1").client("sagemaker")
    with Stubber(client) as stub:
        stub.add_client_error(
            "list_endpoints", service_error_code="ThrottlingException", http_status_code=400
        )
        stub.add_response("list_endpoints", {"Endpoints": []}, {})
        assert call_aws(client, "list_endpoints", policy=fast_retry)["Endpoints"] == []
        stub.assert_no_pending_responses()


def test_throttling_reaches_the_wire_exactly_max_attempts(
    moto_aws: AWSClients, sleeps: list[float]
) -> None:
    """Against a real HTTP server: count the requests, not just the Python calls."""
    client = moto_aws.client("sagemaker")
    sent: list[str] = []
    client.meta.events.register(
        "before-send.sagemaker.*", lambda request, **_: sent.append(request.url)
    )
    policy = RetryPolicy(max_attempts=3, initial_wait_s=0.1, sleep=sleeps.append)
    with pytest.raises(ResourceNotFoundError):
        call_aws(client, "describe_endpoint", policy=policy, EndpointName="missing")
    assert len(sent) == 1  # not retryable: one request
    # A connection failure is retryable: 3 requests, 2 waits, and no botocore retries on top.
    dead = AWSClients(region="us-east-1", endpoint_url="http://127.0.0.1:9").client("sagemaker")
    attempts: list[str] = []
    dead.meta.events.register(
        "before-send.sagemaker.*", lambda request, **_: attempts.append(request.url)
    )
    with pytest.raises(AWSError, match="describe_endpoint"):
        call_aws(dead, "describe_endpoint", policy=policy, EndpointName="x")
    assert len(attempts) == 3
    assert len(sleeps) == 2


def test_waits_double_per_attempt_with_full_jitter() -> None:
    """Wait k is uniform in [0, min(max_wait, initial * 2**(k-1))]: check bounds and spread."""
    waits: list[list[float]] = []
    for _ in range(200):
        sleeps: list[float] = []
        policy = RetryPolicy(max_attempts=5, initial_wait_s=1, max_wait_s=6, sleep=sleeps.append)
        with pytest.raises(ClientError):
            policy.call(
                lambda: (_ for _ in ()).throw(_client_error("Throttling")), is_retryable_aws_error
            )
        assert len(sleeps) == 4
        waits.append(sleeps)
    for k, bound in enumerate([1, 2, 4, 6]):
        column = [w[k] for w in waits]
        assert max(column) <= bound
        assert max(column) > bound * 0.8  # the whole range is used
