"""AsyncInferenceSpec: validated, part of the endpoint config and its hash, shown by plan,
and deployed through moto in server mode (SageMaker's CreateEndpointConfig, real HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_twin_sdk.aws import AWSClients, split_s3_uri
from llm_twin_sdk.deploy.async_inference import AsyncInferenceSpec
from llm_twin_sdk.deploy.deployer import Deployer
from llm_twin_sdk.deploy.iam import INLINE_POLICY_NAME, ensure_execution_role, execution_policy
from llm_twin_sdk.deploy.requests import endpoint_config_request
from llm_twin_sdk.deploy.spec import EndpointSpec, InferenceComponentSpec
from llm_twin_sdk.errors import InvalidParameterError
from llm_twin_sdk.retry import RetryPolicy

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:latest"
TOPIC = "arn:aws:sns:us-east-1:123456789012:twin-results"
ASYNC = AsyncInferenceSpec(
    output_path="s3://twin-jobs/out/",
    failure_path="s3://twin-jobs/failed",
    success_topic=TOPIC,
    error_topic=TOPIC.replace("results", "errors"),
    max_concurrent_invocations_per_instance=4,
)


def make_spec(**overrides: Any) -> EndpointSpec:
    values: dict[str, Any] = {
        "name": "twin-async",
        "role_arn": ROLE,
        "instance_type": "ml.g4dn.xlarge",
        "image_uri": IMAGE,
    }
    return EndpointSpec(**(values | overrides))


def test_the_endpoint_config_carries_sagemakers_async_inference_config() -> None:
    request = endpoint_config_request(make_spec(async_inference=ASYNC))

    assert request["AsyncInferenceConfig"] == {
        "OutputConfig": {
            "S3OutputPath": "s3://twin-jobs/out",
            "S3FailurePath": "s3://twin-jobs/failed",
            "NotificationConfig": {
                "SuccessTopic": TOPIC,
                "ErrorTopic": "arn:aws:sns:us-east-1:123456789012:twin-errors",
            },
        },
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
    }
    bare = AsyncInferenceSpec(output_path="s3://twin-jobs/out").request()
    assert bare == {"OutputConfig": {"S3OutputPath": "s3://twin-jobs/out"}}
    assert "AsyncInferenceConfig" not in endpoint_config_request(make_spec())


def test_async_settings_are_part_of_the_config_hash_only() -> None:
    real_time, asynchronous = make_spec(), make_spec(async_inference=ASYNC)
    busier = make_spec(
        async_inference=ASYNC.model_copy(update={"max_concurrent_invocations_per_instance": 8})
    )

    assert real_time.model_hash == asynchronous.model_hash  # the model is the same
    hashes = {s.config_hash for s in (real_time, asynchronous, busier)}
    assert len(hashes) == 3
    assert make_spec(async_inference=ASYNC).config_hash == asynchronous.config_hash
    assert asynchronous.ref().asynchronous
    assert not real_time.ref().asynchronous
    assert "asynchronous" not in repr(real_time.ref())


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"output_path": "twin-jobs/out"}, "output_path.*S3 URI"),
        ({"output_path": "s3://Twin_Jobs/out"}, "output_path.*S3 URI"),
        ({"output_path": "s3://twin-jobs/" + "x" * 600}, "at most 512"),
        ({"failure_path": "https://example.com/x"}, "failure_path"),
        ({"failure_path": "s3://twin-jobs/out"}, "must differ"),
        ({"success_topic": "twin-results"}, "success_topic.*SNS topic ARN"),
        ({"error_topic": "arn:aws:sqs:us-east-1:123456789012:q"}, "error_topic"),
        ({"max_concurrent_invocations_per_instance": 0}, "max_concurrent"),
        ({"max_concurrent_invocations_per_instance": 1001}, "max_concurrent"),
    ],
)
def test_bad_async_settings_are_refused(fields: dict[str, Any], match: str) -> None:
    values: dict[str, Any] = {"output_path": "s3://twin-jobs/out"} | fields
    with pytest.raises(InvalidParameterError, match=match):
        AsyncInferenceSpec(**values)


def test_async_endpoints_are_model_based() -> None:
    with pytest.raises(InvalidParameterError, match=r"async_inference.*model-based"):
        make_spec(async_inference=ASYNC, components=InferenceComponentSpec())


def test_split_s3_uri() -> None:
    assert split_s3_uri("s3://twin-jobs/a/b.json") == ("twin-jobs", "a/b.json")
    assert split_s3_uri("s3://twin-jobs") == ("twin-jobs", "")
    with pytest.raises(ValueError, match="not an S3 URI"):
        split_s3_uri("https://twin-jobs/a")


def test_deploy_on_moto_creates_the_async_config_and_plan_shows_it(
    moto_aws: AWSClients, fast_retry: RetryPolicy
) -> None:
    spec = make_spec(async_inference=ASYNC)
    deployer = Deployer(aws=moto_aws, retry=fast_retry, poll_interval_s=0.01)

    plan = deployer.plan(spec)
    facts = str(plan)
    assert "async inference: results to s3://twin-jobs/out, failures to" in facts
    assert "SNS notifications, 4 per instance" in facts
    config_row = plan.get("endpoint-config")
    assert config_row is not None
    assert config_row.detail.endswith(", asynchronous")
    assert "async inference" in plan._repr_html_()

    endpoint = deployer.deploy(spec)

    assert endpoint.asynchronous
    sm = moto_aws.client("sagemaker")
    config = sm.describe_endpoint_config(EndpointConfigName=spec.endpoint_config_name)
    assert config["AsyncInferenceConfig"] == endpoint_config_request(spec)["AsyncInferenceConfig"]
    assert deployer.plan(spec).is_noop
    assert deployer.status("twin-async").ref() == spec.ref()  # asynchronous, read back
    assert deployer.plan(make_spec()).action("endpoint-config") == "create"
    jobs = endpoint.jobs(input_path="s3://twin-jobs/in", aws=moto_aws, max_in_flight=2)
    assert (jobs.endpoint_name, jobs.input_path, jobs.max_in_flight) == (
        "twin-async",
        "s3://twin-jobs/in",
        2,
    )
    real_time = deployer.deploy(make_spec(name="twin-rt"))
    assert not deployer.status("twin-rt").ref().asynchronous
    with pytest.raises(InvalidParameterError, match="real-time"):
        real_time.jobs(input_path="s3://twin-jobs/in")
    with pytest.raises(InvalidParameterError, match=r"asynchronous.*endpoint\.jobs"):
        endpoint.client()  # InvokeEndpoint would be refused: said before any call


def test_a_twin_deployment_refuses_an_asynchronous_spec() -> None:
    from llm_twin_sdk import TwinDeployment
    from llm_twin_sdk.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"asynchronous.*endpoint\.jobs"):
        TwinDeployment(make_spec(async_inference=ASYNC), aws=AWSClients(region="us-east-1"))


def test_the_role_may_write_results_read_inputs_and_publish(moto_aws: AWSClients) -> None:
    settings = AsyncInferenceSpec(**(ASYNC.model_dump() | {"input_path": "s3://twin-in/jobs"}))
    assert settings.request() == ASYNC.request()  # the input path is not SageMaker's config

    ensure_execution_role("twin-async-role", aws=moto_aws, async_inference=settings)

    answer = moto_aws.client("iam").get_role_policy(
        RoleName="twin-async-role", PolicyName=INLINE_POLICY_NAME
    )
    document = answer["PolicyDocument"]
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert statements["AsyncOutputWrite"]["Resource"] == [
        "arn:aws:s3:::twin-jobs/out/*",
        "arn:aws:s3:::twin-jobs/failed/*",
    ]
    assert statements["AsyncOutputWrite"]["Action"] == "s3:PutObject"
    assert statements["AsyncInputRead"]["Resource"] == "arn:aws:s3:::twin-in/jobs/*"
    assert statements["AsyncNotify"]["Resource"] == sorted([TOPIC, ASYNC.error_topic or ""])
    plain = {s["Sid"] for s in execution_policy()["Statement"]}
    assert set(statements) - plain == {"AsyncOutputWrite", "AsyncInputRead", "AsyncNotify"}
